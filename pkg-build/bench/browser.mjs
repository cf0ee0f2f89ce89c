// Runs pkg-build/bench/page.html in headless Chromium for each browser engine and prints one JSON
// line per case and shape (median ms): plmscope's CPU build and onnxruntime-web with 1 thread
// without isolation, both with 2 threads behind COOP/COEP (plmscope's cpu-threads build), the CPU
// build's peak memory for one protein's features at every layer, and with --webgpu plmscope's
// WebGPU build on Chromium's software adapter (for the record only: it says nothing about a real
// GPU, and on the software adapter takes many minutes).
//   node browser.mjs ONNX_DIR [--webgpu]
// BENCH_SHAPES=1x100,1x300 and BENCH_ENGINES=plmscope-wasm,onnxruntime-web narrow a run.
import http from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { join, extname, normalize } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(new URL('../package.json', import.meta.url));
const { chromium } = require('playwright-core');
const root = fileURLToPath(new URL('../..', import.meta.url));
const onnxDir = process.argv[2];
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };
const SHAPES = (process.env.BENCH_SHAPES ?? '1x100,1x300,1x1000,32x300').split(',').map((s) => s.split('x').map(Number));
const ENGINES = process.env.BENCH_ENGINES?.split(',');

/** A static server of the repository (and the ONNX files under /peers/), isolated or not. */
function serve(isolated) {
  const server = http.createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = path.startsWith('/peers/') ? join(onnxDir, normalize(path.slice(7))) : join(root, normalize(path));
    try {
      if (!statSync(file).isFile()) throw new Error('not a file');
    } catch {
      res.writeHead(404).end();
      return;
    }
    const headers = { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' };
    if (isolated) Object.assign(headers, { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' });
    res.writeHead(200, headers);
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

const FLAGS = ['--headless', '--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--enable-unsafe-webgpu'];
const runs = [
  { engine: 'plmscope-wasm', threads: 1, isolated: false, build: 'cpu', backend: 'cpu', cases: ['forward', 'sae', 'intervene', 'matmul'], shapes: SHAPES },
  { engine: 'onnxruntime-web', threads: 1, isolated: false, cases: ['forward', 'sae', 'intervene', 'matmul'], shapes: SHAPES },
  { engine: 'plmscope-wasm', threads: 2, isolated: true, build: 'cpu-threads', backend: 'cpu', cases: ['forward', 'sae', 'intervene', 'matmul'], shapes: SHAPES },
  { engine: 'onnxruntime-web', threads: 2, isolated: true, cases: ['forward', 'sae', 'intervene', 'matmul'], shapes: SHAPES },
  { engine: 'plmscope-wasm', threads: 1, isolated: false, build: 'cpu', backend: 'cpu', memory: true, residues: 1000 },
];
if (process.argv.includes('--webgpu')) {
  runs.push({ engine: 'plmscope-webgpu-swiftshader', threads: 1, isolated: false, build: 'gpu', backend: 'webgpu', cases: ['forward'], shapes: [[1, 100], [1, 300]] });
}

const selected = runs.filter((r) => !ENGINES || ENGINES.includes(r.engine));
const servers = { false: await serve(false), true: await serve(true) };
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: FLAGS });
try {
  for (const run of selected) {
    const page = await browser.newPage();
    page.on('pageerror', (e) => console.error(`${run.engine}: ${e.message}`));
    await page.goto(`http://127.0.0.1:${servers[run.isolated].address().port}/pkg-build/bench/page.html`);
    await page.waitForFunction(() => window.benchReady, null, { timeout: 60_000 });
    const { crossOriginIsolated, results } = await page.evaluate((c) => window.bench(c), { ...run, onnx: '/peers' });
    if (run.threads > 1 && !crossOriginIsolated) throw new Error(`${run.engine}: ${run.threads} threads need a cross-origin isolated page`);
    for (const r of results) console.log(JSON.stringify({ engine: run.engine, threads: run.threads, ...r, ...(r.ms && { ms: Math.round(r.ms * 100) / 100 }) }));
    await page.close();
  }
} finally {
  await browser.close();
  for (const s of Object.values(servers)) s.close();
}
