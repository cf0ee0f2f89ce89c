// Adds the headers that make the page cross-origin isolated (COOP same-origin, COEP credentialless)
// to every same-origin response, for hosts that cannot send them (GitHub Pages). Isolation gives
// the page SharedArrayBuffer, which the CPU build's threads need. It sits beside index.html because
// a service worker controls only pages under its own folder. Cross-origin requests (the Hugging Face
// hub, UniProt) pass untouched: they are CORS requests, which credentialless COEP allows.
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (new URL(request.url).origin !== self.location.origin) return;
  if (request.cache === 'only-if-cached' && request.mode !== 'same-origin') return;
  event.respondWith(fetch(request).then((response) => {
    if (response.status === 0) return response;
    const headers = new Headers(response.headers);
    headers.set('Cross-Origin-Opener-Policy', 'same-origin');
    headers.set('Cross-Origin-Embedder-Policy', 'credentialless');
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
  }));
});
