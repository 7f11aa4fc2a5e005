// Offline second visits: keeps the page's own files (HTML, JS, CSS, viewer, slide image)
// in a cache, network first, so edits show at once online and the last copy serves
// offline. The model, the index and the .wasm are cached (and verified) by the engine
// worker itself, so they pass through here.
const SHELL_CACHE = 'tessera-shell-v1';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (event) => {
  const { request } = event;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin) return;
  // Range requests (a partitioned index's partitions) too: the Cache API stores no 206s.
  if (/\.(onnx|tsi|tsp|wasm)$/.test(url.pathname) || request.headers.has('range')) return;
  event.respondWith(networkFirst(event));
});

async function networkFirst(event) {
  const { request } = event;
  try {
    const response = await fetch(request);
    // The page gets the response at once; the copy is stored while it reads it (waiting
    // for the write first added its time to every file the page fetched).
    if (response.ok) {
      const copy = response.clone();
      event.waitUntil(caches.open(SHELL_CACHE).then((cache) => cache.put(request, copy)));
    }
    return response;
  } catch (error) {
    const cached = await (await caches.open(SHELL_CACHE)).match(request, { ignoreSearch: true });
    if (cached) return cached;
    throw error;
  }
}
