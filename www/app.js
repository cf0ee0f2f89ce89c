// The page: state, wiring between the input, the worker and the views.
// Everything the visitor typed or loaded is shown as text, never parsed as HTML.

import { createEngine } from './engine.js';
import { download } from './download.js';
import { state, readUrl, writeUrl, parsePositions, editToText, TOOLS } from './state.js';
import { drawHeatmap, matrix } from './views/heatmap.js';
import { drawPredictions, drawDelta } from './views/predictions.js';
import { createGraphView, validateGraph, layerColor, BEHAVIORS } from './views/graph.js';
import { createAnalysis } from './views/analysis.js';
import { createDesign } from './views/design.js';
import { createAtlas } from './views/atlas.js';
import { accessionOf, createStructure, fetchAlphaFold, fetchEsmFold, ESMFOLD_MAX } from './views/structure.js';
import { isolate } from './isolation.js';
import { fetchSeed } from './seed.js';
import { HUB, MODELS, saeSet } from './loader.js';
import { CAPS, MB, allowedBy, checkSize, fetchCapped, linkUrl, originLabel, parseJson } from './hosts.js';

const $ = (id) => document.getElementById(id);
const el = (tag, text) => Object.assign(document.createElement(tag), { textContent: text ?? '' });
const HEATMAP_ROWS = 24;
const THEME_KEY = 'plmscope-theme';

/** 'system' follows prefers-color-scheme (style.css); 'dark' and 'light' override it. */
function applyTheme(theme) {
  if (theme === 'dark' || theme === 'light') document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
  $('theme').value = theme === 'dark' || theme === 'light' ? theme : 'system';
}

const params = readUrl();
applyTheme(localStorage.getItem(THEME_KEY) ?? 'system');
// While the page reloads into cross-origin isolation, nothing below starts.
if (!(await isolate(params))) await new Promise(() => {});
const view = { features: null, intervention: null, modelReady: false, saeLayers: new Set(), randomWeights: false };

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------
const engine = createEngine({
  initiate: (d) => setStatus(`Fetching ${d.file}…`),
  progress: (d) => {
    if (d.task) { design.onProgress(d); return; }
    const p = $('progress');
    p.hidden = false;
    p.max = d.total;
    p.value = d.loaded;
    const pct = d.total ? ` (${Math.round((100 * d.loaded) / d.total)}%)` : '';
    setStatus(`${d.fromCache ? 'Reading from the cache' : 'Downloading'} ${d.file}: ${(d.loaded / 1e6).toFixed(1)} MB${pct}`);
  },
  done: () => { $('progress').hidden = true; },
  ready: (d) => {
    $('backend').textContent = d.backend === 'webgpu' ? 'WebGPU' : `CPU (WebAssembly${d.threads > 1 ? `, ${d.threads} threads` : ''})`;
    $('backend').className = `badge ${d.backend}`;
    view.backend = d.backend;
  },
  // What each size would hold on the running engine at the chosen precision.
  plans: (d) => {
    view.plans = d.plans;
    view.f16 = d.f16;
    fillModelPicker();
  },
  note: (d) => setStatus(d.note),
});

function onModelReady(info) {
  $('progress').hidden = true;
  view.modelReady = true;
  view.randomWeights = info.randomWeights;
  view.randomCheckpoint = info.randomCheckpoint;
  view.modelName = info.source;
  view.modelSha = info.sha256;
  view.saeShas = new Map();
  view.nLayers = info.nLayers;
  view.saeLayers.clear();
  view.modelStatus = `Model ready: ${info.nLayers} layers, d_model ${info.dModel} — ${info.source}`;
  const refused = state.precision === 'f16' && info.precision !== 'f16' ? ' (f16 was asked, but this device has no 16-bit floats: WebGPU\'s shader-f16)' : '';
  $('memory-note').textContent = (info.wasmBytes === null ? '' : `The engine's wasm memory after loading (its peak so far): ${MB(info.wasmBytes)} (${$('backend').textContent}). `) +
    `Weights: ${info.precision}, ${MB(info.weightBytes)} ${view.backend === 'webgpu' ? 'on the GPU' : 'in the wasm memory'}${refused}.`;
  setStatus(view.modelStatus);
  showWeightsNote();
  showSelfCheck(info.selfCheck);
  state.layer = Math.min(state.layer, info.nLayers);
  // A hub model's published SAEs cover some layers: start on the nearest of them.
  const set = !info.randomWeights && view.hubModel ? saeSet(state.model, state.saeSet) : null;
  if (set && !set.layers.includes(state.layer)) {
    state.layer = set.layers.reduce((best, l) => (Math.abs(l - state.layer) < Math.abs(best - state.layer) ? l : best));
  }
  if (state.downstream > info.nLayers) state.downstream = null;
  fillLayerPickers(info.nLayers);
  analysis.fillLayers(info.nLayers);
  design.fillLayers(info.nLayers);
  loadSae(state.layer);
}

