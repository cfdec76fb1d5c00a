//! The "untrained" model: seeded random weights in the studio's format, so the page and
//! its tests have a real model file to load before trained checkpoints exist. The page
//! labels it as untrained; its predictions are noise by construction.

use std::path::Path;

use candle_core::DType;
use engine::config::ForeignFields;
use engine::init::random_weights;
use engine::{ModelConfig, TextTokenizer, TrainedPositions};

use crate::args::Args;
use crate::manifest;
use engine::manifest::ModelCard;

/// `trainer untrained --models DIR [--tokenizer tokenizer.json] [--seed N]`
pub fn run(argv: &[String]) -> Result<(), String> {
    let args = Args::parse(argv, &["models", "tokenizer", "seed"])?;
    let models = Path::new(args.required("models")?);
    let tokenizer_name: String = args.get_or("tokenizer", "tokenizer.json".to_string())?;
    let seed: u64 = args.get_or("seed", 1)?;
    let tokenizer_bytes = std::fs::read(models.join(&tokenizer_name))
        .map_err(|e| format!("{tokenizer_name}: {e}"))?;
    let tokenizer = TextTokenizer::from_json(&tokenizer_bytes).map_err(|e| e.to_string())?;
    let config = ModelConfig {
        hidden_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: Some(2),
        intermediate_size: 176,
        vocab_size: tokenizer.vocab_size(),
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        tie_word_embeddings: true,
        max_position_embeddings: 64,
        head_dim: None,
        position_embedding: TrainedPositions::Rope,
        drope_c: None,
        drope_head_c: None,
        qk_norm: false,
        bos_token_id: None,
        rope_scaling: None,
        foreign: ForeignFields::llama(),
    };
    let weights = random_weights(&config, seed, 0.02).map_err(|e| e.to_string())?;
    let dir = models.join("untrained");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let bytes = weights
        .to_safetensors(DType::F16)
        .map_err(|e| e.to_string())?;
    std::fs::write(dir.join("model.safetensors"), bytes).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("config.json"), config.to_json() + "\n").map_err(|e| e.to_string())?;
    let card = ModelCard {
        label: "Untrained (random weights)".into(),
        trained: false,
        description: format!(
            "Seeded random weights (seed {seed}) with RoPE, L = {}: a placeholder that exercises the page; its numbers mean nothing.",
            config.training_length()
        ),
        order: 100,
        tokenizer: tokenizer_name,
    };
    let card_json = serde_json::to_string_pretty(&card).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("model-card.json"), card_json + "\n").map_err(|e| e.to_string())?;
    let manifest = manifest::write(models)?;
    println!(
        "untrained: {} parameters -> {}; manifest lists {} models",
        config.parameter_count(),
        dir.display(),
        manifest.models.len()
    );
    Ok(())
}
