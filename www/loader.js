// Where weights come from, and how they arrive: streamed with progress, within a size cap, kept in
// the Cache API so that a second visit loads from disk.
import { fetchChecked, readCapped } from './hosts.js';

// `hub` is https://huggingface.co, or a mirror with the same paths (the page's ?hub= parameter).
export const HUB = 'https://huggingface.co';

/**
 * The ESM-2 sizes the page offers (`?model=`), with the hub's file sizes and the SAE sets published
 * for each (`?sae=`, the first by default). `bytes` is model.safetensors (f32), which is also what
 * the weights take on the device; `cpuWasm` is the CPU build's wasm memory once the model is in
 * (pkg-build/bench/load.mjs, random weights of the full size, 2026-12-03: BENCHMARKS.md), of the
 * 4 GiB a wasm32 memory can reach. An SAE set's `layers` are the hidden states it reads. Every
 * count the page uses comes from the loaded config and files, never from here.
 */
const INTERPROT_SWEEP = [4, 8, 12, 16, 20, 24, 28, 32, 33];
export const MODELS = {
  '8M': { repo: 'facebook/esm2_t6_8M_UR50D', bytes: 31.4e6, cpuWasm: 44e6, layers: 6, d: 320, saes: [
    { id: 'interplm', repo: 'Elana/InterPLM-esm2-8m', file: (l) => `layer_${l}/ae_normalized.pt`, layers: [1, 2, 3, 4, 5, 6], dSae: 10_240, bytes: 26.3e6 },
  ] },
  '35M': { repo: 'facebook/esm2_t12_35M_UR50D', bytes: 136e6, cpuWasm: 167e6, layers: 12, d: 480, saes: [] },
  '150M': { repo: 'facebook/esm2_t30_150M_UR50D', bytes: 595e6, cpuWasm: 671e6, layers: 30, d: 640, saes: [] },
  '650M': { repo: 'facebook/esm2_t33_650M_UR50D', bytes: 2.61e9, cpuWasm: 2.88e9, layers: 33, d: 1280, saes: [
    { id: 'interplm', repo: 'Elana/InterPLM-esm2-650m', file: (l) => `layer_${l}/ae_normalized.pt`, layers: [1, 9, 18, 24, 30, 33], dSae: 10_240, bytes: 105e6 },
    // k is not in these files. The layer sweep's is 64: InterProt's viewer names their runs
    // `esm2_plm1280_l{N}_sae4096_k64_auxk640` (etowahadams/interprot, viz/src/SAEConfigs.ts).
    { id: 'interprot', repo: 'liambai/InterProt-ESM2-SAEs', file: (l) => `esm2_plm1280_l${l}_sae4096.safetensors`, layers: INTERPROT_SWEEP, dSae: 4096, bytes: 42e6, k: 64 },
    // The 100K-sequence layer-24 SAE: InterProt's inference endpoint builds it with
    // SparseAutoencoder's default k, 128 (interprot/endpoints/sae_inference/handler.py, sae_model.py).
    { id: 'interprot-100k', repo: 'liambai/InterProt-ESM2-SAEs', file: () => 'esm2_plm1280_l24_sae4096_100k.safetensors', layers: [24], dSae: 4096, bytes: 42e6, k: 128 },
  ] },
};
/** The SAE set `id` of `model`, else its first (null where none is published). */
export const saeSet = (model, id) => MODELS[model].saes.find((s) => s.id === id) ?? MODELS[model].saes[0] ?? null;
export const DEFAULT_MODEL = '8M';

export const hubFile = (hub, repo, file) => `${hub}/${repo}/resolve/main/${file}`;

const CACHE = 'plmscope-weights-v1';

/**
 * The response for `url`, from the Cache API when a previous visit stored it, else fetched as
 * `fetchChecked` allows (`name`, `sources`) and stored as its body streams past (the cache's copy
 * is written to disk, never held here). Returns `{response, fromCache}`.
 */
export async function openCached(url, { name, sources }) {
  const cache = 'caches' in self ? await caches.open(CACHE).catch(() => null) : null;
  const cached = cache ? await cache.match(url) : undefined;
  if (cached) return { response: cached, fromCache: true };
  const response = await fetchChecked(url, { name, sources });
  if (cache) cache.put(url, response.clone()).catch(() => {});
  return { response, fromCache: false };
}

/** Drops `url` from the cache: a file the engine refused is not to be served again. */
export async function forget(url) {
  if ('caches' in self) await caches.open(CACHE).then((c) => c.delete(url)).catch(() => {});
}

/** The bytes at `url`, read whole within `cap` (see `readCapped`), kept in the cache once whole.
 *  `onProgress(loaded, total, fromCache)` sees `loaded` grow to `total`. */
export async function fetchCached(url, { name, cap, sources, onProgress = () => {} }) {
  const cache = 'caches' in self ? await caches.open(CACHE).catch(() => null) : null;
  let response = cache ? await cache.match(url) : undefined;
  const fromCache = Boolean(response);
  response ??= await fetchChecked(url, { name, sources });
  const bytes = await readCapped(response.clone(), { name, cap, onProgress: (loaded, total) => onProgress(loaded, total, fromCache) });
  if (cache && !fromCache) await cache.put(url, response).catch(() => {});
  return bytes;
}
