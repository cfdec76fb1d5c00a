// End-to-end test of DroPE Studio in headless Chromium (playwright-core, no test framework).
//
//   STUDIO_URL=http://127.0.0.1:8080/ WEBGPU=1 node studio.test.mjs
//
// Environment:
//   STUDIO_URL  page to open (required; `cargo xtask test` serves dist/ and sets it)
//   WEBGPU      1 (default): Chromium with --enable-unsafe-webgpu (SwiftShader on CPU);
//               0: without it, so the studio must fall back to its CPU backend
//   CHROMIUM    browser binary (default /usr/bin/chromium)
//   TIMEOUT_S   budget for the whole test (default 120)
//   PROMPT      prompt typed into the studio (default: prose well past L = 256 tokens)
//
// The studio's DOM contract (data-testid):
//   model-ready     present once the models are loaded
//   prompt          <textarea> for the prompt; run: <button> that runs it
//   nll-chart       <svg> perplexity chart; nll-point: one <circle> per token;
//                   L-marker: marks the training length inside the chart
//   token           one <span> per token in the token strip
//   attention-heatmap  <canvas> with the attention map
//   backend         text naming the backend in use (WebGPU or CPU)

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const url = process.env.STUDIO_URL;
const webgpu = (process.env.WEBGPU ?? '1') !== '0';
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const timeoutMs = Number(process.env.TIMEOUT_S || 120) * 1000;
const paragraph =
  'Once upon a time, in a small village by the sea, there lived an old fisherman ' +
    'who told stories about the stars. Every evening the children gathered around ' +
    'him to listen, and every evening he began with the same words. The sea was grey ' +
    'and the wind was cold, but the fire in his small house was always warm, and the ' +
    'children brought bread and apples from their mothers. He spoke of a ship that ' +
    'sailed beyond the edge of the world, of a lighthouse whose keeper never slept, ' +
    'and of a girl who learned the names of every star before she was nine years old. ' +
    'Years later, when the old man was gone, the girl kept his house and told the same ' +
    'stories to the children of the children who had listened to him, beginning every ' +
    'evening with the same words, while the sea was grey and the wind was cold.';
// Three times over: past L for the trained models (L = 256 tokens) as well as the untrained one.
const promptText = process.env.PROMPT || [paragraph, paragraph, paragraph].join(' ');
const label = webgpu ? 'webgpu' : 'cpu';
const screenshots = join(here, 'screenshots');

const sel = {
  ready: '[data-testid="model-ready"]',
  prompt: 'textarea[data-testid="prompt"]',
  run: 'button[data-testid="run"]',
  chart: 'svg[data-testid="nll-chart"]',
  point: 'svg[data-testid="nll-chart"] circle[data-testid="nll-point"]',
  lMarker: 'svg[data-testid="nll-chart"] [data-testid="L-marker"]',
  token: 'span[data-testid="token"]',
  heatmap: 'canvas[data-testid="attention-heatmap"]',
  backend: '[data-testid="backend"]',
};

// Flags for Debian's chromium on a machine without network or GPU. WebGPU runs on
// SwiftShader (CPU) with --enable-unsafe-webgpu; never pass --disable-software-rasterizer.
const args = [
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  ...(webgpu ? ['--enable-unsafe-webgpu'] : []),
];

if (!url) {
  console.error('STUDIO_URL is not set (cargo xtask test sets it; or run trunk serve and pass its URL)');
  process.exit(2);
}

const t0 = Date.now();
// Last resort if the browser itself hangs: every wait below is bounded by the deadline.
setTimeout(() => {
  console.error(`e2e [${label}] FAILED: hard timeout after ${timeoutMs / 1000 + 60} s`);
  process.exit(1);
}, timeoutMs + 60_000).unref();
const since = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
const deadline = t0 + timeoutMs;
const left = () => Math.max(1000, deadline - Date.now());

const consoleErrors = [];
const pageErrors = [];
const failedRequests = [];

const browser = await chromium.launch({ executablePath, headless: true, args, timeout: 60_000 });
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
page.on('console', (msg) => {
  if (msg.type() === 'error') consoleErrors.push(msg.text());
});
page.on('pageerror', (err) => pageErrors.push(String(err?.stack || err)));
page.on('requestfailed', (req) => failedRequests.push(`${req.url()}: ${req.failure()?.errorText}`));

/** Waits for a condition, naming it in the error so a timeout says what was missing. */
async function step(what, fn) {
  try {
    return await fn();
  } catch (e) {
    throw new Error(`${what} (after ${since()}): ${e.message.split('\n')[0]}`);
  }
}

