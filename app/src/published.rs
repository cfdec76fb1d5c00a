//! Published data the studio draws without running a model: each model's
//! `train-log.json` and the evaluation's `results/*.json` (written by `trainer`).
//!
//! Parsing is separate from fetching so the views' tests can feed synthetic data, and
//! every malformed file becomes an [`AppError`] naming the file, never a panic.

use crate::error::AppError;
use crate::manifest::{fetch_bytes, MODELS_BASE};

/// Folder of the evaluation results, relative to the page (trunk copies `public/results`).
pub const RESULTS_BASE: &str = "results/";

/// The error for a file that downloaded but does not have the documented format.
fn malformed(file: &str, reason: impl std::fmt::Display) -> AppError {
    AppError::Input(format!("{file} is malformed: {reason}"))
}

/// One logged training step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainPoint {
    /// Optimizer step.
    pub step: f64,
    /// Training loss (mean next-token NLL of the batch, nats).
    pub loss: f64,
    /// Learning rate at that step.
    pub learning_rate: f64,
}

/// One validation measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValidationPoint {
    /// Optimizer step.
    pub step: f64,
    /// Validation loss (nats).
    pub loss: f64,
}

pub use engine::train_log::{InductionScore, NeedleTally, ProbeRow};

/// A model's `train-log.json` as the training story draws it: the file's rows
/// (`engine::train_log::TrainLog`, the type the trainer writes) checked and named.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainHistory {
    /// How the model was trained at the end: `rope` or `none`.
    pub positions: String,
    /// The step after which RoPE was removed (DroPE), if it was.
    pub drop_step: Option<f64>,
    /// Sequences per step.
    pub batch: u64,
    /// Tokens per sequence (the training length `L`).
    pub length: u64,
    /// Logged training steps, in order; steps whose loss was not finite are left out.
    pub train: Vec<TrainPoint>,
    /// Validation measurements, in order.
    pub validation: Vec<ValidationPoint>,
    /// Training throughput, when logged.
    pub tokens_per_second: Option<f64>,
    /// Probes of copying and previous-token heads, in order (empty in older logs).
    pub probes: Vec<ProbeRow>,
}

impl TrainHistory {
    /// Parses `train-log.json` (`file` names it in errors).
    pub fn parse(file: &str, bytes: &[u8]) -> Result<TrainHistory, AppError> {
        let raw = engine::train_log::TrainLog::parse(bytes).map_err(|e| malformed(file, e))?;
        // `[step, loss, ...]` rows; a NaN loss (written as null) is left out.
        let rows = |name: &str, rows: Vec<&[f64]>| {
            let mut kept = Vec::new();
            for (i, row) in rows.into_iter().enumerate() {
                match (row[0], row[1]) {
                    (step, loss) if step.is_finite() && loss.is_finite() => {
                        kept.push((step, loss, row.get(2).copied()))
                    }
                    (step, _) if !step.is_finite() => {
                        return Err(malformed(file, format!("{name}[{i}] has no step")))
                    }
                    _ => {}
                }
            }
            if kept.windows(2).any(|w| w[1].0 < w[0].0) {
                return Err(malformed(file, format!("{name} steps are not in order")));
            }
            Ok(kept)
        };
        let train = rows("train", raw.train.iter().map(|r| &r[..]).collect())?
            .into_iter()
            .map(|(step, loss, lr)| TrainPoint {
                step,
                loss,
                learning_rate: lr.unwrap_or(f64::NAN),
            })
            .collect();
        let validation = rows(
            "validation",
            raw.validation.iter().map(|r| &r[..]).collect(),
        )?
        .into_iter()
        .map(|(step, loss, _)| ValidationPoint { step, loss })
        .collect();
        // Two rows may share a step (a drop's before and after), not go back.
        if let Some(i) = raw.probes.windows(2).position(|w| w[1].step < w[0].step) {
            return Err(malformed(
                file,
                format!(
                    "probes[{}] goes back to step {}",
                    i + 1,
                    raw.probes[i + 1].step
                ),
            ));
        }
        let impossible = raw.probes.iter().enumerate().find_map(|(i, r)| {
            r.needles
                .filter(|n| n.correct > n.trials || n.digits_correct > 7 * n.trials)
                .map(|n| (i, n))
        });
        if let Some((i, n)) = impossible {
            return Err(malformed(
                file,
                format!(
                    "probes[{i}] has {} needles right ({} digits) of {} trials",
                    n.correct, n.digits_correct, n.trials
                ),
            ));
        }
        Ok(TrainHistory {
            positions: raw.positions,
            drop_step: raw.drop_step.map(|s| s as f64),
            batch: raw.batch as u64,
            length: raw.length as u64,
            train,
            validation,
            tokens_per_second: Some(raw.tokens_per_second).filter(|t| t.is_finite()),
            probes: raw.probes,
        })
    }

    /// Tokens seen after `step` steps.
    pub fn tokens_at(&self, step: f64) -> f64 {
        step * (self.batch * self.length) as f64
    }
}

/// A train log with the id of its model (`rope`, `nope`, `drope`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelTrainLog {
    /// The model id, as in `models/manifest.json`.
    pub model: String,
    /// Its log.
    pub log: TrainHistory,
}

pub use engine::results::{
    pool_depths, DropeFit, NeedleCell, NeedleGrid, PerplexityRow, PerplexityTable,
    NEEDLE_CONFIDENCE,
};

/// Parses `niah.json`, old (`cells` only) or new (`engine::results` holds the format and
/// its checks).
pub fn parse_needle_grid(file: &str, bytes: &[u8]) -> Result<NeedleGrid, AppError> {
    NeedleGrid::parse(bytes).map_err(|reason| malformed(file, reason))
}

/// Parses `perplexity.json` (`engine::results` holds the format and its checks).
pub fn parse_perplexity(file: &str, bytes: &[u8]) -> Result<PerplexityTable, AppError> {
    PerplexityTable::parse(bytes).map_err(|reason| malformed(file, reason))
}

/// Parses `drope-c.json`.
pub fn parse_drope_fit(file: &str, bytes: &[u8]) -> Result<DropeFit, AppError> {
    DropeFit::parse(bytes).map_err(|reason| malformed(file, reason))
}

async fn fetch_parsed<T>(
    url: &str,
    parse: impl FnOnce(&str, &[u8]) -> Result<T, AppError>,
) -> Result<T, AppError> {
    let bytes = fetch_bytes(url, 0, |_| {}).await?;
    parse(url, &bytes)
}

/// Downloads `models/<model>/train-log.json`.
pub async fn fetch_train_log(model: &str) -> Result<ModelTrainLog, AppError> {
    let url = format!("{MODELS_BASE}{model}/train-log.json");
    let log = fetch_parsed(&url, TrainHistory::parse).await?;
    Ok(ModelTrainLog {
        model: model.to_string(),
        log,
    })
}

/// Downloads `results/niah.json`.
pub async fn fetch_needle_grid() -> Result<NeedleGrid, AppError> {
    fetch_parsed(&format!("{RESULTS_BASE}niah.json"), parse_needle_grid).await
}

/// Downloads `results/perplexity.json`.
pub async fn fetch_perplexity() -> Result<PerplexityTable, AppError> {
    fetch_parsed(&format!("{RESULTS_BASE}perplexity.json"), parse_perplexity).await
}

/// Downloads `results/drope-c.json`.
pub async fn fetch_drope_fit() -> Result<DropeFit, AppError> {
    fetch_parsed(&format!("{RESULTS_BASE}drope-c.json"), parse_drope_fit).await
}

#[cfg(test)]
mod tests;