function onSaeReady(info) {
  $('progress').hidden = true;
  setStatus(view.modelStatus);
  view.saeLayers.add(info.layer);
  view.saeShas.set(info.layer, info.sha256);
  view.saeRandom = info.random;
  view.saeStatus = `SAE at layer ${info.layer}: ${info.name} (${info.format}, ${info.dSae} features)`;
  $('sae-status').textContent = view.saeStatus;
  showWeightsNote();
  $('run').disabled = false;
  if (state.fasta !== null && !view.features) run();
  else if (view.features && info.layer === state.layer) changeLayer(state.layer);
  if (info.layer === state.layer) {
    const fromHub = !info.random && info.name.startsWith(`${saeSet(state.model, state.saeSet)?.repo}/`) && info.name.endsWith(' from huggingface.co');
    atlasView.find({ link: params.get('atlas'), layer: info.layer, model: view.modelSha, sae: info.sha256, hubDefault: fromHub });
  }
}

function showLoadError(message) {
  $('progress').hidden = true;
  $('load-error').textContent = message;
  $('local').open = true;
  setStatus(`Could not load: ${message}`);
}

function setStatus(text) { $('status').textContent = text; }

function showWeightsNote() {
  const parts = [];
  if (view.randomWeights || view.randomCheckpoint) parts.push('the ESM-2 weights are RANDOM (same architecture as esm2_t6_8M)');
  if (view.saeRandom) parts.push('the SAE is a RANDOM demo SAE');
  $('weights-note').hidden = parts.length === 0;
  $('weights-note').textContent = parts.length
    ? `Demo mode: ${parts.join(' and ')}. Everything runs, but the numbers mean nothing about proteins.`
    : '';
}

function showSelfCheck(check) {
  const b = $('self-check');
  b.hidden = !check;
  if (!check) return;
  b.textContent = check.pass ? 'self-check passed' : 'self-check FAILED';
  b.className = `badge ${check.pass ? 'pass' : 'fail'}`;
  b.title = check.pass ? 'MKTA at layers 1 and 3 equals InterPLM\'s published values' : check.failures.join('\n');
}

function fillLayerPickers(n) {
  const opts = (sel, first) => sel.replaceChildren(...first, ...Array.from({ length: n }, (_, i) => {
    const o = el('option', String(i + 1));
    o.value = String(i + 1);
    return o;
  }));
  opts($('layer'), []);
  $('layer').value = String(state.layer);
  const none = el('option', 'none');
  none.value = '';
  opts($('downstream'), [none]);
  $('downstream').value = state.downstream ? String(state.downstream) : '';
}

// ?hub=URL reads the same files from a mirror of the Hugging Face hub's paths. The hub and this
// site are read at once; any other origin only once the visitor has said yes, since its weights
// decide every number the page shows.
const hubChoice = (async () => {
  const value = params.get('hub');
  if (value === null) return { kind: 'hub' };
  const url = linkUrl('hub', value);
  if (url instanceof Error) {
    $('link-error').textContent = `${url.message}: reading the Hugging Face hub instead`;
    return { kind: 'hub' };
  }
  const hub = url.href.replace(/\/$/, '');
  if (allowedBy(["'self'", HUB], url)) return { kind: 'hub', hub };
  const box = $('confirm-hub');
  $('confirm-hub-text').textContent = `This link asks to load the model and SAE weights from ${url.origin} (${hub}) instead of ` +
    'the Hugging Face hub. plmscope runs no code from a weights file and checks what it reads, but the weights decide ' +
    'every number this page shows: load them only from a host you trust.';
  $('confirm-hub-load').textContent = `Load from ${url.origin}`;
  box.hidden = false;
  $('confirm-hub-load').focus();
  setStatus(`Waiting: load the weights from ${url.origin}?`);
  const yes = await new Promise((resolve) => {
    $('confirm-hub-load').onclick = () => resolve(true);
    $('confirm-hub-refuse').onclick = () => resolve(false);
  });
  box.hidden = true;
  return yes ? { kind: 'hub', hub, confirmed: true } : { kind: 'hub' };
})();

/** The hub source of the chosen size, from where ?hub= says. */
const hubSource = async () => ({ ...await hubChoice, model: state.model, saeSet: state.saeSet });

async function loadModel(source) {
  view.modelReady = false;
  view.hubModel = source.kind === 'hub';
  $('run').disabled = true;
  setStatus('Starting the model…');
  try {
    const { result } = await engine.request('load-model', { source, backend: params.get('backend'), threads: Number(params.get('threads')) || undefined, precision: state.precision });
    onModelReady(result);
  } catch (e) {
    if (source.kind === 'hub') loadModel({ kind: 'random', reason: `random weights: those from ${originLabel(new URL(source.hub ?? HUB).origin)} did not load (${e.message})` });
    else showLoadError(e.message);
  }
}

