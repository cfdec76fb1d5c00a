//! `trainer probe`: the needle probe ([`crate::probes::needle_probe`]) on the snapshots a
//! training run saved, written into the probe rows of its `train-log.json`, so the
//! studio's training story shows needle accuracy over training beside the copying curves.
//!
//! ```text
//! trainer probe --run runs/NAME --corpus DIR --tokenizer FILE [--trials 24]
//!               [--bos-from S] [--init-from SNAPSHOT]
//! ```
//!
//! - Every `snapshot-<step>.safetensors` of the run is loaded with its `config.json` and
//!   answers the same `--trials` documents of L tokens from the validation split. The
//!   counts go into the probe row of that step (the last one, if there are two), or into a
//!   new row with only the needle probe, kept in step order. Rerunning overwrites them.
//! - `--bos-from S`: as in `trainer train`, the run's sequences started with the config's
//!   first token from step S on; snapshots up to step S are probed without it, like the
//!   training probes of those steps. Default 0 (`--bos true`: from the first step).
//! - `--init-from SNAPSHOT`: the snapshot the run was initialised from (`trainer train
//!   --init-from`), probed under this run's config at its drop step: for DroPE the model
//!   right after RoPE is removed, before any recalibration (the training logged its other
//!   probes in that row).
//!
//! Run it once training has finished: a training process rewrites its log from memory.

use std::path::{Path, PathBuf};

use engine::{ModelConfig, TextTokenizer};
use serde_json::{json, Value};

use crate::args::Args;
use crate::data::{FirstToken, TokenStreams};
use crate::eval::EvalModel;
use crate::needles::NeedleMaker;
use crate::needles::NeedleTally;
use crate::probes::{needle_probe, NEEDLE_TRIALS};
use crate::train::weights_from_file;

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The run's `snapshot-<step>.safetensors` files, by step.
pub fn snapshots(run: &Path) -> Result<Vec<(usize, PathBuf)>, String> {
    let entries = std::fs::read_dir(run).map_err(|e| format!("{}: {e}", run.display()))?;
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", run.display()))?.path();
        let step = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("snapshot-")?.strip_suffix(".safetensors"))
            .and_then(|s| s.parse::<usize>().ok());
        if let Some(step) = step {
            found.push((step, path));
        }
    }
    found.sort();
    Ok(found)
}

/// Writes `needles` into the probe row of `step` in a `train-log.json` value (the last
/// row at that step), or inserts a row with only them before the first later row.
pub fn set_needles(log: &mut Value, step: usize, needles: NeedleTally) -> Result<(), String> {
    let rows = log
        .as_object_mut()
        .ok_or("the train log is not a JSON object")?
        .entry("probes")
        .or_insert_with(|| Value::Array(Vec::new()))
        .as_array_mut()
        .ok_or("the train log's `probes` is not a list")?;
    let value = serde_json::to_value(needles).map_err(|e| e.to_string())?;
    let at_step = |r: &Value| r["step"].as_f64() == Some(step as f64);
    match rows.iter_mut().rev().find(|r| at_step(r)) {
        Some(row) => {
            row.as_object_mut()
                .ok_or(format!("the probe row of step {step} is not an object"))?
                .insert("needles".into(), value);
        }
        None => {
            let later = rows
                .iter()
                .position(|r| r["step"].as_f64().is_some_and(|s| s > step as f64))
                .unwrap_or(rows.len());
            rows.insert(later, json!({ "step": step, "needles": value }));
        }
    }
    Ok(())
}

