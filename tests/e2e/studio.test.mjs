// End-to-end test of DroPE Studio in headless Chromium (playwright-core, no test framework).
//
//   STUDIO_URL=http://127.0.0.1:8080/ WEBGPU=1 node studio.test.mjs
//
// Environment:
//   STUDIO_URL  page to open (required; `cargo xtask test` serves dist/ and sets it)
//   WEBGPU      1 (default): Chromium with --enable-unsafe-webgpu (SwiftShader on CPU):
//               the studio must run on WebGPU; the test then switches to the CPU
//               backend, re-runs the prompt and compares the per-token NLLs (1e-3),
//               and finally switches back to WebGPU and destroys the GPU device
//               mid-run: the studio must fall back to the CPU with a notice;
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
//   token           one <span> per token in the token strip, its NLL in data-nll
//                   (absent for the first token)
//   attention-heatmap  <canvas> with the attention map
//   backend         text naming the backend in use ("WebGPU · <adapter>" or "CPU (why)")
//   backend-select  <select> with options webgpu (disabled without an adapter) and cpu
//   backend-notice  present only when WebGPU failed and the studio fell back to the CPU
//   run-summary     the last run's summary ("... N ms on <backend> ..."), data-backend

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
  backendSelect: 'select[data-testid="backend-select"]',
  notice: '[data-testid="backend-notice"]',
  summary: '[data-testid="run-summary"]',
};
const NLL_TOLERANCE = 1e-3;

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
// Record main-thread tasks over 50 ms (the browser's "long tasks"), to report how long
// the page stays unresponsive during a run.
await page.addInitScript(() => {
  window.__longTasks = [];
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__longTasks.push([e.startTime, e.duration]);
    }).observe({ type: 'longtask', buffered: true });
  } catch {
    // No long-task API: the report says 0.
  }
});
// Keep every GPUDevice the page opens, so the test can destroy it (a lost device).
await page.addInitScript(() => {
  if (typeof GPUAdapter === 'undefined') return;
  const requestDevice = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await requestDevice.apply(this, args);
    (window.__e2eDevices ||= []).push(device);
    return device;
  };
});

/** Waits for a condition, naming it in the error so a timeout says what was missing. */
async function step(what, fn) {
  try {
    return await fn();
  } catch (e) {
    throw new Error(`${what} (after ${since()}): ${e.message.split('\n')[0]}`);
  }
}

/**
 * Does `action` (which starts a run) and waits until a new run on `backend` is shown:
 * a new summary naming `backend`, one nll-point per token (> 10), the run button
 * enabled again, all stable for 1.5 s. Returns the counts, each token's data-nll, the
 * forward pass's time (from the summary) and the time from the action to the result.
 */
