//! The PyTorch anchor of `trainer bench`: the same training step (same model, weights,
//! batch, optimizer and threads) timed in PyTorch by `trainer/reference/train_step.py`,
//! run in a Python interpreter the user names. PyTorch is a measuring stick only, never a
//! dependency of the product: nothing here runs unless `trainer bench --pytorch PYTHON`
//! asks for it (the script's docstring says how to install PyTorch outside the repo).

use std::path::{Path, PathBuf};
use std::process::Command;

use engine::{ModelConfig, TrainedPositions};
use serde::Deserialize;

use crate::train::StepReport;

/// What the script reports: mean times of the timed steps, in milliseconds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AnchorReport {
    /// The whole step.
    pub ms_per_step: f64,
    /// Training tokens (batch x length) per second.
    pub tokens_per_second: f64,
    /// Forward pass and loss.
    pub forward_ms: f64,
    /// Backpropagation.
    pub backward_ms: f64,
    /// Gradient clipping and the AdamW update.
    pub update_ms: f64,
    /// Loss of the first (warm-up) step: our initial loss, the same weights and batch.
    pub loss_first: f64,
    /// Loss of the last step.
    pub loss_last: f64,
    /// Mean loss of the timed steps (what `trainer bench` reports for its own steps).
    #[serde(default)]
    pub loss_mean: Option<f64>,
    /// Threads PyTorch ran with.
    pub threads: usize,
    /// PyTorch's version.
    pub torch: String,
}

/// The script, in the workspace's `trainer/reference/`.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/train_step.py")
}

/// The threads a bench runs with: `RAYON_NUM_THREADS`, or every CPU.
pub fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The script's arguments for `config` (as `trainer bench` builds it from its options).
pub fn script_arguments(
    config: &ModelConfig,
    batch: usize,
    steps: usize,
    warmup: usize,
    threads: usize,
) -> Vec<String> {
    let positions = match config.position_embedding {
        TrainedPositions::Rope => "rope",
        TrainedPositions::None => "none",
    };
    [
        ("batch", batch.to_string()),
        ("length", config.training_length().to_string()),
        ("layers", config.num_hidden_layers.to_string()),
        ("hidden", config.hidden_size.to_string()),
        ("heads", config.num_attention_heads.to_string()),
        ("kv-heads", config.kv_heads().to_string()),
        ("intermediate", config.intermediate_size.to_string()),
        ("vocab", config.vocab_size.to_string()),
        ("positions", positions.to_string()),
        ("qk-norm", config.qk_norm.to_string()),
        ("steps", steps.to_string()),
        ("warmup", warmup.to_string()),
        ("threads", threads.to_string()),
    ]
    .into_iter()
    .flat_map(|(name, value)| [format!("--{name}"), value])
    .collect()
}

/// The report in the script's stdout: its last non-empty line, one JSON object.
pub fn parse_report(stdout: &str) -> Result<AnchorReport, String> {
    let line = stdout
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .ok_or("the PyTorch script printed nothing on stdout")?;
    serde_json::from_str(line)
        .map_err(|e| format!("the PyTorch script's output is not the expected JSON ({e}): {line}"))
}

