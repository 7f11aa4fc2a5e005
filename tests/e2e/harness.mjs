// Shared by the end-to-end tests and the web benchmark: serve www/ and drive Debian's
// chromium through playwright-core (never a downloaded browser).

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { DEMO_CSP, serve } from '../../scripts/serve.mjs';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const SCREENSHOTS = path.join(REPO, 'tests/e2e/screenshots');

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-dev-shm-usage',
];

/** Serves www/ (plus `mounts`; `isolated`: COOP/COEP; `ranges`: HTTP Range; see serve.mjs)
 *  on a free port, every response under the demo server's CSP (`csp: null`: none), and
 *  starts headless Chromium (with `args` added to its flags). */
export async function start({ mounts = {}, isolated = true, ranges = true, csp = DEMO_CSP, args = [] } = {}) {
  const headers = csp ? { 'Content-Security-Policy': csp } : {};
  const { server, url } = await serve({ root: path.join(REPO, 'www'), port: 0, mounts, isolated, ranges, headers });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, ...args], headless: true });
  mkdirSync(SCREENSHOTS, { recursive: true });
  return {
    url,
    browser,
    async stop() {
      await browser.close();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A fresh context (own cache storage) with a page that reports its console errors.
 *  `allowLinks`: URL prefixes added to the deployment's allow-list for links (the demo's
 *  deployment.json as a deployment that allows them would serve it; the service worker is
 *  blocked so that this route sees the page's request). */
export async function newPage(browser, { width = 1440, height = 900, allowLinks = null } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, deviceScaleFactor: 1, ...(allowLinks && { serviceWorkers: 'block' }) });
  if (allowLinks) {
    await context.route('**/deployment.json', async (route) => {
      const response = await route.fetch();
      const deployment = await response.json();
      deployment.links.allow.push(...allowLinks);
      await route.fulfill({ response, json: deployment });
    });
  }
  const page = await context.newPage();
  page.consoleErrors = [];
  page.on('console', (m) => m.type() === 'error' && page.consoleErrors.push(m.text()));
  page.on('pageerror', (e) => page.consoleErrors.push(String(e)));
  return { context, page };
}

export async function screenshot(page, name) {
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`) });
}

/** Cosine similarity of two equal-length vectors. */
export function cosine(a, b) {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / Math.sqrt(na * nb);
}
