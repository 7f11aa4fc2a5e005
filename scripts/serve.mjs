#!/usr/bin/env node
// A small static server for www/ (the demo, the end-to-end tests and the web benchmark):
// correct MIME types (application/wasm), cross-origin isolation headers (COOP/COEP, so a
// threaded engine can use SharedArrayBuffer), validators for the worker's cache check.
//
//   node scripts/serve.mjs [--root www] [--port 8080] [--host 127.0.0.1] [--no-isolation] [--no-range] [--no-csp]
// Sends DEMO_CSP with every response unless --no-csp.
// Prints "serving <root> at <url>" once listening; --port 0 picks a free port.

import { createReadStream, promises as fs } from 'node:fs';
import { createServer } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
  '.tsi': 'application/octet-stream',
  '.tsp': 'application/octet-stream',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.webp': 'image/webp',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json',
  '.ts': 'text/plain; charset=utf-8',
};

/** The policy the demo server sends with every response (docs/embedding.md §3, same-origin
 *  widget, plus `blob:` workers for threads and inline styles for the viewer and score
 *  bars); the end-to-end tests run every page under it. */
export const DEMO_CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; "
  + "connect-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'";

/** `mounts`: extra folders under URL prefixes, e.g. { '/bench/': 'bench/web' }; `headers`:
 *  added to every response (e.g. a Content-Security-Policy); `isolated: false` leaves out
 *  COOP/COEP, as most hosts do (the engine then runs on one thread); `ranges: false`
 *  answers Range requests with the whole file (200), as some hosts do. */
export function serve({ root, port = 8080, host = '127.0.0.1', mounts = {}, headers: extra = {}, isolated = true, ranges = true }) {
  const roots = Object.entries(mounts)
    .map(([prefix, dir]) => [prefix, path.resolve(dir)])
    .concat([['/', path.resolve(root)]]);
  const server = createServer(async (req, res) => {
    const headers = {
      ...(isolated && { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' }),
      // Public static assets, as a CDN serves them: a widget page on another origin may
      // load the scripts, the wasm, the model and the index (CORS), also under COEP.
      'Cross-Origin-Resource-Policy': 'cross-origin',
      'Access-Control-Allow-Origin': '*',
      'X-Content-Type-Options': 'nosniff',
      'Cache-Control': 'no-cache',
      ...extra,
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { ...headers, Allow: 'GET, HEAD' }).end();
      return;
    }
    let file;
    try {
      const pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
      const [prefix, base] = roots.find(([p]) => pathname.startsWith(p));
      file = path.join(base, pathname.slice(prefix.length - 1));
      if (file !== base && !file.startsWith(base + path.sep)) throw new Error('outside root');
      let stat = await fs.stat(file);
      if (stat.isDirectory()) {
        file = path.join(file, 'index.html');
        stat = await fs.stat(file);
      }
      const etag = `"${stat.size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"`;
      Object.assign(headers, {
        'Content-Type': MIME[path.extname(file).toLowerCase()] ?? 'application/octet-stream',
        'Content-Length': stat.size,
        'Last-Modified': stat.mtime.toUTCString(),
        ETag: etag,
      });
      if (req.headers['if-none-match'] === etag) {
        res.writeHead(304, headers).end();
        return;
      }
      if (ranges) headers['Accept-Ranges'] = 'bytes';
      const range = ranges && req.headers.range ? byteRange(req.headers.range, stat.size) : undefined;
      if (range === null) {
        res.writeHead(416, { ...headers, 'Content-Range': `bytes */${stat.size}`, 'Content-Length': 0 }).end();
        return;
      }
      if (range) {
        Object.assign(headers, { 'Content-Range': `bytes ${range.start}-${range.end}/${stat.size}`, 'Content-Length': range.end - range.start + 1 });
      }
      res.writeHead(range ? 206 : 200, headers);
      if (req.method === 'HEAD') res.end();
      else createReadStream(file, range).pipe(res);
    } catch {
      res.writeHead(404, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' }).end(`not found: ${req.url}\n`);
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const { port: actual } = server.address();
      resolve({ server, url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${actual}/` });
    });
  });
}

/** One `bytes=a-b` / `bytes=a-` / `bytes=-n` range as inclusive `{ start, end }`; null
 *  when it cannot be satisfied, undefined when it is not a single byte range (ignored). */
function byteRange(spec, size) {
  const m = /^bytes=(\d*)-(\d*)$/.exec(spec.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  const start = m[1] === '' ? Math.max(0, size - Number(m[2])) : Number(m[1]);
  const end = m[1] === '' || m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  return start <= end && start < size ? { start, end } : null;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name, fallback) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : fallback;
  };
  const root = arg('root', path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'www'));
  const { url } = await serve({
    root,
    port: Number(arg('port', process.env.PORT ?? 8080)),
    host: arg('host', '127.0.0.1'),
    isolated: !process.argv.includes('--no-isolation'),
    ranges: !process.argv.includes('--no-range'),
    headers: process.argv.includes('--no-csp') ? {} : { 'Content-Security-Policy': DEMO_CSP },
  });
  console.log(`serving ${root} at ${url}`);
}
