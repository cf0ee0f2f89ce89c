// What a link or a fetch may reach, without a browser: index.html's Content-Security-Policy lists
// what www/hosts.js allows, link addresses are checked, and reads stop at their cap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CONNECT_SRC, allowedBy, checkSize, linkUrl, readCapped, MAX_URL } from '../../www/hosts.js';

const html = readFileSync(new URL('../../index.html', import.meta.url), 'utf8');
const policy = /<meta http-equiv="Content-Security-Policy" content="([^"]+)">/.exec(html)[1];
const directives = Object.fromEntries(policy.split(';').map((d) => d.trim().split(/\s+/)).map(([k, ...v]) => [k, v]));

test('the page\'s connect-src is the list the worker checks, and nothing else', async () => {
  assert.deepEqual(directives['connect-src'], CONNECT_SRC);
  assert.deepEqual(directives['default-src'], ["'self'"]);
  assert.deepEqual(directives['script-src'], ["'self'", "'wasm-unsafe-eval'"]);
  assert.deepEqual(directives['object-src'], ["'none'"]);
  // Cytoscape's one inline rule, by its hash: nothing else inline.
  const { createHash } = await import('node:crypto');
  const rule = '.__________cytoscape_container { position: relative; }';
  assert.deepEqual(directives['style-src'], ["'self'", `'sha256-${createHash('sha256').update(rule).digest('base64')}'`]);
});

test('allowedBy matches origins as a CSP does: exact hosts, *. for subdomains, \'self\'', () => {
  const self = 'http://127.0.0.1:8000';
  const yes = ['https://huggingface.co/facebook/x', 'https://cas-bridge.xethub.hf.co/a', 'https://cdn-lfs-us-1.hf.co/b',
    'https://rest.uniprot.org/uniprotkb/P1.fasta', 'http://127.0.0.1:8000/hub/x'];
  const no = ['http://huggingface.co/x', 'https://huggingface.co.evil.example/x', 'https://evilhf.co/x', 'https://hf.co.example/x',
    'http://127.0.0.1:8001/x', 'http://localhost:8000/x', 'https://deepanshumody.github.io.example/x'];
  for (const u of yes) assert.ok(allowedBy(CONNECT_SRC, new URL(u), self), u);
  for (const u of no) assert.ok(!allowedBy(CONNECT_SRC, new URL(u), self), u);
  assert.ok(allowedBy([...CONNECT_SRC, 'http://localhost:9000'], new URL('http://localhost:9000/hub'), self));
});

test('link addresses: absolute, http(s), bounded', () => {
  assert.equal(linkUrl('hub', 'https://example.org/mirror').origin, 'https://example.org');
  assert.equal(linkUrl('hub', 'javascript:alert(1)').message, '?hub= must be an http or https address, not javascript:');
  assert.equal(linkUrl('graphs', 'data/').message, '?graphs= "data/" is not an absolute address (https://…)');
  assert.equal(linkUrl('hub', `https://a.example/${'x'.repeat(MAX_URL)}`).message,
    `?hub= is ${MAX_URL + 18} characters long; an address here has at most ${MAX_URL}`);
});

test('reads stop at their cap: from the declared length, or as the stream passes it', async () => {
  const body = new Uint8Array(3000).fill(7);
  const declared = new Response(body, { headers: { 'content-length': '3000' } });
  await assert.rejects(readCapped(declared, { name: 'config.json', cap: 1000 }),
    { message: 'config.json is 3.0 kB; the page reads at most 1.0 kB of such a file' });
  const big = new Response(new Uint8Array(2_500_000), { headers: { 'content-length': '2500000' } });
  await assert.rejects(readCapped(big, { name: 'config.json', cap: 2 ** 20 }),
    { message: 'config.json is 2.5 MB; the page reads at most 1.0 MB of such a file' });
  // No Content-Length: the stream is cut once it passes the cap.
  let pulled = 0;
  const endless = new ReadableStream({ pull(c) { pulled += 1; c.enqueue(new Uint8Array(65536)); } });
  await assert.rejects(readCapped(new Response(endless), { name: 'graph.json', cap: 2 ** 20 }),
    { message: 'graph.json is larger than the 1.0 MB the page reads of such a file' });
  assert.ok(pulled <= 20, `${pulled} chunks pulled`);
  const seen = [];
  const ok = await readCapped(new Response(body), { name: 'x', cap: 3000, onProgress: (l) => seen.push(l) });
  assert.deepEqual([ok.length, ok[2999], seen.at(-1)], [3000, 7, 3000]);
  assert.throws(() => checkSize({ name: 'huge.pt', size: 3e9 }, 2 ** 31 - 1),
    { message: 'huge.pt is 3.00 GB; the page reads at most 2.15 GB of such a file' });
});
