// The studio's half of `cargo xtask bench` (issue 19): what a visitor waits for, in
// headless Chromium on the CPU path, printed as BENCH lines (group, column, row, value):
//   series_parallel: k = 1, 2, 3 series over 8L = 1024 tokens, run again with the models
//     loaded (the Run button), with one CPU worker (the page told there is no core count:
//     the series take turns) and with the studio's own choice (one worker per series, up
//     to one more than the cores), and the speed-up; median of 3 runs each;
//   first_figure: the studio and one embed opened cold (an empty cache) and warm (the
//     same page opened again): milliseconds to the first chart line and, cold, the files
//     the page and its workers asked for before it, each counted once, as served and
//     gzipped (the static server sends them as they are; gzip is what a host like GitHub
//     Pages sends).
//
//   STUDIO_URL=http://127.0.0.1:8094/drope-studio/ node studio.bench.mjs [--quick] [--first-figure]
//
// --first-figure: the first_figure table only, e.g. of an older build of the studio
// served elsewhere (a baseline for the bytes before the first figure).

import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { chromiumArgs, recordFirstLine } from './browser.mjs';

const base = process.env.STUDIO_URL;
if (!base) {
  console.error('STUDIO_URL is not set (cargo xtask bench sets it)');
  process.exit(2);
}
const quick = process.argv.includes('--quick');
const firstFigureOnly = process.argv.includes('--first-figure');
const repeats = quick ? 1 : 3;
const timeout = 600_000;
const at = (path) => new URL(path, base).href;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: chromiumArgs(false),
});
const bench = (group, column, row, value) => console.log(`BENCH\t${group}\t${column}\t${row}\t${value}`);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Waits until the studio's run is idle over `tokens` tokens with `count` series, newer than `before`. */
async function settled(page, { tokens, count, before }) {
  await page.waitForFunction(({ tokens, count, before }) => {
    const line = document.querySelector('[data-testid="run-status"]');
    const summary = document.querySelector('[data-testid="run-summary"]');
    return line?.getAttribute('data-activity') === 'Idle'
      && Number(line.getAttribute('data-done')) === tokens
      && document.querySelectorAll('[data-testid="series-chip"]').length === count
      && Number(summary?.getAttribute('data-run')) > before;
  }, { tokens, count, before }, { timeout, polling: 20 });
}
const shownRun = (page) => page.locator('[data-testid="run-summary"]').getAttribute('data-run').then(Number);

// ---- k series, one worker against one per series ----
const all = ['rope', 'rope:yarn:dyn', 'drope:none:dyn%2Bbeta'];
for (const [column, cores] of firstFigureOnly ? [] : [['one worker (ms)', 0], ['a worker per series (ms)', null]]) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  if (cores !== null) {
    await context.addInitScript((n) => Object.defineProperty(Navigator.prototype, 'hardwareConcurrency', { get: () => n }), cores);
  }
  const page = await context.newPage();
  for (const k of [1, 2, 3]) {
    const models = all.slice(0, k).join(',');
    await page.goto(at(`?view=perplexity&models=${models}&sample=austen-12&length=1024`), { waitUntil: 'load' });
    await settled(page, { tokens: 1024, count: k, before: 0 });
    const times = [];
    for (let i = 0; i < repeats; i++) {
      const before = await shownRun(page);
      const t = Date.now();
      await page.click('button[data-testid="run"]');
      await settled(page, { tokens: 1024, count: k, before });
      times.push(Date.now() - t);
    }
    bench('series_parallel', column, `${k} series x 1024 tokens`, median(times));
    if (cores === null) {
      const workers = await page.evaluate(() => navigator.hardwareConcurrency);
      console.error(`  k = ${k}: ${median(times)} ms with this browser's ${workers} cores`);
    }
  }
  await context.close();
}

// ---- first figure, cold and warm ----
/** Sizes of the files at `urls` (fetched again here), as served and gzipped. */
async function sizes(urls) {
  let raw = 0;
  let gzip = 0;
  for (const url of urls) {
    const body = Buffer.from(await (await fetch(url)).arrayBuffer());
    raw += body.length;
    gzip += gzipSync(body).length;
  }
  return { raw, gzip };
}
async function firstFigure(name, path, firstLine) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  // When the page first had a line (this machine's clock, as the requests' start times).
  await page.addInitScript(recordFirstLine, firstLine);
  for (const visit of ['cold', 'warm']) {
    const requests = [];
    const onRequest = (request) => requests.push(request);
    context.on('request', onRequest);
    const t = Date.now();
    await page.goto(at(path), { waitUntil: 'commit' });
    await page.waitForSelector(firstLine, { timeout });
    const ms = Date.now() - t;
    // Requests under way are reported a little later than they start.
    await page.waitForTimeout(1000);
    context.off('request', onRequest);
    bench('first_figure', 'ms to the first line', `${name}, ${visit}`, ms);
    if (visit === 'cold') {
      // Every file the page and its workers asked for before the first line, once each
      // (a worker's wasm asked for by three workers is one download).
      const firstLineAt = await page.evaluate(() => window.__firstLineAt);
      const before = requests.filter((r) => r.timing().startTime <= firstLineAt).map((r) => r.url().split('#')[0]);
      const { raw, gzip } = await sizes([...new Set(before)].filter((u) => u.startsWith('http')));
      bench('first_figure', 'kB fetched before it', `${name}, ${visit}`, Math.round(raw / 1000));
      bench('first_figure', 'kB gzipped', `${name}, ${visit}`, Math.round(gzip / 1000));
    }
  }
  await context.close();
}
const line = 'svg[data-testid="perplexity-chart"] path[data-testid="series-line"]';
await firstFigure('studio, 320 tokens', '?view=perplexity&length=320', line);
await firstFigure('embed, 320 tokens', 'embed.html?view=perplexity&models=rope,drope&length=320', line);
await browser.close();
