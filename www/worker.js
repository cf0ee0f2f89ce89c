// Owns the wasm and its session (the model, the SAEs, the shown sequence, the jobs); the page
// holds plain data. Every message the page sends is a request with an `id`, answered by one
// 'result' or 'error'. Besides those answers, one status vocabulary:
//   {status: 'initiate', file}                    a download (or a read from the cache) begins
//   {status: 'progress', file, loaded, total, fromCache}   its bytes arrive; `loaded` never decreases
//   {status: 'progress', task, loaded, total}     a step of a task inside one request ('harvest')
//   {status: 'done', file}                        the file is in
//   {status: 'ready', backend, threads}           an engine is up (again, after a lost GPU)
//   {status: 'result', id, result, ms}            the answer to request `id`
//   {status: 'error', id, message}                request `id` failed; nothing it started is kept
//   {status: 'note', note}                        a line for the status bar (fallbacks)
// Long jobs (circuits, generation, SAE training) are steppers the page drives: it asks for the
// next step, the answer carries the progress, and cancelling is not asking again.
// A journal keeps every stateful request answered, with the bytes it read, so that a new engine can
// replay it: the model, the SAEs, the sequence, and a circuit or a training run up to its last
// finished step. A lost GPU device moves the work to the CPU build; a panic (a trap in the wasm)
// restarts the same build, replays the journal and fails only the request that panicked.

import { DEFAULT_MODEL, HUB, MODELS, fetchCached, forget, hubFile, openCached, saeSet } from './loader.js';
import { CAPS, CONNECT_SRC, MB, checkSize, originLabel } from './hosts.js';

// What the format detector needs of each file (src/weights/detect.rs, PREFIX).
const PREFIX = 2 ** 20;

let engine = null;
let backend = null;
// The running build's wasm memory: its size is the peak it has reached (wasm memory never shrinks).
let memory = null;
// Fresh instances of the wasm after a panic: a trapped instance is not to be trusted again.
let instances = 0;
// Why the GPU device was lost, once it has been: what tells a lost device from a panic.
let deviceLost = null;
if (self.GPUAdapter) {
  const requestDevice = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await requestDevice.apply(this, args);
    device.lost.then((info) => { deviceLost = info.message || info.reason || 'the device was lost'; });
    return device;
  };
}
// Threads for the CPU build (`?threads=N`; all cores by default), kept for a move to the CPU build.
let threadsWanted = navigator.hardwareConcurrency;
// The precision the page asks for (?precision=), given to every engine this worker starts.
let precisionWanted = 'auto';

/** Gives the engine `precisionWanted` (f16 where it cannot be held: said, and auto instead), and
 *  tells the page what each size would hold on it now. */
function applyPrecision() {
  try {
    engine.setPrecision(precisionWanted);
  } catch (e) {
    postMessage({ status: 'note', note: `${e.message}; weights: auto` });
    engine.setPrecision('auto');
  }
  const plans = Object.fromEntries(Object.keys(MODELS).map((size) => [size, engine.planFor(size)]));
  postMessage({ status: 'plans', f16: engine.f16Available(), plans });
}

async function start(wanted) {
  // Load only the wasm that will run: the WebGPU build when an adapter exists, else the CPU one.
  const adapter = wanted !== 'cpu' && navigator.gpu ? await navigator.gpu.requestAdapter().catch(() => null) : null;
  for (const kind of adapter ? ['webgpu', 'cpu'] : ['cpu']) {
    const { wasm, threads } = kind === 'webgpu' ? { wasm: await build('gpu'), threads: 1 } : await cpuBuild(threadsWanted);
    try {
      engine = await wasm.Plmscope.create(kind);
      backend = kind;
      // burn asks for the adapter's own limits: a model whose buffers pass them is refused in words.
      if (kind === 'webgpu') engine.setBufferLimit(Math.min(adapter.limits.maxStorageBufferBindingSize, adapter.limits.maxBufferSize));
      postMessage({ status: 'ready', backend, threads });
      applyPrecision();
      return;
    } catch (e) {
      postMessage({ status: 'note', note: `${kind} unavailable (${e.message}); trying the CPU build` });
    }
  }
  throw new Error('no backend could start');
}