async function runAndSettle(what, backend, action) {
  const before = await page.evaluate(
    (s) => ({ t: performance.now(), summary: document.querySelector(s.summary)?.textContent ?? '' }),
    sel,
  );
  await action();
  const settled = await step(`waiting for ${what} on ${backend}: one nll-point per token (> 10), stable`, () =>
    page.waitForFunction(
      ({ s, backend, before }) => {
        const points = document.querySelectorAll(s.point).length;
        const tokens = document.querySelectorAll(s.token).length;
        const run = document.querySelector(s.run);
        const summary = document.querySelector(s.summary);
        const ran = summary?.getAttribute('data-backend') ?? '';
        const text = summary?.textContent ?? '';
        const key = `${points}/${tokens}/${ran}/${text}`;
        const now = performance.now();
        const w = window;
        if (w.__e2eKey !== key) {
          w.__e2eKey = key;
          w.__e2eSince = now;
        }
        const done = points === tokens && tokens > 10 && !(run && run.disabled) && ran === backend;
        return done && text !== before.summary && now - w.__e2eSince > 1500
          ? { points, tokens, shownMs: w.__e2eSince - before.t }
          : false;
      },
      { s: sel, backend, before },
      { timeout: left(), polling: 250 },
    ).then((h) => h.jsonValue()),
  );
  const { nlls, summary } = await page.evaluate(
    (s) => ({
      nlls: [...document.querySelectorAll(s.token)].map((t) => t.getAttribute('data-nll')),
      summary: document.querySelector(s.summary)?.textContent ?? '',
    }),
    sel,
  );
  const longestTaskMs = await page.evaluate(
    (t0) => Math.round(Math.max(0, ...window.__longTasks.filter(([start]) => start >= t0).map(([, d]) => d))),
    before.t,
  );
  return {
    longestTaskMs,
    counts: { points: settled.points, tokens: settled.tokens },
    nlls: nlls.map((v) => (v === null ? null : Number(v))),
    runMs: Number((summary.match(/(\d+) ms on /) || [])[1]),
    wallMs: Math.round(settled.shownMs),
  };
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
  // The page runs its own prompt when the model loads: let that finish first, so the
  // timing below is the test prompt's alone.
  await step(`waiting for the first run (${sel.chart} with a point, ${sel.run} enabled)`, () =>
    page.waitForSelector(`${sel.point}`, { state: 'attached', timeout: left() })
      .then(() => page.waitForSelector(`${sel.run}:enabled`, { timeout: left() })),
  );
  const tChart = since();
  const first = await runAndSettle('the test prompt', webgpu ? 'WebGPU' : 'CPU', () =>
    step(`clicking ${sel.run}`, () => page.click(sel.run, { timeout: left() })),
  );
  const counts = first.counts;
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
  if (webgpu) {
    assert.match(backend, /^WebGPU · \S/, `WEBGPU=1, but the studio says backend "${backend}"`);
  } else {
    assert.match(backend, /^CPU \(no WebGPU adapter/, `WEBGPU=0, but the studio says backend "${backend}"`);
  }
  assert.equal(await page.locator(sel.notice).count(), 0, 'a WebGPU-failure notice is shown');
  const gpuOption = await page
    .locator(`${sel.backendSelect} option[value="webgpu"]`)
    .evaluate((o) => o.disabled, undefined, { timeout: left() });
  assert.equal(gpuOption, !webgpu, `the WebGPU option is ${gpuOption ? 'disabled' : 'enabled'}`);
  const firstNll = first.nlls;
  assert.equal(firstNll.length, counts.tokens, 'one data-nll per token');
  assert.equal(firstNll[0], null, 'the first token has an NLL');
  assert.ok(firstNll.slice(1).every(Number.isFinite), 'a token without a finite NLL');

  assert.deepEqual(pageErrors, [], 'uncaught page errors');
  assert.deepEqual(consoleErrors, [], 'console errors');

  mkdirSync(screenshots, { recursive: true });
  const shot = join(screenshots, `studio-${label}.png`);
  await page.screenshot({ path: shot, fullPage: true });

  console.log(`  backend: ${backend}`);
  console.log(`  tokens: ${counts.tokens}, nll points: ${counts.points}, heatmap ${heat.width}x${heat.height}`);
  console.log(`  models ready: ${tReady}; the page's own first run done: ${tChart}; test prompt shown: ${tDone}`);
  console.log(`  ${counts.tokens}-token run on ${label}: ${first.runMs} ms forward pass, ${first.wallMs} ms click -> shown, longest main-thread task ${first.longestTaskMs} ms`);

  if (webgpu) {
    // The same prompt on the CPU path (the reference) must give the same NLLs.
    const cpu = await runAndSettle('the re-run', 'CPU', () =>
      step(`choosing cpu in ${sel.backendSelect}`, () =>
        page.selectOption(sel.backendSelect, 'cpu', { timeout: left() }),
      ),
    );
    const cpuBackend = (await page.locator(sel.backend).first().innerText({ timeout: left() })).trim();
    assert.match(cpuBackend, /^CPU \(/, `after choosing CPU the studio says backend "${cpuBackend}"`);
    assert.equal(cpu.counts.tokens, counts.tokens, 'the CPU run has another token count');
    let worst = 0;
    let where = -1;
    cpu.nlls.forEach((v, i) => {
      const w = firstNll[i];
      const diff = v === null || w === null ? (v === w ? 0 : Infinity) : Math.abs(v - w);
      if (!(diff <= worst)) {
        worst = diff;
        where = i;
      }
    });
    console.log(`  CPU re-run: ${cpu.runMs} ms forward pass, ${cpu.wallMs} ms select -> shown, longest main-thread task ${cpu.longestTaskMs} ms`);
    console.log(`  NLL WebGPU vs CPU: max |diff| ${worst.toExponential(2)} (token ${where})`);
    assert.ok(
      worst <= NLL_TOLERANCE,
      `token ${where}: NLL ${firstNll[where]} on WebGPU, ${cpu.nlls[where]} on the CPU`,
    );
    assert.deepEqual(pageErrors, [], 'uncaught page errors');
    assert.deepEqual(consoleErrors, [], 'console errors');

    // Back to WebGPU, and the device is lost as the prompt starts: the studio must
    // move the model to the CPU, say so, and still show the run.
    const lost = await runAndSettle('the run after the device loss', 'CPU', async () => {
      await step(`choosing webgpu in ${sel.backendSelect}`, () =>
        page.selectOption(sel.backendSelect, 'webgpu', { timeout: left() }),
      );
      // The model is on the GPU once the select's change handler returns; destroy the
      // device at once, before or during the run's first pass (either fails).
      const { now, destroyed } = await page.evaluate((s) => {
        const devices = window.__e2eDevices || [];
        const now = document.querySelector(s.backend)?.textContent?.trim() ?? '';
        devices.forEach((d) => d.destroy());
        return { now, destroyed: devices.length };
      }, sel);
      assert.match(now, /^WebGPU · /, `after choosing WebGPU the studio says backend "${now}"`);
      assert.ok(destroyed > 0, 'the studio opened no GPUDevice');
    });
    const lostBackend = (await page.locator(sel.backend).first().innerText({ timeout: left() })).trim();
    assert.match(lostBackend, /^CPU \(WebGPU failed: /, `after the device loss the backend is "${lostBackend}"`);
    const notice = (await step(`reading ${sel.notice}`, () =>
      page.locator(sel.notice).first().innerText({ timeout: left() }),
    )).trim();
    assert.match(notice, /WebGPU failed.*CPU/, `the notice says "${notice}"`);
    assert.equal(await page.locator(sel.backendSelect).inputValue(), 'cpu', 'the backend box does not show CPU');
    assert.equal(lost.counts.tokens, counts.tokens, 'the run after the fallback has another token count');
    console.log(`  device lost: fell back to the CPU, shown ${lost.wallMs} ms after choosing WebGPU; notice: "${notice}"`);
    assert.deepEqual(pageErrors, [], 'uncaught page errors after the device loss');
  }
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
