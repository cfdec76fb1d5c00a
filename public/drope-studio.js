// DroPE Studio's loader. One module script per page:
//
//   <script type="module" src="https://example.org/drope-studio/drope-studio.js"></script>
//   <drope-studio view="perplexity" models="rope,drope" sample="austen-12" length="1024"></drope-studio>
//
// It defines the <drope-studio> element. Each element shows a light placeholder and
// loads nothing more until it nears the viewport (IntersectionObserver); the first one
// that does loads the studio's wasm (once per page), and every element mounts its view
// on that one engine, so two figures of the same model download its weights once.
// A view scrolled away pauses its run until it is back. The studio page (index.html,
// through studio.js) and embed.html use this same loader.
//
// Everything is fetched from beside this script, so the site works from any sub-path
// and a post on another path can embed it.

const base = new URL('./', import.meta.url);

// Attributes that become the view's parameters (the studio's URL parameters, plus the
// attention head; `prompt-sample` is another name for `sample`).
const PARAMETERS = ['view', 'models', 'sample', 'prompt-sample', 'prompt', 'length', 'layer', 'head'];

const TITLES = {
  perplexity: 'Perplexity vs position',
  attention: 'Attention maps',
  tokens: 'Token surprise',
  needle: 'Needle in a haystack',
  frequencies: 'Frequency explorer',
  training: 'Training story',
};

// Start loading this many pixels before an element scrolls into view.
const NEAR = '200px 0px';

let studio = null;

// The smallest module that uses a SIMD instruction: a function returning
// `v128.const 0`. The studio's wasm is built with WebAssembly SIMD (its CPU path's
// matrix products use it), so a browser that cannot validate this gets a message
// instead of a failed compile.
const SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // types: () -> v128
  0x03, 0x02, 0x01, 0x00, // one function of type 0
  0x0a, 0x16, 0x01, 0x14, 0x00, 0xfd, 0x0c, ...new Array(16).fill(0), 0x0b, // v128.const 0; end
]);

/** Why this browser cannot run the studio's wasm, or null when it can. */
export function missingWasmFeature() {
  if (typeof WebAssembly !== 'object') return 'This browser has no WebAssembly.';
  if (!WebAssembly.validate(SIMD_PROBE)) {
    return 'This browser\'s WebAssembly has no SIMD, which DroPE Studio needs: Chrome or Edge 91 or '
      + 'later, Firefox 89 or later, or Safari 16.4 or later run it.';
  }
  return null;
}

/** The studio's wasm module, initialised (loaded on the first call only). */
export function loadStudio() {
  if (!studio) {
    studio = (async () => {
      const missing = missingWasmFeature();
      if (missing) throw new Error(missing);
      const module = await import(new URL('app.js', base).href);
      await module.default({ module_or_path: new URL('app_bg.wasm', base) });
      module.set_asset_base(base.href);
      return module;
    })();
    // A failed load may be retried (by the next element that scrolls in).
    studio.catch(() => {
      studio = null;
    });
  }
  return studio;
}

/** Adds the studio's stylesheet to the page once. */
function addStylesheet() {
  const href = new URL('style.css', base).href;
  if ([...document.querySelectorAll('link[rel="stylesheet"]')].some((l) => l.href === href)) {
    return;
  }
  const link = document.createElement('link');
  link.rel = 'stylesheet';
  link.href = href;
  document.head.append(link);
}

class DropeStudioElement extends HTMLElement {
  connectedCallback() {
    addStylesheet();
    if (this.observer) {
      return;
    }
    this.visible = false;
    if (!this.handle) {
      this.showPlaceholder();
    }
    this.observer = new IntersectionObserver((entries) => this.seen(entries), { rootMargin: NEAR });
    this.observer.observe(this);
  }

  disconnectedCallback() {
    this.observer?.disconnect();
    this.observer = null;
    if (this.handle) {
      this.handle.unmount();
      this.handle = null;
    }
    this.starting = false;
  }

  /** The view's parameters as a query string: from the page URL for `from-url`
   *  (embed.html), else from the attributes. */
  parameters() {
    if (this.hasAttribute('from-url')) {
      return location.search;
    }
    const query = new URLSearchParams();
    for (const name of PARAMETERS) {
      const value = this.getAttribute(name);
      if (value !== null) {
        query.set(name, value);
      }
    }
    return query.toString();
  }

  showPlaceholder(message) {
    const query = new URLSearchParams(this.parameters());
    const view = query.get('view') || 'perplexity';
    const models = query.get('models');
    const box = document.createElement('div');
    box.className = 'drope-placeholder';
    box.textContent =
      message ||
      `Live figure: ${TITLES[view] || view}${models ? ` (${models})` : ''}. ` +
        'DroPE Studio runs it in your browser when it scrolls into view.';
    this.replaceChildren(box);
    this.dataset.state = message ? 'failed' : 'waiting';
  }

  seen(entries) {
    this.visible = entries[entries.length - 1].isIntersecting;
    if (this.handle) {
      this.handle.set_visible(this.visible);
    } else if (this.visible && !this.starting) {
      this.start();
    }
  }

  async start() {
    this.starting = true;
    this.dataset.state = 'starting';
    try {
      const module = await loadStudio();
      if (!this.isConnected || this.handle) {
        return;
      }
      this.replaceChildren();
      delete this.dataset.state;
      this.handle = module.mount_embed(this, this.parameters());
      this.handle.set_visible(this.visible);
    } catch (error) {
      this.starting = false;
      this.showPlaceholder(`This live figure could not start: ${error && error.message ? error.message : error}`);
    }
  }
}

if (!customElements.get('drope-studio')) {
  customElements.define('drope-studio', DropeStudioElement);
}
