// End-to-end test of DroPE Studio's embeds, on dist/ served under a sub-path (as GitHub
// Pages serves a project site), in headless Chromium on the CPU path.
//
//   STUDIO_URL=http://127.0.0.1:8090/drope-studio/ node embed.test.mjs
//
// What it checks:
//   1. The example post (embed-example.html): out of view, its three <drope-studio>
//      figures download nothing heavy and start no work; each starts when scrolled to;
//      they share one engine (the wasm, the model list, the samples and each model's
//      weights are downloaded once); the bytes
//      downloaded before and after each figure scrolls in are printed.
//   2. A figure scrolled away mid-run pauses, and finishes when it is back.
//   3. A blog page on another path of the same site, with a sandboxed iframe
//      (allow-scripts only, an opaque origin) of embed.html and a custom element; an
//      iframe far below the fold starts nothing.
//   4. The studio's "Copy embed code": the snippet's iframe URL renders the same view.
//   5. A browser without WebAssembly SIMD (simulated) is told which browsers run it.
//   On every page: no request leaves the origin, no Content-Security-Policy violation,
//   no console error.
//
// Environment: STUDIO_URL (required), CHROMIUM (default /usr/bin/chromium),
// TIMEOUT_S (default 600).

import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { chromiumArgs, recordCspViolations } from './browser.mjs';

const base = process.env.STUDIO_URL;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const timeoutMs = Number(process.env.TIMEOUT_S || 600) * 1000;
if (!base) {
  console.error('STUDIO_URL is not set (cargo xtask test serves dist/ under a sub-path and sets it)');
  process.exit(2);
}
const origin = new URL(base).origin;
const at = (path) => new URL(path, base).href;

const t0 = Date.now();
setTimeout(() => {
  console.error(`e2e [embed] FAILED: hard timeout after ${timeoutMs / 1000 + 60} s`);
  process.exit(1);
}, timeoutMs + 60_000).unref();
const since = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
const deadline = t0 + timeoutMs;
const left = () => Math.max(1000, deadline - Date.now());

async function step(what, fn) {
  try {
    return await fn();
  } catch (e) {
    throw new Error(`${what} (after ${since()}): ${e.message.split('\n')[0]}`);
  }
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  timeout: 60_000,
  args: chromiumArgs(false),
});

/** A fresh context (empty caches) and page that records requests with their sizes,
 *  console errors and CSP violations (in every frame). */