async function build(name) {
  const wasm = await import(`./pkg/${name}/plmscope.js${instances ? `?instance=${instances}` : ''}`);
  ({ memory } = await wasm.default());
  return wasm;
}

/** The CPU build with `threads` threads when the page is cross-origin isolated (the threads share
 * the wasm memory, a SharedArrayBuffer), else the one-thread build. */
async function cpuBuild(threads) {
  if (self.crossOriginIsolated && threads > 1) {
    try {
      const wasm = await build('cpu-threads');
      await wasm.initThreadPool(threads);
      return { wasm, threads };
    } catch (e) {
      postMessage({ status: 'note', note: `the threads build did not start (${e.message}); using one thread` });
    }
  }
  return { wasm: await build('cpu'), threads: 1 };
}

/** A hub source's base address and where its downloads may come from: the page's hosts, and a
 *  mirror's origin only once the visitor has confirmed it (app.js asks). */
function hubOf(source) {
  const hub = source.hub ?? HUB;
  const origin = new URL(hub).origin;
  return { hub, label: originLabel(origin), sources: source.confirmed ? [...CONNECT_SRC, origin] : CONNECT_SRC };
}

async function download(url, file, cap, sources) {
  postMessage({ status: 'initiate', file });
  const onProgress = (loaded, total, fromCache) => postMessage({ status: 'progress', file, loaded, total, fromCache });
  const bytes = await fetchCached(url, { name: file, cap, sources, onProgress });
  postMessage({ status: 'done', file });
  return bytes;
}

/** Dropped files as the session's loaders take them: names and bytes, whatever the format. */
const fromFiles = async (files) => ({
  names: files.map((f) => f.name),
  files: await Promise.all(files.map(async (f) => new Uint8Array(await checkSize(f, CAPS.weights).arrayBuffer()))),
});

// A model's files are parts: a name, a cap, and a way to open its bytes as a stream, again for a
// replay (from the Cache API, or the dropped File), so that no copy of the weights stays here.
const filePart = (file) => ({ name: file.name, cap: CAPS.streamed, open: async () => ({ body: file.stream(), total: file.size, fromCache: false }) });
const hubPart = (url, name, cap, sources) => ({
  name, cap, url,
  async open() {
    const { response, fromCache } = await openCached(url, { name, sources });
    return { body: response.body, total: Number(response.headers.get('content-length')) || 0, fromCache };
  },
});

/** `part` opened: `next()` gives its chunks (null at the end) and posts their progress. */
async function openPart(part) {
  postMessage({ status: 'initiate', file: part.name });
  const { body, total, fromCache } = await part.open();
  const tooBig = (n) => new Error(`${part.name} is ${MB(n)}; the page reads at most ${MB(part.cap)} of such a file`);
  if (total > part.cap) { await body.cancel().catch(() => {}); throw tooBig(total); }
  const reader = body.getReader();
  let loaded = 0;
  return {
    name: part.name,
    head: [],
    async next() {
      const { done, value } = await reader.read();
      if (done) { postMessage({ status: 'done', file: part.name }); return null; }
      loaded += value.length;
      if (loaded > part.cap) { await reader.cancel().catch(() => {}); throw tooBig(loaded); }
      postMessage({ status: 'progress', file: part.name, loaded, total: total || loaded, fromCache });
      return value;
    },
    cancel: () => reader.cancel().catch(() => {}),
  };
}

function concat(chunks) {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) { out.set(c, at); at += c.length; }
  return out;
}

/**
 * Loads a model from `parts` through the one format detector, which sees each file's first PREFIX
 * bytes: the weights (a hub folder's model.safetensors, or a fair-esm .pt) are then streamed into
 * the engine chunk by chunk, each tensor going to the device as soon as its bytes are in.
 */
