// Times the page itself in headless Chromium: from pressing Run to the heatmap being drawn, for a
// 300-residue protein, on the CPU build, weights already loaded (as on a second visit, when they
// come from the Cache API), with the demo's 10,240-feature SAE at layer 3. Prints a Markdown
// table. Needs the site built (pkg-build/build.sh).
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');
const root = fileURLToPath(new URL('..', import.meta.url));
const port = 8900 + Math.floor(Math.random() * 90);
const server = spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1'], { cwd: root, stdio: 'ignore' });
await new Promise((r) => setTimeout(r, 800));
const aa = 'ACDEFGHIKLMNPQRSTVWY';
const seq = Array.from({ length: 300 }, (_, i) => aa[(i * 7 + Math.floor(i / 3)) % 20]).join('');
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${port}/?weights=random&backend=cpu`);
  await page.waitForFunction(() => /SAE at layer 3/.test(document.getElementById('sae-status').textContent), null, { timeout: 300_000 });
  await page.fill('#sequence', seq);
  const runs = [];
  for (let i = 0; i < 5; i++) {
    const ms = await page.evaluate(() => new Promise((resolve) => {
      const canvas = document.getElementById('heatmap');
      const t0 = performance.now();
      const seen = canvas.width;
      canvas.width = 0;
      const poll = () => (canvas.width > 0 ? resolve(performance.now() - t0) : requestAnimationFrame(poll));
      document.getElementById('run').click();
      requestAnimationFrame(poll);
      return seen;
    }));
    runs.push(ms);
  }
  const timings = await page.textContent('#timings');
  runs.sort((a, b) => a - b);
  console.log('| case | median of 5 (ms) | worker timing of the last run |');
  console.log('|---|---|---|');
  console.log(`| Run → heatmap, 1×300 residues, CPU build, 10,240-feature SAE at layer 3 | ${runs[2].toFixed(0)} | ${timings} |`);
} finally {
  await browser.close();
  server.kill();
}
