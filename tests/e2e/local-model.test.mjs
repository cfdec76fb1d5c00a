// End-to-end test of opening a model from disk (issue 18) in headless Chromium.
//
//   STUDIO_URL=http://127.0.0.1:8080/ WEBGPU=1 node local-model.test.mjs
//
// The test writes (to a temporary folder, never committed) a random-weight Llama checkpoint with
// grouped-query attention, untied embeddings and bf16 storage, split into two shards with
// model.safetensors.index.json, and the studio's own tokenizer. It checks:
//   1. A link naming a local model the page does not hold asks for its files, and the
//      rest of the comparison runs.
//   2. Opening the files (the file input) adds the model to the list and runs it as the
//      focus series, on WebGPU when the browser has it: its per-token NLLs equal the
//      native engine's on the same files (`trainer score`, 1e-3); with WEBGPU=1 the CPU
//      path (the worker) is compared too.
//      Attention, frequencies and the live needle test run with its own shape.
//   3. Each broken variant (a missing tensor, a wrong shape, an unknown architecture, a
//      truncated shard, a tokenizer that cannot load, no config) is refused with its
//      message, before the weights are read, and the page stays usable; one of them
//      arrives by drag and drop.
//   4. A checkpoint with SmolLM-135M's exact configuration (30 layers, width 576, 9 query
//      and 3 key/value heads, vocabulary 49152, tied, bf16: 269 MB), opened as a folder
//      on a fresh page, runs on the page's backend and matches the native engine.
//   5. A length over a model's cap runs to the cap with a notice.
// Throughout: nothing is uploaded (no request carries the files), no console error.
//
// Environment: STUDIO_URL (required), WEBGPU (1 default, 0), CHROMIUM, TIMEOUT_S (300),
// SCORE: the command that runs `trainer score` (default `cargo run --quiet -p trainer --`
// from the repository root).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { chromiumArgs, testClock } from './browser.mjs';
import { asInputFiles, checkpoint, safetensors } from './checkpoint.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const base = process.env.STUDIO_URL;
const webgpu = (process.env.WEBGPU ?? '1') !== '0';
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const timeoutMs = Number(process.env.TIMEOUT_S || 300) * 1000;
const label = `local-model ${webgpu ? 'webgpu' : 'cpu'}`;
// SwiftShader is a software adapter, which the studio leaves for the CPU path unless the
// link chooses WebGPU.
const backendParam = webgpu ? '&backend=webgpu' : '';
if (!base) {
  console.error('STUDIO_URL is not set (cargo xtask test sets it)');
  process.exit(2);
}
const { since, left } = testClock(label, timeoutMs);

const LENGTH = 96;
// Tokens run through the SmolLM-135M-shaped model (30 layers: slow on a software GPU).
const SMOL_LENGTH = 24;
const NLL_TOLERANCE = 1e-3;
const ID = 'local-tiny-llama';
const config = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  _name_or_path: 'e2e/tiny-llama',
  hidden_size: 64,
  intermediate_size: 128,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  num_hidden_layers: 2,
  vocab_size: 4096,
  max_position_embeddings: 64,
  rms_norm_eps: 1e-5,
  rope_theta: 10000.0,
  tie_word_embeddings: false,
  hidden_act: 'silu',
  torch_dtype: 'bfloat16',
};
const tokenizer = readFileSync(join(here, '../../public/models/tokenizer.json'));
const good = checkpoint(config, { shards: 2, seed: 7, tokenizer });
// Its tokenizer starts every text with <|endoftext|> (named, as Hugging Face's files do).
good.files.push({ name: 'tokenizer_config.json', buffer: Buffer.from('{"add_bos_token": true, "bos_token": "<|endoftext|>"}') });
// The prompt, given in the link, and scored natively from the same files on disk.
const text = 'The magic number for the lighthouse is 4817261. '.repeat(6)
  + 'Ships came into the harbour at dusk, and the keeper counted them one by one. '.repeat(4);
const folder = mkdtempSync(join(tmpdir(), 'drope-local-'));
for (const f of good.files) writeFileSync(join(folder, f.name), f.buffer);
writeFileSync(join(folder, 'prompt.txt'), text);

