// The seed explorer's circuit view: feature → behavior and feature → feature edges, filtered by
// weight and by edges per node; a node's details and its top sequences with position-level
// activations. Labels come from the loaded files and are shown as text.

import cytoscape from 'cytoscape';

const isBehavior = (e) => e.kind === 'feat->behavior';
/** The seed's behaviors in words. */
export const BEHAVIORS = { tm: 'transmembrane helix', sp: 'signal peptide' };

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

// Nodes coloured by layer (the explorer's way): one hue per layer, spread round the wheel so that
// neighbouring layers differ; the behavior node apart (a diamond, in the behavior's red).
const LAYER_HUES = [200, 215, 45, 280, 150, 330, 95, 20, 255, 175];
export const layerColor = (layer) => `hsl(${LAYER_HUES[(layer - 1) % LAYER_HUES.length]}, 70%, 55%)`;
const BEHAVIOR = '#e5484d';
const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

/**
 * A circuit's layout: one column per layer, left to right as the residual stream flows, the
 * behavior node in a column of its own at the right; in each column the most important node on top.
 */
function columns(cy, layers, aspect) {
  const positions = {};
  const groups = [...layers.map((l) => cy.nodes().filter((n) => n.data('raw').layer === l && n.data('kind') !== 'behavior').toArray()), cy.nodes('[kind = "behavior"]').toArray()];
  // Columns as far apart as the container's shape allows: the fitted graph then fills it.
  const height = 40 * Math.max(1, ...groups.map((g) => g.length));
  const gap = Math.max(200, (aspect * height) / Math.max(1, groups.length - 1));
  groups.forEach((nodes, c) => {
    const sorted = nodes.sort((a, b) => Math.abs(b.data('raw').importance ?? 0) - Math.abs(a.data('raw').importance ?? 0));
    const step = height / Math.max(1, sorted.length);
    sorted.forEach((n, i) => { positions[n.id()] = { x: c * gap, y: (i + 0.5) * step }; });
  });
  return positions;
}

export function createGraphView(container, { onFeature, onExample, details, picker }) {
  const style = () => [
    { selector: 'node', style: { label: 'data(label)', 'font-size': 9, color: css('--fg'), 'text-outline-color': css('--bg'), 'text-outline-width': 1, width: 'mapData(size, 0, 1, 10, 34)', height: 'mapData(size, 0, 1, 10, 34)', 'background-color': 'data(color)' } },
    { selector: 'node[kind = "behavior"]', style: { shape: 'diamond', width: 38, height: 38 } },
    { selector: 'node:selected', style: { 'border-width': 3, 'border-color': css('--gold') } },
    { selector: 'edge', style: { width: 'mapData(w, 0, 1, 0.5, 5)', 'line-color': 'data(color)', 'curve-style': 'bezier', 'target-arrow-shape': 'triangle', 'target-arrow-color': 'data(color)', opacity: 0.65 } },
    { selector: 'edge.highlight', style: { 'line-color': css('--gold'), 'target-arrow-color': css('--gold'), opacity: 1 } },
  ];
  const cy = cytoscape({ container, style: style() });
  // Cytoscape keeps the container's place on screen until a scroll or resize; panels above it
  // change height as the page loads and runs, so it is read again before the pointer acts.
  for (const type of ['pointerenter', 'pointerdown']) container.addEventListener(type, () => cy.resize(), true);
  let features = new Map();
  let behaviorName = null;
  const highlight = () => {
    cy.edges().removeClass('highlight');
    cy.nodes(':selected').connectedEdges().addClass('highlight');
  };
  cy.on('select unselect', 'node', highlight);
  const open = (node) => {
    const n = node.data('raw');
    showDetails(details, n, features.get(n.id), cy, behaviorName, onExample);
    if (picker) picker.value = n.id;
    if (n.kind === 'feature') onFeature(n.layer, n.feature);
  };
  cy.on('tap', 'node', (e) => open(e.target));
  // The keyboard's way to a node: the picker lists the nodes shown, as a click would choose them.
  picker?.addEventListener('change', () => {
    const node = cy.getElementById(picker.value);
    if (!node.length) return;
    cy.nodes().unselect();
    node.select();
    open(node);
  });
  return {
    cy,
    show(graph, featureInfo, { minWeight, maxEdges }) {
      features = new Map((Array.isArray(featureInfo?.features) ? featureInfo.features : []).map((f) => [f?.id, f]));
      // The graph's meta names its behavior; the seed's features_sp.json says "tm" in every example.
      behaviorName = typeof graph.meta?.behavior === 'string' ? graph.meta.behavior : null;
      const edges = filterEdges(graph.edges, minWeight, maxEdges);
      const used = new Set(edges.flatMap((e) => [e.src, e.dst]));
      const maxImp = Math.max(1e-12, ...graph.nodes.map((n) => Math.abs(n.importance ?? 0)));
      // Widths within each kind: a behavior edge's weight means nothing on the other kind's scale.
      const maxW = (behavior) => Math.max(1e-12, ...edges.filter((e) => isBehavior(e) === behavior).map((e) => Math.abs(e.weight)));
      const widest = { true: maxW(true), false: maxW(false) };
      cy.style(style());
      cy.elements().remove();
      cy.add(graph.nodes.filter((n) => used.has(n.id) || n.kind === 'behavior').map((n) => ({
        data: {
          id: n.id, raw: n, label: n.id, kind: n.kind,
          size: n.kind === 'behavior' ? 1 : Math.abs(n.importance ?? 0) / maxImp,
          color: n.kind === 'behavior' ? BEHAVIOR : layerColor(n.layer),
        },
      })));
      cy.add(edges.map((e, i) => ({
        data: { id: `e${i}`, source: e.src, target: e.dst, w: Math.abs(e.weight) / widest[isBehavior(e)], color: isBehavior(e) ? BEHAVIOR : css('--muted') },
      })));
      if (picker) {
        const option = (value, text) => Object.assign(document.createElement('option'), { value, textContent: text });
        const shownNodes = cy.nodes().map((n) => n.data('raw'))
          .sort((a, b) => (a.kind === 'behavior' ? -1 : b.kind === 'behavior' ? 1 : a.layer - b.layer || Math.abs(b.importance ?? 0) - Math.abs(a.importance ?? 0)));
        picker.replaceChildren(option('', 'choose…'), ...shownNodes.map((n) => option(n.id, n.importance === undefined ? n.id : `${n.id} (importance ${n.importance.toPrecision(2)})`)));
      }
      const layers = [...new Set(graph.nodes.filter((n) => n.kind === 'feature' && used.has(n.id)).map((n) => n.layer))].sort((a, b) => a - b);
      cy.layout({ name: 'preset', positions: columns(cy, layers, 0.8 * container.clientWidth / Math.max(1, container.clientHeight)), fit: true, padding: 24 }).run();
      return { nodes: cy.nodes().length, edges: edges.length, behaviorEdges: edges.filter(isBehavior).length, layers, behavior: behaviorName };
    },
    select(layer, feature) {
      cy.nodes().unselect();
      const node = cy.getElementById(`L${layer}:F${feature}`).select();
      if (picker) picker.value = node.length ? node.id() : '';
    },
    /** Re-reads the theme's colours. */
    restyle() { cy.style(style()); },
  };
}