async function loadSae(layer, source) {
  const weightsSource = source ?? (params.get('weights') === 'random' || view.randomWeights ? { kind: 'random' } : await hubSource());
  $('sae-status').textContent = `Loading the SAE of layer ${layer}…`;
  try {
    onSaeReady((await engine.request('load-sae', { layer, source: weightsSource })).result);
  } catch (e) {
    if (weightsSource.kind === 'hub') { loadSae(layer, { kind: 'random' }); return; }
    $('sae-status').textContent = view.saeStatus ?? '';
    showLoadError(e.message);
  }
}

// The sizes on offer and their SAE sets, each with what it downloads and holds, shown before
// anything is fetched.
function fillModelPicker() {
  const option = (value, text) => Object.assign(el('option', text), { value });
  $('model').replaceChildren(...Object.entries(MODELS).map(([id, m]) => option(id, `ESM-2 ${id} (${m.layers} layers, d ${m.d}; ${MB(m.bytes)})`)));
  $('model').value = state.model;
  const sets = MODELS[state.model].saes;
  $('sae-set').replaceChildren(...(sets.length
    ? sets.map((s) => option(s.id, `${s.repo.split('/')[1]}${s.id.endsWith('100k') ? ' (100K)' : ''}: layers ${s.layers.join(', ')}`))
    : [option('', 'none published (random demo)')]));
  $('sae-set').value = saeSet(state.model, state.saeSet)?.id ?? '';
  $('sae-set').disabled = sets.length < 2;
  const m = MODELS[state.model];
  const set = saeSet(state.model, state.saeSet);
  const sae = set
    ? `SAEs: ${set.repo}, ${set.dSae.toLocaleString('en')} features, ${MB(set.bytes)} per layer${set.k ? `, top-${set.k}` : ''}`
    : 'no SAE is published for this size: the demo SAE is random; drop one, or train one in Design';
  $('precision').value = state.precision;
  // The engine's plan once it runs (Session::plan_for); until then, what each precision takes.
  const plan = view.backend === 'webgpu' ? view.plans?.[state.model] : null;
  const gpu = plan
    ? `on this GPU the weights are held in ${plan.precision}, ${MB(plan.weightBytes)}${view.f16 ? '' : ' (it has no shader-f16 for f16)'}`
    : `on WebGPU the weights take ${MB(m.bytes)} of GPU memory in f32, about half in f16 where the GPU has shader-f16`;
  $('model-note').textContent = `${m.repo}: downloads ${MB(m.bytes)} once (then kept by this browser), streamed a tensor at a time; ` +
    `${gpu}; the CPU build holds this size in ${MB(m.cpuWasm)} of its 4 GiB wasm memory (measured). ${sae}.`;
}

async function changeWeights() {
  writeUrl();
  fillModelPicker();
  if (params.get('weights') !== 'random') loadModel(await hubSource());
}
$('model').addEventListener('change', (e) => { state.model = e.target.value; state.saeSet = null; changeWeights(); });
// Another set's SAEs replace this one's at every layer: the model is loaded again (from the cache).
$('sae-set').addEventListener('change', (e) => { state.saeSet = e.target.value || null; changeWeights(); });
// The shown model loaded again at the new precision; dropped files are not kept here to read again.
$('precision').addEventListener('change', async (e) => {
  state.precision = e.target.value;
  writeUrl();
  fillModelPicker();
  if (params.get('weights') === 'random') loadModel({ kind: 'random', reason: 'asked for with ?weights=random' });
  else if (view.hubModel) loadModel(await hubSource());
  else setStatus(`${view.modelStatus ?? ''} (weights: ${state.precision} from the next model loaded)`);
});

$('model-files').addEventListener('change', (e) => {
  const files = [...e.target.files];
  // Emptied, so that choosing the same file again (for another layer, say) is a change too.
  e.target.value = '';
  $('load-error').textContent = '';
  if (files.length) loadModel({ kind: 'files', files });
});
$('sae-files').addEventListener('change', (e) => {
  const files = [...e.target.files];
  e.target.value = '';
  $('load-error').textContent = '';
  if (files.length) loadSae(state.layer, { kind: 'files', files });
});

// ---------------------------------------------------------------------------------------------
// Input and features
// ---------------------------------------------------------------------------------------------
function fastaRecords(text) {
  return text.split(/\r?\n/).filter((l) => l.startsWith('>')).map((l) => l.slice(1).trim());
}