/** `trainer score` on the folder: the native engine's NLLs of the prompt's first LENGTH tokens. */
function nativeNlls(dir = folder, length = LENGTH) {
  const [cmd, ...args] = (process.env.SCORE || 'cargo run --quiet -p trainer --').split(' ');
  const out = execFileSync(cmd, [...args, 'score', '--model', dir, '--text', join(folder, 'prompt.txt'), '--length', String(length)],
    { cwd: join(here, '../..'), encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return JSON.parse(out).nll;
}
/** The largest |a - b| over two NLL lists (null only where both are null). */
const worstDiff = (a, b) => {
  assert.equal(a.length, b.length, `${a.length} tokens against ${b.length}`);
  return Math.max(...a.map((v, i) => (v === null && b[i] === null ? 0 : Math.abs(v - b[i]))));
};
const replace = (files, name, buffer) => files.map((f) => (f.name === name ? { name, buffer } : f));

const sel = {
  files: 'input[data-testid="open-model-files"]',
  status: '[data-testid="open-model-status"]',
  needed: '[data-testid="local-model-needed"]',
  chip: '[data-testid="series-chip"]',
  runStatus: '[data-testid="run-status"]',
  summary: '[data-testid="run-summary"]',
  token: 'span[data-testid="token"]',
  backendSelect: 'select[data-testid="backend-select"]',
  heatmap: 'canvas[data-testid="attention-heatmap"]',
};

async function step(what, fn) {
  try {
    return await fn();
  } catch (e) {
    throw new Error(`${what} (after ${since()}): ${e.message.split('\n')[0]}`);
  }
}

const browser = await chromium.launch({ executablePath, headless: true, args: chromiumArgs(webgpu), timeout: 60_000 });
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
const consoleErrors = [];
const uploads = [];
page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
page.on('pageerror', (e) => consoleErrors.push(String(e)));
page.on('request', (r) => {
  if (r.method() !== 'GET' || (r.postData() ?? '').length > 0) uploads.push(`${r.method()} ${r.url()}`);
});

/** Waits for an idle run of `count` series over `tokens` tokens on `backend`, newer than `before`. */
const settled = (what, { backend, count, before = 0, tokens = LENGTH }) =>
  step(`waiting for ${what}`, () =>
    page.waitForFunction(
      ({ s, backend, count, before, tokens }) => {
        const line = document.querySelector(s.runStatus);
        const summary = document.querySelector(s.summary);
        return line?.getAttribute('data-activity') === 'Idle'
          && Number(line.getAttribute('data-done')) === tokens
          && document.querySelectorAll(s.chip).length === count
          && summary?.getAttribute('data-backend') === backend
          && Number(summary.getAttribute('data-run')) > before;
      },
      { s: sel, backend, count, before, tokens },
      { timeout: left(), polling: 200 },
    ),
  );
const shownRun = () => page.locator(sel.summary).getAttribute('data-run').then(Number);
const tokenNlls = () =>
  page.evaluate((s) => [...document.querySelectorAll(s.token)].map((t) => {
    const v = t.getAttribute('data-nll');
    return v === null ? null : Number(v);
  }), sel);
async function openTab(view) {
  await step(`opening the ${view} tab`, () => page.click(`button[data-testid="tab"][data-view="${view}"]`, { timeout: left() }));
  await step(`waiting for the ${view} panel`, () =>
    page.waitForSelector(`[data-testid="view-panel"][data-view="${view}"]`, { timeout: left() }));
}
/** Opens `files` with the file input and waits for the outcome's state. */
async function open(files, state) {
  await page.setInputFiles(sel.files, asInputFiles(files));
  await step(`waiting for the opening to end ${state}`, () =>
    page.waitForFunction(
      ({ s, state }) => document.querySelector(s.status)?.getAttribute('data-state') === state,
      { s: sel, state },
      { timeout: left(), polling: 100 },
    ));
  return (await page.locator(sel.status).innerText()).trim();
}

let ok = false;
try {
  const backend = webgpu ? 'WebGPU' : 'CPU';
  console.log(`e2e [${label}] ${base}: a ${good.files.length}-file checkpoint, ${good.tensors.length} tensors`);
  // 1. A link that names the local model before it is open.
  await step('opening the page', () =>
    page.goto(new URL(`?view=tokens&models=${ID},rope&length=${LENGTH}&prompt=${encodeURIComponent(text)}${backendParam}`, base).href,
      { waitUntil: 'load', timeout: left() }));
  await step('waiting for the request for files', () => page.waitForSelector(sel.needed, { timeout: left() }));
  assert.match(await page.locator(sel.needed).innerText(), new RegExp(`${ID}.*open the same files`));
  await settled('the shipped series to run without it', { backend, count: 2 });

  // 2. Open it: it becomes runnable where the link put it (the focus).
  const before = await shownRun();
  const opened = await open(good.files, 'opened');
  assert.match(opened, /^Opened tiny-llama: .*parameters, .* to read and .* in 32-bit floats/, opened);
  await settled('the run with the local model', { backend, count: 2, before });
  assert.equal(await page.locator(sel.needed).count(), 0, 'still asking for the files after opening them');
  const focus = await page.locator(sel.chip).first().getAttribute('data-series');
  assert.equal(focus, ID, 'the local model is not the focus series');
  const nlls = await tokenNlls();
  assert.equal(nlls.length, LENGTH);
  assert.equal(await page.locator(sel.token).first().getAttribute('data-token-id'), '0', 'the prompt does not start with <|endoftext|>');
  assert.ok(nlls.slice(1).every(Number.isFinite), 'a token without a finite NLL');
  // Random weights: every NLL near ln(4096) = 8.3, not the trained model's.
  const mean = nlls.slice(1).reduce((a, b) => a + b, 0) / (LENGTH - 1);
  assert.ok(mean > 7 && mean < 10, `mean NLL ${mean} of a random model`);
  const native = await step('scoring the files natively (trainer score)', async () => nativeNlls());
  const againstNative = worstDiff(nlls, native);
  assert.ok(againstNative <= NLL_TOLERANCE, `${backend} and the native engine differ by ${againstNative}`);
  let compare = `${backend} vs native max |diff| ${againstNative.toExponential(2)}`;
  if (webgpu) {
    const beforeCpu = await shownRun();
    await page.selectOption(sel.backendSelect, 'cpu');
    await settled('the CPU re-run', { backend: 'CPU', count: 2, before: beforeCpu });
    const worst = worstDiff(await tokenNlls(), native);
    assert.ok(worst <= NLL_TOLERANCE, `the CPU path and the native engine differ by ${worst}`);
    compare += `; CPU vs native ${worst.toExponential(2)}`;
  }
  compare += ` over ${LENGTH} tokens`;
  console.log(`  opened and ran (${since()}): mean NLL ${mean.toFixed(3)}; ${compare}`);

  // 2b. Every view takes the local model's own shape: attention maps over its 2 layers
  // of 4 heads, the frequency explorer over its head dimension (16: 8 rotary pairs), and
  // the live needle test with its own tokenizer and L.
  await openTab('attention');
  await step('waiting for the local model\'s attention map', () => page.waitForFunction((s) => {
    const c = document.querySelector(s.heatmap);
    return c && c.width > 0 && document.querySelectorAll('select[data-testid="layer-select"] option').length === 2
      && document.querySelectorAll('select[data-testid="head-select"] option').length === 4;
  }, sel, { timeout: left() }));
  await openTab('frequencies');
  await step('waiting for the explorer over the local model\'s 8 rotary pairs', () =>
    page.waitForFunction(() => document.querySelector('input[data-testid="pair-input"]')?.getAttribute('max') === '7'
      && document.querySelectorAll('svg[data-testid="frequency-chart"] [data-testid="scale-curve"]').length > 0,
    null, { timeout: left() }));
  await openTab('needle');
  for (const m of [2, 4]) await page.uncheck(`input[data-testid="needle-length"][value="${m}"]`);
  await page.fill('input[data-testid="needle-trials"]', '1');
  await page.click('button[data-testid="needle-run"]');
  await step('waiting for the live needle trials on the local model', () =>
    page.waitForFunction(() => {
      const alert = document.querySelector('.needle-live [role="alert"]');
      if (alert) throw new Error(`needle runner: ${alert.innerText}`);
      return document.querySelector('[data-testid="needle-progress"]')?.innerText === '6 of 6 trials';
    }, null, { timeout: left() }));
  const cells = await page.$$eval('[data-testid="needle-live-cell"]', (cs) => cs.map((c) => c.closest('tr')?.innerText ?? ''));
  assert.ok(cells.some((row) => /tiny-llama/.test(row)), `no live needle row for the local model: ${JSON.stringify(cells)}`);
  console.log(`  attention (2 layers x 4 heads), frequencies (8 pairs) and live needles ran on the local model`);
  await openTab('tokens');

  // 3. Broken variants: each refused with its reason; the page stays usable.
  const shard1 = good.files.find((f) => f.name.startsWith('model-00001'));
  const tensorsOf1 = good.tensors.filter(([name]) => JSON.stringify(readIndex()).includes(`"${name}":"${shard1.name}"`));
  function readIndex() {
    return JSON.parse(good.files.find((f) => f.name === 'model.safetensors.index.json').buffer.toString()).weight_map;
  }
  const withoutOne = tensorsOf1.filter(([name]) => name !== 'model.layers.0.mlp.up_proj.weight');
  const misshapen = tensorsOf1.map(([n, shape, v]) => (n === 'model.layers.0.self_attn.k_proj.weight' ? [n, [shape[1], shape[0]], v] : [n, shape, v]));
  const broken = [
    ['a missing tensor', replace(good.files, shard1.name, safetensors(withoutOne)), /model\.layers\.0\.mlp\.up_proj\.weight.* missing/],
    ['a wrong shape', replace(good.files, shard1.name, safetensors(misshapen)), /k_proj\.weight` has shape \[64, 32\]; the config implies \[32, 64\]/],
    ['an unknown architecture', replace(good.files, 'config.json', Buffer.from(JSON.stringify({ ...config, architectures: ['GPT2LMHeadModel'] }))), /GPT2LMHeadModel/],
    ['a truncated shard', replace(good.files, shard1.name, shard1.buffer.subarray(0, shard1.buffer.length - 100)), /truncated/],
    ['a tokenizer that cannot load', replace(good.files, 'tokenizer.json', Buffer.from('{"model": 5}')), /tokenizer\.json cannot be loaded/],
    ['no config', good.files.filter((f) => f.name !== 'config.json'), /no config\.json/],
  ];
  for (const [what, files, expected] of broken) {
    const message = await open(files, 'failed');
    assert.match(message, expected, `${what}: ${message}`);
    assert.equal(await page.locator(sel.runStatus).getAttribute('data-activity'), 'Idle', `${what}: the page is not idle`);
    console.log(`  ${what}: ${message.slice(0, 140)}`);
  }
  // A drop of files (the drop zone), here a broken set, then the good one again.
  const drop = async (files) => {
    const payload = files.map((f) => ({ name: f.name, data: f.buffer.toString('base64') }));
    const transfer = await page.evaluateHandle((payload) => {
      const t = new DataTransfer();
      for (const { name, data } of payload) {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        t.items.add(new File([bytes], name));
      }
      return t;
    }, payload);
    await page.dispatchEvent('[data-testid="open-model"]', 'drop', { dataTransfer: transfer });
  };
  await drop(broken[2][1]);
  await step('waiting for the dropped files to be refused', () =>
    page.waitForFunction((s) => /GPT2LMHeadModel/.test(document.querySelector(s.status)?.textContent ?? ''), sel, { timeout: left() }));
  const beforeDrop = await shownRun();
  await drop(good.files);
  await step('waiting for the dropped files to open', () =>
    page.waitForFunction((s) => document.querySelector(s.status)?.getAttribute('data-state') === 'opened', sel, { timeout: left() }));
  await settled('the run after the drop', { backend: webgpu ? 'CPU' : backend, count: 2, before: beforeDrop });

  // 4. A checkpoint with SmolLM-135M's exact configuration (random weights, bf16, one
  // file), opened as a folder on a fresh page: it loads, runs where the page runs, and
  // matches the native engine.
  const smol = join(folder, 'SmolLM-135M-random');
  mkdirSync(smol);
  const smolConfig = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 576, intermediate_size: 1536,
    num_attention_heads: 9, num_key_value_heads: 3, num_hidden_layers: 30, vocab_size: 49152,
    max_position_embeddings: 2048, rms_norm_eps: 1e-5, rope_theta: 10000.0, tie_word_embeddings: true,
    bos_token_id: 0, eos_token_id: 0, hidden_act: 'silu', torch_dtype: 'bfloat16',
  };
  const tGen = Date.now();
  for (const f of checkpoint(smolConfig, { seed: 11, std: 0.02, tokenizer }).files) writeFileSync(join(smol, f.name), f.buffer);
  console.log(`  SmolLM-135M-shaped checkpoint written in ${((Date.now() - tGen) / 1000).toFixed(1)} s`);
  await step('opening a fresh page', () =>
    page.goto(new URL(`?view=tokens&models=rope&length=${SMOL_LENGTH}&prompt=${encodeURIComponent(text)}${backendParam}`, base).href,
      { waitUntil: 'load', timeout: left() }));
  await settled('the fresh page\'s run', { backend, count: 1, tokens: SMOL_LENGTH });
  const beforeSmol = await shownRun();
  const tOpen = Date.now();
  await page.setInputFiles('input[data-testid="open-model-folder"]', smol);
  await step('waiting for the folder to open', () =>
    page.waitForFunction((s) => /^(opened|failed)$/.test(document.querySelector(s.status)?.getAttribute('data-state') ?? ''), sel, { timeout: left() }));
  const smolOpened = (await page.locator(sel.status).innerText()).trim();
  assert.match(smolOpened, /^Opened SmolLM-135M-random: 134\.5M parameters, 269\.1 MB to read/, smolOpened);
  await settled('the SmolLM-shaped run', { backend, count: 2, before: beforeSmol, tokens: SMOL_LENGTH });
  assert.equal(await page.locator(sel.chip).first().getAttribute('data-series'), 'local-smollm-135m-random');
  const smolNative = nativeNlls(smol, SMOL_LENGTH);
  const smolWorst = worstDiff(await tokenNlls(), smolNative);
  assert.ok(smolWorst <= NLL_TOLERANCE, `SmolLM shape: ${backend} and native differ by ${smolWorst}`);
  console.log(`  SmolLM-135M shape on ${backend}: opened and ran in ${((Date.now() - tOpen) / 1000).toFixed(1)} s, max |diff| against native ${smolWorst.toExponential(2)} over ${SMOL_LENGTH} tokens`);

  // 5. A length over a model's cap (8L = 1024 for the shipped ones) runs to the cap
  // with a notice instead of failing (issue 20, defect 8).
  await step('opening a link with length=2049', () =>
    page.goto(new URL(`?view=tokens&models=rope&length=2049&prompt=${encodeURIComponent(text)}${backendParam}`, base).href,
      { waitUntil: 'load', timeout: left() }));
  const capNotice = page.locator('[data-testid="cap-notice"]');
  await step('waiting for the cap notice', () => capNotice.waitFor({ timeout: left() }));
  assert.match(await capNotice.innerText(), /A length of 2049 tokens is over the cap of 1024 for .*8 x the training length L = 128/);
  await step('waiting for the capped run', () =>
    page.waitForFunction((s) => document.querySelector(s.runStatus)?.getAttribute('data-activity') === 'Idle'
      && document.querySelectorAll(s.token).length > 0, sel, { timeout: left() }));

  assert.deepEqual(uploads, [], 'requests that could carry the files');
  assert.deepEqual(consoleErrors, [], 'console errors');
  ok = true;
  console.log(`e2e [${label}] passed in ${since()}`);
} catch (e) {
  console.error(`e2e [${label}] FAILED: ${e.stack || e}`);
} finally {
  await browser.close();
  rmSync(folder, { recursive: true, force: true });
}
process.exit(ok ? 0 : 1);
