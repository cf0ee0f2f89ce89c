// Where weights come from, and how they arrive: streamed with progress, within a size cap, kept in
// the Cache API so that a second visit loads from disk.
import { fetchChecked, readCapped } from './hosts.js';

// `hub` is https://huggingface.co, or a mirror with the same paths (the page's ?hub= parameter).
export const HUB = 'https://huggingface.co';
export const MODEL_REPO = 'facebook/esm2_t6_8M_UR50D';
export const SAE_REPO = 'Elana/InterPLM-esm2-8m';
export const hubModel = (hub) => `${hub}/${MODEL_REPO}/resolve/main/`;
export const hubSaeFile = (layer) => `layer_${layer}/ae_normalized.pt`;
export const hubSae = (hub, layer) => `${hub}/${SAE_REPO}/resolve/main/${hubSaeFile(layer)}`;

const CACHE = 'plmscope-weights-v1';

/** The bytes at `url`, from the Cache API when a previous visit stored them, else fetched as
 *  `fetchChecked` allows (`name`, `sources`) and read within `cap` bytes. `onProgress(loaded,
 *  total, fromCache)` sees `loaded` grow to `total`. */
export async function fetchCached(url, { name, cap, sources, onProgress = () => {} }) {
  const cache = 'caches' in self ? await caches.open(CACHE).catch(() => null) : null;
  let response = cache ? await cache.match(url) : undefined;
  const fromCache = Boolean(response);
  response ??= await fetchChecked(url, { name, sources });
  const bytes = await readCapped(response.clone(), { name, cap, onProgress: (loaded, total) => onProgress(loaded, total, fromCache) });
  if (cache && !fromCache) await cache.put(url, response).catch(() => {});
  return bytes;
}