/// Runs the training step of `config` on `batch` sequences in PyTorch under `python`:
/// `steps` timed steps after `warmup` untimed ones, on `threads` threads.
pub fn pytorch_step(
    python: &Path,
    config: &ModelConfig,
    batch: usize,
    steps: usize,
    warmup: usize,
    threads: usize,
) -> Result<AnchorReport, String> {
    let script = script();
    if !script.is_file() {
        return Err(format!(
            "the PyTorch script {} is missing",
            script.display()
        ));
    }
    let output = Command::new(python)
        .arg(&script)
        .args(script_arguments(config, batch, steps, warmup, threads))
        .env("OMP_NUM_THREADS", threads.to_string())
        .env("MKL_NUM_THREADS", threads.to_string())
        .output()
        .map_err(|e| {
            format!(
                "cannot run the Python interpreter {}: {e}",
                python.display()
            )
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let stderr = stderr.trim();
        // train_step.py exits with 3 when `import torch` (or numpy) fails.
        return Err(if output.status.code() == Some(3) {
            format!(
                "torch or numpy is not importable by {} ({stderr}); see {} for how to \
                 install them",
                python.display(),
                script.display()
            )
        } else {
            format!("{} failed ({}): {stderr}", script.display(), output.status)
        });
    }
    parse_report(&String::from_utf8_lossy(&output.stdout))
}

/// The markdown table of our training step (`ours`, on `tokens` tokens a step) beside
/// PyTorch's runs (one row each, timed before and after ours), and the ratio of our
/// tokens/s to the mean of theirs.
pub fn print_comparison(ours: &StepReport, tokens: f64, pytorch: &[AnchorReport]) {
    let seconds = ours.forward + ours.backward + ours.update;
    println!(
        "| step | ms | tokens/s | forward ms | backward ms | update ms | mean loss |\n\
         |---|---|---|---|---|---|---|"
    );
    println!(
        "| hand-written (ours) | {:.1} | {:.0} | {:.1} | {:.1} | {:.1} | {:.4} |",
        seconds * 1e3,
        tokens / seconds,
        ours.forward * 1e3,
        ours.backward * 1e3,
        ours.update * 1e3,
        ours.loss
    );
    let when = ["before ours", "after ours"];
    for (i, run) in pytorch.iter().enumerate() {
        println!(
            "| PyTorch {} (eager, f32), {} | {:.1} | {:.0} | {:.1} | {:.1} | {:.1} | {:.4} |",
            run.torch,
            when.get(i).copied().unwrap_or("again"),
            run.ms_per_step,
            run.tokens_per_second,
            run.forward_ms,
            run.backward_ms,
            run.update_ms,
            run.loss_mean.unwrap_or(run.loss_last)
        );
    }
    let mean_ms = pytorch.iter().map(|r| r.ms_per_step).sum::<f64>() / pytorch.len().max(1) as f64;
    println!(
        "\nours / PyTorch (mean of its runs): {:.2}x tokens/s\n",
        mean_ms / (seconds * 1e3)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_line_parses_into_its_fields() {
        let stdout = "some warning\n{\"ms_per_step\": 250.5, \"tokens_per_second\": 4088.0, \
            \"forward_ms\": 80.0, \"backward_ms\": 150.5, \"update_ms\": 20.0, \
            \"loss_first\": 8.35, \"loss_last\": 8.21, \"loss_mean\": 8.25, \"threads\": 1, \
            \"torch\": \"2.5.1+cpu\", \"attention\": \"sdpa\"}\n\n";
        let report = parse_report(stdout).unwrap();
        assert_eq!(report.ms_per_step, 250.5);
        assert_eq!(report.tokens_per_second, 4088.0);
        assert_eq!(
            (report.forward_ms, report.backward_ms, report.update_ms),
            (80.0, 150.5, 20.0)
        );
        assert_eq!((report.loss_first, report.loss_last), (8.35, 8.21));
        assert_eq!(report.loss_mean, Some(8.25));
        assert_eq!((report.threads, report.torch.as_str()), (1, "2.5.1+cpu"));
    }

    #[test]
    fn malformed_output_is_an_error() {
        assert!(parse_report("").unwrap_err().contains("nothing"));
        let missing = parse_report("{\"ms_per_step\": 1.0}").unwrap_err();
        assert!(missing.contains("not the expected JSON"), "{missing}");
        assert!(parse_report("Traceback (most recent call last):").is_err());
    }

    #[test]
    fn the_script_gets_the_bench_shape() {
        let config = ModelConfig::from_json(
            br#"{"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "intermediate_size": 48, "vocab_size": 100,
            "max_position_embeddings": 16, "position_embedding": "none"}"#,
        )
        .unwrap();
        let args = script_arguments(&config, 3, 5, 2, 1).join(" ");
        assert_eq!(
            args,
            "--batch 3 --length 16 --layers 2 --hidden 32 --heads 4 --kv-heads 2 \
             --intermediate 48 --vocab 100 --positions none --qk-norm false --steps 5 \
             --warmup 2 --threads 1"
        );
        assert!(script().is_file(), "{}", script().display());
    }
}
