// A measurement, not a test (issue 18's measures): a SmolLM-135M-shaped checkpoint (random
// weights, bf16, written to a temporary folder) opened from a link that names it, run past
// its own L = 2048 under RoPE and YaRN (dynamic) on the page's CPU path, in headless
// Chromium. Prints the time to open and run, the attention tab's note (every head's rows
// recorded for the first tokens only), and the peak resident memory of the browser's
// renderer processes (the page and its CPU worker) sampled every 200 ms.
//
//   STUDIO_URL=http://127.0.0.1:8094/drope-studio/ node long-local.measure.mjs [TOKENS [SCHEMES]]
//
// TOKENS defaults to 2304 (L + 256), SCHEMES (comma-separated, one series each) to
// `rope,yarn:dyn`. Environment: CHROMIUM, TIMEOUT_S (1800).

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { chromiumArgs } from './browser.mjs';
import { checkpoint } from './checkpoint.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const base = process.env.STUDIO_URL;
if (!base) {
  console.error('STUDIO_URL is not set');
  process.exit(2);
}
const tokens = Number(process.argv[2] || 2304);
const timeout = Number(process.env.TIMEOUT_S || 1800) * 1000;
const id = 'local-smollm-135m-random';
const schemes = (process.argv[3] || 'rope,yarn:dyn').split(',');

/** Resident memory (MB) of every Chromium renderer process, summed. */
function rendererRss() {
  let total = 0;
  for (const line of execFileSync('ps', ['-eo', 'rss=,args='], { encoding: 'utf8' }).split('\n')) {
    if (line.includes('--type=renderer')) total += Number(line.trim().split(/\s+/)[0]) / 1024;
  }
  return total;
}

const folder = mkdtempSync(join(tmpdir(), 'smollm-'));
const config = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 576, intermediate_size: 1536,
  num_attention_heads: 9, num_key_value_heads: 3, num_hidden_layers: 30, vocab_size: 49152,
  max_position_embeddings: 2048, rms_norm_eps: 1e-5, rope_theta: 10000.0, tie_word_embeddings: true,
  bos_token_id: 0, eos_token_id: 0, hidden_act: 'silu', torch_dtype: 'bfloat16',
};
const tokenizer = readFileSync(join(here, '../../public/models/tokenizer.json'));
const smol = join(folder, 'SmolLM-135M-random');
execFileSync('mkdir', [smol]);
for (const f of checkpoint(config, { seed: 11, std: 0.02, tokenizer }).files) writeFileSync(join(smol, f.name), f.buffer);

// Prose from the corpus, longer than TOKENS with the studio's tokenizer.
const text = readFileSync(join(here, '../../../shared/corpus/austen.txt'), 'utf8').slice(0, 8 * tokens);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: chromiumArgs(false) });
let peak = 0;
const sampler = setInterval(() => { peak = Math.max(peak, rendererRss()); }, 200);
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const models = schemes.map((s) => `${id}:${encodeURIComponent(s)}`).join(',');
  await page.goto(new URL(`?view=attention&models=${models}&length=${tokens}&prompt=${encodeURIComponent(text)}`, base).href, { waitUntil: 'load' });
  await page.waitForSelector('[data-testid="local-model-needed"]', { timeout });
  const idle = rendererRss();
  const t0 = Date.now();
  await page.setInputFiles('input[data-testid="open-model-folder"]', smol);
  await page.waitForFunction(({ n, count }) => {
    const line = document.querySelector('[data-testid="run-status"]');
    return line?.getAttribute('data-activity') === 'Idle' && Number(line.getAttribute('data-done')) === n
      && document.querySelectorAll('[data-testid="series-chip"]').length === count;
  }, { n: tokens, count: schemes.length }, { timeout, polling: 500 });
  const seconds = (Date.now() - t0) / 1000;
  const note = await page.locator('[data-testid="attention-rows-note"]').innerText().catch(() => '(no note)');
  const opened = (await page.locator('[data-testid="open-model-status"]').innerText()).trim();
  console.log(`| tokens | series | open + run (s) | renderer RSS before opening (MB) | peak (MB) |`);
  console.log(`|---|---|---|---|---|`);
  console.log(`| ${tokens} | ${models} (CPU worker) | ${seconds.toFixed(1)} | ${idle.toFixed(0)} | ${peak.toFixed(0)} |`);
  console.log(`\n${opened}\nattention tab: ${note}`);
} finally {
  clearInterval(sampler);
  await browser.close();
  rmSync(folder, { recursive: true, force: true });
}