function updateRecordPicker() {
  const headers = fastaRecords($('sequence').value);
  const picker = $('record');
  picker.hidden = headers.length < 2;
  picker.replaceChildren(...headers.map((h, i) => Object.assign(el('option', `${i + 1}: ${h}`), { value: String(i) })));
  picker.value = String(Math.min(state.record, Math.max(0, headers.length - 1)));
}

async function run() {
  const fasta = $('sequence').value;
  const record = $('record').hidden ? 0 : Number($('record').value);
  $('input-error').textContent = '';
  $('run').disabled = true;
  try {
    const { result, ms } = await engine.request('run', { fasta, record, layer: state.layer });
    Object.assign(state, { fasta, record });
    if (view.features?.sequence !== result.sequence) state.edits = [];
    view.features = result;
    view.intervention = null;
    view.timings = { forward: ms };
    if (state.feature === null || !result.topByMax.some(([f]) => f === state.feature)) state.feature = result.topByMax[0]?.[0] ?? null;
    render();
    if (state.edits.length) await intervene();
  } catch (e) {
    // The last result stays on screen.
    $('input-error').textContent = e.message;
  } finally {
    $('run').disabled = false;
    writeUrl();
  }
}

async function changeLayer(layer) {
  state.layer = layer;
  state.edits = [];
  writeUrl();
  if (!view.saeLayers.has(layer)) { loadSae(layer); return; }
  if (!view.features) return;
  try {
    const { result, ms } = await engine.request('layer', { layer });
    view.features = result;
    view.intervention = null;
    view.timings = { layer: ms };
    // A graph node of this layer asked for its feature while the layer's SAE loaded: keep it.
    state.feature = view.wantedFeature ?? result.topByMax[0]?.[0] ?? null;
    view.wantedFeature = null;
    render();
  } catch (e) {
    $('input-error').textContent = e.message;
  }
}

$('run').addEventListener('click', run);
$('sequence').addEventListener('input', updateRecordPicker);
$('layer').addEventListener('change', (e) => changeLayer(Number(e.target.value)));
$('rank-by').addEventListener('change', renderFeatureList);

$('fetch-uniprot').addEventListener('click', async () => {
  const acc = $('accession').value.trim();
  $('input-error').textContent = '';
  if (!/^[A-Za-z0-9_-]{3,20}$/.test(acc)) { $('input-error').textContent = `"${acc}" is not a UniProt accession`; return; }
  try {
    const url = `https://rest.uniprot.org/uniprotkb/${encodeURIComponent(acc)}.fasta`;
    $('sequence').value = new TextDecoder().decode(await fetchCapped(url, { name: `${acc}.fasta`, cap: CAPS.fasta }));
    updateRecordPicker();
    run();
  } catch (e) {
    $('input-error').textContent = `UniProt: ${e.message}`;
  }
});

// ---------------------------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------------------------
function residueLetters() {
  return view.features.predictions.map((p) => (p.residue === '<mask>' ? '?' : p.residue));
}

function render() {
  const f = view.features;
  $('results').hidden = false;
  $('summary').textContent = `${f.header || 'sequence'} — ${f.predictions.length} residues, layer ${f.layer}, ` +
    `${f.dSae} features; reconstruction: FVE ${f.reconstruction.fractionOfVarianceExplained.toFixed(3)}`;
  renderTimings();
  if (!$('structure-accession').value) $('structure-accession').value = accessionOf(f.header) ?? '';
  drawPredictions($('predictions'), view.intervention?.predictions ?? f.predictions);
  drawDelta($('delta'), residueLetters(), view.intervention?.deltaLogprob);
  drawHeatmap($('heatmap'), $('tooltip'), {
    sequence: residueLetters(),
    rows: f.features.rows,
    ids: f.topByMax.slice(0, HEATMAP_ROWS).map(([id]) => id),
    onSelect: selectFeature,
    onHover: (i) => structure.highlight(i),
  });
  renderFeatureList();
  renderFeaturePanel();
  graph?.select(f.layer, state.feature);
  atlasView.show();
}

function renderTimings() {
  const t = view.timings ?? {};
  const parts = [];
  if (t.forward !== undefined) parts.push(`forward + features ${t.forward.toFixed(0)} ms`);
  if (t.layer !== undefined) parts.push(`features at another layer ${t.layer.toFixed(0)} ms`);
  if (t.intervene !== undefined) parts.push(`intervention (layers after ${state.layer} only) ${t.intervene.toFixed(0)} ms`);
  $('timings').textContent = parts.join(' · ');
}

