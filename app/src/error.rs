//! The studio's error type: everything that can go wrong is shown on the page as one
//! of these, never as a panic.

use engine::EngineError;
use wasm_bindgen::{JsCast, JsValue};

/// An error the page reports to the user.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A file could not be downloaded (network, HTTP status, browser API).
    #[error("could not download {url}: {reason}")]
    Fetch {
        /// The URL requested.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A downloaded file differs from what `manifest.json` promises.
    #[error("{url} does not match models/manifest.json: {reason}")]
    Integrity {
        /// The URL downloaded.
        url: String,
        /// Which check failed.
        reason: String,
    },
    /// `manifest.json` is malformed.
    #[error("models/manifest.json: {0}")]
    Manifest(String),
    /// The engine refused a model or a prompt.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A request the page cannot serve (empty prompt, prompt over the cap...).
    #[error("{0}")]
    Input(String),
}

/// A readable message from a JavaScript exception or rejection value.
pub fn js_message(value: &JsValue) -> String {
    if let Some(error) = value.dyn_ref::<js_sys::Error>() {
        return String::from(error.message());
    }
    value.as_string().unwrap_or_else(|| format!("{value:?}"))
}
