//! The WebGPU backend against the CPU reference (see `support/conformance.rs`), natively
//! on whatever Vulkan adapter the machine has: Mesa's lavapipe in CI (installed by
//! `cargo xtask setup`). Random models cover multi-head, grouped-query, multi-query,
//! QK-norm and untied heads; the shipped models cover the real shapes. Prompts of 1,
//! L-1, L and 2L+3 tokens, every position scheme, one forward and grown in chunks.

#![cfg(all(feature = "gpu", not(target_arch = "wasm32")))]

#[path = "support/conformance.rs"]
mod conformance;

use std::path::Path;
use std::rc::Rc;

use conformance::SCHEMES;
use engine::cpu::CpuBackend;
use engine::gpu::bench::matmul;
use engine::gpu::kernels::{Kernel, LinearInput, MatVecShape, MatmulTiling};
use engine::gpu::{GpuBackend, GpuContext};
use engine::init::SplitMix64;
use engine::ModelConfig;
use pollster::block_on;

fn context() -> Rc<GpuContext> {
    let context = block_on(GpuContext::new()).unwrap_or_else(|e| {
        panic!("{e}: the conformance suite needs a Vulkan adapter (apt-get install mesa-vulkan-drivers)")
    });
    println!("adapter: {}", context.adapter);
    Rc::new(context)
}

fn tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| (rng.next_u64() % vocab as u64) as u32)
        .collect()
}

fn random_model(
    heads: usize,
    kv_heads: usize,
    tied: bool,
    qk_norm: bool,
) -> (ModelConfig, engine::ModelWeights) {
    random_model_of_width((48, 72), heads, kv_heads, tied, qk_norm)
}

/// A random model with the given (hidden, intermediate) sizes.
fn random_model_of_width(
    (hidden, intermediate): (usize, usize),
    heads: usize,
    kv_heads: usize,
    tied: bool,
    qk_norm: bool,
) -> (ModelConfig, engine::ModelWeights) {
    let head_c = conformance::per_head_c(2, heads);
    let config = ModelConfig::from_json(
        format!(
            r#"{{"hidden_size": {hidden}, "num_hidden_layers": 2, "num_attention_heads": {heads},
                "num_key_value_heads": {kv_heads}, "intermediate_size": {intermediate}, "vocab_size": 300,
                "max_position_embeddings": 16, "tie_word_embeddings": {tied}, "drope_c": 0.4,
                "drope_head_c": {head_c}, "qk_norm": {qk_norm}}}"#
        )
        .as_bytes(),
    )
    .unwrap();
    // Peaked attention (std 0.3) so position effects and masking errors show, and norm
    // weights away from 1 (Llama's init) so a norm reading the wrong weight shows too.
    let mut rng = SplitMix64::new(11);
    let weights = engine::ModelWeights::from_layout(&config, |name, shape| {
        let count: usize = shape.iter().product();
        let centre = if name.ends_with("norm.weight") {
            1.0
        } else {
            0.0
        };
        let values: Vec<f32> = (0..count)
            .map(|_| (centre + rng.next_normal() * 0.3) as f32)
            .collect();
        Ok(candle_core::Tensor::from_vec(
            values,
            shape,
            &candle_core::Device::Cpu,
        )?)
    })
    .unwrap();
    (config, weights)
}

