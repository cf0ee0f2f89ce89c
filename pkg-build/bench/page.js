// One engine's cases in this page, timed with performance.now() around each run (results read
// back): plmscope's wasm build (in a module worker, as the page runs it), or onnxruntime-web (the
// engine under transformers.js) on peers.py's ONNX export of the same weights. browser.mjs calls
// window.bench(config).
import { time, repeatsFor, aminoAcid } from './timing.js';

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

async function ortCases({ threads, cases, shapes, onnx }) {
  const ort = await import('../node_modules/onnxruntime-web/dist/ort.wasm.min.mjs');
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.wasmPaths = new URL('../node_modules/onnxruntime-web/dist/', import.meta.url).href;
  const out = [];
  for (const c of cases) {
    const file = c === 'forward' ? 'model.onnx' : c === 'matmul' ? 'matmul.onnx' : `model_${c}.onnx`;
    const session = await ort.InferenceSession.create(`${onnx}/${file}`, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
    if (c === 'matmul') {
      const a = new ort.Tensor('float32', Float32Array.from({ length: 1024 * 1024 }, () => Math.random() - 0.5), [1024, 1024]);
      out.push({ case: c, shape: '1024x1024', ms: await time(() => session.run({ a }), 9) });
    } else {
      for (const [b, r] of shapes) {
        if (c === 'intervene' && b !== 1) continue;
        const feeds = inputs(ort, b, r);
        out.push({ case: c, shape: `${b}x${r}`, ms: await time(() => session.run(feeds), repeatsFor(b, r)) });
      }
    }
    await session.release();
  }
  return out;
}

function plmscopeInWorker(config) {
  const worker = new Worker(new URL('./plmscope-worker.js', import.meta.url), { type: 'module' });
  return new Promise((resolve, reject) => {
    worker.onmessage = ({ data }) => {
      worker.terminate();
      if (data.error) reject(new Error(data.error));
      else resolve(data.results);
    };
    worker.onerror = (e) => reject(new Error(e.message));
    worker.postMessage(config);
  });
}

window.bench = async (config) => {
  const results = config.engine === 'onnxruntime-web' ? await ortCases(config) : await plmscopeInWorker(config);
  return { crossOriginIsolated: self.crossOriginIsolated, results };
};
window.benchReady = true;
