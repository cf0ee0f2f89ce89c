// Where weights come from, and how they arrive: streamed with progress, kept in the Cache API so
// that a second visit loads from disk.

// `hub` is https://huggingface.co, or a mirror with the same paths (the page's ?hub= parameter).
export const HUB = 'https://huggingface.co';
export const MODEL_REPO = 'facebook/esm2_t6_8M_UR50D';
export const SAE_REPO = 'Elana/InterPLM-esm2-8m';
export const hubModel = (hub) => `${hub}/${MODEL_REPO}/resolve/main/`;
export const hubSaeFile = (layer) => `layer_${layer}/ae_normalized.pt`;
export const hubSae = (hub, layer) => `${hub}/${SAE_REPO}/resolve/main/${hubSaeFile(layer)}`;

const CACHE = 'plmscope-weights-v1';

/** The bytes at `url`, from the Cache API when a previous visit stored them. `onProgress(loaded,
 *  total, fromCache)` sees `loaded` grow to `total`. */
export async function fetchCached(url, onProgress) {
  const cache = 'caches' in self ? await caches.open(CACHE).catch(() => null) : null;
  let response = cache ? await cache.match(url) : undefined;
  const fromCache = Boolean(response);
  if (!response) {
    response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  }
  const total = Number(response.headers.get('content-length')) || 0;
  const reader = response.clone().body.getReader();
  const chunks = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    onProgress(loaded, total || loaded, fromCache);
  }
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) { bytes.set(c, at); at += c.length; }
  if (cache && !fromCache) await cache.put(url, response).catch(() => {});
  return bytes;
}
