//! Loading models from bytes: every storage type, and clear errors on bad files.

#![cfg(not(target_arch = "wasm32"))]

use std::sync::Arc;

use candle_core::DType;
use engine::cpu::CpuBackend;
use engine::init::random_weights;
use engine::{EngineError, ModelConfig, SchemeSpec, Session, SessionOptions};

const CONFIG: &str = r#"{"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "intermediate_size": 48, "vocab_size": 40,
    "max_position_embeddings": 16, "tie_word_embeddings": false}"#;

fn saved(storage: DType) -> Vec<u8> {
    let config = ModelConfig::from_json(CONFIG.as_bytes()).unwrap();
    random_weights(&config, 11, 0.2)
        .unwrap()
        .to_safetensors(storage)
        .unwrap()
}

fn nlls(model: CpuBackend) -> Vec<f32> {
    let options = SessionOptions::new(SchemeSpec::ROPE, 16);
    let mut session = Session::new(Arc::new(model), options).unwrap();
    let trace = pollster::block_on(session.extend(&[1, 5, 9, 3, 22, 7, 7, 30])).unwrap();
    trace.positions.iter().filter_map(|p| p.nll).collect()
}

#[test]
fn f32_f16_and_bf16_storage_all_load_and_agree() {
    let reference = nlls(CpuBackend::load(CONFIG.as_bytes(), &saved(DType::F32)).unwrap());
    for (storage, tol) in [(DType::F16, 2e-3), (DType::BF16, 2e-2)] {
        let other = nlls(CpuBackend::load(CONFIG.as_bytes(), &saved(storage)).unwrap());
        for (a, b) in reference.iter().zip(&other) {
            assert!(
                (a - b).abs() < tol * (1.0 + a.abs()),
                "{storage:?}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn truncated_or_garbage_files_are_errors() {
    let bytes = saved(DType::F32);
    for cut in [0, 4, 8, 20, bytes.len() / 2, bytes.len() - 1] {
        let err = CpuBackend::load(CONFIG.as_bytes(), &bytes[..cut])
            .err()
            .expect("must fail");
        assert!(
            matches!(err, EngineError::Weights(_)),
            "cut at {cut}: {err}"
        );
    }
    assert!(CpuBackend::load(CONFIG.as_bytes(), b"definitely not safetensors").is_err());
    let mut corrupt_header = bytes.clone();
    corrupt_header[10] = b'}';
    assert!(CpuBackend::load(CONFIG.as_bytes(), &corrupt_header).is_err());
}

#[test]
fn non_finite_weights_are_errors() {
    let mut bytes = saved(DType::F32);
    // The data section ends with the last tensor's last f32.
    let end = bytes.len();
    bytes[end - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    let err = CpuBackend::load(CONFIG.as_bytes(), &bytes)
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("1 NaN or infinite"), "{err}");
}

#[test]
fn shapes_that_disagree_with_the_config_are_errors() {
    let bytes = saved(DType::F32);
    let wider = CONFIG.replace("\"intermediate_size\": 48", "\"intermediate_size\": 64");
    let err = CpuBackend::load(wider.as_bytes(), &bytes)
        .err()
        .expect("must fail");
    assert!(matches!(err, EngineError::Shape { .. }), "{err}");
    assert!(err.to_string().contains("gate_proj"), "{err}");
    // The file has an lm_head, but a tied config ignores it and loads fine; the reverse
    // (untied config, file without lm_head) is a missing tensor.
    let tied = CONFIG.replace(
        "\"tie_word_embeddings\": false",
        "\"tie_word_embeddings\": true",
    );
    assert!(CpuBackend::load(tied.as_bytes(), &bytes).is_ok());
    let config = ModelConfig::from_json(tied.as_bytes()).unwrap();
    let tied_bytes = random_weights(&config, 1, 0.2)
        .unwrap()
        .to_safetensors(DType::F32)
        .unwrap();
    let err = CpuBackend::load(CONFIG.as_bytes(), &tied_bytes)
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("lm_head"), "{err}");
}