fn write_log(path: &Path, log: &Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(log).map_err(|e| e.to_string())? + "\n";
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// `trainer probe ...` (see the module docs).
pub fn run(argv: &[String]) -> Result<(), String> {
    let args = Args::parse(
        argv,
        &[
            "run",
            "corpus",
            "tokenizer",
            "trials",
            "bos-from",
            "init-from",
        ],
    )?;
    let run = PathBuf::from(args.required("run")?);
    if !run.is_dir() {
        return Err(format!("run folder {} not found", run.display()));
    }
    let corpus = args.required("corpus")?;
    let tokenizer_path = args.required("tokenizer")?;
    let trials: usize = args.get_or("trials", NEEDLE_TRIALS)?;
    if trials == 0 {
        return Err("--trials must be at least 1".into());
    }
    let bos_from: usize = args.get_or("bos-from", 0)?;
    let init_from: String = args.get_or("init-from", String::new())?;

    let config_path = run.join("config.json");
    let config = ModelConfig::from_json(&read(&config_path)?)
        .map_err(|e| format!("{}: {e}", config_path.display()))?;
    let log_path = run.join("train-log.json");
    let mut log: Value = serde_json::from_slice(&read(&log_path)?)
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let snapshots = snapshots(&run)?;
    if snapshots.is_empty() {
        return Err(format!(
            "no snapshot-<step>.safetensors in {}",
            run.display()
        ));
    }
    let mut jobs: Vec<(usize, PathBuf, &str)> = Vec::new();
    if !init_from.is_empty() {
        let path = PathBuf::from(&init_from);
        if !path.is_file() {
            return Err(format!("--init-from: {init_from} not found"));
        }
        let drop = log["drop_step"].as_u64().ok_or(format!(
            "--init-from: {} has no drop_step (only a run initialised from another's snapshot has one)",
            log_path.display()
        ))?;
        jobs.push((drop as usize, path, "  (just dropped: --init-from)"));
    }
    jobs.extend(snapshots.into_iter().map(|(step, path)| (step, path, "")));

    let tokenizer = TextTokenizer::from_json(&read(Path::new(tokenizer_path))?)
        .map_err(|e| format!("{tokenizer_path}: {e}"))?;
    if tokenizer.vocab_size() != config.vocab_size {
        return Err(format!(
            "{} has a vocabulary of {}, {tokenizer_path} of {}",
            config_path.display(),
            config.vocab_size,
            tokenizer.vocab_size()
        ));
    }
    // Haystacks from the validation split: the test split is kept for `trainer eval`.
    let streams = TokenStreams::load(Path::new(corpus), &tokenizer)?;
    let maker = NeedleMaker::new(&tokenizer)?;
    let id = run
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    for (step, path, note) in jobs {
        // Probed the way the run trained up to this step: with its first token only once
        // the sequences started with it (as the training probes of that step).
        let first = config.bos_token_id.map(|token| FirstToken {
            token,
            from: bos_from,
        });
        let model = EvalModel {
            id: id.clone(),
            config: ModelConfig {
                bos_token_id: FirstToken::at(first, step.saturating_sub(1)),
                rope_scaling: None,
                foreign: Default::default(),
                ..config.clone()
            },
            weights: weights_from_file(&config, &path)?,
        };
        let needles = needle_probe(&model, &maker, &streams.validation, trials)?;
        println!(
            "step {step}  needles {}/{} exact, {:.0}% digits{note}",
            needles.correct,
            needles.trials,
            100.0 * needles.digit_accuracy()
        );
        set_needles(&mut log, step, needles)?;
        // After every snapshot: an interrupted run keeps what it measured.
        write_log(&log_path, &log)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needles(correct: usize) -> NeedleTally {
        NeedleTally {
            trials: 24,
            correct,
            digits_correct: 7 * correct,
        }
    }

    #[test]
    fn needles_go_into_the_row_of_their_step_or_a_new_one_in_order() {
        let mut log = json!({"positions": "none", "drop_step": 40, "probes": [
            {"step": 40, "induction": {"tokens": 8, "first": 8.0, "second": 2.0}},
            {"step": 40, "induction": {"tokens": 8, "first": 8.0, "second": 7.0}},
            {"step": 80, "previous_token": [[0.5]]}
        ]});
        set_needles(&mut log, 80, needles(3)).unwrap();
        set_needles(&mut log, 60, needles(1)).unwrap();
        set_needles(&mut log, 100, needles(5)).unwrap();
        set_needles(&mut log, 40, needles(0)).unwrap();
        // Idempotent: the same step again overwrites.
        set_needles(&mut log, 80, needles(4)).unwrap();
        let rows = log["probes"].as_array().unwrap();
        let steps: Vec<u64> = rows.iter().map(|r| r["step"].as_u64().unwrap()).collect();
        assert_eq!(steps, [40, 40, 60, 80, 100]);
        assert!(rows[0].get("needles").is_none(), "RoPE's row at the drop");
        assert_eq!(rows[1]["needles"]["correct"], 0, "the last row at a step");
        assert_eq!(rows[1]["induction"]["second"], 7.0);
        assert_eq!(rows[2], json!({"step": 60, "needles": needles(1)}));
        assert_eq!(rows[3]["needles"]["correct"], 4);
        assert_eq!(rows[3]["previous_token"], json!([[0.5]]));
        assert_eq!(rows[4]["needles"]["trials"], 24);
        // The rows still parse as the trainer's probe rows.
        for row in rows {
            serde_json::from_value::<crate::probes::ProbeRow>(row.clone()).unwrap();
        }
        // A log without probes gets the list.
        let mut bare = json!({"positions": "rope"});
        set_needles(&mut bare, 8, needles(2)).unwrap();
        assert_eq!(bare["probes"][0]["step"], 8);
        assert!(set_needles(&mut json!([1]), 8, needles(2)).is_err());
    }

    #[test]
    fn snapshots_are_found_by_step_and_missing_runs_are_errors() {
        let dir = std::env::temp_dir().join(format!("drope-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "snapshot-1200.safetensors",
            "snapshot-600.safetensors",
            "state.safetensors",
            "snapshot-x.safetensors",
            "config.json",
        ] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        let found: Vec<usize> = snapshots(&dir).unwrap().iter().map(|s| s.0).collect();
        assert_eq!(found, [600, 1200]);
        let args = |run: &Path| -> Vec<String> {
            let run = run.to_str().unwrap();
            ["--run", run, "--corpus", "c", "--tokenizer", "t"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        };
        let err = run(&args(Path::new("/nonexistent/run"))).unwrap_err();
        assert!(
            err.contains("run folder /nonexistent/run not found"),
            "{err}"
        );
        // An empty config.json is unreadable; then a run without a log or snapshots.
        let err = run(&args(&dir)).unwrap_err();
        assert!(err.contains("config.json"), "{err}");
        std::fs::write(
            dir.join("config.json"),
            include_bytes!("../../public/models/rope/config.json"),
        )
        .unwrap();
        let err = run(&args(&dir)).unwrap_err();
        assert!(err.contains("train-log.json"), "{err}");
        std::fs::write(dir.join("train-log.json"), b"{\"probes\": []}").unwrap();
        for name in ["snapshot-1200.safetensors", "snapshot-600.safetensors"] {
            std::fs::remove_file(dir.join(name)).unwrap();
        }
        let err = run(&args(&dir)).unwrap_err();
        assert!(err.contains("no snapshot-<step>.safetensors in"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_run_gets_needle_counts_at_every_snapshot_and_its_drop() {
        use candle_core::DType;
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let dir = std::env::temp_dir().join(format!("drope-probe-run-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A DroPE-like run at L = 128 without positions, random weights, the first token
        // from step 8 on.
        let mut config =
            ModelConfig::from_json(include_bytes!("../../public/models/rope/config.json")).unwrap();
        (config.hidden_size, config.num_hidden_layers) = (32, 2);
        config.intermediate_size = 64;
        config.position_embedding = engine::TrainedPositions::None;
        std::fs::write(dir.join("config.json"), config.to_json()).unwrap();
        let weights = |seed: u64| {
            engine::init::random_weights(&config, seed, 0.02)
                .unwrap()
                .to_safetensors(DType::F32)
                .unwrap()
        };
        std::fs::write(dir.join("snapshot-16.safetensors"), weights(1)).unwrap();
        std::fs::write(dir.join("snapshot-24.safetensors"), weights(2)).unwrap();
        let init = dir.join("init.safetensors");
        std::fs::write(&init, weights(3)).unwrap();
        std::fs::write(
            dir.join("train-log.json"),
            r#"{"positions": "none", "drop_step": 8, "probes": [
                {"step": 8, "induction": {"tokens": 100, "first": 8.3, "second": 8.2}},
                {"step": 16, "induction": {"tokens": 100, "first": 8.3, "second": 6.0}}]}"#,
        )
        .unwrap();
        let argv: Vec<String> = [
            "--run",
            dir.to_str().unwrap(),
            "--corpus",
            root.join("tests/fixtures/corpus").to_str().unwrap(),
            "--tokenizer",
            root.join("public/models/tokenizer.json").to_str().unwrap(),
            "--trials",
            "2",
            "--bos-from",
            "8",
            "--init-from",
            init.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        run(&argv).unwrap();
        let text = std::fs::read_to_string(dir.join("train-log.json")).unwrap();
        let log: Value = serde_json::from_str(&text).unwrap();
        let rows = log["probes"].as_array().unwrap();
        let steps: Vec<u64> = rows.iter().map(|r| r["step"].as_u64().unwrap()).collect();
        assert_eq!(steps, [8, 16, 24], "the drop, then the snapshots");
        for row in rows {
            assert_eq!(row["needles"]["trials"], 2, "{row}");
        }
        assert_eq!(
            rows[0]["induction"]["second"], 8.2,
            "the rest of a row stays"
        );
        assert!(
            rows[2].get("induction").is_none(),
            "a row with only the needles"
        );
        // Rerunning measures the same documents and overwrites: the same log.
        run(&argv).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("train-log.json")).unwrap(),
            text
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
