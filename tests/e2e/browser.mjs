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