let ok = false;
try {
  console.log(`e2e [${label}] ${url} (chromium ${browser.version()}, args: ${args.join(' ')})`);

  await step('opening the page', () => page.goto(url, { waitUntil: 'load', timeout: left() }));

  // Check the browser first, so that a missing adapter is not blamed on the studio.
  const hasAdapter = await page.evaluate(async () => {
    if (!('gpu' in navigator) || !navigator.gpu) return false;
    try {
      return (await navigator.gpu.requestAdapter()) !== null;
    } catch {
      return false;
    }
  });
  console.log(`  WebGPU adapter in this browser: ${hasAdapter}`);
  if (webgpu) {
    assert.ok(hasAdapter, 'WEBGPU=1 but Chromium offers no WebGPU adapter (flags? mesa/SwiftShader?)');
  } else {
    assert.ok(!hasAdapter, 'WEBGPU=0 but Chromium still offers a WebGPU adapter');
  }

  await step(`waiting for ${sel.ready} (models loaded)`, () =>
    page.waitForSelector(sel.ready, { state: 'attached', timeout: left() }),
  );
  const tReady = since();

  await step(`filling ${sel.prompt}`, () => page.fill(sel.prompt, promptText, { timeout: left() }));
  await step(`clicking ${sel.run}`, () => page.click(sel.run, { timeout: left() }));

  await step(`waiting for ${sel.chart} with a first point`, () =>
    page.waitForSelector(sel.point, { state: 'attached', timeout: left() }),
  );
  const tChart = since();

  // Tokens may stream in: wait until there is one point per token, more than 10,
  // the run button is enabled again, and the counts have been stable for 1.5 s.
  const counts = await step('waiting for one nll-point per token (> 10), stable', () =>
    page.waitForFunction(
      (s) => {
        const points = document.querySelectorAll(s.point).length;
        const tokens = document.querySelectorAll(s.token).length;
        const run = document.querySelector(s.run);
        const key = `${points}/${tokens}`;
        const now = performance.now();
        const w = window;
        if (w.__e2eKey !== key) {
          w.__e2eKey = key;
          w.__e2eSince = now;
        }
        const settled = points === tokens && tokens > 10 && !(run && run.disabled);
        return settled && now - w.__e2eSince > 1500 ? { points, tokens } : false;
      },
      sel,
      { timeout: left(), polling: 250 },
    ).then((h) => h.jsonValue()),
  );
  const tDone = since();

  assert.equal(counts.points, counts.tokens, 'nll-point count must equal token count');
  assert.ok(counts.tokens > 10, `expected more than 10 tokens, got ${counts.tokens}`);
  assert.ok((await page.locator(sel.lMarker).count()) >= 1, 'no L-marker in the NLL chart');
  // The prompt is longer than L, so the chart must have points to the right of the marker.
  const pastL = await page.evaluate((s) => {
    const marker = Number(document.querySelector(s.lMarker).getAttribute('x1'));
    return [...document.querySelectorAll(s.point)].filter((c) => Number(c.getAttribute('cx')) > marker).length;
  }, sel);
  assert.ok(pastL > 0, 'no NLL point beyond the L marker');

  // The heatmap may be drawn a moment after the chart: poll its pixels.
  const heat = await step(`waiting for a non-empty ${sel.heatmap}`, () =>
    page.waitForFunction(
      (s) => {
        const c = document.querySelector(s.heatmap);
        if (!c || !c.width || !c.height) return false;
        // Copy through drawImage so this works whatever context the studio used.
        const copy = document.createElement('canvas');
        copy.width = c.width;
        copy.height = c.height;
        const ctx = copy.getContext('2d');
        ctx.drawImage(c, 0, 0);
        const d = ctx.getImageData(0, 0, c.width, c.height).data;
        let opaque = 0;
        let distinct = false;
        for (let i = 0; i < d.length; i += 4) {
          if (d[i + 3] !== 0) opaque++;
          if (!distinct && (d[i] !== d[0] || d[i + 1] !== d[1] || d[i + 2] !== d[2] || d[i + 3] !== d[3])) {
            distinct = true;
          }
        }
        return opaque > 0 && distinct ? { width: c.width, height: c.height, opaque } : false;
      },
      sel,
      { timeout: left(), polling: 250 },
    ).then((h) => h.jsonValue()),
  );

  const backend = (await step(`reading ${sel.backend}`, () =>
    page.locator(sel.backend).first().innerText({ timeout: left() }),
  )).trim();
  assert.ok(backend.length > 0, 'backend text is empty');
  // The CPU path runs in both browsers until the WebGPU backend lands (issue 4); the
  // page must still tell whether this browser offers an adapter.
  assert.match(backend, /^CPU/, `the studio says backend "${backend}"`);
  const adapterSeen = webgpu ? /adapter found/i : /no WebGPU adapter/i;
  assert.match(backend, adapterSeen, `${label} run, but the backend text is "${backend}"`);

  assert.deepEqual(pageErrors, [], 'uncaught page errors');
  assert.deepEqual(consoleErrors, [], 'console errors');

  mkdirSync(screenshots, { recursive: true });
  const shot = join(screenshots, `studio-${label}.png`);
  await page.screenshot({ path: shot, fullPage: true });

  console.log(`  backend: ${backend}`);
  console.log(`  tokens: ${counts.tokens}, nll points: ${counts.points}, heatmap ${heat.width}x${heat.height}`);
  console.log(`  models ready: ${tReady}; page open -> first chart: ${tChart}; run complete: ${tDone}`);
  console.log(`  screenshot: ${shot}`);
  console.log(`e2e [${label}] ok in ${since()}`);
  ok = true;
} catch (e) {
  console.error(`\ne2e [${label}] FAILED: ${e.message}`);
  try {
    const text = await page.evaluate(() => document.body?.innerText ?? '');
    console.error(`--- page text (${text.length} chars) ---\n${text.slice(0, 4000)}\n--- end of page text ---`);
    mkdirSync(screenshots, { recursive: true });
    const shot = join(screenshots, `studio-${label}-failure.png`);
    await page.screenshot({ path: shot, fullPage: true, timeout: 10_000 });
    console.error(`screenshot: ${shot}`);
  } catch (e2) {
    console.error(`(could not read the page: ${e2.message.split('\n')[0]})`);
  }
  if (pageErrors.length) console.error(`page errors:\n  ${pageErrors.join('\n  ')}`);
  if (consoleErrors.length) console.error(`console errors:\n  ${consoleErrors.join('\n  ')}`);
  if (failedRequests.length) console.error(`failed requests:\n  ${failedRequests.join('\n  ')}`);
} finally {
  await browser.close();
}
process.exitCode = ok ? 0 : 1;