function renderFeatureList() {
  const f = view.features;
  if (!f) return;
  const ranked = $('rank-by').value === 'mean' ? f.topByMean : f.topByMax;
  $('feature-list').replaceChildren(...ranked.slice(0, 40).map(([id, v]) => {
    const li = el('li', `F${id}  ${v.toFixed(3)}`);
    li.dataset.feature = id;
    if (id === state.feature) li.className = 'selected';
    li.onclick = () => selectFeature(id);
    return li;
  }));
}

function selectFeature(id) {
  state.feature = id;
  writeUrl();
  graph?.select(state.layer, id);
  atlasView.show();
  if (!view.features) return;
  renderFeatureList();
  renderFeaturePanel();
}

function renderFeaturePanel() {
  const f = view.features;
  const panel = $('feature-panel');
  panel.hidden = state.feature === null;
  if (state.feature === null) return;
  const values = matrix(f.features.rows, [state.feature]).map((r) => r[0]);
  const max = Math.max(1e-9, ...values);
  $('feature-title').textContent = `Feature ${state.feature} at layer ${f.layer}: max ${max.toFixed(3)}, active on ${values.filter((v) => v > 0).length} of ${values.length} residues`;
  const svg = $('track');
  const w = 800;
  svg.setAttribute('viewBox', `0 0 ${w} 60`);
  svg.setAttribute('preserveAspectRatio', 'none');
  const bw = w / values.length;
  // One column per residue: its bar, and a full-height slot that takes the pointer (a residue
  // where the feature is silent has no bar to hover).
  const SVGNS = 'http://www.w3.org/2000/svg';
  const rect = (cls, attrs) => {
    const r = document.createElementNS(SVGNS, 'rect');
    r.setAttribute('class', cls);
    Object.entries(attrs).forEach(([k, val]) => r.setAttribute(k, val));
    return r;
  };
  const letters = residueLetters();
  svg.replaceChildren(...values.map((v, i) => {
    const g = document.createElementNS(SVGNS, 'g');
    const h = (56 * v) / max;
    const slot = rect('slot', { x: i * bw, y: 0, width: bw, height: 60 });
    slot.onmouseenter = () => { markResidue(i); structure.highlight(i); };
    slot.onmouseleave = () => { markResidue(null); structure.highlight(null); };
    slot.onclick = () => editAt(i);
    const t = document.createElementNS(SVGNS, 'title');
    t.textContent = `residue ${i + 1} ${letters[i]}: ${v.toFixed(3)}`;
    slot.append(t);
    g.append(rect('bar', { x: i * bw, y: 58 - h, width: Math.max(bw - 0.5, 0.5), height: h }), slot);
    return g;
  }));
  $('edits').replaceChildren(...state.edits.map((e) => el('li', editToText(e))));
  $('feature-concepts').textContent = analysis.conceptsOf(f.layer, state.feature);
  renderDownstream();
  colorStructure();
}

function renderDownstream() {
  const d = view.intervention?.downstream;
  if (!d) { $('downstream-list').replaceChildren(); return; }
  const dense = (rows) => { const m = new Map(); rows.forEach((row) => row.forEach(([j, v]) => m.set(j, (m.get(j) ?? 0) + v))); return m; };
  const before = dense(d.before.rows);
  const after = dense(d.after.rows);
  const n = d.before.rows.length;
  const changes = [...new Set([...before.keys(), ...after.keys()])]
    .map((j) => [j, ((after.get(j) ?? 0) - (before.get(j) ?? 0)) / n])
    .filter(([, v]) => v !== 0)
    .sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]))
    .slice(0, 15);
  $('downstream-list').replaceChildren(...changes.map(([j, v]) => el('li', `L${d.layer}:F${j}  mean Δ ${v >= 0 ? '+' : ''}${v.toFixed(4)}`)));
}

// ---------------------------------------------------------------------------------------------
// Interventions
// ---------------------------------------------------------------------------------------------
function currentEdit() {
  const op = $('op').value;
  const text = $('positions').value.trim();
  const positions = text && text !== 'all' ? parsePositions(text) : null;
  return { feature: state.feature, op, value: op === 'ablate' ? undefined : Number($('value').value), positions };
}

let inFlight = null;
let queued = false;
async function intervene() {
  // One request at a time; while a slider moves, only the latest value is run next.
  if (inFlight) { queued = true; return inFlight; }
  inFlight = (async () => {
    $('intervention-error').textContent = '';
    try {
      const edits = state.edits.map((e) => ({ feature: e.feature, op: e.op, value: e.value, positions: e.positions }));
      const { result, ms } = await engine.request('intervene', { layer: state.layer, edits, downstream: state.downstream });
      view.intervention = state.edits.length ? result : null;
      view.timings = { ...view.timings, intervene: ms };
      render();
    } catch (e) {
      $('intervention-error').textContent = e.message;
    }
  })();
  await inFlight;
  inFlight = null;
  if (queued) { queued = false; await intervene(); }
}

