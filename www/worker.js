// Owns the wasm and the model. Messages in: {type: 'load', source}, {type: 'predict', id, fasta}.
// Messages out share one status vocabulary:
//   {status: 'initiate' | 'progress' | 'ready' | 'error' | 'result', ...}
// progress: {file, loaded, total}, loaded never decreases.

const HUB = 'https://huggingface.co/facebook/esm2_t6_8M_UR50D/resolve/main/';
const RANDOM_SEED = 0x5EEDE5A2n;

let engine = null;

async function pickBuild() {
  // Load only the wasm that will run: the WebGPU build when an adapter exists, else the CPU one.
  const adapter = navigator.gpu ? await navigator.gpu.requestAdapter().catch(() => null) : null;
  for (const backend of adapter ? ['webgpu', 'cpu'] : ['cpu']) {
    const dir = backend === 'webgpu' ? 'gpu' : 'cpu';
    const wasm = await import(`./pkg/${dir}/plmscope.js`);
    await wasm.default();
    try {
      return await wasm.Plmscope.create(backend);
    } catch (e) {
      postMessage({ status: 'initiate', note: `${backend} unavailable (${e.message}); trying the CPU build` });
    }
  }
  throw new Error('no backend could start');
}

async function download(url, file) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const total = Number(response.headers.get('content-length')) || 0;
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    postMessage({ status: 'progress', file, loaded, total });
  }
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) { bytes.set(c, at); at += c.length; }
  return bytes;
}

async function load(source) {
  postMessage({ status: 'initiate' });
  engine ??= await pickBuild();
  let info;
  if (source.kind === 'files') {
    const byName = Object.fromEntries(source.files.map((f) => [f.name, f]));
    const pt = source.files.find((f) => f.name.endsWith('.pt'));
    if (pt) {
      info = engine.loadFairEsm(new Uint8Array(await pt.arrayBuffer()), pt.name);
    } else if (byName['config.json'] && byName['model.safetensors']) {
      info = engine.loadHub(await byName['config.json'].text(),
        new Uint8Array(await byName['model.safetensors'].arrayBuffer()));
    } else {
      throw new Error('drop config.json together with model.safetensors, or one fair-esm .pt file');
    }
    info.source = source.files.map((f) => f.name).join(', ');
  } else if (source.kind === 'random') {
    info = engine.loadRandom(RANDOM_SEED);
    info.source = source.reason;
  } else {
    const config = new TextDecoder().decode(await download(HUB + 'config.json', 'config.json'));
    const weights = await download(HUB + 'model.safetensors', 'model.safetensors');
    info = engine.loadHub(config, weights);
    info.source = 'facebook/esm2_t6_8M_UR50D (Hugging Face hub)';
  }
  postMessage({ status: 'ready', info });
}

onmessage = async ({ data }) => {
  try {
    if (data.type === 'load') {
      await load(data.source);
    } else if (data.type === 'predict') {
      const t0 = performance.now();
      const records = await engine.predict(data.fasta, 3);
      postMessage({ status: 'result', id: data.id, records, ms: performance.now() - t0 });
    }
  } catch (e) {
    postMessage({ status: 'error', id: data.id, during: data.type, source: data.source?.kind, message: String(e.message ?? e) });
  }
};
