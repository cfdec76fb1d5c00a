//! Every model listed in public/models/manifest.json loads, matches its recorded size and
//! sha256, and runs a prompt past its training length.

#![cfg(not(target_arch = "wasm32"))]

use std::path::Path;
use std::sync::Arc;

use engine::cpu::CpuBackend;
use engine::{Backend, SchemeSpec, Session, SessionOptions, TextTokenizer, TrainedPositions};
use sha2::{Digest, Sha256};

/// Held-out-looking prose long enough to pass 2L for every shipped model.
const PROSE: &str = include_str!("../../tests/fixtures/corpus/austen.txt");

fn read_checked(models: &Path, file: &serde_json::Value) -> Vec<u8> {
    let path = file["path"].as_str().unwrap();
    let bytes = std::fs::read(models.join(path)).unwrap();
    assert_eq!(
        bytes.len() as u64,
        file["bytes"].as_u64().unwrap(),
        "{path}: size"
    );
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(digest, file["sha256"].as_str().unwrap(), "{path}: sha256");
    bytes
}

#[test]
fn manifest_models_load_and_run_past_l() {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../public/models");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(models.join("manifest.json")).unwrap()).unwrap();
    let entries = manifest["models"].as_array().unwrap();
    assert!(!entries.is_empty());
    for entry in entries {
        let files = &entry["files"];
        let model = CpuBackend::load(
            &read_checked(&models, &files["config"]),
            &read_checked(&models, &files["weights"]),
        )
        .unwrap();
        let tokenizer =
            TextTokenizer::from_json(&read_checked(&models, &files["tokenizer"])).unwrap();
        let l = entry["training_length"].as_u64().unwrap() as usize;
        let ids: Vec<u32> = tokenizer
            .encode(PROSE)
            .unwrap()
            .iter()
            .map(|p| p.id)
            .take(2 * l + 3)
            .collect();
        assert_eq!(ids.len(), 2 * l + 3, "the test prompt must pass 2L");
        // Each model runs the way it was trained: after its first token, if it had one
        // (without it the shipped DroPE's mean NLL here is 7.35, near ln V); RoPE models
        // rotate, DroPE and NoPE do not.
        let ids = model.config().with_bos(&ids);
        let scheme = match model.config().position_embedding {
            TrainedPositions::Rope => SchemeSpec::ROPE,
            TrainedPositions::None => SchemeSpec::NONE,
        };
        let mut session = Session::new(Arc::new(model), SessionOptions::new(scheme, l)).unwrap();
        let trace = pollster::block_on(session.extend(&ids)).unwrap();
        let nlls: Vec<f32> = trace.positions.iter().filter_map(|p| p.nll).collect();
        assert_eq!(nlls.len(), ids.len() - 1);
        assert!(nlls.iter().all(|x| x.is_finite() && *x >= 0.0));
        let mean = nlls.iter().sum::<f32>() / nlls.len() as f32;
        let uniform = (tokenizer.vocab_size() as f32).ln();
        if entry["trained"] == true {
            // A trained model must predict far better than a uniform guess.
            assert!(
                mean < uniform - 2.0,
                "{}: mean NLL {mean} vs ln V {uniform}",
                entry["id"]
            );
        } else {
            // Random weights predict close to uniformly: mean NLL near ln(vocab).
            assert!(
                (mean - uniform).abs() < 0.5,
                "untrained mean NLL {mean} vs ln V {uniform}"
            );
        }
    }
}
