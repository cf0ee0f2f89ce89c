// plmscope in a module worker, where the page runs plmscope too (a worker may block while rayon's
// threads work; the page's main thread may not). page.js sends one request at a time and gets
// {value} or {error} back:
//   {op: 'open', build, backend, threads, hub?}  loads the random model (or the hub folder's, streamed
//                                          as the page streams it) and the demo SAE of its middle layer
//   {op: 'prepare', case, b, r}            sets up one case and shape
//   {op: 'run'}                            → ms of one run of it (results read back)
//   {op: 'memory', build, backend, residues} → the memory case, on an engine of its own
import { timed, aminoAcid } from './timing.js';

// The bench packages (PLMSCOPE_BENCH=1 pkg-build/build.sh): the page's builds with benchPrepare and
// benchRun. The random model and demo SAEs are the session's, the same bits as natively.
async function engineOf(config) {
  const { build, backend, threads } = config;
  const wasm = await import(`../../www/pkg/bench-${build}/plmscope.js`);
  const { memory } = await wasm.default();
  if (wasm.initThreadPool) await wasm.initThreadPool(threads);
  const engine = await wasm.Plmscope.create(backend);
  const { nLayers } = config.hub ? await streamHub(engine, config.hub) : engine.loadRandomModel();
  return { engine, memory, nLayers };
}

/** `hub`'s config.json and model.safetensors into the engine, the weights a chunk at a time. */
async function streamHub(engine, hub) {
  const config = new Uint8Array(await (await fetch(`${hub}/config.json`)).arrayBuffer());
  const reader = (await fetch(`${hub}/model.safetensors`)).body.getReader();
  // The format detector reads the first MiB of each file.
  const head = [];
  let have = 0;
  for (let c; have < 1 << 20 && !(c = await reader.read()).done; have += c.value.length) head.push(c.value);
  const first = new Uint8Array(have);
  head.reduce((at, c) => (first.set(c, at), at + c.length), 0);
  engine.modelStreamStart(['config.json', 'model.safetensors'], [config, first.subarray(0, 1 << 20)], hub);
  engine.modelStreamPush(first);
  for (let c; !(c = await reader.read()).done;) engine.modelStreamPush(c.value);
  return engine.modelStreamFinish();
}

// Peak memory of one protein's features at every layer, each layer's demo SAE loaded, through the
// page's own calls (run, then featuresAt per layer): the wasm heap never shrinks, so its
// size after the run is the run's peak (JS-side objects not counted). As `plmscope bench-memory`.
async function memoryRun(config) {
  const { engine, memory, nLayers } = await engineOf(config);
  const mb = () => Math.round((memory.buffer.byteLength / 2 ** 20) * 10) / 10;
  for (let layer = 1; layer <= nLayers; layer++) engine.loadRandomSae(layer);
  const loadedMb = mb();
  const residues = config.residues;
  const sequence = Array.from({ length: residues }, (_, i) => 'LAGVSERTIDPKQNFYMHWC'[aminoAcid(i, 0)]).join('');
  const layers = [];
  for (let layer = 1; layer <= nLayers; layer++) {
    const out = layer === 1 ? await engine.run(`>memory\n${sequence}`, 0, 1) : await engine.featuresAt(layer);
    const nonzero = out.features.rows.reduce((n, row) => n + row.length, 0);
    layers.push({ layer, l0: nonzero / residues });
  }
  return { case: 'memory', shape: `1x${residues}`, loadedMb, peakMb: mb(), layers };
}

let engine;
const ops = {
  async open(config) {
    let nLayers;
    ({ engine, nLayers } = await engineOf(config));
    engine.loadRandomSae(Math.floor(nLayers / 2)); // src/bench.rs: bench::layer
  },
  prepare: ({ case: c, b, r }) => engine.benchPrepare(c, b, r),
  run: () => timed(() => engine.benchRun()),
  memory: memoryRun,
};

self.onmessage = async ({ data }) => {
  try {
    postMessage({ value: await ops[data.op](data) });
  } catch (e) {
    postMessage({ error: String(e.stack ?? e) });
  }
};
