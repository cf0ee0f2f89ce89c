// The seed explorer's published data (its circuit graphs and top examples), read where it is
// published, at run time: its repository has no license, so none of it is copied into this one.
// Its GitHub Pages site first, then the same files on raw.githubusercontent.com (both send
// Access-Control-Allow-Origin: *), then the copy a previous visit kept in the Cache API, then a
// local copy where the demo serves one (pkg-build/serve.sh copies ../shared's). `?graphs=URL`
// replaces all of these with one folder.
import { CAPS, fetchCapped } from './hosts.js';

export const SEED_HOSTS = [
  'https://deepanshumody.github.io/PLM_interpretability/data/',
  'https://raw.githubusercontent.com/deepanshumody/PLM_interpretability/main/docs/data/',
];
const LOCAL = new URL('../explorer-data/', import.meta.url).href;
const CACHE = 'plmscope-seed-v1';

const hostOf = (base) => new URL(base).host;

/**
 * The bytes of the seed's `file`, and where they came from in words: from `link` alone when the
 * page was given one, else from the first source that answers. Throws naming every source tried
 * and why each failed.
 */
export async function fetchSeed(file, link) {
  if (link) return { bytes: await fetchCapped(new URL(file, link), { name: file, cap: CAPS.json }), from: link };
  const tried = [];
  const cache = 'caches' in self ? await caches.open(CACHE).catch(() => null) : null;
  for (const base of SEED_HOSTS) {
    const url = new URL(file, base);
    try {
      const bytes = await fetchCapped(url, { name: file, cap: CAPS.json });
      await cache?.put(url, new Response(bytes)).catch(() => {});
      return { bytes, from: `${hostOf(base)} (the seed explorer's published data)` };
    } catch (e) {
      tried.push(`${hostOf(base)}: ${e.message}`);
    }
  }
  for (const base of SEED_HOSTS) {
    const kept = await cache?.match(new URL(file, base).href);
    if (kept) return { bytes: new Uint8Array(await kept.arrayBuffer()), from: `this browser's copy of ${hostOf(base)}'s, kept from an earlier visit` };
  }
  tried.push('no copy kept from an earlier visit');
  try {
    return { bytes: await fetchCapped(new URL(file, LOCAL), { name: file, cap: CAPS.json }), from: 'the copy this site serves' };
  } catch (e) {
    tried.push(`this site: ${e.message}`);
  }
  throw new Error(`no source answered (offline?): ${tried.join('; ')}`);
}