/// Every register blocking of the tiled matmul kernel and the few-rows kernel, on
/// shapes that are not multiples of any tile (edges in M, N and K), against a product
/// computed here.
#[test]
fn every_matmul_tiling_matches_a_cpu_product() {
    let context = context();
    let mut rng = SplitMix64::new(5);
    let mut random = |len: usize| -> Vec<f32> {
        (0..len)
            .map(|_| (rng.next_u64() % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    };
    for tiling in [MatmulTiling::SMALL, MatmulTiling::LARGE] {
        assert!(
            tiling.workgroup_bytes() <= 16 * 1024,
            "{} must fit WebGPU's baseline workgroup memory",
            tiling.name()
        );
    }
    let kernels = MatmulTiling::ALL
        .into_iter()
        .filter(|t| t.fits(&context.limits))
        .map(Kernel::Matmul)
        .chain(MatVecShape::ALL.map(|shape| Kernel::MatVec(LinearInput::Plain, shape)));
    // K = 130 and 200: the 32-lane matvec's four-step loop runs (K > 96), for some lanes
    // or all; the smaller K only reach its one-step tail.
    for (m, n, k) in [
        (1, 7, 3),
        (3, 45, 70),
        (2, 37, 130),
        (1, 9, 200),
        (130, 70, 19),
        (257, 131, 36),
    ] {
        let (x, w) = (random(m * k), random(n * k));
        let expected: Vec<f32> = (0..m * n)
            .map(|at| {
                let (row, col) = (at / n, at % n);
                (0..k).map(|i| x[row * k + i] * w[col * k + i]).sum()
            })
            .collect();
        for kernel in kernels.clone() {
            let got = block_on(matmul(&context, kernel, &x, &w, (m, n, k))).unwrap();
            let worst = expected
                .iter()
                .zip(&got)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(
                worst < 1e-4,
                "{kernel:?} on {m}x{n}x{k}: largest difference {worst}"
            );
        }
    }
}

#[test]
fn random_models_match_the_cpu_path() {
    let context = context();
    for (heads, kv_heads, tied, qk_norm) in [
        (4, 4, true, false),
        (4, 2, false, false),
        (6, 1, true, false),
        (4, 2, true, true),
    ] {
        let (config, weights) = random_model(heads, kv_heads, tied, qk_norm);
        let name = format!("random {heads}q/{kv_heads}kv tied={tied} qk_norm={qk_norm}");
        let cpu = CpuBackend::from_weights(config.clone(), weights.clone()).unwrap();
        let gpu = GpuBackend::new(Rc::clone(&context), config.clone(), &weights).unwrap();
        let l = config.training_length();
        for len in [1, l - 1, l, 2 * l + 3] {
            let prompt = tokens(len, config.vocab_size, len as u64);
            block_on(conformance::check_model(
                &name, &cpu, &gpu, &prompt, SCHEMES, true,
            ))
            .unwrap();
        }
    }
}

/// The few-rows kernel in both of its shapes (the adapter picks one; lavapipe and
/// SwiftShader would never run the other): prompts grown a few tokens at a time go
/// through it for every linear layer, with each input (plain, normed, SwiGLU), at
/// widths past 96 (where the 32-lane shape's four-step loop runs) and below.
#[test]
fn both_matvec_shapes_match_the_cpu_path() {
    let context = context();
    for shape in MatVecShape::ALL {
        context.set_matvec_shape(shape);
        for (width, qk_norm) in [((128, 200), false), ((48, 72), true)] {
            let (heads, kv_heads, tied) = (4, 2, !qk_norm);
            let (config, weights) = random_model_of_width(width, heads, kv_heads, tied, qk_norm);
            let name = format!("{shape:?}: random {width:?} qk_norm={qk_norm}");
            let cpu = CpuBackend::from_weights(config.clone(), weights.clone()).unwrap();
            let gpu = GpuBackend::new(Rc::clone(&context), config.clone(), &weights).unwrap();
            for len in [1, config.training_length() + 3] {
                let prompt = tokens(len, config.vocab_size, 40 + len as u64);
                block_on(conformance::check_model(
                    &name,
                    &cpu,
                    &gpu,
                    &prompt,
                    &["rope", "none:4+beta=0.412"],
                    true,
                ))
                .unwrap();
            }
        }
    }
}

/// Matrices larger than one binding may hold (a large vocabulary's embedding table)
/// go up in blocks of rows: here every matrix of small models is split into several
/// (a block of 40 rows of the 48-wide ones), and the outputs still match the CPU path,
/// through the few-rows and the tiled kernels, with the QK-norm and untied heads.
#[test]
fn matrices_split_into_row_blocks_match_the_cpu_path() {
    let context = context();
    context.set_weight_block_bytes(Some(40 * 48 * 4));
    for (tied, qk_norm) in [(true, false), (false, true)] {
        let (config, weights) = random_model(4, 2, tied, qk_norm);
        let name = format!("split blocks, tied={tied} qk_norm={qk_norm}");
        let cpu = CpuBackend::from_weights(config.clone(), weights.clone()).unwrap();
        let gpu = GpuBackend::new(Rc::clone(&context), config.clone(), &weights).unwrap();
        // The embedding, the head and each layer's four products.
        assert_eq!(
            gpu.split_matrices(),
            2 + 4 * config.num_hidden_layers,
            "{name}"
        );
        for len in [1, 2 * config.training_length() + 3] {
            let prompt = tokens(len, config.vocab_size, 60 + len as u64);
            block_on(conformance::check_model(
                &name,
                &cpu,
                &gpu,
                &prompt,
                &["rope", "none:4+beta=0.412"],
                true,
            ))
            .unwrap();
        }
    }
    context.set_weight_block_bytes(None);
}

#[test]
fn shipped_models_match_the_cpu_path() {
    let context = context();
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../public/models");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(models.join("manifest.json")).unwrap()).unwrap();
    for entry in manifest["models"].as_array().unwrap() {
        let name = entry["id"].as_str().unwrap_or("?");
        let read = |key: &str| {
            std::fs::read(models.join(entry["files"][key]["path"].as_str().unwrap())).unwrap()
        };
        let (config_json, weights) = (read("config"), read("weights"));
        let cpu = CpuBackend::load(&config_json, &weights).unwrap();
        let gpu = GpuBackend::load(Rc::clone(&context), &config_json, &weights).unwrap();
        let config = engine::Backend::config(&cpu).clone();
        let l = config.training_length();
        // Every scheme at 2L+3 (past L, where the schemes differ); the shorter prompts
        // with the model's own positions, grown in chunks. (The random models above run
        // the full cross product; this keeps the suite inside CI's time.)
        let own = match config.position_embedding {
            engine::TrainedPositions::Rope => "rope",
            engine::TrainedPositions::None => "none",
        };
        // The per-head beta only for a model with fitted per-head coefficients.
        let past_l: Vec<&str> = SCHEMES
            .iter()
            .copied()
            .filter(|s| config.drope_head_c.is_some() || !s.ends_with("=heads"))
            .collect();
        for len in [1, l - 1, l, 2 * l + 3] {
            let prompt = tokens(len, config.vocab_size, 100 + len as u64);
            let (schemes, grown) = if len > l {
                (&past_l[..], false)
            } else {
                (&[own][..], true)
            };
            block_on(conformance::check_model(
                name, &cpu, &gpu, &prompt, schemes, grown,
            ))
            .unwrap();
        }
    }
}

/// Extending a prompt one token at a time binds the same buffers every pass (the pool's
/// order, whole-buffer scratch bindings, fixed parameter offsets), so after the first
/// such pass no bind group is created: with and without QK-norm (the two q/k/v paths),
/// with and without attention captured.
#[test]
fn one_token_passes_reuse_every_bind_group() {
    let context = context();
    for qk_norm in [false, true] {
        let (config, weights) = random_model(4, 2, true, qk_norm);
        let gpu = GpuBackend::new(Rc::clone(&context), config.clone(), &weights).unwrap();
        let scheme = "rope".parse::<engine::SchemeSpec>().unwrap();
        let prompt = tokens(40, config.vocab_size, 5);
        for capture in [
            engine::Capture::default(),
            conformance::capture_all(&config, 3),
        ] {
            let what = format!("qk_norm={qk_norm}, {} heads captured", capture.heads.len());
            let chunks = [20, 1, 1, 1, 1];
            block_on(conformance::run(
                &gpu,
                &prompt[..24],
                &chunks,
                &scheme,
                &capture,
            ))
            .unwrap();
            let stats = gpu.last_pass_bind_groups();
            assert!(stats.reused > 0, "{what}: {stats:?}");
            assert_eq!(stats.created, 0, "{what}: {stats:?}");
        }
    }
}

#[test]
fn gpu_errors_are_values() {
    let context = context();
    let (config, weights) = random_model(4, 2, true, false);
    let gpu = GpuBackend::new(Rc::clone(&context), config.clone(), &weights).unwrap();
    let scheme = "rope".parse::<engine::SchemeSpec>().unwrap();
    let bad_head = engine::Capture {
        heads: vec![(0, 9)],
        span: None,
    };
    assert!(block_on(conformance::run(&gpu, &[1, 2], &[2], &scheme, &bad_head)).is_err());
    let none = engine::Capture::default();
    assert!(
        block_on(conformance::run(&gpu, &[1, 300], &[2], &scheme, &none)).is_err(),
        "id outside the vocabulary"
    );
}
