#!/usr/bin/env node
// Assembles the widget's npm-style package from the built www/ (scripts/build-web.sh calls
// this last):
//   target/package/tessera-widget/
//     package.json             packaging/widget/package.json, version = Cargo.toml's
//     tessera-search.js/.d.ts  the element (declarations: packaging/widget/)
//     client.js/.d.ts          the promise API over the worker
//     basket.js/.d.ts          the basket: storage and CSV/GeoJSON export
//     deepzoom.js/.d.ts        regions read from an OpenSeadragon viewer's DZI/IIIF tiles
//     engine-worker.js         the worker that owns the engine
//     pkg/                     the wasm-bindgen output (tessera.js, .wasm, .d.ts)
//     pkg-threads/             the same with threads (shared memory; runs when isolated)
//     pkg-relaxed/, pkg-relaxed-threads/  both with relaxed SIMD (run where the browser has it)
//     model/                   the ONNX model and its manifest
//     README.md                docs/embedding.md
// A portal copies the folder behind its CDN or runs `npm publish` in it. Fails when a file
// the package names is missing; prints every file's size (raw and gzip -9).
//
//   node scripts/package-widget.mjs [--out DIR]

import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const PACKAGE_DIR = path.join(REPO, 'target/package/tessera-widget');

/** Source of every file of the package, relative to the repository; a name ending in `/`
 *  is a folder copied whole (wasm-bindgen names its snippet folders by a hash). */
const SOURCES = {
  'tessera-search.js': 'www/tessera-search.js',
  'tessera-search.d.ts': 'packaging/widget/tessera-search.d.ts',
  'client.js': 'www/client.js',
  'client.d.ts': 'packaging/widget/client.d.ts',
  'basket.js': 'www/basket.js',
  'basket.d.ts': 'packaging/widget/basket.d.ts',
  'deepzoom.js': 'www/deepzoom.js',
  'deepzoom.d.ts': 'packaging/widget/deepzoom.d.ts',
  'engine-worker.js': 'www/engine-worker.js',
  'pkg/tessera.js': 'www/pkg/tessera.js',
  'pkg/tessera.d.ts': 'www/pkg/tessera.d.ts',
  'pkg/tessera_bg.wasm': 'www/pkg/tessera_bg.wasm',
  'pkg/tessera_bg.wasm.d.ts': 'www/pkg/tessera_bg.wasm.d.ts',
  'pkg-threads/': 'www/pkg-threads',
  'pkg-relaxed/': 'www/pkg-relaxed',
  'pkg-relaxed-threads/': 'www/pkg-relaxed-threads',
  'model/vit-s14-int8.onnx': 'www/model/vit-s14-int8.onnx',
  'model/vit-s14-int8.json': 'www/model/vit-s14-int8.json',
  'README.md': 'docs/embedding.md',
};

export function cargoVersion() {
  const toml = readFileSync(path.join(REPO, 'Cargo.toml'), 'utf8');
  const section = toml.split(/^\[/m).find((s) => s.startsWith('package]'));
  const version = section?.match(/^version\s*=\s*"([^"]+)"/m)?.[1];
  if (!version) throw new Error('Cargo.toml: no [package] version');
  return version;
}

/** Every string target of `exports` (nested conditions included). */
export function exportTargets(exportsField) {
  return typeof exportsField === 'string' ? [exportsField] : Object.values(exportsField).flatMap(exportTargets);
}

function listFiles(dir, prefix = '') {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(path.join(dir, e.name), `${prefix}${e.name}/`) : [`${prefix}${e.name}`],
  );
}

export function buildPackage(out = PACKAGE_DIR) {
  const template = JSON.parse(readFileSync(path.join(REPO, 'packaging/widget/package.json'), 'utf8'));
  const manifest = { ...template, version: cargoVersion() };
  const named = new Set([...manifest.files, ...exportTargets(manifest.exports).map((t) => t.replace(/^\.\//, ''))]);
  named.delete('package.json');
  for (const file of named) {
    const inFolder = Object.keys(SOURCES).some((name) => name.endsWith('/') && file.startsWith(name));
    if (!SOURCES[file] && !inFolder) throw new Error(`packaging/widget/package.json names ${file}, which scripts/package-widget.mjs does not copy`);
  }
  rmSync(out, { recursive: true, force: true });
  for (const [file, source] of Object.entries(SOURCES)) {
    const from = path.join(REPO, source);
    if (!existsSync(from)) throw new Error(`${source} is missing: run scripts/build-web.sh`);
    const copies = file.endsWith('/') ? listFiles(from).map((f) => [path.join(from, f), `${file}${f}`]) : [[from, file]];
    for (const [src, dst] of copies) {
      mkdirSync(path.dirname(path.join(out, dst)), { recursive: true });
      copyFileSync(src, path.join(out, dst));
    }
  }
  writeFileSync(path.join(out, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return { out, manifest };
}

function sizes(dir) {
  return listFiles(dir)
    .sort()
    .map((file) => {
      const bytes = readFileSync(path.join(dir, file));
      return { file, raw: statSync(path.join(dir, file)).size, gzip: gzipSync(bytes, { level: 9 }).length };
    });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--out');
  const { out, manifest } = buildPackage(i > 0 ? path.resolve(process.argv[i + 1]) : PACKAGE_DIR);
  const rows = sizes(out);
  const mb = (n) => `${(n / 1048576).toFixed(2)} MB`;
  console.log(`${manifest.name}@${manifest.version} → ${path.relative(process.cwd(), out) || '.'}`);
  console.log(`${'file'.padEnd(28)} ${'bytes'.padStart(10)} ${'gzip -9'.padStart(10)}`);
  for (const { file, raw, gzip } of rows) console.log(`${file.padEnd(28)} ${String(raw).padStart(10)} ${String(gzip).padStart(10)}`);
  const raw = rows.reduce((s, r) => s + r.raw, 0);
  const gzip = rows.reduce((s, r) => s + r.gzip, 0);
  console.log(`${'total'.padEnd(28)} ${String(raw).padStart(10)} ${String(gzip).padStart(10)}  (${mb(raw)}, ${mb(gzip)} gzipped)`);
}
