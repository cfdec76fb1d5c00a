//! The engine compiled to wasm32, run in headless Chromium: the shipped model loads from
//! bytes, and incremental decoding equals a full forward there too.
#![cfg(target_arch = "wasm32")]

use std::sync::Arc;

use engine::cpu::CpuBackend;
use engine::{Capture, SchemeSpec, Session, SessionOptions, TextTokenizer};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const CONFIG: &[u8] = include_bytes!("../../public/models/untrained/config.json");
const WEIGHTS: &[u8] = include_bytes!("../../public/models/untrained/model.safetensors");
const TOKENIZER: &[u8] = include_bytes!("../../public/models/tokenizer.json");

fn session(model: &Arc<CpuBackend>, scheme: &str) -> Session<CpuBackend> {
    let mut options = SessionOptions::new(scheme.parse::<SchemeSpec>().unwrap(), 64);
    options.capture = Capture {
        heads: vec![(0, 0), (1, 3)],
        span: None,
    };
    Session::new(model.clone(), options).unwrap()
}

#[wasm_bindgen_test]
async fn shipped_model_runs_incrementally_in_the_browser() {
    let model = Arc::new(CpuBackend::load(CONFIG, WEIGHTS).unwrap());
    let tokenizer = TextTokenizer::from_json(TOKENIZER).unwrap();
    let text = "It is a truth universally acknowledged, that a single man in possession of a good \
        fortune, must be in want of a wife. However little known the feelings or views of such a \
        man may be on his first entering a neighbourhood, this truth is so well fixed.";
    let ids: Vec<u32> = tokenizer
        .encode(text)
        .unwrap()
        .iter()
        .map(|p| p.id)
        .collect();
    for scheme in ["rope", "yarn:2", "none:2+beta=0.4"] {
        let full = session(&model, scheme).extend(&ids).await.unwrap();
        let mut grown = session(&model, scheme);
        let mut pieces = Vec::new();
        for chunk in ids.chunks(5) {
            pieces.extend(grown.extend(chunk).await.unwrap().positions);
        }
        assert_eq!(full.positions.len(), ids.len());
        assert_eq!(pieces.len(), ids.len());
        for (a, b) in full.positions.iter().zip(&pieces) {
            if let (Some(x), Some(y)) = (a.nll, b.nll) {
                assert!(
                    (x - y).abs() < 1e-5 * (1.0 + x.abs()),
                    "{scheme}: nll {x} vs {y}"
                );
            }
            for (ra, rb) in a.attention.iter().zip(&b.attention) {
                let sum: f32 = ra.probs.iter().sum();
                assert!((sum - 1.0).abs() < 1e-5);
                for (p, q) in ra.probs.iter().zip(&rb.probs) {
                    assert!((p - q).abs() < 1e-5);
                }
            }
        }
    }
}

#[wasm_bindgen_test]
fn bad_bytes_are_errors_in_the_browser_too() {
    assert!(CpuBackend::load(CONFIG, &WEIGHTS[..WEIGHTS.len() / 3]).is_err());
    assert!(CpuBackend::load(b"{", WEIGHTS).is_err());
    assert!(TextTokenizer::from_json(b"[]").is_err());
}
