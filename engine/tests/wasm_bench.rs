//! The browser half of `cargo xtask bench` (not a test: it only runs with the feature
//! `browser-bench`, which xtask turns on). The shipped RoPE model's forward pass on the
//! CPU path compiled to wasm and on the page's WebGPU (SwiftShader in headless Chromium),
//! plus the matmul kernel's GFLOP/s there. Lines go to the console; xtask collects them.

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