/** A node's details: its edges and, from the features file, its top examples in the explorer's
 *  sequence viewer (behavior segments, feature mask, both, top positions; hover for values). */
function showDetails(root, node, info, cy, behavior, onExample) {
  const el = (tag, text, cls) => Object.assign(document.createElement(tag), { textContent: text ?? '' }, cls ? { className: cls } : {});
  const out = [el('h3', node.id)];
  const named = behavior ? BEHAVIORS[behavior] ?? behavior : 'behavior';
  if (node.importance !== undefined) out.push(el('p', `importance ${node.importance.toPrecision(3)}`));
  if (node.kind === 'behavior') out.push(el('p', `the behavior: ${named}`));
  const edges = cy.getElementById(node.id).connectedEdges().map((e) => `${e.data('source')} → ${e.data('target')}`);
  if (edges.length) out.push(el('p', `${edges.length} edges shown: ${edges.slice(0, 6).join('; ')}${edges.length > 6 ? '…' : ''}`));
  const list = Array.isArray(info?.examples) ? info.examples : [];
  if (list.length) {
    const legend = el('p', '', 'atlas-legend');
    legend.append(el('span', named, 'behavior'), el('span', 'feature mask', 'mask'), el('span', 'both', 'mask behavior'), el('span', 'top position', 'fires top'));
    out.push(el('h4', 'Top examples (the seed explorer\'s)'), legend);
  }
  const within = (segments, i) => (Array.isArray(segments) ? segments : []).some((g) => Array.isArray(g) && g[0] <= i && i <= g[1]);
  for (const ex of list) {
    if (typeof ex?.sequence !== 'string') continue;
    const row = el('div', '', 'atlas-example');
    const acts = new Map((Array.isArray(ex.top_positions) ? ex.top_positions : []).map((t) => [t?.pos, Number(t?.act)]));
    const seq = el('span', '', 'atlas-seq');
    [...ex.sequence].forEach((aa, i) => {
      const marks = [within(ex.feature_segments, i) && 'mask', within(ex.behavior_segments, i) && named].filter(Boolean);
      const s = el('span', aa, [within(ex.feature_segments, i) && 'mask', within(ex.behavior_segments, i) && 'behavior', acts.has(i) && 'fires top'].filter(Boolean).join(' '));
      if (acts.has(i) || marks.length) s.title = `${i + 1} ${aa}${acts.has(i) ? `: ${acts.get(i).toFixed(2)}` : ''}${marks.length ? ` (${marks.join(', ')})` : ''}`;
      seq.append(s);
    });
    const go = el('button', 'open');
    go.type = 'button';
    go.title = `Run ${ex.accession} in the viewer with ${node.id} selected`;
    go.onclick = () => onExample(`>${ex.accession}\n${ex.sequence}\n`, node.layer, node.feature);
    row.append(el('span', `${ex.accession} · max ${Number(ex.max_act).toFixed(2)}`, 'atlas-id'), go, seq);
    out.push(row);
  }
  root.replaceChildren(...out);
}
