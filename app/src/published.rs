//! Published data the studio draws without running a model: each model's
//! `train-log.json` and the evaluation's `results/*.json` (written by `trainer`).
//!
//! Parsing is separate from fetching so the views' tests can feed synthetic data, and
//! every malformed file becomes an [`AppError`] naming the file, never a panic.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::AppError;
use crate::manifest::{fetch_bytes, MODELS_BASE};

/// Folder of the evaluation results, relative to the page (trunk copies `public/results`).
pub const RESULTS_BASE: &str = "results/";

/// The error for a file that downloaded but does not have the documented format.
fn malformed(file: &str, reason: impl std::fmt::Display) -> AppError {
    AppError::Input(format!("{file} is malformed: {reason}"))
}

fn parse_json<T: DeserializeOwned>(file: &str, bytes: &[u8]) -> Result<T, AppError> {
    serde_json::from_slice(bytes).map_err(|e| malformed(file, e))
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

pub use engine::train_log::{InductionScore, NeedleProbe, ProbeRow};

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

/// One needle-in-a-haystack cell: a model/scheme at one length, at one depth or with the
/// depths pooled.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NeedleCell {
    /// Model id.
    pub model: String,
    /// Scheme family in text form (`s = T / L` is set per length).
    pub scheme: String,
    /// Context length in multiples of `L`.
    pub length_multiple: usize,
    /// Needle depth (0 = start, 1 = end of the haystack); `None` when depths are pooled.
    #[serde(default)]
    pub depth: Option<f64>,
    /// Trials run.
    pub trials: usize,
    /// Exact matches.
    pub correct: usize,
    /// Answer digits right in the right place, over all trials (newer files only).
    #[serde(default)]
    pub digits_correct: Option<usize>,
    /// Exact-match accuracy in `[0, 1]`; computed from `correct / trials` when absent.
    #[serde(default)]
    pub accuracy: Option<f64>,
    /// Lower end of the 95% Wilson interval (newer files only).
    #[serde(default)]
    pub wilson_low: Option<f64>,
    /// Upper end of the 95% Wilson interval (newer files only).
    #[serde(default)]
    pub wilson_high: Option<f64>,
    /// Share of answer digits right (newer files only).
    #[serde(default)]
    pub digit_accuracy: Option<f64>,
}

impl NeedleCell {
    /// The 95% interval, when the file has one.
    pub fn interval(&self) -> Option<(f64, f64)> {
        self.wilson_low.zip(self.wilson_high)
    }

    /// Whether this cell is `model`/`scheme` at `multiple`.
    pub fn is(&self, model: &str, scheme: &str, multiple: usize) -> bool {
        self.model == model && self.scheme == scheme && self.length_multiple == multiple
    }
}

/// `results/niah.json`: the needle grid, per depth and with depths pooled. Everything
/// but `cells` is optional: older files have `cells` (without intervals) only.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct NeedleGrid {
    /// One cell per (model, scheme, length, depth).
    pub cells: Vec<NeedleCell>,
    /// One cell per (model, scheme, length), depths pooled: the file's `lengths`, or
    /// pooled here from `cells` for files that predate it (then without intervals).
    #[serde(default)]
    pub lengths: Vec<NeedleCell>,
    /// Needle depths of the grid.
    #[serde(default)]
    pub depths: Vec<f64>,
    /// Length multiples of the grid.
    #[serde(default)]
    pub multiples: Vec<usize>,
    /// Seed of the needle documents.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Confidence level of the intervals (0.95).
    #[serde(default)]
    pub confidence: Option<f64>,
    /// Half-width of the interval the trials ran until.
    #[serde(default)]
    pub target_half_width: Option<f64>,
    /// Fewest trials per (model, scheme, length).
    #[serde(default)]
    pub min_trials: Option<usize>,
    /// Most trials per (model, scheme, length).
    #[serde(default)]
    pub max_trials: Option<usize>,
}

