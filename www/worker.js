// Owns the wasm, the model and the SAEs; the page holds plain data. One status vocabulary:
//   {status: 'initiate' | 'progress' | 'ready' | 'sae-ready' | 'backend' | 'result' | 'error', ...}
// progress: {file, loaded, total, fromCache} while weights arrive, `loaded` never decreasing for one
// file; {task, loaded, total} while a long task runs: task 'circuit' (steps done of all),
// 'generate' (samples), 'harvest' (sequences read for SAE training). SAE training steps are
// requests of their own ('train-steps'), one chunk each, answered with the chunk's metrics.
// Requests carry an `id`; 'result' and 'error' answer it.

import { HUB, hubModel, hubSae, fetchCached } from './loader.js';

const RANDOM_SEED = 0x5EEDE5A2n;
const DEMO_D_SAE = 10240;

let engine = null;
let backend = null;
// Threads for the CPU build (`?threads=N`; all cores by default), kept for a move to the CPU build.
let threadsWanted = navigator.hardwareConcurrency;
// What was loaded, kept so that the CPU build can take over if the GPU device is lost.
let modelLoad = null;
const saeLoads = new Map();
let lastFeatures = null;
// Annotated proteins and the probe, kept as text so that the CPU build can take them over too.
let labelsLoad = null;
let probeJson = null;
let cancelled = false;

async function start(wanted) {
  // Load only the wasm that will run: the WebGPU build when an adapter exists, else the CPU one.
  const adapter = wanted !== 'cpu' && navigator.gpu ? await navigator.gpu.requestAdapter().catch(() => null) : null;
  for (const kind of adapter ? ['webgpu', 'cpu'] : ['cpu']) {
    const { wasm, threads: running } = kind === 'webgpu' ? { wasm: await build('gpu'), threads: 1 } : await cpuBuild(threadsWanted);
    try {
      engine = await wasm.Plmscope.create(kind);
      backend = kind;
      postMessage({ status: 'backend', backend, threads: running });
      return;
    } catch (e) {
      postMessage({ status: 'initiate', note: `${kind} unavailable (${e.message}); trying the CPU build` });
    }
  }
  throw new Error('no backend could start');
}

async function build(name) {
  const wasm = await import(`./pkg/${name}/plmscope.js`);
  await wasm.default();
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
      postMessage({ status: 'initiate', note: `the threads build did not start (${e.message}); using one thread` });
    }
  }
  return { wasm: await build('cpu'), threads: 1 };
}

const progress = (file) => (loaded, total, fromCache) =>
  postMessage({ status: 'progress', file, loaded, total, fromCache });

/** Turns a load request into the bytes it needs (done once; replayed after a device loss). */
async function modelBytes(source) {
  if (source.kind === 'random') return { kind: 'random' };
  if (source.kind === 'files') {
    const pt = source.files.find((f) => f.name.endsWith('.pt'));
    if (pt) return { kind: 'pt', name: pt.name, bytes: new Uint8Array(await pt.arrayBuffer()) };
    const config = source.files.find((f) => f.name === 'config.json');
    const weights = source.files.find((f) => f.name.endsWith('.safetensors'));
    if (!config || !weights) throw new Error('drop config.json with model.safetensors, or one fair-esm .pt file');
    return { kind: 'hub', config: await config.text(), bytes: new Uint8Array(await weights.arrayBuffer()), name: weights.name };
  }
  const base = hubModel(source.hub ?? HUB);
  const config = new TextDecoder().decode(await fetchCached(base + 'config.json', progress('config.json')));
  const bytes = await fetchCached(base + 'model.safetensors', progress('model.safetensors'));
  return { kind: 'hub', config, bytes, name: 'facebook/esm2_t6_8M_UR50D' };
}

function installModel(m) {
  if (m.kind === 'random') return engine.loadRandom(RANDOM_SEED);
  if (m.kind === 'pt') return engine.loadFairEsm(m.bytes, m.name);
  return engine.loadHub(m.config, m.bytes);
}

