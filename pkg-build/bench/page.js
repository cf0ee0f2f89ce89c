// The engines of one benchmark page, each behind the same three calls, so that browser.mjs can
// alternate them run by run: plmscope's wasm build (in a module worker, as the page runs it), or
// onnxruntime-web (the engine under transformers.js) on peers.py's ONNX export of the same weights.
//   window.bench.open(config) → id; prepare(id, case, b, r); run(id) → ms of one run (results
//   read back); memory(config) → plmscope's memory case on an engine of its own.
import { timed, aminoAcid } from './timing.js';

function inputs(ort, batch, residues) {
  // <cls>, the suite's residues (tokens 4..23), <eos>.
  const t = residues + 2;
  const ids = new BigInt64Array(batch * t);
  for (let b = 0; b < batch; b++) {
    ids[b * t] = 0n;
    for (let i = 0; i < residues; i++) ids[b * t + 1 + i] = BigInt(4 + aminoAcid(i, b));
    ids[b * t + t - 1] = 2n;
  }
  return { input_ids: new ort.Tensor('int64', ids, [batch, t]), attention_mask: new ort.Tensor('int64', new BigInt64Array(batch * t).fill(1n), [batch, t]) };
}

async function ortEngine({ threads, onnx }) {
  const ort = await import('../node_modules/onnxruntime-web/dist/ort.wasm.min.mjs');
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.wasmPaths = new URL('../node_modules/onnxruntime-web/dist/', import.meta.url).href;
  let file, session, feeds;
  return {
    async prepare(c, b, r) {
      const wanted = c === 'forward' ? 'model.onnx' : c === 'matmul' ? 'matmul.onnx' : `model_${c}.onnx`;
      if (wanted !== file) {
        await session?.release();
        session = await ort.InferenceSession.create(`${onnx}/${wanted}`, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
        file = wanted;
      }
      feeds = c === 'matmul'
        ? { a: new ort.Tensor('float32', Float32Array.from({ length: b * r }, () => Math.random() - 0.5), [b, r]) }
        : inputs(ort, b, r);
    },
    run: () => timed(() => session.run(feeds)),
  };
}

/** plmscope-worker.js behind the same calls: one request at a time, answered in order. */
function worker() {
  const w = new Worker(new URL('./plmscope-worker.js', import.meta.url), { type: 'module' });
  const waiting = [];
  w.onmessage = ({ data }) => {
    const { resolve, reject } = waiting.shift();
    if (data.error) reject(new Error(data.error));
    else resolve(data.value);
  };
  w.onerror = (e) => waiting.splice(0).forEach(({ reject }) => reject(new Error(e.message)));
  return (request) => new Promise((resolve, reject) => {
    waiting.push({ resolve, reject });
    w.postMessage(request);
  });
}

async function plmscopeEngine(config) {
  const call = worker();
  await call({ op: 'open', ...config });
  return {
    prepare: (c, b, r) => call({ op: 'prepare', case: c, b, r }),
    run: () => call({ op: 'run' }),
  };
}

const engines = [];
window.bench = {
  async open(config) {
    engines.push(config.engine === 'onnxruntime-web' ? await ortEngine(config) : await plmscopeEngine(config));
    return { id: engines.length - 1, crossOriginIsolated: self.crossOriginIsolated };
  },
  prepare: (id, c, b, r) => engines[id].prepare(c, b, r),
  run: (id) => engines[id].run(),
  memory: (config) => worker()({ op: 'memory', ...config }),
};
window.benchReady = true;
