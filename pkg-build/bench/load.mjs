// What each ESM-2 size costs the page to load: the built page in headless Chromium picks the size
// (?model=), streams its model.safetensors from a hub mirror on localhost (random weights of the
// full size, written by the CLI once into ~/.cache/plmscope-bench/hub) and reports the engine's
// wasm memory when the model is ready (its peak: wasm memory never shrinks), then runs a
// 300-residue protein with the SAE of the page's layer. One JSON line per size and build:
// {"engine", "size", "fileBytes", "wasmBytes", "loadSeconds", "runSeconds"}.
//   node load.mjs [SIZES]    # default 8M,35M,150M,650M; BENCH_LOAD_BUILDS=cpu,webgpu;
//                            # LOAD_TIMEOUT=ms for each wait (default 10 and 20 minutes)
// BENCH_LOAD_DROP=DIR drops the files on the page instead, once the page has started on its demo
// model, and times from the drop: the hub folder's two files, then DIR/esm2_SIZE.pt (the same
// weights as a fair-esm checkpoint: python3 pkg-build/bench/fair_esm_pt.py HUB_FOLDER
// DIR/esm2_SIZE.pt, with torch), each in a browser of its own.
// Needs the built page (pkg-build/build.sh) and the CLI (cargo build --release).
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { createReadStream, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(new URL('../package.json', import.meta.url));
const { chromium } = require('playwright-core');
const root = fileURLToPath(new URL('../..', import.meta.url));
const hubDir = join(homedir(), '.cache/plmscope-bench/hub');
const bin = join(process.env.CARGO_TARGET_DIR ?? join(homedir(), '.cache/plmscope-target'), 'release/plmscope');
const REPOS = { '8M': 'esm2_t6_8M_UR50D', '35M': 'esm2_t12_35M_UR50D', '150M': 'esm2_t30_150M_UR50D', '650M': 'esm2_t33_650M_UR50D' };
const sizes = (process.argv[2] ?? '8M,35M,150M,650M').split(',');
const builds = (process.env.BENCH_LOAD_BUILDS ?? 'cpu').split(',');
const PROTEIN = Array.from({ length: 300 }, (_, i) => 'LAGVSERTIDPKQNFYMHWC'[(7 * i + i / 3) % 20 | 0]).join('');
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.css': 'text/css' };

/** The hub folder of `size`, random weights of its hub config (tests/reference/fixtures/sizes.json). */
function mirror(size) {
  const dir = join(hubDir, 'facebook', REPOS[size], 'resolve/main');
  if (existsSync(join(dir, 'model.safetensors'))) return dir;
  const args = ['random-model', '--out', dir];
  if (size !== '8M') {
    const config = JSON.parse(readFileSync(join(root, 'tests/reference/fixtures/sizes.json'), 'utf8'))[REPOS[size]].config;
    const path = join(tmpdir(), `${REPOS[size]}.json`);
    writeFileSync(path, JSON.stringify(config));
    args.push('--config', path);
  }
  execFileSync(bin, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  return dir;
}

/** The repository, and the mirror under /hub/. */
function serve() {
  const server = http.createServer((req, res) => {
    let path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    if (path.endsWith('/')) path += 'index.html';
    const file = path.startsWith('/hub/') ? join(hubDir, normalize(path.slice(5))) : join(root, normalize(path));
    let size;
    try {
      const stat = statSync(file);
      if (!stat.isFile()) throw new Error('not a file');
      size = stat.size;
    } catch {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'content-length': size, 'access-control-allow-origin': '*' });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

const server = await serve();
const base = `http://127.0.0.1:${server.address().port}/`;
try {
  for (const size of sizes) {
    const hubFiles = [join(mirror(size), 'config.json'), join(mirror(size), 'model.safetensors')];
    const drops = process.env.BENCH_LOAD_DROP ? [['drop-hub', hubFiles], ['drop-pt', [join(process.env.BENCH_LOAD_DROP, `esm2_${size}.pt`)]]] : [[null, null]];
    for (const [build, [how, files]] of builds.flatMap((b) => drops.map((d) => [b, d]))) {
      const fileBytes = statSync(files ? files.at(-1) : hubFiles[1]).size;
      const browser = await chromium.launch({
        executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
        args: ['--headless', '--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update',
          '--disable-sync', ...(build === 'webgpu' ? ['--enable-unsafe-webgpu'] : [])],
      });
      try {
        const page = await (await browser.newContext({ serviceWorkers: 'block' })).newPage();
        const hub = encodeURIComponent(`${base}hub`);
        const ready = (name) => page.waitForFunction((n) => new RegExp(`^Model ready.*${n}|could not|failed|refused`, 'i').test(document.getElementById('status').textContent), name, { timeout: 1_800_000 });
        let start = Date.now();
        await page.goto(`${base}?${files ? 'weights=random' : `model=${size}&hub=${hub}`}${build === 'cpu' ? '&backend=cpu&threads=1' : ''}`);
        const status = page.locator('#status');
        await ready('');
        if (files) {
          await page.waitForFunction(() => /^SAE at layer/.test(document.getElementById('sae-status').textContent), null, { timeout: 600_000 });
          start = Date.now();
          await page.setInputFiles('#model-files', files);
          await ready(files.at(-1).split('/').pop().replace('.', '\\.'));
        }
        const loadSeconds = (Date.now() - start) / 1e3;
        const text = await status.textContent();
        const note = await page.textContent('#memory-note');
        const wasm = /: ([0-9.]+) (MB|GB)/.exec(note);
        const wasmBytes = wasm ? Number(wasm[1]) * (wasm[2] === 'GB' ? 1e9 : 1e6) : null;
        // Then a first run of a 300-residue protein with the layer's SAE (the random demo SAE,
        // as the mirror holds none): that the size works in this build, not only loads.
        await page.waitForFunction(() => !/^(Loading|Fetching)|^$/.test(document.getElementById('sae-status').textContent), null, { timeout: Number(process.env.LOAD_TIMEOUT ?? 600_000) });
        const sae = await page.textContent('#sae-status');
        await page.fill('#sequence', PROTEIN);
        const run = Date.now();
        await page.click('#run');
        await page.waitForFunction(() => /300 residues/.test(document.getElementById('summary').textContent), null, { timeout: Number(process.env.LOAD_TIMEOUT ?? 1_200_000) })
          .catch(async (e) => { throw new Error(`${size}: no run (the SAE: ${sae}; the status: ${await status.textContent()})`, { cause: e }); });
        const runSeconds = (Date.now() - run) / 1e3;
        console.log(JSON.stringify({ engine: `plmscope-page-${build}${how ? `-${how}` : ''}`, size, fileBytes, wasmBytes, loadSeconds, runSeconds, status: text, sae, summary: await page.textContent('#summary') }));
      } finally {
        await browser.close();
      }
    }
  }
} finally {
  server.close();
}