async function saeBytes(layer, source) {
  if (source.kind === 'random') return { kind: 'random' };
  if (source.kind === 'files') {
    const cfg = source.files.find((f) => f.name === 'cfg.json');
    const weights = source.files.find((f) => f.name !== 'cfg.json');
    if (!weights) throw new Error('drop an SAE file (.pt, .safetensors) or a SAELens cfg.json with its sae_weights.safetensors');
    return {
      kind: cfg ? 'saelens' : weights.name.endsWith('.safetensors') ? 'safetensors' : 'pt',
      name: weights.name,
      cfg: cfg ? await cfg.text() : undefined,
      bytes: new Uint8Array(await weights.arrayBuffer()),
      k: source.k,
    };
  }
  const file = `layer_${layer}/ae_normalized.pt`;
  return { kind: 'pt', name: file, bytes: await fetchCached(hubSae(source.hub ?? HUB, layer), progress(file)) };
}

function installSae(layer, s) {
  if (s.kind === 'random') return engine.loadRandomSae(layer, DEMO_D_SAE, RANDOM_SEED);
  return engine.loadSae(layer, s.kind, s.bytes, s.name, s.cfg, s.k);
}

// A panic inside the wasm's async code traps outside every awaited promise: it shows only as
// this worker's error event. Running work is failed with it, so that withFallback sees it.
const running = new Set();
const failRunning = (error) => { for (const reject of running) reject(error); };
addEventListener('error', (e) => failRunning(e.error ?? new Error(e.message)));
addEventListener('unhandledrejection', (e) => failRunning(e.reason));
const guarded = (work) => new Promise((resolve, reject) => {
  running.add(reject);
  work().then(resolve, reject).finally(() => running.delete(reject));
});

/** Runs `work`; if the GPU device was lost, moves everything to the CPU build and runs it again. */
async function withFallback(work) {
  try {
    return await guarded(work);
  } catch (e) {
    // A lost device shows as a WebGPU error or as a trap inside the wasm (a RuntimeError).
    const lost = e instanceof WebAssembly.RuntimeError || /device|lost|gpu/i.test(String(e.message ?? e));
    if (backend !== 'webgpu' || !lost) throw e;
    const why = String(e.message ?? e).split('\n')[0];
    postMessage({ status: 'initiate', note: `The GPU failed (${why}); moving to the CPU build…` });
    await start('cpu');
    if (modelLoad) installModel(modelLoad);
    for (const [layer, s] of saeLoads) installSae(layer, s);
    if (labelsLoad) engine.loadLabels(labelsLoad.text, labelsLoad.max);
    if (probeJson) engine.loadProbe(probeJson);
    // The sequence the page shows, so that interventions find their cached pass again.
    if (lastFeatures) await engine.features(lastFeatures.fasta, lastFeatures.record, lastFeatures.layer, false, 64);
    postMessage({ status: 'initiate', note: `The GPU failed (${why}); now on the CPU build with the same model, SAEs and sequence` });
    return await work();
  }
}

/**
 * Loads the SAE of `layer` from where the others came from (the hub or the random demo), unless
 * it is there already: circuits and concepts may need layers the page has not shown.
 */
async function ensureSae(layer) {
  if (saeLoads.has(layer)) return;
  const last = [...saeLoads.values()].at(-1);
  if (last && last.kind !== 'random' && !last.hub) {
    throw new Error(`no SAE is loaded for layer ${layer}: choose layer ${layer} and drop its SAE file`);
  }
  const s = await saeBytes(layer, last?.hub ? { kind: 'hub', hub: last.hub } : { kind: 'random' });
  s.hub = last?.hub;
  installSae(layer, s);
  saeLoads.set(layer, s);
}

// Lets a 'cancel' message in between two steps of a long run.
const yieldToMessages = () => new Promise((resolve) => setTimeout(resolve, 0));

