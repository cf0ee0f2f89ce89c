// The built page in Debian's Chromium (playwright-core), served on localhost as GitHub Pages
// would serve it. Run by pkg-build/test.sh after pkg-build/build.sh.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir, homedir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(new URL('../../pkg-build/package.json', import.meta.url));
const { chromium } = require('playwright-core');
const root = fileURLToPath(new URL('../..', import.meta.url));
const port = 8700 + Math.floor(Math.random() * 200);
const base = `http://127.0.0.1:${port}/`;
const FLAGS = ['--headless', '--no-sandbox', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const SEQUENCE = 'MKTAYIAKQR';

/** Tensors of a safetensors file (f32 only) as {name: {shape, data}}. */
function readSafetensors(path) {
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString());
  const out = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__' || t.dtype !== 'F32') continue;
    const [a, b] = t.data_offsets;
    const buf = bytes.subarray(8 + n + a, 8 + n + b);
    out[name] = { shape: t.shape, data: new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length)) };
  }
  return out;
}

/** What the native CLI predicts for SEQUENCE with the page's random weights: per residue, the
 *  probability of the residue and the most probable token. */
function cliPredictions() {
  const bin = join(process.env.CARGO_TARGET_DIR ?? join(homedir(), '.cache/plmscope-target'), 'release/plmscope');
  const dir = mkdtempSync(join(tmpdir(), 'plmscope-e2e-'));
  execFileSync(bin, ['random-model', '--out', join(dir, 'model')]);
  writeFileSync(join(dir, 'in.fasta'), `>p\n${SEQUENCE}\n`);
  execFileSync(bin, ['embed', '--model', join(dir, 'model'), '--fasta', join(dir, 'in.fasta'), '--out', join(dir, 'out.safetensors')]);
  const { shape: [t, v], data } = readSafetensors(join(dir, 'out.safetensors'))['0.logits'];
  const vocab = ['<cls>', '<pad>', '<eos>', '<unk>', ...'LAGVSERTIDPKQNFYMHWCXBUZO.-', '<null_1>', '<mask>'];
  const out = [];
  for (let pos = 1; pos < t - 1; pos++) {
    const row = Array.from(data.subarray(pos * v, (pos + 1) * v));
    const max = Math.max(...row);
    const exp = row.map((x) => Math.exp(x - max));
    const sum = exp.reduce((a, b) => a + b, 0);
    const best = exp.indexOf(Math.max(...exp));
    out.push({ pActual: exp[vocab.indexOf(SEQUENCE[pos - 1])] / sum, top: vocab[best] });
  }
  return out;
}

let server;
let expected;
before(async () => {
  expected = cliPredictions();
  server = spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1'], { cwd: root, stdio: 'ignore' });
  for (let i = 0; i < 50; i++) {
    try { await fetch(base); return; } catch { await new Promise((r) => setTimeout(r, 100)); }
  }
  throw new Error('the static server did not start');
});
after(() => server.kill());

async function openPage(webgpu) {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: webgpu ? [...FLAGS, '--enable-unsafe-webgpu'] : FLAGS,
  });
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${base}?weights=random`);
  await page.waitForFunction(() => document.getElementById('status').textContent.startsWith('Model ready'),
    null, { timeout: 300_000 });
  return { browser, page, errors };
}

for (const [webgpu, badge] of [[true, 'WebGPU'], [false, 'CPU (WebAssembly)']]) {
  test(`paste → predictions; bad input keeps the result (${badge})`, { timeout: 600_000 }, async () => {
    const { browser, page, errors } = await openPage(webgpu);
    try {
      assert.equal(await page.textContent('#backend'), badge);
      const note = await page.textContent('#weights-note');
      assert.match(note, /RANDOM weights of the esm2_t6_8M architecture/);
      assert.equal(await page.isVisible('#weights-note'), true);

      await page.fill('#sequence', `>my <b>protein</b>\n${SEQUENCE}\n`);
      await page.click('#run');
      await page.waitForSelector('.residue');
      assert.equal(await page.locator('.residue').count(), 10);
      // The FASTA header is shown as text, never parsed as HTML.
      assert.match(await page.textContent('.record h2'), /^my <b>protein<\/b> — 10 residues/);
      assert.equal(await page.locator('.record h2 b').count(), 0);
      // The page's numbers are the native CLI's for the same weights and sequence.
      const titles = await page.locator('.residue').evaluateAll((spans) => spans.map((s) => s.title));
      titles.forEach((title, i) => {
        const [, p, top] = /p = ([0-9.]+); top: (\S+)/.exec(title);
        assert.ok(Math.abs(Number(p) - expected[i].pActual) < 2e-3, `${title} vs ${JSON.stringify(expected[i])}`);
        assert.equal(top, expected[i].top, title);
      });

      await page.fill('#sequence', 'MKT1A');
      await page.click('#run');
      await page.waitForFunction(() => document.getElementById('input-error').textContent !== '');
      assert.match(await page.textContent('#input-error'), /record 1: '1' at residue 4 \(line 1, column 4\)/);
      assert.equal(await page.locator('.residue').count(), 10, 'the previous result stays on screen');
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
    }
  });
}
