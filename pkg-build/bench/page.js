// One engine's cases in this page, timed with performance.now() around each run (results read
// back): plmscope's wasm build, or onnxruntime-web (the engine under transformers.js) on
// peers.py's ONNX export of the same weights. browser.mjs calls window.bench(config).

const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const repeatsFor = (b, r) => (b * r >= 1000 ? 3 : 7);

async function time(run, repeats) {
  await run();
  const ms = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await run();
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

function inputs(ort, batch, residues) {
  // peers.py's formula: <cls>, amino acid (7i + 13b + i // 3) mod 20 (tokens 4..23), <eos>.
  const t = residues + 2;
  const ids = new BigInt64Array(batch * t);
  for (let b = 0; b < batch; b++) {
    ids[b * t] = 0n;
    for (let i = 0; i < residues; i++) ids[b * t + 1 + i] = BigInt(4 + ((7 * i + 13 * b + Math.floor(i / 3)) % 20));
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

async function plmscopeCases({ build, backend, cases, shapes }) {
  const wasm = await import(`../../www/pkg/${build}/plmscope.js`);
  await wasm.default();
  const engine = await wasm.Plmscope.create(backend);
  const seed = 0x5EEDE5A2n; // src/weights/random.rs SEED: the same model and SAE as natively
  engine.loadRandom(seed);
  engine.loadRandomSae(3, 10240, seed);
  const out = [];
  for (const c of cases) {
    for (const [b, r] of c === 'matmul' ? [[1024, 1024]] : shapes) {
      if (c === 'intervene' && b !== 1) continue;
      engine.benchPrepare(c, b, r);
      out.push({ case: c, shape: `${b}x${r}`, ms: await time(() => engine.benchRun(), c === 'matmul' ? 9 : repeatsFor(b, r)) });
    }
  }
  return out;
}

// Peak memory of one protein's features at every layer, each layer's demo SAE loaded, through the
// page's own calls (features, then cachedFeatures per layer): the wasm heap never shrinks, so its
// size after the run is the run's peak (JS-side objects not counted). As `plmscope bench-memory`.
async function plmscopeMemory({ build, backend, residues }) {
  const wasm = await import(`../../www/pkg/${build}/plmscope.js`);
  const { memory } = await wasm.default();
  const mb = () => Math.round((memory.buffer.byteLength / 2 ** 20) * 10) / 10;
  const engine = await wasm.Plmscope.create(backend);
  const seed = 0x5EEDE5A2n;
  engine.loadRandom(seed);
  for (let layer = 1; layer <= 6; layer++) engine.loadRandomSae(layer, 10240, seed);
  const loadedMb = mb();
  // The suite's sequence: amino acid (7i + i // 3) mod 20 in ESM-2's token order (tokens 4..23).
  const letters = 'LAGVSERTIDPKQNFYMHWC';
  const sequence = Array.from({ length: residues }, (_, i) => letters[(7 * i + Math.floor(i / 3)) % 20]).join('');
  const layers = [];
  for (let layer = 1; layer <= 6; layer++) {
    const out = layer === 1 ? await engine.features(`>memory\n${sequence}`, 0, 1, false, 10) : await engine.cachedFeatures(layer, false, 10);
    const nonzero = out.features.rows.reduce((n, row) => n + row.length, 0);
    layers.push({ layer, l0: nonzero / residues });
  }
  return [{ case: 'memory', shape: `1x${residues}`, loadedMb, peakMb: mb(), layers }];
}

window.bench = async (config) => {
  const results = config.engine === 'onnxruntime-web' ? await ortCases(config)
    : config.memory ? await plmscopeMemory(config) : await plmscopeCases(config);
  return { crossOriginIsolated: self.crossOriginIsolated, results };
};
window.benchReady = true;
