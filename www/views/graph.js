// The seed explorer's circuit view: feature → behavior and feature → feature edges, filtered by
// weight and by edges per node; a node's details and its top sequences with position-level
// activations. Labels come from the loaded files and are shown as text.

import cytoscape from 'cytoscape';

const isBehavior = (e) => e.kind === 'feat->behavior';

/**
 * Keeps edges of at least `minWeight.behavior` (feature → behavior) or `minWeight.feature`
 * (feature → feature), and at most `maxEdges` (the heaviest) of each kind per source node. The
 * two kinds are kept apart: in the seed's graphs they live on scales ~1,000× apart (Δ loss up to
 * ~0.005 against up to ~1.7), so one threshold hides every behavior edge or shows every other,
 * and one ranking would let a node's feature edges push out its behavior edge.
 */
export function filterEdges(edges, minWeight, maxEdges) {
  const bySrc = new Map();
  for (const e of edges) {
    if (!(Math.abs(e.weight) >= (isBehavior(e) ? minWeight.behavior : minWeight.feature))) continue;
    const key = `${isBehavior(e)} ${e.src}`;
    if (!bySrc.has(key)) bySrc.set(key, []);
    bySrc.get(key).push(e);
  }
  return [...bySrc.values()].flatMap((es) => es.sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight)).slice(0, maxEdges));
}

/** Throws with what is wrong when `g` is not in the seed's circuit schema. */
// A graph the view can lay out in a moment: the seed's have 86 nodes and 220 edges.
const MAX_NODES = 5000;
const MAX_EDGES = 50000;

export function validateGraph(g) {
  if (!g || !Array.isArray(g.nodes) || !Array.isArray(g.edges)) throw new Error('a circuit graph needs "nodes" and "edges" arrays');
  if (g.nodes.length > MAX_NODES || g.edges.length > MAX_EDGES) {
    throw new Error(`${g.nodes.length} nodes and ${g.edges.length} edges: the view shows at most ${MAX_NODES} nodes and ${MAX_EDGES} edges`);
  }
  const ids = new Set();
  g.nodes.forEach((n, i) => {
    if (typeof n.id !== 'string') throw new Error(`node ${i} has no string "id"`);
    if (n.kind === 'feature' && !(Number.isInteger(n.layer) && Number.isInteger(n.feature))) {
      throw new Error(`node ${n.id}: a feature node needs integer "layer" and "feature"`);
    }
    ids.add(n.id);
  });
  g.edges.forEach((e, i) => {
    if (!ids.has(e.src) || !ids.has(e.dst)) throw new Error(`edge ${i} joins nodes that are not in the graph`);
    if (!Number.isFinite(e.weight)) throw new Error(`edge ${i} has no finite numeric "weight"`);
  });
  return g;
}

export function createGraphView(container, { onFeature, details }) {
  const cy = cytoscape({
    container,
    style: [
      { selector: 'node', style: { label: 'data(label)', 'font-size': 9, width: 'mapData(size, 0, 1, 10, 34)', height: 'mapData(size, 0, 1, 10, 34)', 'background-color': 'data(color)' } },
      { selector: 'node:selected', style: { 'border-width': 3, 'border-color': '#1d2430' } },
      { selector: 'edge', style: { width: 'mapData(w, 0, 1, 0.5, 5)', 'line-color': 'data(color)', 'curve-style': 'bezier', 'target-arrow-shape': 'triangle', 'target-arrow-color': 'data(color)', opacity: 0.7 } },
    ],
  });
  let features = new Map();
  cy.on('tap', 'node', (e) => {
    const n = e.target.data('raw');
    showDetails(details, n, features.get(n.id), cy);
    if (n.kind === 'feature') onFeature(n.layer, n.feature);
  });
  return {
    cy,
    show(graph, featureInfo, { minWeight, maxEdges }) {
      features = new Map((Array.isArray(featureInfo?.features) ? featureInfo.features : []).map((f) => [f?.id, f]));
      const edges = filterEdges(graph.edges, minWeight, maxEdges);
      const used = new Set(edges.flatMap((e) => [e.src, e.dst]));
      const maxImp = Math.max(1e-12, ...graph.nodes.map((n) => Math.abs(n.importance ?? 0)));
      // Widths within each kind: a behavior edge's weight means nothing on the other kind's scale.
      const maxW = (behavior) => Math.max(1e-12, ...edges.filter((e) => isBehavior(e) === behavior).map((e) => Math.abs(e.weight)));
      const widest = { true: maxW(true), false: maxW(false) };
      cy.elements().remove();
      cy.add(graph.nodes.filter((n) => used.has(n.id) || n.kind === 'behavior').map((n) => ({
        data: {
          id: n.id, raw: n, label: n.id,
          size: n.kind === 'behavior' ? 1 : Math.abs(n.importance ?? 0) / maxImp,
          color: n.kind === 'behavior' ? '#c0392b' : n.layer <= 2 ? '#2e86de' : '#16a085',
        },
      })));
      cy.add(edges.map((e, i) => ({
        data: { id: `e${i}`, source: e.src, target: e.dst, w: Math.abs(e.weight) / widest[isBehavior(e)], color: isBehavior(e) ? '#c0392b' : '#7f8c8d' },
      })));
      cy.layout({ name: 'breadthfirst', directed: true, spacingFactor: 0.9 }).run();
      return { nodes: cy.nodes().length, edges: edges.length, behaviorEdges: edges.filter(isBehavior).length };
    },
    select(layer, feature) {
      cy.nodes().unselect();
      cy.getElementById(`L${layer}:F${feature}`).select();
    },
  };
}

function showDetails(root, node, info, cy) {
  const el = (tag, text) => Object.assign(document.createElement(tag), { textContent: text });
  const out = [el('h3', node.id)];
  if (node.importance !== undefined) out.push(el('p', `importance ${node.importance.toPrecision(3)}`));
  const edges = cy.getElementById(node.id).connectedEdges().map((e) => `${e.data('source')} → ${e.data('target')}`);
  if (edges.length) out.push(el('p', `${edges.length} edges shown: ${edges.slice(0, 6).join('; ')}${edges.length > 6 ? '…' : ''}`));
  for (const ex of info?.examples ?? []) {
    const p = document.createElement('p');
    p.className = 'seq';
    const hot = new Set(ex.top_positions?.map((t) => t.pos) ?? []);
    p.append(el('strong', `${ex.accession} (max ${Number(ex.max_act).toFixed(1)}) `));
    [...ex.sequence].forEach((aa, i) => {
      const acts = ex.top_positions?.find((t) => t.pos === i);
      const span = hot.has(i) ? document.createElement('mark') : document.createElement('span');
      span.textContent = aa;
      if (acts) span.title = `position ${i + 1}: ${acts.act.toFixed(2)}`;
      p.append(span);
    });
    out.push(p);
  }
  root.replaceChildren(...out);
}
