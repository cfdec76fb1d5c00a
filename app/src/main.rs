//! The studio's wasm entry points, called by the JavaScript loader
//! (`public/drope-studio.js`): the full studio on its page, or one embedded view per
//! `<drope-studio>` element (and in `embed.html`). Initialising the module mounts
//! nothing, so a blog post pays for the wasm only when a figure nears the viewport.

use std::any::Any;

use leptos::prelude::*;
use wasm_bindgen::prelude::*;

use app::embed::{Embed, EmbedParams};

fn main() {
    // Panics (bugs, not user errors: those are shown on the page) reach the console
    // with a Rust message instead of "unreachable executed".
    console_error_panic_hook::set_once();
}

/// Fetch models, results and the worker from beside the loader script (`base`, an
/// absolute URL), not beside the page that embeds it.
#[wasm_bindgen]
pub fn set_asset_base(base: &str) -> Result<(), JsValue> {
    app::assets::set_asset_base(base).map_err(|e| JsValue::from_str(&e))
}

/// Mounts the whole studio on the page body.
#[wasm_bindgen]
pub fn start_studio() {
    leptos::mount::mount_to_body(app::App);
}

/// A mounted embed: the loader tells it when it is on screen, and drops it when its
/// element leaves the page.
#[wasm_bindgen]
pub struct EmbedHandle {
    visible: ArcRwSignal<bool>,
    // The leptos mount; dropping it removes the view and stops its effects.
    _mounted: Box<dyn Any>,
}

#[wasm_bindgen]
impl EmbedHandle {
    /// Whether the embed is on screen (runs wait while it is not).
    pub fn set_visible(&self, visible: bool) {
        self.visible.set(visible);
    }

    /// Removes the view (the element left the page).
    pub fn unmount(self) {}
}

/// Mounts the view that `query` names (the studio's URL parameters, e.g.
/// `view=perplexity&models=rope,drope`) inside `host`, on screen.
#[wasm_bindgen]
pub fn mount_embed(host: web_sys::HtmlElement, query: &str) -> EmbedHandle {
    let params = EmbedParams::parse(query);
    let visible = ArcRwSignal::new(true);
    let seen = visible.clone();
    let mounted = leptos::mount::mount_to(host, move || {
        view! { <Embed params=params visible=Signal::derive(move || seen.get()) /> }
    });
    EmbedHandle {
        visible,
        _mounted: Box::new(mounted),
    }
}
