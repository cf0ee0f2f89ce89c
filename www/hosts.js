// Where the page may fetch from, how much it reads of each kind of file, and how a link's
// addresses are checked. index.html's Content-Security-Policy lists the same sources in its
// connect-src (tests/e2e/links.test.mjs checks that they agree), so the document reaches nothing
// else. Weights are fetched in the module worker, which that policy does not govern (a worker's
// policy comes from its own response headers, which a static host cannot set): the worker checks
// the same list in `fetchCapped`, plus a hub origin the visitor confirmed.

/** The connect-src of index.html: this site, the hub and the hosts its downloads redirect to,
 *  UniProt, AlphaFold DB, ESMFold's API (only when the visitor asks it to fold), and the seed explorer's two published copies. */
export const CONNECT_SRC = [
  "'self'",
  'https://huggingface.co',
  'https://*.hf.co',
  'https://rest.uniprot.org',
  'https://alphafold.ebi.ac.uk',
  'https://api.esmatlas.com',
  'https://deepanshumody.github.io',
  'https://raw.githubusercontent.com',
];

/** The most bytes the page reads of each kind of file. One browser ArrayBuffer holds about 2 GB. */
export const CAPS = {
  config: 2 ** 20,
  // Read whole into one ArrayBuffer (SAEs): Chrome's limit.
  weights: 2 ** 31 - 1,
  // Streamed a tensor at a time (model.safetensors, a fair-esm .pt): ESM-2 650M's 2.61 GB, with room.
  streamed: 4e9,
  json: 64 * 2 ** 20,
  fasta: 16 * 2 ** 20,
  structure: 32 * 2 ** 20,
};

/** The longest address a link parameter may hold. */
export const MAX_URL = 2048;

export const MB = (n) => (n < 1e3 ? `${n} bytes` : n < 1e6 ? `${(n / 1e3).toFixed(1)} kB` : n < 1e9 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e9).toFixed(2)} GB`);

/** True when `url` (a URL) matches one of `sources` (CSP source expressions as in CONNECT_SRC). */
export function allowedBy(sources, url, self = globalThis.location?.origin) {
  return sources.some((s) => {
    if (s === "'self'") return url.origin === self;
    const { protocol, host } = new URL(s.replace('*.', 'wildcard.'));
    if (url.protocol !== protocol) return false;
    return s.includes('*.') ? url.host.endsWith(host.slice('wildcard'.length)) : url.host === host;
  });
}

/** How an origin is named to the visitor: the hub's bare host, any other origin in full. */
export const originLabel = (origin) => (origin === 'https://huggingface.co' ? 'huggingface.co' : origin);

/**
 * The address a link parameter `name` holds, as a URL, or an Error saying what is wrong with it:
 * at most MAX_URL characters, absolute, http or https.
 */
export function linkUrl(name, value) {
  if (value.length > MAX_URL) return new Error(`?${name}= is ${value.length} characters long; an address here has at most ${MAX_URL}`);
  let url;
  try {
    url = new URL(value);
  } catch {
    return new Error(`?${name}= "${value.slice(0, 80)}" is not an absolute address (https://…)`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return new Error(`?${name}= must be an http or https address, not ${url.protocol}`);
  return url;
}

/**
 * The body of `response` as bytes, read as it streams, at most `cap` of them: a larger file is
 * refused from its Content-Length before anything is read, or as soon as its stream passes the cap.
 * `onProgress(loaded, total)` sees `loaded` grow.
 */
export async function readCapped(response, { name, cap, onProgress = () => {} }) {
  const declared = Number(response.headers.get('content-length')) || 0;
  if (declared > cap) {
    await response.body?.cancel().catch(() => {});
    throw new Error(`${name} is ${MB(declared)}; the page reads at most ${MB(cap)} of such a file`);
  }
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    loaded += value.length;
    if (loaded > cap) {
      await reader.cancel().catch(() => {});
      throw new Error(`${name} is larger than the ${MB(cap)} the page reads of such a file`);
    }
    chunks.push(value);
    onProgress(loaded, declared || loaded);
  }
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) { bytes.set(c, at); at += c.length; }
  return bytes;
}

/**
 * The response to a GET (or a POST of `body`) of `url` (a string or URL) from one of `sources`:
 * refused before fetching when the address is not allowed, and after a redirect that left the list
 * or an HTTP error.
 */
export async function fetchChecked(url, { name, sources = CONNECT_SRC, method = 'GET', body }) {
  const target = new URL(url);
  const refused = (u) => new Error(`${name}: this page does not fetch from ${u.origin} (it reads from ${
    CONNECT_SRC.map((s) => (s === "'self'" ? 'this site' : s.replace('https://', ''))).join(', ')})`);
  if (!allowedBy(sources, target)) throw refused(target);
  const response = await fetch(target, method === 'GET' ? undefined : { method, body, headers: { 'content-type': 'text/plain' } });
  if (response.redirected && !allowedBy(sources, new URL(response.url))) throw refused(new URL(response.url));
  if (!response.ok) throw new Error(`${name}: HTTP ${response.status} from ${target.origin}`);
  return response;
}

/** The bytes at `url`, checked as `fetchChecked` does and read as `readCapped` does. */
export const fetchCapped = async (url, options) => readCapped(await fetchChecked(url, options), options);

/** `bytes` as JSON, with `name` in the error when they are not. */
export function parseJson(bytes, name) {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new Error(`${name} is not JSON: ${e.message}`);
  }
}

/** `file` (a dropped File) when it holds at most `cap` bytes; else the same words as a fetch's. */
export function checkSize(file, cap) {
  if (file.size > cap) throw new Error(`${file.name} is ${MB(file.size)}; the page reads at most ${MB(cap)} of such a file`);
  return file;
}
