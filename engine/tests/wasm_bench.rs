//! The browser half of `cargo xtask bench` (not a test: it only runs with the feature
//! `browser-bench`, which xtask turns on). The shipped RoPE model's forward pass on the
//! CPU path compiled to wasm and on the page's WebGPU (SwiftShader in headless Chromium),
//! plus the matmul kernel's GFLOP/s there; and a model of SmolLM-135M's shape (issue 18:
//! what opening your own model costs). Lines go to the console; xtask collects them.

#![cfg(all(target_arch = "wasm32", feature = "browser-bench"))]

#[path = "support/bench.rs"]
mod bench;

use std::rc::Rc;

use engine::cpu::CpuBackend;
use engine::gpu::bench::MatmulBench;
use engine::gpu::{GpuBackend, GpuContext};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const CONFIG: &[u8] = include_bytes!("../../public/models/rope/config.json");
const WEIGHTS: &[u8] = include_bytes!("../../public/models/rope/model.safetensors");
const LENGTHS: &[usize] = &[256, 512, 1024, 2048];

fn now_ms() -> f64 {
    js_sys::Date::now()
}

#[wasm_bindgen_test]
async fn browser_benchmark() {
    let cpu = CpuBackend::load(CONFIG, WEIGHTS).unwrap();
    // xtask also builds this without SIMD (the product's wasm has it): that build
    // measures the CPU path only, for the side-by-side ratio.
    let simd = cfg!(target_feature = "simd128");
    let label = match simd {
        true => "CPU wasm (Chromium)",
        false => "CPU wasm without SIMD (Chromium)",
    };
    bench::forward_suite(label, &cpu, LENGTHS, 1, &now_ms)
        .await
        .unwrap();
    if !simd {
        return;
    }
    let context = Rc::new(GpuContext::new().await.expect("WebGPU adapter"));
    let label = "WebGPU wasm (Chromium)";
    bench::report("adapter_browser", &context.adapter, "-", 0.0);
    let gpu = GpuBackend::load(Rc::clone(&context), CONFIG, WEIGHTS).unwrap();
    bench::forward_suite(label, &gpu, LENGTHS, 1, &now_ms)
        .await
        .unwrap();
    for (m, n, k) in [(2048, 1024, 192), (1024, 1024, 1024)] {
        let matmul = MatmulBench::new(&context, m, n, k);
        matmul.run(1).await.unwrap();
        let start = now_ms();
        matmul.run(2).await.unwrap();
        let seconds = (now_ms() - start) / 1e3 / 2.0;
        let flops = 2.0 * (m * n * k) as f64;
        bench::report(
            "matmul_gflops",
            label,
            &format!("{m}x{n}x{k}"),
            flops / seconds / 1e9,
        );
    }
}

/// SmolLM-135M's configuration (random weights: the time and memory depend on the shape
/// only).
const SMOLLM_135M: &str = r#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 576,
    "intermediate_size": 1536, "num_attention_heads": 9, "num_key_value_heads": 3,
    "num_hidden_layers": 30, "vocab_size": 49152, "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": true}"#;

/// The WebAssembly memory of this module, in MB: it only grows, so this is its peak.
fn wasm_memory_mb() -> f64 {
    use wasm_bindgen::JsCast;
    let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
    memory
        .buffer()
        .unchecked_into::<js_sys::ArrayBuffer>()
        .byte_length() as f64
        / 1e6
}

#[wasm_bindgen_test]
async fn smollm_135m_shape() {
    // The build without SIMD measures the shipped model's CPU path only.
    if !cfg!(target_feature = "simd128") {
        return;
    }
    let label = "SmolLM-135M shape";
    let config = engine::ModelConfig::from_json(SMOLLM_135M.as_bytes()).unwrap();
    let start = now_ms();
    // Timing and memory depend on the shape only: the engine's own seeded init.
    let weights = engine::init::random_weights(&config, 135, 0.02).unwrap();
    bench::report(
        "open_135m",
        label,
        "random weights made (ms)",
        now_ms() - start,
    );
    let context = Rc::new(GpuContext::new().await.expect("WebGPU adapter"));
    let start = now_ms();
    let gpu = GpuBackend::upload(Rc::clone(&context), config.clone(), &weights, || {
        std::future::ready(())
    })
    .await
    .unwrap();
    bench::report(
        "open_135m",
        label,
        "upload to WebGPU (ms)",
        now_ms() - start,
    );
    // A 512-token pass on SwiftShader would take minutes (about 1 GFLOP/s): a short
    // prompt shows what the page's WebGPU costs per token.
    forward_135m("WebGPU wasm (Chromium)", &gpu, &[64]).await;
    drop(gpu);
    let cpu = CpuBackend::from_weights(config, weights).unwrap();
    forward_135m("CPU wasm (Chromium)", &cpu, &[64, 512, 2048]).await;
    bench::report(
        "open_135m",
        label,
        "peak wasm memory (MB)",
        wasm_memory_mb(),
    );
}

/// Full passes of the SmolLM-shaped model after a 16-token warm-up (pipelines compile on
/// first use), in a table of their own.
async fn forward_135m<B: engine::Backend>(label: &str, backend: &B, lengths: &[usize]) {
    bench::full_forward_ms(backend, 16, 1, &now_ms)
        .await
        .unwrap();
    for &n in lengths {
        let ms = bench::full_forward_ms(backend, n, 1, &now_ms)
            .await
            .unwrap();
        bench::report("forward_135m", label, &format!("T={n}"), ms);
    }
}
