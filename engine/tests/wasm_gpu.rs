//! The WebGPU backend inside the browser (headless Chromium's WebGPU on SwiftShader):
//! a small part of the conformance suite (`support/conformance.rs`), kept small because
//! SwiftShader computes at about 1 GFLOP/s. The full suite runs natively on lavapipe.

#![cfg(all(target_arch = "wasm32", feature = "gpu"))]

#[path = "support/conformance.rs"]
mod conformance;

use std::rc::Rc;

use engine::cpu::CpuBackend;
use engine::gpu::kernels::MatVecShape;
use engine::gpu::{GpuBackend, GpuContext};
use engine::init::{random_weights, SplitMix64};
use engine::ModelConfig;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const CONFIG: &[u8] = include_bytes!("../../public/models/untrained/config.json");
const WEIGHTS: &[u8] = include_bytes!("../../public/models/untrained/model.safetensors");

fn tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| (rng.next_u64() % vocab as u64) as u32)
        .collect()
}

async fn context() -> Rc<GpuContext> {
    // CI's Chromium runs with --enable-unsafe-webgpu: an adapter must exist there.
    Rc::new(
        GpuContext::new()
            .await
            .expect("WebGPU adapter in headless Chromium"),
    )
}

#[wasm_bindgen_test]
async fn grouped_query_model_matches_the_cpu_path_on_webgpu() {
    let context = context().await;
    let config = ModelConfig::from_json(
        format!(
            r#"{{"hidden_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "intermediate_size": 72, "vocab_size": 300,
            "max_position_embeddings": 16, "tie_word_embeddings": true, "drope_c": 0.4,
            "drope_head_c": {}}}"#,
            conformance::per_head_c(2, 4)
        )
        .as_bytes(),
    )
    .unwrap();
    let weights = random_weights(&config, 11, 0.3).unwrap();
    let cpu = CpuBackend::from_weights(config.clone(), weights.clone()).unwrap();
    let gpu = GpuBackend::new(context, config.clone(), &weights).unwrap();
    for len in [1, 15, 16, 35] {
        let prompt = tokens(len, 300, len as u64);
        conformance::check_model(
            "random GQA",
            &cpu,
            &gpu,
            &prompt,
            conformance::SCHEMES,
            true,
        )
        .await
        .unwrap();
    }
}

/// The browser reports SwiftShader as a fallback (CPU) adapter, so the few-rows kernel
/// walks rows alone there; the shape GPUs get compiles (Tint) and agrees too.
#[wasm_bindgen_test]
async fn both_matvec_shapes_match_the_cpu_path_on_webgpu() {
    let context = context().await;
    assert_eq!(
        context.matvec_shape(),
        MatVecShape::Alone,
        "{}",
        context.adapter
    );
    let config = ModelConfig::from_json(
        br#"{"hidden_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "intermediate_size": 72, "vocab_size": 300,
            "max_position_embeddings": 16, "tie_word_embeddings": false}"#,
    )
    .unwrap();
    let weights = random_weights(&config, 12, 0.3).unwrap();
    let cpu = CpuBackend::from_weights(config.clone(), weights.clone()).unwrap();
    let gpu = GpuBackend::new(Rc::clone(&context), config.clone(), &weights).unwrap();
    for shape in MatVecShape::ALL {
        context.set_matvec_shape(shape);
        let prompt = tokens(19, 300, 19);
        conformance::check_model(&format!("{shape:?}"), &cpu, &gpu, &prompt, &["rope"], true)
            .await
            .unwrap();
    }
}

#[wasm_bindgen_test]
async fn shipped_model_matches_the_cpu_path_on_webgpu() {
    let context = context().await;
    let cpu = CpuBackend::load(CONFIG, WEIGHTS).unwrap();
    let gpu = GpuBackend::load(context, CONFIG, WEIGHTS).unwrap();
    let l = engine::Backend::config(&cpu).training_length();
    let prompt = tokens(2 * l + 3, engine::Backend::config(&cpu).vocab_size, 5);
    conformance::check_model(
        "untrained",
        &cpu,
        &gpu,
        &prompt,
        &["rope", "yarn:dyn", "none:dyn+beta=0.412"],
        true,
    )
    .await
    .unwrap();
}