async function openPage(viewport) {
  const context = await browser.newContext({ viewport });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
  const page = await context.newPage();
  const record = { requests: [], consoleErrors: [], pageErrors: [] };
  page.on('request', (r) => record.requests.push({ url: r.url(), bytes: 0 }));
  page.on('response', async (r) => {
    const entry = record.requests.findLast((q) => q.url === r.url());
    const length = Number(await r.headerValue('content-length').catch(() => 0));
    if (entry) entry.bytes = length || 0;
  });
  page.on('console', (m) => {
    if (m.type() === 'error') record.consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => record.pageErrors.push(String(e?.stack || e)));
  await page.addInitScript(recordCspViolations);
  return { context, page, record };
}

const bytes = (record) => record.requests.reduce((sum, r) => sum + r.bytes, 0);
const heavy = (record) => record.requests.filter((r) => /app\.js|app_bg\.wasm|\/models\/|samples\.json|\/results\//.test(r.url));
const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;

/** Every frame's CSP violations, no request to another origin, no console error. */
async function checkClean(page, record, what) {
  for (const frame of page.frames()) {
    const violations = await frame.evaluate(() => window.__csp || []).catch(() => []);
    assert.deepEqual(violations, [], `${what}: CSP violations in ${frame.url()}`);
  }
  const foreign = record.requests.map((r) => r.url).filter((u) => !u.startsWith(origin) && !u.startsWith('data:') && !u.startsWith('blob:'));
  assert.deepEqual(foreign, [], `${what}: requests that left the origin`);
  assert.deepEqual(record.pageErrors, [], `${what}: page errors`);
  assert.deepEqual(record.consoleErrors, [], `${what}: console errors`);
}

const figure = (page, view) => page.locator(`drope-studio[view="${view}"]`);
const embedIn = (host) => host.locator('[data-testid="embed"]');
const lines = 'svg[data-testid="perplexity-chart"] path[data-testid="series-line"]';

async function waitReady(host, what) {
  await step(`${what}: waiting for the view to be drawn`, () =>
    host.locator('[data-testid="embed"][data-state="ready"]').waitFor({ timeout: left() }),
  );
  const error = await host.locator('[data-testid="embed-error"]').count();
  assert.equal(error, 0, `${what}: ${await host.locator('[data-testid="embed-error"]').first().textContent().catch(() => '')}`);
}

let failed = false;
try {
  // ---- 1. The example post: lazy, shared, and what it costs ----
  {
    const { context, page, record } = await openPage({ width: 1280, height: 400 });
    await step('opening the example post', () => page.goto(at('embed-example.html'), { waitUntil: 'load', timeout: left() }));
    await page.waitForTimeout(1500);
    const views = ['perplexity', 'attention', 'needle'];
    const tops = await page.evaluate(() => [...document.querySelectorAll('drope-studio')].map((e) => e.getBoundingClientRect().top));
    assert.equal(tops.length, 3, 'three figures in the post');
    const innerHeight = await page.evaluate(() => innerHeight);
    assert.ok(tops.every((t) => t > innerHeight + 200), `every figure starts out of view (tops ${tops}, viewport ${innerHeight})`);
    for (const view of views) {
      assert.equal(await figure(page, view).getAttribute('data-state'), 'waiting', `${view} waits`);
      assert.match(await figure(page, view).textContent(), /Live figure/, `${view} shows its placeholder`);
    }
    assert.deepEqual(heavy(record).map((r) => r.url), [], 'nothing heavy before any figure is in view');
    const before = bytes(record);

    await figure(page, 'perplexity').scrollIntoViewIfNeeded();
    await waitReady(figure(page, 'perplexity'), 'perplexity figure');
    assert.equal(await figure(page, 'perplexity').locator(lines).count(), 3, 'three series lines');
    const afterFirst = bytes(record);
    // The next figures are still far below: nothing started.
    assert.equal(await figure(page, 'attention').getAttribute('data-state'), 'waiting', 'attention still waits');
    assert.equal(await figure(page, 'needle').getAttribute('data-state'), 'waiting', 'needle still waits');

    await figure(page, 'attention').scrollIntoViewIfNeeded();
    await waitReady(figure(page, 'attention'), 'attention figure');
    const maps = figure(page, 'attention').locator('canvas[data-testid="attention-heatmap"]');
    assert.equal(await maps.count(), 2, 'two attention maps side by side');
    for (const i of [0, 1]) {
      assert.ok((await maps.nth(i).evaluate((c) => c.width)) > 0, `map ${i} is drawn`);
    }
    // Named no head: it opens at the one that reads furthest past L (not a blank head 0),
    // with the L line on both maps (issue 20, defect 7).
    const attention = figure(page, 'attention');
    // (The shipped models' furthest reader is not head 0 of layer 0.)
    await step('waiting for the attention embed to pick its head', () => page.waitForFunction(() => {
      const value = (id) => document.querySelector(`drope-studio[view="attention"] select[data-testid="${id}"]`)?.value;
      return value('embed-layer') !== '0' || value('embed-head') !== '0';
    }, null, { timeout: left() }));
    const openedAt = [await attention.locator('select[data-testid="embed-layer"]').inputValue(), await attention.locator('select[data-testid="embed-head"]').inputValue()];
    assert.equal(await attention.locator('[data-testid="attention-l-line"]').count(), 2, 'the L line on both maps');
    console.log(`e2e [embed] the attention figure opens at layer ${openedAt[0]}, head ${openedAt[1]}`);
    const afterSecond = bytes(record);

    await figure(page, 'needle').scrollIntoViewIfNeeded();
    await waitReady(figure(page, 'needle'), 'needle figure');
    assert.ok((await figure(page, 'needle').locator('[data-testid="needle-cell"]').count()) > 0, 'needle grid cells');
    const afterAll = bytes(record);

    // One engine: each model's weights once, the wasm once.
    const weights = record.requests.filter((r) => r.url.endsWith('model.safetensors')).map((r) => new URL(r.url).pathname);
    assert.deepEqual([...new Set(weights)].length, weights.length, `each model downloaded once: ${weights}`);
    for (const file of ['app_bg.wasm', 'models/manifest.json', 'samples.json']) {
      assert.equal(record.requests.filter((r) => r.url.endsWith(file)).length, 1, `${file} once`);
    }
    assert.ok(weights.every((p) => p.startsWith(new URL(base).pathname)), 'weights come from under the sub-path');
    await checkClean(page, record, 'example post');
    console.log(
      `e2e [embed] example post: ${kb(before)} before any figure is in view; ${kb(afterFirst)} after the first ` +
        `(wasm + ${new Set(weights).size} models' weights), ${kb(afterSecond)} after the second, ${kb(afterAll)} after all three`,
    );
    await context.close();
  }

  // ---- 2. Scrolled away mid-run: the run waits, and finishes when back ----
  {
    const { context, page, record } = await openPage({ width: 1000, height: 600 });
    const post = at('../blog/long-run.html');
    const series = 'rope,rope:pi,rope:ntk,rope:yarn,drope,drope:none:dyn+beta';
    await page.route(post, (route) =>
      route.fulfill({
        contentType: 'text/html',
        body: `<!doctype html><meta charset="utf-8"><script type="module" src="${at('drope-studio.js')}"></script>
          <body style="margin:0"><drope-studio view="perplexity" models="${series}" length="1024"></drope-studio>
          <div style="height:4000px"></div><p id="end">end</p></body>`,
      }),
    );
    await page.goto(post, { waitUntil: 'load', timeout: left() });
    const host = page.locator('drope-studio');
    await step('the long run starts', () =>
      host.locator('[data-testid="embed"][data-state="running"]').waitFor({ timeout: left() }),
    );
    await page.locator('#end').scrollIntoViewIfNeeded();
    await step('the run pauses off screen', () =>
      host.locator('[data-testid="embed"][data-state="paused"]').waitFor({ timeout: 60_000 }),
    );
    const seriesDone = () => host.locator('[data-testid="embed"]').getAttribute('data-series-done').then(Number);
    const drawn = await seriesDone();
    await page.waitForTimeout(2000);
    assert.equal(await seriesDone(), drawn, 'no series ran while off screen');
    assert.ok(drawn < 6, `paused part way (${drawn} of 6 series)`);
    await host.scrollIntoViewIfNeeded();
    await waitReady(host, 'the long run, back on screen');
    assert.equal(await seriesDone(), 6, 'all six series once back');
    assert.equal(await host.locator(lines).count(), 6, 'six lines');
    await checkClean(page, record, 'long run');
    console.log(`e2e [embed] a run scrolled away paused after ${drawn} of 6 series and finished when back`);
    await context.close();
  }

  // ---- 3. A blog page elsewhere on the site: a sandboxed iframe and an element ----
  {
    const { context, page, record } = await openPage({ width: 1000, height: 900 });
    const post = at('../blog/post.html');
    const frameSrc = at('embed.html?view=perplexity&models=rope,drope&length=300');
    await page.route(post, (route) =>
      route.fulfill({
        contentType: 'text/html',
        body: `<!doctype html><meta charset="utf-8"><title>A post</title>
          <script type="module" src="${at('drope-studio.js')}"></script>
          <h1>A post</h1>
          <iframe id="sandboxed" sandbox="allow-scripts" src="${frameSrc}" style="width:100%;height:560px;border:0"></iframe>
          <drope-studio view="tokens" models="drope,dorpe" sample="kjv-2" length="300"></drope-studio>
          <div style="height:3000px"></div>
          <iframe id="below" src="${at('embed.html?view=attention&models=nope')}" style="width:100%;height:500px;border:0"></iframe>`,
      }),
    );
    await page.goto(post, { waitUntil: 'load', timeout: left() });
    const frame = page.frameLocator('#sandboxed');
    await waitReady(frame.locator('body'), 'sandboxed iframe');
    assert.equal(await frame.locator(lines).count(), 2, 'two series in the sandboxed iframe');
    const origins = await page.frames()[1].evaluate(() => self.origin);
    assert.equal(origins, 'null', 'the sandboxed frame has an opaque origin');
    const link = await frame.locator('[data-testid="embed-link"]').getAttribute('href');
    assert.equal(new URL(link).pathname, new URL(base).pathname, `the link back goes to the studio: ${link}`);
    const element = page.locator('drope-studio');
    await element.scrollIntoViewIfNeeded();
    await waitReady(element, 'custom element on another path');
    assert.ok((await element.locator('span[data-testid="token"]').count()) >= 299, 'the token strip');
    // A series naming no model is named on the figure; the others still run.
    const leftOut = await element.locator('[data-testid="embed-left-out"]').innerText();
    assert.match(leftOut, /^Left out: no model `dorpe` \(models: rope, drope/, leftOut);
    // The iframe far below loaded its page but started nothing: no wasm, no models.
    const below = page.frames().find((f) => f.url().includes('models=nope'));
    assert.equal(await below.locator('drope-studio').getAttribute('data-state'), 'waiting', 'the iframe below waits');
    const belowFetched = await below.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name));
    assert.ok(!belowFetched.some((u) => /app_bg\.wasm|\/models\//.test(u)), `the iframe below fetched ${belowFetched}`);
    const models = record.requests.filter((r) => r.url.includes('/models/')).map((r) => new URL(r.url).pathname);
    assert.ok(models.every((p) => p.startsWith(new URL(base).pathname)), `models come from beside the script: ${models}`);
    await checkClean(page, record, 'blog page');
    console.log('e2e [embed] sandboxed iframe (opaque origin) and a custom element on another path: ok');
    await context.close();
  }

  // ---- 4. The studio's "Copy embed code" round trip ----
  {
    const { context, page, record } = await openPage({ width: 1280, height: 900 });
    await page.goto(at('?view=attention&models=rope,drope&length=300'), { waitUntil: 'load', timeout: left() });
    await step('the studio runs', () =>
      page.locator('[data-testid="run-status"][data-activity="Idle"][data-done="300"]').waitFor({ timeout: left() }),
    );
    await page.click('[data-testid="embed-code-toggle"]');
    const iframeCode = await page.locator('[data-testid="embed-code-iframe"]').inputValue();
    const elementCode = await page.locator('[data-testid="embed-code-element"]').inputValue();
    assert.match(iframeCode, /embed\.html\?view=attention&amp;models=rope,drope&amp;length=300/, iframeCode);
    assert.match(elementCode, /<drope-studio view="attention" models="rope,drope" length="300"><\/drope-studio>/, elementCode);
    assert.ok(elementCode.includes(at('drope-studio.js')), elementCode);
    await page.click('[data-testid="embed-copy-element"]');
    await page.locator('[data-testid="embed-copy-status"]', { hasText: 'Copied' }).waitFor({ timeout: 10_000 });
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), elementCode, 'the clipboard holds the snippet');
    await checkClean(page, record, 'studio');
    const src = iframeCode.match(/src="([^"]+)"/)[1].replaceAll('&amp;', '&');
    await page.goto(src, { waitUntil: 'load', timeout: left() });
    await waitReady(page.locator('body'), 'the copied iframe URL');
    assert.equal(await page.locator('canvas[data-testid="attention-heatmap"]').count(), 2, 'the copied view: two maps');
    await checkClean(page, record, 'copied embed');
    console.log('e2e [embed] copy embed code: the snippet renders the same view');
    await context.close();
  }
  // 5. A browser whose WebAssembly has no SIMD (simulated: the loader's probe fails to
  // validate) gets the loader's message, not a failed compile, and fetches no wasm.
  {
    const { context, page, record } = await openPage({ width: 1000, height: 800 });
    await page.addInitScript(() => {
      const validate = WebAssembly.validate;
      WebAssembly.validate = (bytes) => (bytes.length < 64 ? false : validate(bytes));
    });
    await page.goto(at('index.html'), { waitUntil: 'load', timeout: left() });
    const alert = page.locator('[role="alert"]', { hasText: 'no SIMD' });
    await step('waiting for the no-SIMD message', () => alert.waitFor({ timeout: left() }));
    assert.match(await alert.innerText(), /Chrome or Edge 91 or later, Firefox 89 or later, or Safari 16\.4/);
    assert.ok(!record.requests.some((r) => /_bg\.wasm/.test(r.url)), 'wasm fetched without SIMD');
    console.log('e2e [embed] without wasm SIMD: the studio says which browsers run it');
    await context.close();
  }
  console.log(`e2e [embed] ok in ${since()}`);
} catch (e) {
  failed = true;
  console.error(`e2e [embed] FAILED: ${e.message}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
