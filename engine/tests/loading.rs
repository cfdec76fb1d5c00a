//! Loading models from bytes: every storage type, and clear errors on bad files.

#![cfg(not(target_arch = "wasm32"))]

use std::sync::Arc;

use candle_core::DType;
use engine::checkpoint::{CheckpointPlan, SafetensorsHeader, ShardIndex, TensorReader};
use engine::cpu::CpuBackend;
use engine::init::random_weights;
use engine::{EngineError, ModelConfig, ModelWeights, SchemeSpec, Session, SessionOptions};

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

/// `CONFIG` as Hugging Face tooling writes it, with the architecture named.
fn hf_config() -> String {
    CONFIG.replace(
        "\"hidden_size\"",
        "\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \
         \"torch_dtype\": \"bfloat16\", \"hidden_act\": \"silu\", \"hidden_size\"",
    )
}

/// The random model's tensors in bf16, split into two shards (the first `split` tensors
/// and the rest), with the index naming each tensor's shard.
fn sharded(split: usize) -> (Vec<(String, Vec<u8>)>, String) {
    let config = ModelConfig::from_json(CONFIG.as_bytes()).unwrap();
    let weights = random_weights(&config, 11, 0.2).unwrap();
    let named: Vec<(String, candle_core::Tensor)> = weights
        .named_tensors()
        .into_iter()
        .map(|(n, t)| (n, t.to_dtype(DType::BF16).unwrap()))
        .collect();
    let mut map = serde_json::Map::new();
    let mut shards = Vec::new();
    for (k, part) in [&named[..split], &named[split..]].into_iter().enumerate() {
        let file = format!("model-0000{}-of-00002.safetensors", k + 1);
        for (name, _) in part {
            map.insert(name.clone(), file.clone().into());
        }
        let bytes =
            safetensors::serialize(part.iter().map(|(n, t)| (n.as_str(), t)), None).unwrap();
        shards.push((file, bytes));
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": map});
    (shards, index.to_string())
}

/// Each file's header, read from its first bytes only.
fn headers(files: &[(String, Vec<u8>)]) -> Vec<(String, SafetensorsHeader)> {
    files
        .iter()
        .map(|(name, bytes)| {
            let len = bytes.len() as u64;
            let needed = SafetensorsHeader::bytes_needed(&bytes[..8], len).unwrap();
            let header = SafetensorsHeader::parse(&bytes[..needed as usize], len).unwrap();
            (name.clone(), header)
        })
        .collect()
}

#[test]
fn a_sharded_bf16_checkpoint_is_checked_from_its_headers_then_loaded() {
    let config_json = hf_config();
    let (shards, index_json) = sharded(7);
    let index = ShardIndex::parse(index_json.as_bytes()).unwrap();
    let plan =
        CheckpointPlan::check(config_json.as_bytes(), Some(&index), &headers(&shards)).unwrap();
    assert_eq!(plan.files(), index.files());
    assert_eq!(plan.f32_bytes, 4 * plan.config.parameter_count() as u64);
    assert_eq!(
        plan.file_bytes,
        shards.iter().map(|(_, b)| b.len() as u64).sum::<u64>()
    );
    // The shards load to the same model as one bf16 file.
    let parts: Vec<&[u8]> = shards.iter().map(|(_, b)| b.as_slice()).collect();
    let weights = ModelWeights::from_shards(&plan.config, &parts).unwrap();
    let from_shards = nlls(CpuBackend::from_weights(plan.config.clone(), weights).unwrap());
    let whole = nlls(CpuBackend::load(config_json.as_bytes(), &saved(DType::BF16)).unwrap());
    assert_eq!(from_shards, whole);
}

#[test]
fn a_checkpoint_with_a_problem_is_refused_by_name_before_loading() {
    let config_json = hf_config();
    let (shards, index_json) = sharded(7);
    let index = ShardIndex::parse(index_json.as_bytes()).unwrap();
    let check = |config: &str, index: Option<&ShardIndex>, files: &[(String, Vec<u8>)]| {
        CheckpointPlan::check(config.as_bytes(), index, &headers(files))
            .unwrap_err()
            .to_string()
    };
    // A shard not given.
    let e = check(&config_json, Some(&index), &shards[..1]);
    assert!(e.contains("model-00002-of-00002.safetensors"), "{e}");
    assert!(e.contains("which was not given"), "{e}");
    // A tensor the index does not list.
    let mut partial = index.clone();
    partial.weight_map.remove("model.norm.weight");
    let e = check(&config_json, Some(&partial), &shards);
    assert!(e.contains("`model.norm.weight` is not in"), "{e}");
    // Shapes that disagree with the config: named, the first few and a count.
    let wider = config_json.replace("\"intermediate_size\": 48", "\"intermediate_size\": 64");
    let e = check(&wider, Some(&index), &shards);
    assert!(e.contains("gate_proj.weight` has shape [48, 32]"), "{e}");
    assert!(e.contains("more"), "{e}");
    // Another architecture, before any header is consulted.
    let gpt = config_json.replace("LlamaForCausalLM", "GPTNeoXForCausalLM");
    let e = check(&gpt, Some(&index), &shards);
    assert!(e.contains("GPTNeoXForCausalLM is not supported"), "{e}");
    // One file without an index: every tensor must be in it.
    let e = check(&config_json, None, &shards[..1]);
    assert!(e.contains("missing"), "{e}");
}

#[test]
fn weights_are_read_one_tensor_at_a_time() {
    // The reader asks for each tensor's bytes alone, never a whole file, and builds the
    // same model as loading the files whole.
    let (files, _) = sharded(5);
    let headers: Vec<SafetensorsHeader> = headers(&files).into_iter().map(|(_, h)| h).collect();
    let largest = headers
        .iter()
        .flat_map(|h| h.tensors.values())
        .map(|t| t.offsets.1 - t.offsets.0)
        .max()
        .unwrap();
    let mut biggest_read = 0;
    let mut reads = 0;
    let mut reader = TensorReader::new(headers, |file, start, end| {
        biggest_read = biggest_read.max(end - start);
        reads += 1;
        Ok(files[file].1[start as usize..end as usize].to_vec())
    });
    let config = ModelConfig::from_json(CONFIG.as_bytes()).unwrap();
    let weights = ModelWeights::from_reader(&config, &mut reader).unwrap();
    drop(reader);
    assert_eq!(reads, engine::weights::tensor_layout(&config).len());
    assert_eq!(biggest_read, largest);
    let whole: Vec<&[u8]> = files.iter().map(|(_, b)| b.as_slice()).collect();
    assert_eq!(
        nlls(CpuBackend::from_weights(config.clone(), weights).unwrap()),
        nlls(CpuBackend::load_shards(CONFIG.as_bytes(), &whole).unwrap())
    );
    // A short read is an error, not a shorter tensor.
    let config_headers: Vec<SafetensorsHeader> =
        self::headers(&files).into_iter().map(|(_, h)| h).collect();
    let mut short = TensorReader::new(config_headers, |_, _, _| Ok(vec![0u8; 2]));
    let err = ModelWeights::from_reader(&config, &mut short).unwrap_err();
    assert!(err.to_string().contains("read 2 of its"), "{err}");
}
