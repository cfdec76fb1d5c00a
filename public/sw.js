// DroPE Studio's service worker: after one visit the studio opens without a network.
//
// Network first. Online, every file comes from the network exactly as it would without
// this worker, so a new deploy is seen at once and never a stale page; a copy is kept
// when its bytes match the build's asset-manifest.json (size and SHA-256, written by
// `cargo xtask build`: the check the model files get against models/manifest.json).
// Offline, a kept copy is served only while it still matches the list kept with it.
// Files the list does not name pass through untouched: the model files live in the
// page's own cache, keyed and checked by their SHA-256 (app/src/weight_cache.rs). A
// build without the list (`trunk serve`) is never kept.

const CACHE = 'drope-studio-site-v1';
const LIST = 'asset-manifest.json';
const scope = new URL(self.registration.scope);
const keyOf = (path) => new URL(path, scope).href;

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

/** The file a request asks for, relative to the scope (a page's query ignored), or null
 *  outside the scope. */
function fileOf(request) {
  const url = new URL(request.url);
  if (url.origin !== scope.origin || !url.pathname.startsWith(scope.pathname)) return null;
  const path = url.pathname.slice(scope.pathname.length);
  return path === '' ? 'index.html' : path;
}

async function sha256(buffer) {
  const digest = await crypto.subtle.digest('SHA-256', buffer);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** Whether `response`'s bytes are the ones `entry` lists. */
async function matches(entry, response) {
  if (!entry) return false;
  const bytes = await response.arrayBuffer();
  return bytes.byteLength === entry.bytes && (await sha256(bytes)) === entry.sha256;
}

// The list of the build last seen: refreshed from the network when a page opens (the
// page's own files then wait for it), else the copy kept with the files.
let list = null;
async function readList(online) {
  const cache = await caches.open(CACHE);
  if (online) {
    try {
      const response = await fetch(keyOf(LIST), { cache: 'no-cache' });
      if (response.ok) {
        const text = await response.clone().text();
        await cache.put(keyOf(LIST), response);
        return JSON.parse(text).files ?? null;
      }
      // Online without a list: a build that is not to be kept.
      return null;
    } catch {
      // Offline: fall through to the kept list.
    }
  }
  const kept = await cache.match(keyOf(LIST));
  return kept ? ((await kept.json()).files ?? null) : null;
}

async function keep(path, response) {
  const files = await list;
  if (!response.ok || !files || !files[path]) return;
  const [check, stored] = [response.clone(), response.clone()];
  if (await matches(files[path], check)) await (await caches.open(CACHE)).put(keyOf(path), stored);
}

async function offline(path, error) {
  const files = await (list ?? (list = readList(false)));
  const kept = await (await caches.open(CACHE)).match(keyOf(path));
  if (kept && files && (await matches(files[path], kept.clone()))) return kept;
  throw error;
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const path = fileOf(request);
  if (path === null || path === LIST) return;
  if (request.mode === 'navigate') list = readList(true);
  event.respondWith((async () => {
    let response;
    try {
      response = await fetch(request);
    } catch (error) {
      return offline(path, error);
    }
    if (!list) list = readList(false);
    event.waitUntil(keep(path, response.clone()).catch(() => {}));
    return response;
  })());
});