const handlers = {
  async 'load-model'({ source, backend: wanted, threads }) {
    postMessage({ status: 'initiate' });
    threadsWanted = threads ?? threadsWanted;
    if (!engine) await start(wanted);
    const m = await modelBytes(source);
    const info = installModel(m);
    modelLoad = m;
    saeLoads.clear();
    info.source = source.kind === 'hub' ? `facebook/esm2_t6_8M_UR50D (${source.hub ?? 'Hugging Face hub'})`
      : source.kind === 'files' ? source.files.map((f) => f.name).join(', ') : source.reason;
    // plmscope's own random checkpoints say so in their config.json.
    info.randomCheckpoint = Boolean(m.config && JSON.parse(m.config).plmscope_random_weights_seed !== undefined);
    info.selfCheck = m.kind === 'random' ? null : await engine.selfCheck();
    postMessage({ status: 'ready', info });
  },
  async 'load-sae'({ layer, source }) {
    const s = await saeBytes(layer, source);
    if (source.kind === 'hub') s.hub = source.hub ?? HUB;
    const info = installSae(layer, s);
    saeLoads.set(layer, s);
    info.random = s.kind === 'random';
    info.source = s.kind === 'random' ? 'random demo SAE' : s.name;
    postMessage({ status: 'sae-ready', info });
  },
  async features({ fasta, record, layer }) {
    const result = await withFallback(() => engine.features(fasta, record, layer, false, 64));
    lastFeatures = { fasta, record, layer };
    return result;
  },
  'load-labels'({ text, max }) {
    const info = engine.loadLabels(text, max);
    labelsLoad = { text, max };
    return info;
  },
  async 'train-probe'({ concept, layer, input }) {
    if (input === 'features') await ensureSae(layer);
    const probe = await withFallback(() => engine.trainProbe(concept, layer, input));
    probeJson = JSON.stringify(probe);
    return probe;
  },
  'load-probe'({ text }) {
    const probe = engine.loadProbe(text);
    probeJson = text;
    return probe;
  },
  async circuit({ options, useProbe }) {
    for (const layer of options.layers) await ensureSae(layer);
    cancelled = false;
    let p = engine.circuitStart(options, useProbe);
    while (p.done < p.total) {
      await yieldToMessages();
      if (cancelled) throw new Error(`cancelled after ${p.done} of ${p.total} steps`);
      p = await withFallback(() => engine.circuitStep(useProbe));
      postMessage({ status: 'progress', task: 'circuit', loaded: p.done, total: p.total });
    }
    return engine.circuitGraph(useProbe);
  },
  cancel() { cancelled = true; },
  async generate({ options, samples }) {
    const layers = [...new Set(options.steers.map((s) => s.layer))];
    for (const layer of layers) await ensureSae(layer);
    // The baseline watches the same features (scale 1 leaves them as they are) without steering.
    const watch = options.steers.map((s) => ({ layer: s.layer, edits: s.edits.map((e) => ({ feature: e.feature, op: 'scale', value: 1 })) }));
    cancelled = false;
    const out = [];
    for (let i = 0; i < samples; i++) {
      await yieldToMessages();
      if (cancelled) throw new Error(`cancelled after ${i} of ${samples} samples`);
      const seed = options.seed + i;
      const steered = await withFallback(() => engine.generate({ ...options, seed }));
      const baseline = await withFallback(() => engine.generate({ ...options, steers: watch, seed }));
      out.push({ seed, steered, baseline });
      postMessage({ status: 'progress', task: 'generate', loaded: i + 1, total: samples });
    }
    return out;
  },
  async 'train-sae'({ fasta, layer, maxTokens, options }) {
    const report = (loaded, total) => postMessage({ status: 'progress', task: 'harvest', loaded, total });
    // A lost device loses the run's optimizer state too: training starts again on the CPU build.
    return withFallback(() => engine.trainSaeStart(fasta, layer, maxTokens, options, report));
  },
  // `chunk` more steps (fewer at the end, none after it), with their metrics; the page asks for
  // each chunk, so that a pause lands between two.
  'train-steps': ({ chunk }) => engine.trainSaeSteps(chunk),
  // The SAE as trained so far: installed for every view (kept as SAELens files, so that the
  // CPU build can take it over), and returned for saving.
  async 'train-install'({ modelName }) {
    const files = await engine.trainSaeFiles(modelName);
    const s = { kind: 'saelens', name: 'SAE trained in this page', cfg: files.cfg, bytes: files.weights };
    const info = installSae(files.layer, s);
    saeLoads.set(files.layer, s);
    info.source = s.name;
    postMessage({ status: 'sae-ready', info });
    return files;
  },
  async concepts({ layer, concepts, top }) {
    await ensureSae(layer);
    return withFallback(() => engine.concepts(layer, concepts, top));
  },
  layer: ({ layer }) => withFallback(() => engine.cachedFeatures(layer, false, 64)),
  intervene: ({ layer, edits, downstream }) =>
    withFallback(() => engine.intervene(layer, edits, downstream ?? undefined, false)),
};

onmessage = async ({ data }) => {
  const t0 = performance.now();
  try {
    const result = await handlers[data.type](data);
    if (data.id !== undefined) postMessage({ status: 'result', id: data.id, result, ms: performance.now() - t0 });
  } catch (e) {
    postMessage({ status: 'error', id: data.id, during: data.type, source: data.source?.kind, layer: data.layer, message: String(e.message ?? e) });
  }
};
