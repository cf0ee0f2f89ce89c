// Cross-origin isolation for the CPU build's threads, on hosts that cannot send COOP/COEP headers,
// and the offline app shell: sw.js adds the headers, which takes effect from the next load, so the first visit reloads once.
// `?threads=1` skips all of it (one thread, no service worker).

const RELOADED = 'plmscope-isolation-reload';
const ACTIVATION_MS = 5000;

// updateViaCache 'none': a new deploy's www/dist/shell.js (sw.js imports it) is seen at once.
const register = () => navigator.serviceWorker.register(new URL('sw.js', document.baseURI), { updateViaCache: 'none' });

/** Resolves true when the page may go on (and sets `data-isolation` on <html> to say how),
 * false when it is reloading into isolation. */
export async function isolate(params) {
  const goOn = () => {
    document.documentElement.dataset.isolation = self.crossOriginIsolated ? 'isolated' : 'not isolated';
    return true;
  };
  if (params.get('threads') === '1' || !('serviceWorker' in navigator)) return goOn();
  // Isolated by the host's own headers: sw.js is still wanted, for offline visits.
  if (self.crossOriginIsolated) { register().catch(() => {}); return goOn(); }
  // One try per tab: if the reload did not isolate the page (a browser without credentialless
  // COEP, say), the page runs on one thread rather than reloading again.
  if (sessionStorage.getItem(RELOADED)) return goOn();
  try {
    await register();
    // A browser that blocks service workers may never activate one: then go on, unisolated.
    const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('no service worker')), ACTIVATION_MS));
    await Promise.race([navigator.serviceWorker.ready, timeout]);
  } catch {
    return goOn();
  }
  sessionStorage.setItem(RELOADED, '1');
  location.reload();
  return false;
}