async function loadModelParts(parts, name) {
  const opened = [];
  try {
    for (const part of parts) {
      const o = await openPart(part);
      opened.push(o);
      for (let n = 0; n < PREFIX;) {
        const chunk = await o.next();
        if (!chunk) break;
        o.head.push(chunk);
        n += chunk.length;
      }
    }
    const names = parts.map((p) => p.name);
    const index = engine.modelStreamStart(names, opened.map((o) => concat(o.head).subarray(0, PREFIX)), name);
    opened.forEach((o, i) => { if (i !== index) o.cancel(); });
    const weights = opened[index];
    for (const chunk of weights.head.splice(0)) engine.modelStreamPush(chunk);
    for (let c; (c = await weights.next());) engine.modelStreamPush(c);
    return engine.modelStreamFinish();
  } catch (e) {
    opened.forEach((o) => o.cancel());
    // A file the engine refused, or one cut short, is not to be served from the cache again.
    for (const p of parts) if (p.url) await forget(p.url);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// The journal and what replays it
// ---------------------------------------------------------------------------------------------
let journal = [];

/** Engine calls by journal entry kind: each is both the request's work and its replay. */
const apply = {
  model: (e) => (e.random ? engine.loadRandomModel() : loadModelParts(e.parts, e.name)),
  sae: (e) => (e.random ? engine.loadRandomSae(e.layer) : engine.loadSae(e.layer, e.names, e.files, e.k, e.name)),
  run: (e) => engine.run(e.fasta, e.record, e.layer),
  labels: (e) => engine.loadLabels(e.text, e.max),
  probe: (e) => engine.loadProbe(e.text),
  'circuit-start': (e) => engine.circuitStart(e.options, e.useProbe),
  'circuit-step': () => engine.circuitStep(),
  'atlas-start': (e) => engine.atlasStart(e.corpus, e.request),
  'atlas-step': (e) => engine.atlasStep(e.n),
  'train-start': (e, report = () => {}) => engine.trainStart(e.fasta, e.trainedOn, e.layer, e.maxTokens, e.options, report),
  'train-steps': (e) => engine.trainSteps(e.chunk),
};

/** What a new entry makes obsolete in the journal. */
const supersedes = {
  model: () => true,
  sae: (e, old) => old.kind === 'sae' && old.layer === e.layer,
  run: (e, old) => old.kind === 'run',
  labels: (e, old) => old.kind === 'labels',
  probe: (e, old) => old.kind === 'probe',
  'circuit-start': (e, old) => old.kind.startsWith('circuit-'),
  'circuit-step': () => false,
  'atlas-start': (e, old) => old.kind.startsWith('atlas-'),
  'atlas-step': () => false,
  'train-start': (e, old) => old.kind.startsWith('train-'),
  'train-steps': () => false,
};

/** Runs a journal entry on the engine (through the GPU fallback) and keeps it once it worked. */
async function record(entry, ...extra) {
  const result = await withFallback(() => apply[entry.kind](entry, ...extra));
  journal = journal.filter((old) => !supersedes[entry.kind](entry, old));
  journal.push(entry);
  return result;
}

// A panic inside the wasm's async code traps outside every awaited promise: it shows only as
// this worker's error event. Running work is failed with it, so that withFallback sees it.
const running = new Set();
// Handled so (preventDefault), it is not reported again as the page's uncaught error.
const failRunning = (event, error) => {
  if (!running.size) return;
  event.preventDefault();
  for (const reject of running) reject(error);
};
addEventListener('error', (e) => failRunning(e, e.error ?? new Error(e.message)));
addEventListener('unhandledrejection', (e) => failRunning(e, e.reason));
const guarded = (work) => new Promise((resolve, reject) => {
  running.add(reject);
  Promise.resolve().then(work).then(resolve, reject).finally(() => running.delete(reject));
});

/** A new engine (on `kind`) with everything the journal holds. */
async function rebuild(kind) {
  instances += 1;
  await start(kind);
  for (const entry of journal) await apply[entry.kind](entry);
}

/**
 * Runs `work`. If the GPU device was lost, replays the journal on the CPU build and runs it again;
 * if the wasm panicked, replays it on a fresh instance of the same build and fails this request
 * only (running it again would panic again).
 */
async function withFallback(work) {
  try {
    return await guarded(work);
  } catch (e) {
    const why = String(e.message ?? e).split('\n')[0];
    // The device's `lost` promise settles a moment after the failing read-back.
    if (backend === 'webgpu' && !deviceLost) await new Promise((r) => setTimeout(r, 50));
    if (backend === 'webgpu' && deviceLost) {
      postMessage({ status: 'note', note: `The GPU failed (${why}); moving to the CPU build…` });
      await rebuild('cpu');
      const steps = journal.filter((j) => j.kind === 'circuit-step' || j.kind === 'train-steps').length;
      postMessage({ status: 'note', note: `The GPU failed (${why}); now on the CPU build with the same model, SAEs and sequence${steps ? ', the jobs replayed to their last finished step' : ''}` });
      return await work();
    }
    if (!(e instanceof WebAssembly.RuntimeError)) throw e;
    postMessage({ status: 'note', note: `The engine failed (${why}); restarting it with the same model, SAEs and sequence…` });
    await rebuild(backend);
    postMessage({ status: 'note', note: 'The engine was restarted with the same model, SAEs and sequence' });
    throw new Error(`${why}: the engine stopped on this request and was restarted with everything loaded before it`);
  }
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------
/** The SAE entry for `layer` from `source`: the hub's InterPLM file, dropped files or the demo's. */
async function saeEntry(layer, source) {
  if (source.kind === 'random') return { kind: 'sae', layer, random: true, origin: source };
  if (source.kind === 'files') {
    return { kind: 'sae', layer, k: source.k, name: source.files.map((f) => f.name).join(', '), origin: source, ...await fromFiles(source.files) };
  }
  const { hub, label, sources } = hubOf(source);
  const model = source.model ?? DEFAULT_MODEL;
  const set = saeSet(model, source.saeSet);
  if (!set) throw new Error(`no SAE is published for ESM-2 ${model}: drop one, or train one in Design`);
  if (!set.layers.includes(layer)) throw new Error(`${set.repo} has SAEs for layers ${set.layers.join(', ')}, not ${layer}`);
  const file = set.file(layer);
  const bytes = await download(hubFile(hub, set.repo, file), file, CAPS.weights, sources);
  return { kind: 'sae', layer, k: set.k, name: `${set.repo}/${file} from ${label}`, origin: source, names: [file], files: [bytes] };
}

/**
 * Loads the SAE of `layer` from where the others came from (the hub or the random demo), unless
 * it is there already: circuits and concepts may need layers the page has not shown.
 */
async function ensureSae(layer) {
  const saes = journal.filter((j) => j.kind === 'sae');
  if (saes.some((s) => s.layer === layer)) return;
  const last = saes.at(-1)?.origin ?? { kind: 'random' };
  if (last.kind === 'files') throw new Error(`no SAE is loaded for layer ${layer}: choose layer ${layer} and drop its SAE file`);
  await record(await saeEntry(layer, last));
}

const handlers = {
  async 'load-model'({ source, backend: wanted, threads, precision = 'auto' }) {
    // ?threads=N, within 1..the cores there are: a link must not start a thousand workers.
    if (Number.isFinite(threads)) threadsWanted = Math.min(Math.max(1, Math.floor(threads)), navigator.hardwareConcurrency);
    precisionWanted = precision;
    if (!engine) await start(wanted);
    else applyPrecision();
    let entry;
    if (source.kind === 'random') entry = { kind: 'model', random: true };
    else if (source.kind === 'files') entry = { kind: 'model', name: source.files.map((f) => f.name).join(', '), parts: source.files.map(filePart) };
    else {
      const { hub, label, sources } = hubOf(source);
      const { repo } = MODELS[source.model ?? DEFAULT_MODEL];
      const parts = [
        hubPart(hubFile(hub, repo, 'config.json'), 'config.json', CAPS.config, sources),
        hubPart(hubFile(hub, repo, 'model.safetensors'), 'model.safetensors', CAPS.streamed, sources),
      ];
      entry = { kind: 'model', name: `${repo} from ${label}`, parts };
    }
    const info = await record(entry);
    info.wasmBytes = memory?.buffer.byteLength ?? null;
    info.source = source.kind === 'random' ? source.reason : info.name;
    // The check's numbers are esm2_t6_8M's.
    const t6 = info.nLayers === 6 && info.dModel === 320;
    info.selfCheck = info.randomWeights || !t6 ? null : await withFallback(() => engine.selfCheck());
    return info;
  },
  async 'load-sae'({ layer, source }) {
    return record(await saeEntry(layer, source));
  },
  run: ({ fasta, record: r, layer }) => record({ kind: 'run', fasta, record: r, layer }),
  // Another layer of the shown sequence: no state a replay needs (an intervention re-encodes).
  layer: ({ layer }) => withFallback(() => engine.featuresAt(layer)),
  intervene: ({ layer, edits, downstream }) => withFallback(() => engine.intervene(layer, edits, downstream ?? undefined)),
  'load-labels': ({ text, max }) => record({ kind: 'labels', text, max }),
  async 'train-probe'({ concept, layer, input }) {
    if (input === 'features') await ensureSae(layer);
    const probe = await withFallback(() => engine.trainProbe(concept, layer, input));
    // Kept as its JSON, which the CPU build loads as it is.
    journal = journal.filter((old) => old.kind !== 'probe');
    journal.push({ kind: 'probe', text: JSON.stringify(probe) });
    return probe;
  },
  'load-probe': ({ text }) => record({ kind: 'probe', text }),
  async 'circuit-start'({ options, useProbe }) {
    for (const layer of options.layers) await ensureSae(layer);
    return record({ kind: 'circuit-start', options, useProbe });
  },
  'circuit-step': () => record({ kind: 'circuit-step' }),
  'circuit-graph': () => withFallback(() => engine.circuitGraph()),
  // An atlas over `corpus`, built `n` proteins a step; the page asks for each step and, at the
  // end, for its files (an atlas is the page's to keep: nothing of it needs replaying after).
  async 'atlas-start'({ corpus, request }) {
    await ensureSae(request.layer);
    return record({ kind: 'atlas-start', corpus, request });
  },
  'atlas-step': ({ n }) => record({ kind: 'atlas-step', n }),
  'atlas-finish': () => withFallback(() => engine.atlasFinish()),
  'atlas-open-zip': ({ bytes }) => withFallback(() => engine.atlasFromZip(bytes)),
  'atlas-open-explorer': ({ name, text }) => withFallback(() => engine.atlasFromExplorer(name, text)),
  async concepts({ layer, concepts, top }) {
    await ensureSae(layer);
    return withFallback(() => engine.concepts(layer, concepts, top));
  },
  // One sample, steered and unsteered from the same seed; the page asks for each.
  async generate({ options }) {
    for (const layer of new Set(options.steers.map((s) => s.layer))) await ensureSae(layer);
    return withFallback(() => engine.generatePair(options));
  },
  'train-start': ({ fasta, trainedOn, layer, maxTokens, options }) => record(
    { kind: 'train-start', fasta, trainedOn, layer, maxTokens, options },
    (loaded, total) => postMessage({ status: 'progress', task: 'harvest', loaded, total }),
  ),
  // `chunk` more steps (fewer at the end, none after it), with their metrics.
  'train-steps': ({ chunk }) => record({ kind: 'train-steps', chunk }),
  // The SAE as trained so far, installed for every view and returned as SAELens files for saving;
  // journaled as those files, so that it stays installed whatever training does next.
  async 'train-install'() {
    const files = await withFallback(() => engine.trainedSaelens());
    const name = 'SAE trained in this page';
    const info = await record({ kind: 'sae', layer: files.layer, name, origin: { kind: 'files' }, names: ['cfg.json', 'sae_weights.safetensors'], files: [new TextEncoder().encode(files.cfg), files.weights] });
    return { info, files };
  },
};

onmessage = async ({ data }) => {
  const t0 = performance.now();
  try {
    const result = await handlers[data.type](data);
    postMessage({ status: 'result', id: data.id, result, ms: performance.now() - t0 });
  } catch (e) {
    postMessage({ status: 'error', id: data.id, message: String(e.message ?? e) });
  }
};
