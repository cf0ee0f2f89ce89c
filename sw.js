// The page's service worker. It sits beside index.html because a service worker controls only
// pages under its own folder.
// - Isolation: it adds the headers that make the page cross-origin isolated (COOP same-origin,
//   COEP credentialless) to every same-origin response, for hosts that cannot send them (GitHub
//   Pages). Isolation gives the page SharedArrayBuffer, which the CPU build's threads need.
// - Offline: the app shell (the page, its script and style, the worker's modules, and the wasm
//   package that runs, kept when first fetched) is served from a cache named by the build's version
//   (www/dist/shell.js, written by pkg-build/bundle.sh). A new deploy changes that file, so the
//   browser installs this worker again (isolation.js registers it with updateViaCache 'none'):
//   the new version's shell is fetched, the old cache deleted, and open pages are told (app.js).
//   The weights and the seed's data are kept in the Cache API by the page itself.
// Cross-origin requests (the hub, UniProt, AlphaFold DB) pass untouched: they are CORS requests,
// which credentialless COEP allows.
try {
  importScripts('www/dist/shell.js');
} catch {
  // An unbuilt checkout: isolation only.
}
const SHELL = self.PLMSCOPE_SHELL;
const PREFIX = 'plmscope-shell-';
const CACHE = SHELL ? `${PREFIX}${SHELL.version}` : null;
const scope = () => new URL(self.registration.scope);

/** The shell's path for `url` within this worker's scope ('index.html' for the page at any query), or null. */
function shellPath(url, navigate) {
  const root = scope();
  if (url.origin !== root.origin || !url.pathname.startsWith(root.pathname)) return null;
  const path = url.pathname.slice(root.pathname.length);
  if (path === '' || path === 'index.html') return 'index.html';
  if (navigate) return null;
  return path.startsWith('www/') ? path : null;
}

const isolated = (response) => {
  if (response.status === 0) return response;
  const headers = new Headers(response.headers);
  headers.set('Cross-Origin-Opener-Policy', 'same-origin');
  headers.set('Cross-Origin-Embedder-Policy', 'credentialless');
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
};

self.addEventListener('install', (event) => {
  self.skipWaiting();
  if (!CACHE) return;
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    // The wasm packages an earlier version kept are the ones this browser runs: keep their new builds too.
    const kept = [];
    for (const name of await caches.keys()) {
      if (!name.startsWith(PREFIX) || name === CACHE) continue;
      for (const request of await (await caches.open(name)).keys()) {
        const path = shellPath(new URL(request.url), false);
        if (path?.startsWith('www/pkg/')) kept.push(path);
      }
    }
    await Promise.all([...new Set([...SHELL.files, ...kept])].map(async (path) => {
      const response = await fetch(new URL(path, scope()), { cache: 'no-cache' });
      if (response.ok) await cache.put(new URL(path, scope()), isolated(response));
    }));
  })());
});

self.addEventListener('activate', (event) => event.waitUntil((async () => {
  for (const name of await caches.keys()) if (name.startsWith(PREFIX) && name !== CACHE) await caches.delete(name);
  await self.clients.claim();
})()));

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.cache === 'only-if-cached' && request.mode !== 'same-origin') return;
  const path = request.method === 'GET' && CACHE ? shellPath(url, request.mode === 'navigate') : null;
  if (!path) {
    event.respondWith(fetch(request).then(isolated));
    return;
  }
  // Cache first: the shell of this version never changes; the query (?instance= of a restarted
  // engine, the page's state) does not name another file.
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    const key = new URL(path, scope());
    const hit = await cache.match(key, { ignoreSearch: true });
    if (hit) return hit;
    const response = isolated(await fetch(request));
    if (response.ok) await cache.put(key, response.clone()).catch(() => {});
    return response;
  })());
});
