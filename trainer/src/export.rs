//! `trainer export`: a training run's final weights into `public/models/<name>/` as
//! `config.json` + `model.safetensors` (f16 when validation perplexity moves by at most
//! 0.5%, else f32) + `train-log.json` + `model-card.json`, then the manifest is rebuilt.

use std::path::Path;

use candle_core::DType;
use engine::{ModelConfig, ModelWeights, TextTokenizer};

use crate::args::Args;
use crate::data::{eval_windows, TokenStreams};
use crate::manifest;
use crate::train::{mean_loss, training_rotary};
use engine::manifest::ModelCard;

/// Largest relative change of validation perplexity accepted for f16 storage.
pub const F16_TOLERANCE: f64 = 0.005;

/// Loads a run's last snapshot with its config.
pub fn load_run(run: &Path) -> Result<(ModelConfig, ModelWeights), String> {
    let config_bytes =
        std::fs::read(run.join("config.json")).map_err(|e| format!("{}: {e}", run.display()))?;
    let config = ModelConfig::from_json(&config_bytes).map_err(|e| e.to_string())?;
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(run.join("state.json")).map_err(|e| format!("{}: {e}", run.display()))?,
    )
    .map_err(|e| e.to_string())?;
    let step = state["step"].as_u64().ok_or("state.json has no step")?;
    let snapshot = run.join(format!("snapshot-{step}.safetensors"));
    let bytes = std::fs::read(&snapshot).map_err(|e| format!("{}: {e}", snapshot.display()))?;
    let weights = ModelWeights::from_safetensors(&config, &bytes).map_err(|e| e.to_string())?;
    Ok((config, weights))
}

/// Chooses the storage type: f16 unless it moves validation perplexity by more than 0.5%.
/// Returns the type and the two perplexities.
pub fn choose_storage(
    config: &ModelConfig,
    weights: &ModelWeights,
    validation: &[&[u32]],
) -> Result<(DType, f64, f64), String> {
    let rotary = training_rotary(config)?;
    let full = mean_loss(config, weights, rotary.as_ref(), validation, 8)?.exp();
    let halved_bytes = weights
        .to_safetensors(DType::F16)
        .map_err(|e| e.to_string())?;
    let halved =
        ModelWeights::from_safetensors(config, &halved_bytes).map_err(|e| e.to_string())?;
    let half = mean_loss(config, &halved, rotary.as_ref(), validation, 8)?.exp();
    let storage = if ((half - full) / full).abs() <= F16_TOLERANCE {
        DType::F16
    } else {
        DType::F32
    };
    Ok((storage, full, half))
}

/// `trainer export --run DIR --models DIR --name ID --label TEXT --description TEXT
///  --corpus DIR [--tokenizer tokenizer.json] [--order N] [--log-from DIR]`
///
/// `--log-from` prepends another run's log up to this run's first step (DroPE shows the
/// RoPE steps before the drop).
pub fn run(argv: &[String]) -> Result<(), String> {
    let args = Args::parse(
        argv,
        &[
            "run",
            "models",
            "name",
            "label",
            "description",
            "corpus",
            "tokenizer",
            "order",
            "log-from",
        ],
    )?;
    let run = Path::new(args.required("run")?);
    let models = Path::new(args.required("models")?);
    let name = args.required("name")?;
    let tokenizer_name: String = args.get_or("tokenizer", "tokenizer.json".to_string())?;
    let tokenizer = TextTokenizer::from_json(
        &std::fs::read(models.join(&tokenizer_name))
            .map_err(|e| format!("{tokenizer_name}: {e}"))?,
    )
    .map_err(|e| e.to_string())?;
    let (config, weights) = load_run(run)?;
    if config.vocab_size != tokenizer.vocab_size() {
        return Err(format!(
            "the run has a vocabulary of {}, {tokenizer_name} of {}",
            config.vocab_size,
            tokenizer.vocab_size()
        ));
    }
    let streams = TokenStreams::load(Path::new(args.required("corpus")?), &tokenizer)?;
    let validation = eval_windows(
        &streams.validation,
        config.training_length() + 1,
        32,
        config.bos_token_id,
    );
    let validation: Vec<&[u32]> = validation.iter().map(Vec::as_slice).collect();
    let (storage, full, half) = choose_storage(&config, &weights, &validation)?;
    let dir = models.join(name);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let bytes = weights.to_safetensors(storage).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("model.safetensors"), bytes).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("config.json"), config.to_json() + "\n").map_err(|e| e.to_string())?;
    let mut log: serde_json::Value = serde_json::from_slice(
        &std::fs::read(run.join("train-log.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let log_from: String = args.get_or("log-from", String::new())?;
    if !log_from.is_empty() {
        let before = log_from.as_str();
        let earlier: serde_json::Value = serde_json::from_slice(
            &std::fs::read(Path::new(before).join("train-log.json")).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let first = log["drop_step"].as_f64().unwrap_or(0.0);
        // Rows are `[step, ...]` arrays, probes `{"step": ...}` objects. The earlier
        // run's rows up to the drop step are kept: its probe there (with RoPE) sits beside
        // this run's (just dropped), which shows what the drop destroys.
        let step_of = |r: &serde_json::Value| r[0].as_f64().or(r["step"].as_f64()).unwrap_or(0.0);
        for key in ["train", "validation", "probes"] {
            let mut merged: Vec<serde_json::Value> = earlier[key]
                .as_array()
                .map(|rows| {
                    rows.iter()
                        .filter(|r| step_of(r) <= first)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            merged.extend(log[key].as_array().cloned().unwrap_or_default());
            log[key] = serde_json::Value::Array(merged);
        }
    }
    std::fs::write(
        dir.join("train-log.json"),
        serde_json::to_string(&log).map_err(|e| e.to_string())? + "\n",
    )
    .map_err(|e| e.to_string())?;
    let card = ModelCard {
        label: args.get_or("label", name.to_string())?,
        trained: true,
        description: args.get_or("description", String::new())?,
        order: args.get_or("order", 10)?,
        tokenizer: tokenizer_name,
    };
    std::fs::write(
        dir.join("model-card.json"),
        serde_json::to_string_pretty(&card).map_err(|e| e.to_string())? + "\n",
    )
    .map_err(|e| e.to_string())?;
    manifest::write(models)?;
    println!(
        "export {name}: {storage:?} storage (validation perplexity f32 {full:.3}, f16 {half:.3}) -> {}",
        dir.display()
    );
    Ok(())
}
