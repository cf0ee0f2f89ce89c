// Times the page itself in headless Chromium: from pressing Run to the heatmap being drawn, for a
// 300-residue protein, on the CPU build, weights already loaded (as on a second visit, when they
// come from the Cache API), with the demo's 10,240-feature SAE at layer 3; then circuits run from
// the page's controls. Prints Markdown tables. Needs the site built (pkg-build/build.sh).
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { median } from './bench/timing.js';

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
  // BENCH_PAGE=design times only generation and training; BENCH_PAGE=atlas only the atlas.
  const designOnly = process.env.BENCH_PAGE === 'design';
  const atlasOnly = process.env.BENCH_PAGE === 'atlas';
  await page.goto(`http://127.0.0.1:${port}/?weights=random&backend=cpu`);
  await page.waitForFunction(() => /SAE at layer 3/.test(document.getElementById('sae-status').textContent), null, { timeout: 300_000 });
  if (!designOnly && !atlasOnly) {
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
    console.log('| case | median of 5 (ms) | worker timing of the last run |');
    console.log('|---|---|---|');
    console.log(`| Run → heatmap, 1×300 residues, CPU build, 10,240-feature SAE at layer 3 | ${median(runs).toFixed(0)} | ${timings} |`);

    // A circuit from the page's own controls: 20 proteins of 300 residues given as a UniProt JSON
    // file, the top 10 features of layer L ablated, no probe.
    let state = 0x5eedn;
    const next = () => { state = (state * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn; return Number(state >> 33n); };
    const results = Array.from({ length: 20 }, (_, i) => ({
      primaryAccession: `R${i}`, sequence: { value: Array.from({ length: 300 }, () => aa[next() % 20]).join('') }, features: [],
    }));
    await page.fill('#labels-max', '20');
    await page.setInputFiles('#labels-file', { name: 'bench.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify({ results })) });
    await page.waitForFunction(() => /^20 proteins/.test(document.getElementById('labels-status').textContent), null, { timeout: 60_000 });
    await page.uncheck('#circuit-probe');
    await page.fill('#circuit-top', '10');
    console.log();
    console.log('| circuit in the CPU build | blocks run per ablation | time (s) |');
    console.log('|---|---|---|');
    for (const [a, b] of [[2, 5], [4, 5]]) {
      await page.fill('#circuit-layers', `${a},${b}`);
      await page.click('#circuit-run');
      await page.waitForFunction(() => /^Circuit over layers/.test(document.getElementById('circuit-status').textContent), null, { timeout: 3_600_000 });
      const seconds = /in ([0-9.]+) s/.exec(await page.textContent('#circuit-status'))[1];
      console.log(`| 20 proteins × 300 residues, layers ${a} → ${b}, top 10 of layer ${a} ablated | ${b - a} | ${seconds} |`);
    }
  }

  // An atlas built from the page's controls over 40 random proteins of 300 residues (the FASTA in
  // the input box), the demo SAE at layer 3.
  if (!designOnly) {
    let s = 0x7a71;
    const rand = () => { s = (s * 1103515245 + 12345) % 2 ** 31; return s; };
    await page.fill('#sequence', Array.from({ length: 40 }, (_, i) => `>A${i}\n${Array.from({ length: 300 }, () => aa[rand() % 20]).join('')}\n`).join(''));
    await page.selectOption('#atlas-source', 'input');
    await page.click('#atlas-build');
    await page.waitForFunction(() => /built in [0-9.]+ s/.test(document.getElementById('atlas-status').textContent), null, { timeout: 3_600_000 });
    const [, seconds, rate] = /built in ([0-9.]+) s \(([0-9.]+) proteins\/s\)/.exec(await page.textContent('#atlas-status'));
    console.log();
    console.log('| atlas in the CPU build | time (s) | proteins / s |');
    console.log('|---|---|---|');
    console.log(`| 40 proteins × 300 residues, the demo SAE at layer 3 (10,240 features) | ${seconds} | ${rate} |`);
  }

  if (!atlasOnly) {
    // Steered generation from the page's controls: each sample is generated steered and again
    // unsteered (its twin), so one sample of R rounds runs 2R forwards plus two PLLs. The PLLs
    // (100 masked forwards each) dwarf a round and drift by seconds, so a round's cost is the
    // difference between 21 rounds and 1 (40 rounds) within a pair of runs made one after the other,
    // the median of 3 pairs.
    const generate = async (rounds) => {
      await page.fill('#gen-rounds', String(rounds));
      // The previous run's status would match at once: clear it, so the wait is for this run's.
      await page.evaluate(() => { document.getElementById('gen-status').textContent = ''; });
      await page.click('#gen-run');
      await page.waitForFunction(() => /^1 sequence,.* in [0-9.]+ s/.test(document.getElementById('gen-status').textContent) && !document.getElementById('gen-run').disabled, null, { timeout: 3_600_000 });
      return Number(/in ([0-9.]+) s/.exec(await page.textContent('#gen-status'))[1]);
    };
    await page.fill('#gen-steers', '3:clamp:17=8');
    await page.fill('#gen-length', '100');
    await page.fill('#gen-samples', '1');
    const pairs = [];
    for (let i = 0; i < 3; i++) {
      const one = await generate(1);
      pairs.push({ one, perRound: (await generate(21) - one) / 40 });
    }
    const perRound = median(pairs.map((p) => p.perRound));
    const fixed = median(pairs.map((p) => p.one)) - 2 * perRound;
    console.log();
    console.log('| generation, 100 residues, clamp at layer 3 | per round (ms) | rounds / s | PLL + final encode, twice (s) |');
    console.log('|---|---|---|---|');
    console.log(`| CPU build | ${(perRound * 1e3).toFixed(0)} | ${(1 / perRound).toFixed(1)} | ${fixed.toFixed(2)} |`);

    // SAE training from the page's controls, on 40 random proteins at layer 3.
    await page.selectOption('#train-source', 'random');
    await page.fill('#train-random-n', '40');
    await page.selectOption('#train-layer', '3');
    await page.fill('#train-steps', '20');
    await page.fill('#train-batch', '1024');
    console.log();
    console.log('| SAE training at layer 3, batch 1024 tokens, CPU build | tokens / s |');
    console.log('|---|---|');
    for (const [name, recipe] of [['top-k 2048 / k 32', 'top-k'], ['ReLU + L1, 2048', 'relu-l1']]) {
      await page.selectOption('#train-recipe', recipe);
      await page.click('#train-start');
      await page.waitForFunction(() => /^Trained: 20 steps/.test(document.getElementById('train-status').textContent), null, { timeout: 3_600_000 });
      console.log(`| ${name} | ${/\((\d+) tokens\/s\)/.exec(await page.textContent('#train-status'))[1]} |`);
      await page.evaluate(() => { document.getElementById('train-status').textContent = ''; });
    }
  }
} finally {
  await browser.close();
  server.kill();
}