function applyEdit(replaceLast) {
  if (state.feature === null || !view.features) return;
  let edit;
  try {
    edit = currentEdit();
  } catch (e) {
    $('intervention-error').textContent = e.message;
    return;
  }
  if (replaceLast && state.edits.length && state.edits.at(-1).feature === edit.feature && state.edits.at(-1).op === edit.op) state.edits[state.edits.length - 1] = edit;
  else state.edits.push(edit);
  writeUrl();
  intervene();
}

$('add-edit').addEventListener('click', () => applyEdit(false));
$('value').addEventListener('input', () => {
  $('value-out').textContent = $('value').value;
  if (state.edits.length && $('op').value !== 'ablate') applyEdit(true);
});
$('clear-edits').addEventListener('click', () => { state.edits = []; writeUrl(); intervene(); });
$('downstream').addEventListener('change', (e) => {
  const m = Number(e.target.value) || null;
  state.downstream = m;
  writeUrl();
  if (m && !view.saeLayers.has(m)) loadSae(m);
  else if (state.edits.length) intervene();
});

// ---------------------------------------------------------------------------------------------
// Structure
// ---------------------------------------------------------------------------------------------
/** Marks residue `i` (0-based; null: none) on the track, as a hover on the structure does. */
function markResidue(i) {
  $('track').querySelectorAll('g.hover').forEach((g) => g.classList.remove('hover'));
  if (i !== null) $('track').children[i]?.classList.add('hover');
}

/** Residue `i` (0-based) of the shown sequence as the edit's residues, as a click on the track does. */
function editAt(i) {
  $('positions').value = String(i + 1);
  $('positions').focus();
}

const structure = createStructure({
  container: $('structure'),
  onHover: (i) => {
    markResidue(i);
    structure.highlight(i);
  },
  onClick: editAt,
});

function structureError(e) { $('structure-error').textContent = e.message; }

async function showStructure(load, what) {
  $('structure-error').textContent = '';
  $('structure-status').textContent = `Loading ${what}…`;
  try {
    const { text, name, version } = await load();
    const n = await structure.show(text, name);
    view.structure = `${name}${version ? ` (model v${version})` : ''}, ${n} residues`;
    colorStructure();
  } catch (e) {
    $('structure-status').textContent = view.structure ? `Showing ${view.structure}` : '';
    structureError(e);
  }
}

/** Colours the structure by Δ log-probability after an edit, else by the selected feature. */
function colorStructure() {
  if (!structure.loaded || !view.features) {
    if (view.structure) $('structure-status').textContent = `Showing ${view.structure}`;
    return;
  }
  const choice = $('structure-color').value;
  const delta = view.intervention?.deltaLogprob;
  const kind = choice === 'delta' || (choice === 'auto' && delta) ? 'delta' : 'feature';
  const sequence = residueLetters().join('');
  let values;
  if (kind === 'delta') values = delta ?? new Array(sequence.length).fill(0);
  else if (state.feature !== null) values = matrix(view.features.features.rows, [state.feature]).map((r) => r[0]);
  else values = new Array(sequence.length).fill(0);
  const mapping = structure.color(sequence, values, kind);
  const by = kind === 'delta' ? (delta ? 'Δ log-probability after the edits (red: lower, blue: higher)' : 'Δ log-probability (no edit yet)') : `feature ${state.feature} at layer ${view.features.layer}`;
  $('structure-status').textContent = `Showing ${view.structure}, coloured by ${by}; ${mapping}.`;
}

$('structure-alphafold').addEventListener('click', () => {
  const acc = $('structure-accession').value.trim() || accessionOf(view.features?.header) || '';
  if (!/^[A-Za-z0-9_-]{3,20}$/.test(acc)) { structureError(new Error(`"${acc}" is not a UniProt accession: type one, e.g. P69905`)); return; }
  $('structure-accession').value = acc;
  showStructure(() => fetchAlphaFold(acc), `the AlphaFold DB model of ${acc}`);
});
$('structure-file').addEventListener('change', (e) => {
  const file = e.target.files[0];
  e.target.value = '';
  if (!file) return;
  showStructure(async () => ({ text: await checkSize(file, CAPS.structure).text(), name: file.name }), file.name);
});
$('structure-color').addEventListener('change', colorStructure);
// ESMFold runs on Meta's server: the sequence leaves the device only after a yes, every time.
$('structure-esmfold').addEventListener('click', () => {
  $('structure-error').textContent = '';
  if (!view.features) { structureError(new Error('run a sequence first: ESMFold folds the shown sequence')); return; }
  const sequence = residueLetters().join('');
  if (sequence.length > ESMFOLD_MAX) { structureError(new Error(`ESMFold's API folds at most ${ESMFOLD_MAX} residues; the shown sequence has ${sequence.length}`)); return; }
  $('esmfold-confirm-text').textContent = `This sends the shown sequence (${sequence.length} residues) to ESMFold at api.esmatlas.com, Meta's server: ` +
    'it leaves this device. Everything else on this page stays here.';
  $('esmfold-confirm').hidden = false;
  $('esmfold-no').focus();
  $('esmfold-no').onclick = () => { $('esmfold-confirm').hidden = true; };
  $('esmfold-yes').onclick = () => {
    $('esmfold-confirm').hidden = true;
    showStructure(() => fetchEsmFold(sequence), 'the ESMFold prediction');
  };
});