/// Fills in `accuracy` from the counts and checks them.
fn complete(file: &str, mut cell: NeedleCell) -> Result<NeedleCell, AppError> {
    if cell.correct > cell.trials {
        return Err(malformed(
            file,
            format!(
                "{} `{}` at {}x has {} correct of {} trials",
                cell.model, cell.scheme, cell.length_multiple, cell.correct, cell.trials
            ),
        ));
    }
    if cell.accuracy.is_none() && cell.trials > 0 {
        cell.accuracy = Some(cell.correct as f64 / cell.trials as f64);
    }
    Ok(cell)
}

/// Pools per-depth cells into one per (model, scheme, length), in order of first
/// appearance. Counts add up; intervals are not recomputed (none is shown).
pub fn pool_depths(cells: &[NeedleCell]) -> Vec<NeedleCell> {
    let mut pooled: Vec<NeedleCell> = Vec::new();
    for cell in cells {
        let key = (&cell.model, &cell.scheme, cell.length_multiple);
        match pooled.iter_mut().find(|p| p.is(key.0, key.1, key.2)) {
            Some(p) => {
                p.trials += cell.trials;
                p.correct += cell.correct;
                p.digits_correct = p
                    .digits_correct
                    .zip(cell.digits_correct)
                    .map(|(a, b)| a + b);
            }
            None => pooled.push(NeedleCell {
                depth: None,
                ..cell.clone()
            }),
        }
    }
    for p in &mut pooled {
        p.accuracy = (p.trials > 0).then(|| p.correct as f64 / p.trials as f64);
        p.digit_accuracy = p
            .digits_correct
            .filter(|_| p.trials > 0)
            .map(|d| d as f64 / (7 * p.trials) as f64);
        (p.wilson_low, p.wilson_high) = (None, None);
    }
    pooled
}

impl NeedleGrid {
    /// Parses `niah.json`, old (`cells` only) or new (with `lengths` and the budget).
    pub fn parse(file: &str, bytes: &[u8]) -> Result<NeedleGrid, AppError> {
        let mut grid: NeedleGrid = parse_json(file, bytes)?;
        let complete_all = |cells: Vec<NeedleCell>| {
            cells
                .into_iter()
                .map(|c| complete(file, c))
                .collect::<Result<Vec<_>, _>>()
        };
        grid.cells = complete_all(std::mem::take(&mut grid.cells))?;
        grid.lengths = if grid.lengths.is_empty() {
            pool_depths(&grid.cells)
        } else {
            complete_all(std::mem::take(&mut grid.lengths))?
        };
        for c in grid.cells.iter().chain(&grid.lengths) {
            if !grid.multiples.contains(&c.length_multiple) {
                grid.multiples.push(c.length_multiple);
            }
            if let Some(d) = c.depth.filter(|d| !grid.depths.contains(d)) {
                grid.depths.push(d);
            }
        }
        grid.multiples.sort_unstable();
        grid.depths.sort_by(f64::total_cmp);
        Ok(grid)
    }

    /// The (model, scheme) rows, in order of first appearance.
    pub fn rows(&self) -> Vec<(String, String)> {
        let mut rows: Vec<(String, String)> = Vec::new();
        for c in self.lengths.iter().chain(&self.cells) {
            if !rows.iter().any(|(m, s)| *m == c.model && *s == c.scheme) {
                rows.push((c.model.clone(), c.scheme.clone()));
            }
        }
        rows
    }

    /// The depth-pooled cell of a row at a length multiple.
    pub fn pooled(&self, model: &str, scheme: &str, multiple: usize) -> Option<&NeedleCell> {
        self.lengths.iter().find(|c| c.is(model, scheme, multiple))
    }

    /// The cell of a row at a length multiple and depth.
    pub fn at_depth(
        &self,
        model: &str,
        scheme: &str,
        multiple: usize,
        depth: f64,
    ) -> Option<&NeedleCell> {
        self.cells
            .iter()
            .find(|c| c.is(model, scheme, multiple) && c.depth == Some(depth))
    }
}

pub use engine::results::{DropeFit, PerplexityRow, PerplexityTable};

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
    fetch_parsed(&format!("{RESULTS_BASE}niah.json"), NeedleGrid::parse).await
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
