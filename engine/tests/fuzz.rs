//! The fuzz targets of the engine's parsers: everything a visitor's model files reach
//! (safetensors headers and data, the shard index, `config.json`, `tokenizer.json`).
//! Each must return an error on bad input, never panic.
//!
//! `replay_*` run on every `cargo xtask test`: each target over its saved corpus in
//! `fuzz/corpus/<target>/` (seeds, and every input that ever made a parser panic).
//! `fuzz_for_a_while` (ignored; `cargo xtask fuzz [SECONDS]` runs it) mutates them for
//! `DROPE_FUZZ_SECONDS` per target and saves what it finds there.

#![cfg(not(target_arch = "wasm32"))]

use std::path::PathBuf;

use engine::checkpoint::{CheckpointPlan, SafetensorsHeader, ShardIndex};
use engine::fuzz::{budget_from_env, corpus_inputs, fuzz, replay};
use engine::{ModelConfig, ModelWeights, SchemeSpec, TextTokenizer};

/// The config the safetensors seed was written for (one layer of width 8, untied).
const TINY_CONFIG: &str = r#"{"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
    "intermediate_size": 8, "vocab_size": 8, "max_position_embeddings": 4}"#;

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// A safetensors file as the studio reads one: its header from the first bytes, the plan
/// against a config, then the whole load.
fn safetensors(bytes: &[u8]) {
    let len = bytes.len() as u64;
    if let Ok(header) = SafetensorsHeader::parse(bytes, len) {
        let _ = CheckpointPlan::check(
            TINY_CONFIG.as_bytes(),
            None,
            &[("model.safetensors".into(), header)],
        );
    }
    let config = ModelConfig::from_json(TINY_CONFIG.as_bytes()).unwrap();
    let _ = ModelWeights::from_safetensors(&config, bytes);
}

fn shard_index(bytes: &[u8]) {
    if let Ok(index) = ShardIndex::parse(bytes) {
        let _ = index.files();
    }
}

/// A config, and what the studio computes from one before loading any weight.
fn config(bytes: &[u8]) {
    if let Ok(config) = ModelConfig::from_json(bytes) {
        let _ = config.parameter_count();
        let _ = config.to_json();
        let scheme = config.trained_scheme();
        let _ = config.apply_scheme(&scheme, 8 * config.training_length());
        let _ = config.apply_scheme(&SchemeSpec::DROPE_DYNAMIC, config.training_length());
    }
}

fn tokenizer(bytes: &[u8]) {
    if let Ok(tokenizer) = TextTokenizer::from_json(bytes) {
        let _ = tokenizer.vocab_size();
        if let Ok(pieces) = tokenizer.encode("The magic number for Ada is 4417203. Ünïcödé 🙂")
        {
            let ids: Vec<u32> = pieces.iter().map(|p| p.id).collect();
            let _ = tokenizer.decode(&ids);
        }
    }
}

/// A fuzz target: a parser run on bytes, which must not panic.
type Target = fn(&[u8]);

const TARGETS: &[(&str, Target)] = &[
    ("safetensors", safetensors),
    ("shard-index", shard_index),
    ("config", config),
    ("tokenizer", tokenizer),
];

fn replay_target(name: &str, target: Target) {
    assert!(
        !corpus_inputs(&corpus(name)).is_empty(),
        "fuzz/corpus/{name} holds no seed"
    );
    let failed = replay(&corpus(name), target);
    assert!(failed.is_empty(), "{name} panics on {failed:?}");
}

#[test]
fn replay_safetensors() {
    replay_target("safetensors", safetensors);
}

#[test]
fn replay_shard_index() {
    replay_target("shard-index", shard_index);
}

#[test]
fn replay_config() {
    replay_target("config", config);
}

#[test]
fn replay_tokenizer() {
    replay_target("tokenizer", tokenizer);
}

#[test]
#[ignore = "long: run by `cargo xtask fuzz`"]
fn fuzz_for_a_while() {
    let (budget, seed) = budget_from_env();
    let mut found = Vec::new();
    for (name, target) in TARGETS {
        let report = fuzz(&corpus(name), &[], budget, seed, target).unwrap();
        println!(
            "fuzz {name}: {} inputs in {budget:?}, {} panicked, at {} places: {:?}",
            report.inputs,
            report.panics,
            report.crashes.len(),
            report.crashes
        );
        found.extend(report.crashes);
    }
    assert!(found.is_empty(), "inputs that panic, saved: {found:?}");
}
