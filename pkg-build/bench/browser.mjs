// Runs pkg-build/bench/page.html in headless Chromium and prints one JSON line per engine, case and
// shape (median ms): plmscope's CPU build beside onnxruntime-web with 1 thread without isolation,
// plmscope's cpu-threads build beside onnxruntime-web with 2 threads behind COOP/COEP, the CPU
// build's peak memory for one protein's features at every layer, and with --webgpu plmscope's
// WebGPU build on Chromium's software adapter (for the record only: it says nothing about a real
// GPU, and on the software adapter takes many minutes).
// The engines that are compared share a page and take turns, one run each, in alternating order:
// this machine's speed drifts by ±15–50 % over seconds, and engines timed one after the other
// would each see a different spell.
//   node browser.mjs ONNX_DIR [--webgpu]
// BENCH_SHAPES=1x100,1x300, BENCH_ENGINES=plmscope-wasm,onnxruntime-web and BENCH_THREADS=1 narrow a run.
// BENCH_MODEL=35M|150M: that size (ONNX_DIR its export), plmscope streaming the random hub folder
// pkg-build/bench/load.mjs writes (~/.cache/plmscope-bench/hub); the model cases only.
import http from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { join, extname, normalize } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { homedir } from 'node:os';
import { median } from './timing.js';
import { MODELS } from '../../www/loader.js';

const require = createRequire(new URL('../package.json', import.meta.url));
const { chromium } = require('playwright-core');
const root = fileURLToPath(new URL('../..', import.meta.url));
const onnxDir = process.argv[2];
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };
const SHAPES = (process.env.BENCH_SHAPES ?? '1x100,1x300,1x1000,32x300').split(',').map((s) => s.split('x').map(Number));
const ENGINES = process.env.BENCH_ENGINES?.split(',');
const THREADS = process.env.BENCH_THREADS?.split(',').map(Number);
const SIZE = process.env.BENCH_MODEL;
const hubDir = SIZE && join(homedir(), '.cache/plmscope-bench/hub', MODELS[SIZE].repo, 'resolve/main');

/** A static server of the repository (and the ONNX files under /peers/), isolated or not. */
function serve(isolated) {
  const server = http.createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = path.startsWith('/peers/') ? join(onnxDir, normalize(path.slice(7)))
      : path.startsWith('/hub/') && hubDir ? join(hubDir, normalize(path.slice(5))) : join(root, normalize(path));
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
const CASES = SIZE ? ['forward', 'sae', 'intervene'] : ['forward', 'sae', 'intervene', 'matmul'];
// Each group shares a page (and so its isolation); its engines alternate.
const groups = [
  { isolated: false, engines: [
    { engine: 'plmscope-wasm', threads: 1, build: 'cpu', backend: 'cpu' },
    { engine: 'onnxruntime-web', threads: 1 },
  ] },
  { isolated: true, engines: [
    { engine: 'plmscope-wasm', threads: 2, build: 'cpu-threads', backend: 'cpu' },
    { engine: 'onnxruntime-web', threads: 2 },
  ] },
];
if (process.argv.includes('--webgpu')) {
  groups.push({ isolated: false, cases: ['forward'], shapes: [[1, 100], [1, 300]], engines: [
    { engine: 'plmscope-webgpu-swiftshader', threads: 1, build: 'gpu', backend: 'webgpu' },
  ] });
}
/** Timed runs of a case after one warm-up: fewer for the long shapes. */
const rounds = (c, b, r) => (c === 'matmul' ? 9 : b * r >= 1000 ? 3 : 7);
// A pause before each run, so that threads still spinning after the other engine's run are asleep.
const settle = () => new Promise((resolve) => setTimeout(resolve, 25));
const print = (row) => console.log(JSON.stringify({ ...row, ...(row.ms && { ms: Math.round(row.ms * 100) / 100 }) }));

const servers = { false: await serve(false), true: await serve(true) };
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: FLAGS });
async function open(isolated) {
  const page = await browser.newPage();
  page.on('pageerror', (e) => console.error(`bench page: ${e.message}`));
  await page.goto(`http://127.0.0.1:${servers[isolated].address().port}/pkg-build/bench/page.html`);
  await page.waitForFunction(() => window.benchReady, null, { timeout: 60_000 });
  return page;
}
try {
  for (const group of groups) {
    const engines = group.engines.filter((e) => (!ENGINES || ENGINES.includes(e.engine)) && (!THREADS || THREADS.includes(e.threads)));
    if (!engines.length) continue;
    const page = await open(group.isolated);
    for (const e of engines) {
      const { id, crossOriginIsolated } = await page.evaluate((c) => window.bench.open(c), { ...e, onnx: '/peers', hub: SIZE && '/hub' });
      if (e.threads > 1 && !crossOriginIsolated) throw new Error(`${e.engine}: ${e.threads} threads need a cross-origin isolated page`);
      e.id = id;
    }
    const call = (name, ...args) => page.evaluate(([name, args]) => window.bench[name](...args), [name, args]);
    for (const c of group.cases ?? CASES) {
      for (const [b, r] of c === 'matmul' ? [[1024, 1024]] : group.shapes ?? SHAPES) {
        if (c === 'intervene' && b !== 1) continue;
        for (const e of engines) {
          await call('prepare', e.id, c, b, r);
          await call('run', e.id); // warm-up
        }
        const ms = engines.map(() => []);
        for (let round = 0; round < rounds(c, b, r); round++) {
          const order = round % 2 ? [...engines.keys()].reverse() : [...engines.keys()];
          for (const i of order) {
            await settle();
            ms[i].push(await call('run', engines[i].id));
          }
        }
        engines.forEach((e, i) => print({ engine: e.engine, threads: e.threads, ...(SIZE && { size: SIZE }), case: c, shape: c === 'matmul' ? '1024x1024' : `${b}x${r}`, ms: median(ms[i]) }));
      }
    }
    await page.close();
  }
  if (!SIZE && (!ENGINES || ENGINES.includes('plmscope-wasm'))) {
    const page = await open(false);
    const row = await page.evaluate((c) => window.bench.memory(c), { build: 'cpu', backend: 'cpu', threads: 1, residues: 1000 });
    print({ engine: 'plmscope-wasm', threads: 1, ...row });
    await page.close();
  }
} finally {
  await browser.close();
  for (const s of Object.values(servers)) s.close();
}
