// The widget's npm-style package (target/package/tessera-widget/, built by
// scripts/build-web.sh through scripts/package-widget.mjs):
//   - complete: every file that package.json's `exports` and `files` name, npm packs them,
//     the version is Cargo.toml's;
//   - honest declarations: the hand-written .d.ts name exactly what the modules export, the
//     classes' methods, the element's attributes and events, every error kind the code can
//     produce; a portal's TypeScript (package-consumer.ts) type-checks with tsc against it;
//   - works from another origin: a page under a strict CSP (the one docs/embedding.md gives)
//     includes <tessera-search> from the package folder served by a second server, loads
//     the engine and gets hits, with no CSP violation and no request to a third origin; the
//     shipped OpenSeadragon portal (embed-example) on another origin than the widget, clicked.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import ts from 'typescript';
import { CHROMIUM, CHROMIUM_ARGS, REPO, newPage, screenshot } from './harness.mjs';
import { serve } from '../../scripts/serve.mjs';
import { PACKAGE_DIR, cargoVersion, exportTargets } from '../../scripts/package-widget.mjs';

const LOAD_TIMEOUT = 180_000;
const pkgFile = (f) => path.join(PACKAGE_DIR, f);
const manifest = JSON.parse(readFileSync(pkgFile('package.json'), 'utf8'));