// ---------------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------------

$('export-png').addEventListener('click', () => $('heatmap').toBlob((b) => download(`plmscope-layer${state.layer}-heatmap.png`, b)));
$('export-json').addEventListener('click', () => {
  const f = view.features;
  download(`plmscope-layer${state.layer}-features.json`, new Blob([JSON.stringify({
    header: f.header, sequence: f.sequence, layer: f.layer, dSae: f.dSae, features: f.features.rows,
    edits: state.edits, deltaLogprob: view.intervention?.deltaLogprob ?? null,
  })], { type: 'application/json' }));
});
$('export-csv').addEventListener('click', () => {
  const f = view.features;
  const letters = residueLetters();
  const lines = ['residue,aa,feature,activation'];
  f.features.rows.forEach((row, i) => row.forEach(([j, v]) => lines.push(`${i + 1},${letters[i]},${j},${v}`)));
  download(`plmscope-layer${state.layer}-features.csv`, new Blob([lines.join('\n')], { type: 'text/csv' }));
});

// ---------------------------------------------------------------------------------------------
// Circuits
// ---------------------------------------------------------------------------------------------
// By default the graphs are the seed explorer's published ones (www/seed.js: its hosts, this
// browser's kept copy, a local copy); ?graphs=URL points at any other copy of the same files on
// a host the page reads from.
const graphLink = params.get('graphs') === null ? null : linkUrl('graphs', params.get('graphs'));
const seedLink = graphLink instanceof URL ? graphLink.href.replace(/\/?$/, '/') : null;
/** The seed's `file` as { bytes, from }, from ?graphs= or its usual sources. */
const seedFile = async (file) => {
  if (graphLink instanceof Error) throw graphLink;
  return fetchSeed(file, seedLink);
};
const graphs = {};
let graph = null;

async function loadGraph(name) {
  const status = $('graph-status');
  try {
    if (!graphs[name]) {
      const file = `${name}_circuit_graph.json`;
      const { bytes, from } = await seedFile(file);
      const features = await seedFile(`features_${name}.json`).then((f) => parseJson(f.bytes, `features_${name}.json`)).catch(() => null);
      graphs[name] = { graph: validateGraph(parseJson(bytes, file)), features, from };
    }
    showGraph(name);
  } catch (e) {
    status.textContent = `Could not load the ${name} graph from ${graphLink instanceof Error ? '?graphs=' : seedLink ?? 'any source'}: ${e.message}. Drop a graph file instead.`;
  }
}

/** Shows `feature` of `layer` in the sequence views, changing layer when needed. */
function goToFeature(layer, feature) {
  state.feature = feature;
  // Before the model is ready the layer picker is empty; the ready handler loads the SAE of state.layer.
  if (!view.modelReady) { state.layer = layer; writeUrl(); return; }
  if (layer !== state.layer && layer <= $('layer').options.length) {
    $('layer').value = String(layer);
    view.wantedFeature = feature;
    changeLayer(layer).then(() => selectFeature(feature));
  }
  else selectFeature(feature);
}

function showGraph(name) {
  graph ??= createGraphView($('graph'), { details: $('graph-details'), picker: $('graph-node'), onFeature: goToFeature, onExample: openExample });
  const g = graphs[name];
  const minWeight = { behavior: Number($('min-behavior-weight').value) || 0, feature: Number($('min-weight').value) || 0 };
  const shown = graph.show(g.graph, g.features, { minWeight, maxEdges: Number($('max-edges').value) || 8 });
  $('graph-status').textContent = `${name}${shown.behavior ? ` (${BEHAVIORS[shown.behavior] ?? shown.behavior})` : ''}: ${shown.nodes} nodes, ${shown.edges} edges shown (${shown.behaviorEdges} to the behavior; of ${g.graph.edges.length})${g.from ? `, from ${g.from}` : ''}`;
  $('graph-legend').replaceChildren(...shown.layers.map((l) => {
    const s = el('span', `layer ${l}`);
    const dot = el('i');
    dot.style.background = layerColor(l);
    s.prepend(dot);
    return s;
  }), Object.assign(el('span', '◆ the behavior'), { className: 'behavior-key' }));
}

