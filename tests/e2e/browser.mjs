// What the end-to-end tests share about the browser.

// Flags for Debian's chromium on a machine without network or GPU. WebGPU runs on
// SwiftShader (CPU) with --enable-unsafe-webgpu; never pass --disable-software-rasterizer.
export function chromiumArgs(webgpu) {
  return [
    '--no-sandbox',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--disable-quic',
    ...(webgpu ? ['--enable-unsafe-webgpu'] : []),
  ];
}

// An init script (page.addInitScript) that collects Content-Security-Policy violations
// of every frame in `window.__csp`.
export function recordCspViolations() {
  window.__csp = [];
  document.addEventListener('securitypolicyviolation', (e) =>
    window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || '(inline)'}`),
  );
}

// An init script (page.addInitScript(recordFirstLine, selector)) that notes in
// `window.__firstLineAt` when an element matching `selector` (a chart's first line) first
// appears, on this machine's clock (Date.now), to compare with requests' start times.
export function recordFirstLine(selector) {
  new MutationObserver((_, observer) => {
    if (document.querySelector(selector)) {
      window.__firstLineAt = Date.now();
      observer.disconnect();
    }
  }).observe(document, { childList: true, subtree: true });
}

// A test's clock: `since()` for logs, `left()` to bound every wait by the test's budget,
// and, as a last resort if the browser itself hangs, an exit a minute after the budget.
export function testClock(label, timeoutMs) {
  const t0 = Date.now();
  setTimeout(() => {
    console.error(`e2e [${label}] FAILED: hard timeout after ${timeoutMs / 1000 + 60} s`);
    process.exit(1);
  }, timeoutMs + 60_000).unref();
  return {
    t0,
    since: () => `${((Date.now() - t0) / 1000).toFixed(1)} s`,
    left: () => Math.max(1000, t0 + timeoutMs - Date.now()),
  };
}