describe('widget package', () => {
  test('has every file it names, packs them, and carries the crate version', () => {
    assert.equal(manifest.version, cargoVersion());
    assert.equal(manifest.type, 'module');
    const targets = exportTargets(manifest.exports).map((t) => t.replace(/^\.\//, ''));
    for (const file of new Set([...targets, ...manifest.files])) assert.ok(existsSync(pkgFile(file)), `${file} is in the package`);
    const [packed] = JSON.parse(
      execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: PACKAGE_DIR, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }),
    );
    const names = new Set(packed.files.map((f) => f.path));
    for (const file of targets) assert.ok(names.has(file), `npm pack includes ${file}`);
    console.log(`# ${packed.id}: ${packed.entryCount} files, ${(packed.unpackedSize / 1048576).toFixed(2)} MB unpacked, ${(packed.size / 1048576).toFixed(2)} MB packed`);
  });

  test('the declarations name what the modules export, their methods, attributes, events and error kinds', async () => {
    const decl = {
      client: declarations(pkgFile('client.d.ts')),
      element: declarations(pkgFile('tessera-search.d.ts')),
      basket: declarations(pkgFile('basket.d.ts')),
      deepzoom: declarations(pkgFile('deepzoom.d.ts')),
    };
    const { client, element, basket, deepzoom } = await importInNode();

    assert.deepEqual(Object.keys(client).sort(), decl.client.values.sort(), 'client.js exports = client.d.ts values');
    assert.deepEqual(Object.keys(element).sort(), decl.element.values.sort(), 'tessera-search.js exports = tessera-search.d.ts values');
    assert.deepEqual(Object.keys(basket).sort(), decl.basket.values.sort(), 'basket.js exports = basket.d.ts values');
    assert.deepEqual(Object.keys(deepzoom).sort(), decl.deepzoom.values.sort(), 'deepzoom.js exports = deepzoom.d.ts values');

    // Methods only: getters (Basket's items, size) are declared as readonly properties.
    const methods = (cls) => Object.getOwnPropertyNames(cls.prototype)
      .filter((n) => n !== 'constructor' && typeof Object.getOwnPropertyDescriptor(cls.prototype, n).value === 'function').sort();
    assert.deepEqual(methods(client.TesseraClient), decl.client.classes.TesseraClient.methods.sort(), 'TesseraClient methods');
    assert.deepEqual(methods(element.TesseraSearch), decl.element.classes.TesseraSearch.methods.sort(), 'TesseraSearch methods');
    assert.deepEqual(methods(basket.Basket), decl.basket.classes.Basket.methods.sort(), 'Basket methods');
    const instance = new client.TesseraClient();
    for (const p of decl.client.classes.TesseraClient.properties) assert.ok(p in instance, `TesseraClient has ${p}`);
    const el = new element.TesseraSearch();
    for (const p of decl.element.classes.TesseraSearch.properties) assert.ok(p in el, `TesseraSearch has ${p}`);

    // Attributes: the ones the element reads = TesseraSearchAttributes; observed ones among them.
    const source = readFileSync(pkgFile('tessera-search.js'), 'utf8');
    const read = [...new Set([...source.matchAll(/getAttribute\('([\w-]+)'\)/g)].map((m) => m[1]))].sort();
    assert.deepEqual(read, decl.element.interfaces.TesseraSearchAttributes.sort(), 'attributes read = TesseraSearchAttributes');
    for (const a of element.TesseraSearch.observedAttributes) assert.ok(read.includes(a), `observed attribute ${a} is declared`);

    // Events: every one the element dispatches, and no other.
    const emitted = [...new Set([...source.matchAll(/#emit\('([\w-]+)'/g)].map((m) => m[1]))].sort();
    assert.deepEqual(emitted, decl.element.interfaces.TesseraSearchEventMap.sort(), 'events = TesseraSearchEventMap');

    // Error kinds: the engine's (src/error.rs) and every literal kind in the JS = the union.
    const rust = [...readFileSync(path.join(REPO, 'src/error.rs'), 'utf8').matchAll(/ErrorKind::\w+ => "(\w+)"/g)].map((m) => m[1]);
    assert.ok(rust.length >= 6, 'read the kinds of src/error.rs');
    const js = ['client.js', 'engine-worker.js', 'tessera-search.js', 'basket.js', 'deepzoom.js'].flatMap((f) => {
      const text = readFileSync(pkgFile(f), 'utf8');
      return [...text.matchAll(/(?:TesseraError|WorkerError)\(\s*'(\w+)'|kind: '(\w+)'|kind \?\? '(\w+)'/g)].map((m) => m[1] ?? m[2] ?? m[3]);
    });
    const produced = [...new Set([...rust, ...js])].sort();
    assert.deepEqual(produced, decl.client.unions.TesseraErrorKind.sort(), 'error kinds = TesseraErrorKind');
  });

  test('a TypeScript portal type-checks against the package (tsc --strict)', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-tsc-'));
    mkdirSync(path.join(dir, 'node_modules/@tessera'), { recursive: true });
    symlinkSync(PACKAGE_DIR, path.join(dir, 'node_modules', ...manifest.name.split('/')), 'dir');
    copyFileSync(path.join(REPO, 'tests/e2e/package-consumer.ts'), path.join(dir, 'portal.ts'));
    const compilerOptions = {
      strict: true, noEmit: true, target: 'es2022', module: 'esnext', moduleResolution: 'bundler',
      lib: ['es2022', 'esnext.disposable', 'dom', 'dom.iterable'], types: [], skipLibCheck: false, noUnusedLocals: false,
    };
    writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: ['portal.ts'] }));
    const tsc = path.join(REPO, 'node_modules/typescript/bin/tsc');
    let listed;
    try {
      listed = execFileSync(process.execPath, [tsc, '-p', dir, '--listFiles'], { encoding: 'utf8' });
    } catch (e) {
      assert.fail(`tsc found errors:\n${e.stdout}${e.stderr}`);
    }
    for (const file of ['tessera-search.d.ts', 'client.d.ts', 'pkg/tessera.d.ts']) {
      assert.ok(listed.includes(pkgFile(file)), `tsc read ${file} through the package's exports`);
    }
  });

  describe('in a browser, under a strict CSP', () => {
    let browser;
    const closing = [];
    before(async () => {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
    });
    after(async () => {
      await browser?.close();
      await Promise.all(closing.map((server) => new Promise((resolve) => server.close(resolve))));
    });

    test('from another origin: the package folder on a CDN, the portal on its own server', async () => {
      // The CDN: the package folder as published, plus an index and a tile (the demo's).
      const cdn = await serve({ root: PACKAGE_DIR, port: 0, mounts: { '/demo/': path.join(REPO, 'www/demo') } });
      closing.push(cdn.server);
      const csp = portalCsp(new URL(cdn.url).origin);
      const portal = await serve({ root: portalDir(cdn.url), port: 0, headers: { 'Content-Security-Policy': csp } });
      closing.push(portal.server);
      // Cross-origin isolated (serve's default), CSP with `worker-src blob:`: threads run.
      const info = await searchFromPortal(browser, portal.url, cdn.url, '21-package-cross-origin');
      assert.match(info.runtime.build, /^simd(\+relaxed)?\+threads$/, JSON.stringify(info.runtime));
    });

    test('an OpenSeadragon portal on another origin (the shipped embed-example): a click on the slide gets hits', async () => {
      const cdn = await serve({ root: PACKAGE_DIR, port: 0, mounts: { '/demo/': path.join(REPO, 'www/demo') } });
      closing.push(cdn.server);
      // The portal: embed-example.html/.js as shipped, its viewer and the slide's pyramid on
      // its own origin; the widget, model, index and deep-zoom helper from the CDN.
      const dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-osd-portal-'));
      const rewrite = (file, pairs) => {
        let text = readFileSync(path.join(REPO, 'www', file), 'utf8');
        for (const [from, to] of pairs) {
          assert.ok(text.includes(from), `${file} still has ${from}`);
          text = text.replace(from, to);
        }
        writeFileSync(path.join(dir, file), text);
      };
      rewrite('embed-example.html', [
        ['src="tessera-search.js"', `src="${cdn.url}tessera-search.js"`],
        ['model="model/', `model="${cdn.url}model/`],
        ['index="demo/', `index="${cdn.url}demo/`],
      ]);
      rewrite('embed-example.js', [["from './deepzoom.js'", `from '${cdn.url}deepzoom.js'`]]);
      copyFileSync(path.join(REPO, 'www/favicon.svg'), path.join(dir, 'favicon.svg'));
      const portal = await serve({
        root: dir, port: 0, headers: { 'Content-Security-Policy': portalCsp(new URL(cdn.url).origin) },
        mounts: { '/vendor/': path.join(REPO, 'www/vendor'), '/demo/': path.join(REPO, 'www/demo') },
      });
      closing.push(portal.server);
      const { page, context, requests } = await watchedPage(browser, { width: 1280, height: 860 });
      try {
        await page.goto(`${portal.url}embed-example.html`);
        await page.waitForFunction(() => document.querySelector('#log').textContent.includes('ready:'), null, { timeout: LOAD_TIMEOUT });
        await page.waitForFunction(() => window.portal.viewer.world.getItemCount() > 0 && window.portal.viewer.world.getItemAt(0).getFullyLoaded());
        const hits = page.evaluate(() => new Promise((resolve) => window.portal.widget.addEventListener('tessera-results', (e) => resolve(e.detail.hits), { once: true })));
        const box = await page.locator('#viewer').boundingBox();
        await page.mouse.click(box.x + box.width * 0.5, box.y + box.height * 0.4);
        const got = await hits;
        assert.equal(got.length, 9);
        assert.ok(got.every((h) => h.score > 0 && h.metadata.group), 'hits carry scores and metadata');
        assert.match(await page.textContent('#log'), /region: x \d+ y \d+ \(224 px, full resolution\)/);
        await screenshot(page, '23-package-osd-portal-cross-origin');
        await assertWellBehaved(page, requests, [cdn.url, portal.url]);
        assert.ok(requests.some((u) => u.startsWith(`${portal.url}demo/slide_files/`)), 'the viewer reads the portal\'s pyramid');
      } finally {
        await context.close();
      }
    });

    /** The portal with the package under /tessera/ of its own origin. */
    async function sameOriginPortal(isolated) {
      const portal = await serve({
        root: portalDir('/tessera/', '/demo/'), port: 0, isolated, headers: { 'Content-Security-Policy': portalCsp(null) },
        mounts: { '/tessera/': PACKAGE_DIR, '/demo/': path.join(REPO, 'www/demo') },
      });
      closing.push(portal.server);
      return portal.url;
    }

    test('from the same origin: the package folder under /tessera/ of the portal', async () => {
      // As most portals are served: no COOP/COEP, so one thread.
      const url = await sameOriginPortal(false);
      const info = await searchFromPortal(browser, url, `${url}tessera/`, '20-package-same-origin', `${url}demo/`);
      assert.match(info.runtime.build, /^simd(\+relaxed)?$/);
      assert.match(info.runtime.fallback, /not cross-origin isolated/);
    });

    test('isolated, but a CSP without worker-src blob:: one thread, saying why, no hang', async () => {
      const url = await sameOriginPortal(true);
      // The worker's probe for blob: workers is refused inside the worker: the console may
      // say so, the page sees no violation.
      const info = await searchFromPortal(browser, url, `${url}tessera/`, '22-package-no-blob-workers', `${url}demo/`, { cspReports: true });
      assert.match(info.runtime.build, /^simd(\+relaxed)?$/);
      assert.match(info.runtime.fallback, /worker-src blob:/);
    });
  });
});

/** The CSP docs/embedding.md gives a portal, with the widget on the `cdn` origin (or, when
 *  null, on the portal's own). Served as a header on every response, so the same-origin
 *  worker runs under it too. */
function portalCsp(cdn) {
  const other = cdn ? ` ${cdn}` : '';
  return [
    "default-src 'self'",
    `script-src 'self'${other} 'wasm-unsafe-eval'`,
    `worker-src 'self'${cdn ? ' blob:' : ''}${other}`,
    `connect-src 'self'${other}`,
    "img-src 'self' blob: data:",
    "style-src 'self' 'unsafe-inline'",
  ].join('; ');
}

/** A folder with the portal page: the widget from `base` (a URL or a path), the index
 *  from `demo` (default: beside the widget, as the CDN serves it). */
function portalDir(base, demo = `${base}demo/`) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-portal-'));
  writeFileSync(
    path.join(dir, 'portal.html'),
    `<!doctype html><meta charset="utf-8"><title>portal</title><link rel="icon" href="data:,">
    <script type="module" src="${base}tessera-search.js"></script>
    <tessera-search model="${base}model/vit-s14-int8.onnx" index="${demo}index.tsi" k="5" unique-by="group"></tessera-search>`,
  );
  return dir;
}

