// Probes, circuits and concepts on annotated proteins: the page's side. The worker trains,
// ablates and counts; this module reads the inputs, shows progress and draws the results.
// Protein names, concept names and file names are shown as text only.

import { fetchCached } from '../loader.js';
import { CAPS, checkSize } from '../hosts.js';
import { download } from '../download.js';

const $ = (id) => document.getElementById(id);
const el = (tag, text) => Object.assign(document.createElement(tag), { textContent: text ?? '' });
const UNIPROT_FIELDS = 'accession,sequence,ft_transmem,ft_signal,ft_binding,ft_motif,ft_domain,ft_helix,ft_strand,ft_turn';

/** UniProt's REST search for `query`, as JSON with the annotation fields plmscope reads. */
export const uniprotSearch = (query, size) =>
  `https://rest.uniprot.org/uniprotkb/search?format=json&size=${size}&fields=${UNIPROT_FIELDS}&query=${encodeURIComponent(query)}`;

export function createAnalysis({ engine, modelName, seedFeatures, graphBehavior, onGraph, onFeature }) {
  let concepts = null; // the last concept table
  let probe = null;
  let graph = null;
  let cancelWanted = false;
  const error = (e) => { $('analysis-error').textContent = e ? e.message ?? String(e) : ''; };

  /**
   * `text` with each example's behavior set to the behavior of the graph its features file names
   * (`meta.graph_json`): the seed's features_sp.json says "tm" in every example, its graph's meta
   * says "sp". Other texts as they are.
   */
  async function withGraphBehavior(text) {
    if (!text.trimStart().startsWith('{')) return text;
    let v;
    try { v = JSON.parse(text); } catch { return text; }
    const behavior = Array.isArray(v?.features) ? await graphBehavior(v.meta?.graph_json).catch(() => null) : null;
    if (typeof behavior !== 'string') return text;
    for (const f of v.features) for (const e of Array.isArray(f?.examples) ? f.examples : []) if (e && typeof e === 'object') e.behavior = behavior;
    return JSON.stringify(v);
  }

  async function loadLabels(text, from) {
    error();
    const max = Number($('labels-max').value) || 20;
    try {
      const { result } = await engine.request('load-labels', { text: await withGraphBehavior(text), max });
      const concepts = result.concepts.map(([c, n]) => `${c} (${n})`).join(', ') || 'none';
      $('labels-status').textContent = `${result.proteins} proteins from ${from}; annotated concepts: ${concepts}` +
        (result.skipped.length ? `; skipped ${result.skipped.length}: ${result.skipped.slice(0, 3).join('; ')}` : '');
      $('probe-concept').replaceChildren(...result.concepts.map(([c]) => Object.assign(el('option', c), { value: c })));
    } catch (e) {
      error(new Error(`${from}: ${e.message}`));
    }
  }

  $('labels-file').addEventListener('change', async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    try {
      loadLabels(await checkSize(file, CAPS.json).text(), file.name);
    } catch (err) {
      error(err);
    }
  });
  $('labels-seed').addEventListener('click', async () => {
    try {
      const { bytes, from } = await seedFeatures();
      loadLabels(new TextDecoder().decode(bytes), `the seed explorer's TM examples (from ${from})`);
    } catch (e) {
      error(new Error(`the seed explorer's examples (features_tm.json): ${e.message}`));
    }
  });
  $('uniprot-fetch').addEventListener('click', async () => {
    const query = $('uniprot-query').value.trim();
    if (!query) { error(new Error('type a UniProt query, e.g. reviewed:true AND ft_transmem:* AND length:[50 TO 300]')); return; }
    const url = uniprotSearch(query, Number($('labels-max').value) || 20);
    try {
      const bytes = await fetchCached(url, {
        name: 'UniProt\'s answer',
        cap: CAPS.json,
        onProgress: (loaded, total, fromCache) => {
          $('labels-status').textContent = `${fromCache ? 'Reading UniProt\'s answer from the cache' : 'Fetching from UniProt'}: ${(loaded / 1e3).toFixed(0)} kB`;
        },
      });
      loadLabels(new TextDecoder().decode(bytes), `UniProt (${query})`);
    } catch (e) {
      error(new Error(`UniProt: ${e.message}`));
    }
  });

  const fmt = (v) => (v === null || v === undefined ? '–' : v.toFixed(3));
  const metrics = (m) => `precision ${fmt(m.precision)}, recall ${fmt(m.recall)}, F1 ${fmt(m.f1)}, AUROC ${fmt(m.auroc)} (${m.residues} residues, ${m.positives} in it)`;
  function showProbe(p) {
    probe = p;
    $('probe-status').textContent = `Probe for ${p.concept} at layer ${p.layer} (${p.input}): held out ${p.heldOut ? metrics(p.heldOut) : 'none (fewer than 5 proteins)'}; train ${metrics(p.train)}`;
    $('probe-save').disabled = false;
  }
  $('probe-train').addEventListener('click', async () => {
    error();
    $('probe-status').textContent = 'Training…';
    try {
      const { result, ms } = await engine.request('train-probe', {
        concept: $('probe-concept').value, layer: Number($('probe-layer').value), input: $('probe-input').value,
      });
      showProbe(result);
      $('probe-status').textContent += ` — ${(ms / 1000).toFixed(1)} s`;
    } catch (e) {
      $('probe-status').textContent = '';
      error(e);
    }
  });
  $('probe-save').addEventListener('click', () => save(`plmscope-probe-${probe.concept}-layer${probe.layer}.json`, probe));
  $('probe-file').addEventListener('change', async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    error();
    try {
      showProbe((await engine.request('load-probe', { text: await checkSize(file, CAPS.json).text() })).result);
    } catch (err) {
      error(new Error(`${file.name}: ${err.message}`));
    }
  });

  // The page drives the circuit one step per request: the answer carries the progress, and a
  // cancel is the next step not asked for.
  $('circuit-run').addEventListener('click', async () => {
    error();
    const layers = $('circuit-layers').value.split(',').map((s) => Number(s.trim()));
    const options = {
      layers, topN: Number($('circuit-top').value), edgesPerFeature: Number($('circuit-edges').value), batch: 8, modelName: `${modelName()} (as loaded in plmscope)`,
    };
    $('circuit-run').disabled = true;
    $('circuit-cancel').disabled = false;
    cancelWanted = false;
    $('circuit-status').textContent = 'Loading the SAEs of the circuit\'s layers…';
    const bar = $('circuit-progress');
    const t0 = performance.now();
    try {
      let { result: p } = await engine.request('circuit-start', { options, useProbe: $('circuit-probe').checked });
      while (p.done < p.total) {
        if (cancelWanted) throw new Error(`cancelled after ${p.done} of ${p.total} steps`);
        p = (await engine.request('circuit-step', {})).result;
        Object.assign(bar, { hidden: false, max: p.total, value: p.done });
        $('circuit-status').textContent = `Circuit: step ${p.done} of ${p.total}`;
      }
      const { result } = await engine.request('circuit-graph', {});
      graph = result;
      $('circuit-status').textContent = `Circuit over layers ${layers.join(', ')}: ${result.nodes.length} nodes, ${result.edges.length} edges in ${((performance.now() - t0) / 1000).toFixed(1)} s — shown in the graph view as "live"`;
      $('circuit-save').disabled = false;
      onGraph(result);
    } catch (e) {
      $('circuit-status').textContent = '';
      error(e);
    } finally {
      $('circuit-run').disabled = false;
      $('circuit-cancel').disabled = true;
      bar.hidden = true;
    }
  });
  $('circuit-cancel').addEventListener('click', () => { cancelWanted = true; });
  $('circuit-save').addEventListener('click', () => save('plmscope-circuit.json', graph));

  $('concepts-run').addEventListener('click', async () => {
    error();
    const layer = Number($('concepts-layer').value);
    const names = [...$('probe-concept').options].map((o) => o.value);
    $('concepts-status').textContent = 'Associating…';
    try {
      const { result, ms } = await engine.request('concepts', { layer, concepts: names, top: 10 });
      concepts = result;
      $('concepts-status').textContent = `${result.dSae} features at layer ${layer} against ${names.length} concepts over ${result.proteins} proteins in ${(ms / 1000).toFixed(1)} s`;
      renderConcepts();
    } catch (e) {
      $('concepts-status').textContent = '';
      error(e);
    }
  });

  function renderConcepts() {
    const out = [];
    for (const row of concepts.concepts) {
      out.push(el('h4', `${row.concept}: ${row.domains} domains, ${row.residues} residues`));
      const table = document.createElement('table');
      const head = document.createElement('tr');
      head.append(...['feature', 'F1', 'precision (residues)', 'recall (domains)', 'threshold', '1-D logistic R²'].map((h) => el('th', h)));
      table.append(head);
      for (const a of row.top) {
        const tr = document.createElement('tr');
        const button = el('button', String(a.feature));
        button.addEventListener('click', () => onFeature(concepts.layer, a.feature));
        const cell = document.createElement('td');
        cell.append(button);
        tr.append(cell, ...[a.f1, a.precision, a.recall, a.threshold, a.logisticR2].map((v) => el('td', v.toFixed(3))));
        table.append(tr);
      }
      out.push(row.top.length ? table : el('p', 'no feature fires inside it'));
    }
    $('concepts-table').replaceChildren(...out);
  }

  const save = (name, value) => download(name, new Blob([JSON.stringify(value, null, 1)], { type: 'application/json' }));

  return {
    fillLayers(n) {
      for (const id of ['probe-layer', 'concepts-layer']) {
        $(id).replaceChildren(...Array.from({ length: n }, (_, i) => Object.assign(el('option', String(i + 1)), { value: String(i + 1) })));
      }
      $('probe-layer').value = String(n);
    },
    /** The best concepts of a feature at a layer, from the last concept table, as a line of text. */
    conceptsOf(layer, feature) {
      if (!concepts || concepts.layer !== layer) return '';
      const best = concepts.concepts
        .map((c) => [c.concept, c.top.find((a) => a.feature === feature)])
        .filter(([, a]) => a)
        .sort((x, y) => y[1].f1 - x[1].f1);
      return best.length ? `Best concepts: ${best.map(([c, a]) => `${c} (F1 ${a.f1.toFixed(2)})`).join(', ')}` : 'In none of the concept table\'s top lists';
    },
  };
}
