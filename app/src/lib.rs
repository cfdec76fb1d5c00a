//! DroPE Studio's browser front end: fetches the models listed in
//! `models/manifest.json`, runs prompts through the engine, and shows per-token NLL,
//! NLL against position (with the training length `L` marked) and attention maps.
//!
//! Views live in [`views`] and take signals as props, so each mounts on its own (the
//! component tests in `tests/` do exactly that); [`App`] wires them into the page.
#![warn(missing_docs)]

pub mod analysis;
pub mod app;
pub mod assets;
pub mod backend;
pub mod backend_line;
pub mod colormap;
pub mod controls;
pub mod cpu_worker;
pub mod embed;
pub mod embed_code;
pub mod error;
pub mod export;
pub mod finding;
pub mod format;
pub mod head_profile;
pub mod local_model;
pub mod manifest;
pub mod model_store;
pub mod needle_live;
pub mod open_model;
pub mod page_cpu;
pub mod page_engine;
pub mod panels;
pub mod pause;
pub mod probes;
pub mod published;
pub mod run_controller;
pub mod run_panels;
pub mod runs;
pub mod samples;
pub mod series_look;
pub mod tabs;
pub mod turns;
pub mod url_state;
pub mod views;
pub mod weight_cache;

pub use app::App;

#[cfg(test)]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