/** A page that records its requests and CSP violations (`window.cspViolations`). */
async function watchedPage(browser, size) {
  const { page, context } = await newPage(browser, size);
  const requests = [];
  context.on('request', (r) => requests.push(r.url()));
  await page.addInitScript(() => {
    window.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  return { page, context, requests };
}

/** No CSP violation, no console error (with `cspReports`: none but CSP reports), and every
 *  request to the origins of `urls` (the portal and the CDN) only. */
async function assertWellBehaved(page, requests, urls, { cspReports = false } = {}) {
  assert.deepEqual(await page.evaluate(() => window.cspViolations), [], 'no CSP violation');
  assert.deepEqual(page.consoleErrors.filter((e) => !(cspReports && /Content Security Policy/.test(e))), []);
  const origins = new Set(requests.filter((u) => /^https?:/.test(u)).map((u) => new URL(u).origin));
  assert.deepEqual([...origins].sort(), [...new Set(urls.map((u) => new URL(u).origin))].sort(), 'requests go to the portal and the CDN only');
}

/** Opens the portal, waits for the engine, searches with the demo slide image and checks
 *  the hits, CSP violations (none), console errors (none; with `cspReports`, none but CSP
 *  reports) and where requests went. Returns the engine info. */
async function searchFromPortal(browser, portal, cdn, shot, demo = `${cdn}demo/`, { cspReports = false } = {}) {
  const { page, context, requests } = await watchedPage(browser, { width: 900, height: 700 });
  try {
    await page.goto(`${portal}portal.html`);
    const info = await page.evaluate(
      () => customElements.whenDefined('tessera-search').then(() => document.querySelector('tessera-search').ready),
    );
    assert.ok(info.index.tiles > 1000, 'the package loaded the engine');
    assert.equal(info.model.id, JSON.parse(readFileSync(pkgFile('model/vit-s14-int8.json'), 'utf8')).id);
    const hits = await page.evaluate(async (tile) => {
      const el = document.querySelector('tessera-search');
      const blob = await (await fetch(tile)).blob();
      const done = new Promise((resolve) => el.addEventListener('tessera-results', (e) => resolve(e.detail.hits), { once: true }));
      el.search(blob);
      const got = await done;
      // The thumbnails render (img-src blob:).
      await Promise.all([...el.shadowRoot.querySelectorAll('.hit img')].map((img) => img.decode()));
      return got.map(({ id, score, metadata, thumbnail }) => ({ id, score, metadata, thumbnail: thumbnail instanceof Blob }));
    }, `${demo}slide.jpg`);
    assert.equal(hits.length, 5);
    assert.ok(hits.every((h) => h.score > 0 && h.metadata.group && h.thumbnail), 'hits carry scores, metadata and thumbnails');
    assert.equal(new Set(hits.map((h) => h.metadata.group)).size, 5, 'unique-by="group"');
    // A bad attribute value re-runs the search and is reported, not an unhandled rejection.
    const bad = await page.evaluate(() => new Promise((resolve) => {
      const el = document.querySelector('tessera-search');
      el.addEventListener('tessera-error', (e) => resolve(e.detail), { once: true });
      setTimeout(() => resolve({ kind: 'none', message: 'no tessera-error within 30 s' }), 30_000);
      el.setAttribute('k', 'many');
    }));
    assert.equal(bad.kind, 'search', bad.message);
    await page.evaluate(() => document.querySelector('tessera-search').setAttribute('k', '5'));
    await page.waitForFunction(() => document.querySelector('tessera-search').shadowRoot.querySelectorAll('.hit').length === 5);
    await screenshot(page, shot);
    await assertWellBehaved(page, requests, [cdn, portal], { cspReports });
    assert.ok(requests.some((u) => u.endsWith('/model/vit-s14-int8.onnx')), 'the worker\'s downloads are seen');
    return info;
  } finally {
    await context.close();
  }
}

/** The package's modules imported in Node, with just enough of a browser for their top
 *  level and constructors (no worker runs). */
async function importInNode() {
  globalThis.HTMLElement ??= class {
    attachShadow() {
      this.shadowRoot = { innerHTML: '', querySelector: () => null };
      return this.shadowRoot;
    }
  };
  globalThis.customElements ??= { get: () => undefined, define: () => {} };
  globalThis.document ??= { baseURI: 'https://portal.example/' };
  globalThis.location ??= new URL('https://portal.example/');
  globalThis.Worker ??= class {
    postMessage() {}
    terminate() {}
  };
  const client = await import(pathToFileURL(pkgFile('client.js')).href);
  const element = await import(pathToFileURL(pkgFile('tessera-search.js')).href);
  const basket = await import(pathToFileURL(pkgFile('basket.js')).href);
  const deepzoom = await import(pathToFileURL(pkgFile('deepzoom.js')).href);
  return { client, element, basket, deepzoom };
}

/** What a .d.ts declares, read with the TypeScript parser: exported values (classes,
 *  functions, consts), each class's methods and properties, each interface's member
 *  names, each type alias's string-literal union members. */
function declarations(file) {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const out = { values: [], classes: {}, interfaces: {}, unions: {} };
  const exported = (n) => n.modifiers?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
  const name = (m) => m.name && (ts.isIdentifier(m.name) || ts.isStringLiteral(m.name)) ? m.name.text : null;
  for (const node of sf.statements) {
    if (ts.isClassDeclaration(node) && exported(node)) {
      out.values.push(node.name.text);
      const cls = (out.classes[node.name.text] ??= { methods: [], properties: [] });
      for (const m of node.members) {
        const isStatic = m.modifiers?.some((x) => x.kind === ts.SyntaxKind.StaticKeyword);
        if (ts.isMethodDeclaration(m) && !isStatic) cls.methods.push(name(m));
        if (ts.isPropertyDeclaration(m) && !isStatic) cls.properties.push(name(m));
      }
    } else if (ts.isFunctionDeclaration(node) && exported(node)) {
      out.values.push(node.name.text);
    } else if (ts.isVariableStatement(node) && exported(node)) {
      out.values.push(...node.declarationList.declarations.map((d) => d.name.text));
    } else if (ts.isInterfaceDeclaration(node) && exported(node)) {
      out.interfaces[node.name.text] = node.members.map(name).filter(Boolean);
    } else if (ts.isTypeAliasDeclaration(node) && ts.isUnionTypeNode(node.type)) {
      out.unions[node.name.text] = node.type.types.filter((t) => ts.isLiteralTypeNode(t)).map((t) => t.literal.text);
    }
  }
  // A class merged with an interface (for typed addEventListener) adds methods that
  // HTMLElement already has; only the class body counts as the module's own.
  return out;
}
