// The studio page's start (index.html): the same loader as the embeds, then the whole
// studio on the page body. An external module, not an inline script, so the page's
// Content-Security-Policy needs no 'unsafe-inline'.
import { loadStudio } from './drope-studio.js';

try {
  const studio = await loadStudio();
  // Mounting the studio in a task of its own, not the one that instantiated the wasm:
  // neither then holds the page for 100 ms.
  await new Promise((resolve) => setTimeout(resolve, 0));
  studio.start_studio();
  // Offline after one visit (sw.js): optional, so a browser that refuses it (a private
  // window, a non-secure page) runs the studio as before.
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('./sw.js').catch(() => {});
  }
} catch (error) {
  const message = document.createElement('p');
  message.setAttribute('role', 'alert');
  message.textContent = `DroPE Studio could not start: ${error && error.message ? error.message : error}`;
  document.body.append(message);
}
