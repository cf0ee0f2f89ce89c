// The built page in Debian's Chromium (playwright-core), served on localhost as GitHub Pages
// would serve it. Run by pkg-build/test.sh after pkg-build/build.sh.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(new URL('../../pkg-build/package.json', import.meta.url));
const { chromium } = require('playwright-core');
const root = fileURLToPath(new URL('../..', import.meta.url));
const port = 8700 + Math.floor(Math.random() * 200);
const base = `http://127.0.0.1:${port}/`;
const FLAGS = ['--headless', '--no-sandbox', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let server;
before(async () => {
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

      await page.fill('#sequence', '>my <b>protein</b>\nMKTAYIAKQR\n');
      await page.click('#run');
      await page.waitForSelector('.residue');
      assert.equal(await page.locator('.residue').count(), 10);
      // The FASTA header is shown as text, never parsed as HTML.
      assert.match(await page.textContent('.record h2'), /^my <b>protein<\/b> — 10 residues/);
      assert.equal(await page.locator('.record h2 b').count(), 0);
      const title = await page.getAttribute('.residue >> nth=0', 'title');
      const p = Number(/p = ([0-9.]+)/.exec(title)[1]);
      assert.ok(p > 0 && p < 1, title);

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
