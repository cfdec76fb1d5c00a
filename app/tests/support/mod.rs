//! Helpers shared by the component tests: a container to mount into, a way to let the
//! reactive system settle, DOM queries, and small random models.
#![allow(dead_code)]

use std::rc::Rc;

use app::manifest::ModelEntry;
use app::model_store::{DownloadedModel, LoadedModel};
use engine::init::random_weights;
use engine::ModelConfig;
use wasm_bindgen::JsCast;
use web_sys::{Element, HtmlElement};

/// The shipped tokenizer.
pub const TOKENIZER: &[u8] = include_bytes!("../../../public/models/tokenizer.json");

/// A model of random weights (`seed`, scale 0.2) with `config_json`, the shipped
/// tokenizer and a manifest entry "tiny", loaded on the CPU worker.
pub async fn random_model(config_json: &str, seed: u64) -> Rc<LoadedModel> {
    let config = ModelConfig::from_json(config_json.as_bytes()).unwrap();
    let weights = random_weights(&config, seed, 0.2).unwrap();
    let safetensors = weights.to_safetensors(candle_core::DType::F32).unwrap();
    let file = r#"{"path": "x", "bytes": 1, "sha256": "00"}"#;
    let entry: ModelEntry = serde_json::from_str(&format!(
        r#"{{"id": "tiny", "label": "Tiny", "trained": false, "training_length": {},
            "files": {{"config": {file}, "weights": {file}, "tokenizer": {file}}}}}"#,
        config.training_length()
    ))
    .unwrap();
    let download = DownloadedModel::from_bytes(
        entry,
        config_json.as_bytes().to_vec(),
        TOKENIZER,
        safetensors,
    )
    .unwrap();
    Rc::new(download.load(None, &|_| {}).await.unwrap())
}

/// A fresh `<div>` in the body to mount one component into.
pub fn container() -> HtmlElement {
    let document = web_sys::window().unwrap().document().unwrap();
    let div: HtmlElement = document.create_element("div").unwrap().unchecked_into();
    document.body().unwrap().append_child(&div).unwrap();
    div
}

/// Lets effects and reactive updates run.
pub async fn settle() {
    for _ in 0..5 {
        leptos::task::tick().await;
    }
}

/// Every element under `root` matching `selector`.
pub fn all(root: &HtmlElement, selector: &str) -> Vec<Element> {
    let list = root.query_selector_all(selector).unwrap();
    (0..list.length())
        .map(|i| list.item(i).unwrap().unchecked_into())
        .collect()
}