/** A graph example in the viewer with its node's feature selected (at its layer). */
async function openExample(fasta, layer, feature) {
  $('sequence').value = fasta;
  updateRecordPicker();
  goToFeature(layer, feature);
  await run();
  if (feature !== undefined) selectFeature(feature);
}

$('graph-choice').addEventListener('change', (e) => loadGraph(e.target.value));
for (const id of ['min-weight', 'min-behavior-weight', 'max-edges']) $(id).addEventListener('change', () => graphs[$('graph-choice').value] && showGraph($('graph-choice').value));
$('graph-file').addEventListener('change', async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  try {
    const g = validateGraph(JSON.parse(await checkSize(file, CAPS.json).text()));
    graphs.dropped = { graph: g, features: null };
    showGraph('dropped');
  } catch (err) {
    $('graph-status').textContent = `${file.name} is not a circuit graph: ${err.message}`;
  }
});

// Live circuits open in the same view as the seed's graphs.
const analysis = createAnalysis({
  engine,
  modelName: () => view.modelName,
  seedFeatures: () => seedFile('features_tm.json'),
  // The behavior in the meta of the seed graph `file` names (loaded already, or fetched as the seed's are).
  graphBehavior: async (file) => {
    const name = /^(\w+)_circuit_graph\.json$/.exec(file ?? '')?.[1];
    if (!name) return null;
    const g = graphs[name]?.graph ?? parseJson((await seedFile(file)).bytes, file);
    return g?.meta?.behavior ?? null;
  },
  onFeature: goToFeature,
  onGraph: (g) => {
    graphs.live = { graph: validateGraph(g), features: null };
    const option = $('graph-choice').querySelector('option[value="live"]');
    option.hidden = false;
    $('graph-choice').value = 'live';
    showGraph('live');
  },
});

const atlasView = createAtlas({
  engine,
  current: () => ({ layer: state.layer, feature: state.feature, model: view.modelSha, sae: view.saeShas?.get(state.layer) }),
  // An example runs in the viewer with the atlas's feature selected.
  openSequence: async (fasta, feature) => {
    $('sequence').value = fasta;
    updateRecordPicker();
    state.feature = feature;
    await run();
    selectFeature(feature);
    $('input').scrollIntoView();
  },
  onFeature: (feature) => goToFeature(state.layer, feature),
  seedFeatures: () => ['tm', 'sp'].map((name) => [`features_${name}.json`, () => seedFile(`features_${name}.json`)]),
});

const design = createDesign({
  engine,
  currentSteer: () => ({ layer: state.layer, edits: state.edits }),
  openSequence: (fasta) => {
    $('sequence').value = fasta;
    updateRecordPicker();
    run();
    $('input').scrollIntoView();
  },
  onInstalled: onSaeReady,
});

// ---------------------------------------------------------------------------------------------
// The workspace: tools beside it (one open at a time, in the URL), the theme, a new deploy
// ---------------------------------------------------------------------------------------------
function openTool(name) {
  state.tool = name;
  for (const t of TOOLS) {
    $(t).hidden = t !== name;
    $(`tab-${t}`).setAttribute('aria-selected', String(t === name));
    $(`tab-${t}`).tabIndex = t === name || (name === null && t === TOOLS[0]) ? 0 : -1;
  }
  writeUrl();
}
TOOLS.forEach((t, i) => {
  const tab = $(`tab-${t}`);
  tab.addEventListener('click', () => openTool(state.tool === t ? null : t));
  // Arrow keys move between tabs, as in any tab list.
  tab.addEventListener('keydown', (e) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
    if (!step) return;
    const next = $(`tab-${TOOLS[(i + step + TOOLS.length) % TOOLS.length]}`);
    next.focus();
    next.click();
  });
});
openTool(state.tool);

$('theme').addEventListener('change', (e) => {
  localStorage.setItem(THEME_KEY, e.target.value);
  applyTheme(e.target.value);
  if (graphs[$('graph-choice').value]) showGraph($('graph-choice').value);
  if (view.features) render();
});

// sw.js serves the page from its cache; when a new deploy replaces that cache, this page is the old
// build: say so (its state is in the URL) rather than mix the two.
if (navigator.serviceWorker?.controller) {
  navigator.serviceWorker.addEventListener('controllerchange', () => { $('update-note').hidden = false; });
}
$('update-reload').addEventListener('click', () => location.reload());

// ---------------------------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------------------------
if (state.fasta !== null) $('sequence').value = state.fasta;
updateRecordPicker();
loadGraph($('graph-choice').value);
fillModelPicker();
loadModel(params.get('weights') === 'random' ? { kind: 'random', reason: 'asked for with ?weights=random' } : await hubSource());
