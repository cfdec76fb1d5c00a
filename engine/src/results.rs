//! The evaluation's published numbers in `results/`, one type per file, shared by the
//! trainer (`trainer eval` writes them) and the studio (its result tabs read them):
//! `perplexity.json` ([`PerplexityTable`]), `drope-c.json` ([`DropeFit`]) and `niah.json`
//! ([`NeedleGrid`]). Tests here round-trip each and read the shipped files.
//!
//! Fields are declared in alphabetical order: the files were first written from JSON
//! maps, which sort their keys, and a regenerated file keeps its layout.

use serde::{Deserialize, Serialize};

use crate::needles::{NeedleTally, ANSWER_DIGITS};

/// One row of `perplexity.json`: a model/scheme's NLL per position window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerplexityRow {
    /// Model id.
    pub model: String,
    /// Mean NLL per window (nats).
    pub nll: Vec<f64>,
    /// `exp(nll)` per window.
    pub perplexity: Vec<f64>,
    /// Scheme in text form.
    pub scheme: String,
}

/// `perplexity.json`: perplexity by position window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerplexityTable {
    /// One row per model/scheme.
    pub rows: Vec<PerplexityRow>,
    /// Held-out sequences measured.
    pub sequences: usize,
    /// Training length `L` of the models.
    pub training_length: usize,
    /// Window names (`0-L`, `L-2L`, `2L-4L`, `4L-8L`).
    pub windows: Vec<String>,
}

impl PerplexityTable {
    /// Parses `perplexity.json`; every row must have one value per window. The error is
    /// the reason, for the reader to name the file.
    pub fn parse(bytes: &[u8]) -> Result<PerplexityTable, String> {
        let table: PerplexityTable = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let windows = table.windows.len();
        if let Some(row) = table
            .rows
            .iter()
            .find(|r| r.nll.len() != windows || r.perplexity.len() != windows)
        {
            return Err(format!(
                "{} `{}` does not have one value per window ({windows})",
                row.model, row.scheme
            ));
        }
        Ok(table)
    }
}

/// `drope-c.json`: the fit of DroPE's logit-scale coefficient `c` on validation
/// sequences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DropeFit {
    /// The fitted `c`.
    pub c: f64,
    /// `(c, mean NLL)` for every `c` tried.
    pub grid: Vec<(f64, f64)>,
    /// One `c` per head (`layer * heads + head`), fitted by the same objective on
    /// `head_validation_sequences` sequences (`+beta=heads`; absent from older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_c: Option<Vec<f64>>,
    /// The objective at `head_c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_objective_mean_nll: Option<f64>,
    /// Validation sequences of the per-head fit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_validation_sequences: Option<usize>,
    /// What the per-head fit minimised, when not the one `c`'s objective (e.g. "needle
    /// answers").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_objective: Option<String>,
    /// The objective at the fitted `c`.
    #[serde(default)]
    pub objective_mean_nll: Option<f64>,
    /// The paper's `c` for its from-scratch model, as the file recorded it.
    #[serde(default)]
    pub paper_c_from_scratch: Option<f64>,
    /// The paper's `c` for SmolLM-360M, as the file recorded it.
    #[serde(default)]
    pub paper_c_smollm: Option<f64>,
    /// Validation sequences of the fit.
    #[serde(default)]
    pub validation_sequences: Option<usize>,
}

impl DropeFit {
    /// Parses `drope-c.json`; the error is the reason.
    pub fn parse(bytes: &[u8]) -> Result<DropeFit, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// One cell of `niah.json`: a model/scheme at one length, at one depth or with the
/// depths pooled. The counts are the cell; the file also holds the statistics derived
/// from them (accuracy, its 95% Wilson interval, per-digit accuracy) for other readers,
/// and reading checks that they agree with the counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "CellFields", try_from = "CellFields")]
pub struct NeedleCell {
    /// Model id.
    pub model: String,
    /// Scheme family in text form (`s = T / L` is set per length).
    pub scheme: String,
    /// Context length in multiples of `L`.
    pub length_multiple: usize,
    /// Needle depth (0 = start, 1 = end of the haystack); `None` when depths are pooled.
    pub depth: Option<f64>,
    /// Trials run.
    pub trials: usize,
    /// Exact matches.
    pub correct: usize,
    /// Answer digits right in the right place, over all trials; absent in files written
    /// before answers were scored per digit.
    pub digits_correct: Option<usize>,
}

impl NeedleCell {
    /// A cell holding `tally`'s counts.
    pub fn new(
        model: &str,
        scheme: &str,
        length_multiple: usize,
        depth: Option<f64>,
        tally: NeedleTally,
    ) -> Self {
        NeedleCell {
            model: model.to_string(),
            scheme: scheme.to_string(),
            length_multiple,
            depth,
            trials: tally.trials,
            correct: tally.correct,
            digits_correct: Some(tally.digits_correct),
        }
    }

    /// The counts behind the cell (digits 0 where the file has none).
    pub fn tally(&self) -> NeedleTally {
        NeedleTally {
            trials: self.trials,
            correct: self.correct,
            digits_correct: self.digits_correct.unwrap_or(0),
        }
    }

    /// Exact-match accuracy; `None` without trials.
    pub fn accuracy(&self) -> Option<f64> {
        (self.trials > 0).then(|| self.tally().accuracy())
    }

    /// The 95% Wilson interval of the accuracy; `None` without trials.
    pub fn interval(&self) -> Option<(f64, f64)> {
        (self.trials > 0).then(|| self.tally().wilson())
    }

    /// Share of answer digits right; `None` without trials or digit counts.
    pub fn digit_accuracy(&self) -> Option<f64> {
        self.digits_correct
            .filter(|_| self.trials > 0)
            .map(|_| self.tally().digit_accuracy())
    }

    /// Whether this cell is `model`/`scheme` at `multiple`.
    pub fn is(&self, model: &str, scheme: &str, multiple: usize) -> bool {
        self.model == model && self.scheme == scheme && self.length_multiple == multiple
    }
}

/// A needle cell as the file spells it (keys in the file's order): the counts and the
/// statistics derived from them.
#[derive(Serialize, Deserialize)]
struct CellFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    accuracy: Option<f64>,
    correct: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    depth: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    digit_accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    digits_correct: Option<usize>,
    length_multiple: usize,
    model: String,
    scheme: String,
    trials: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wilson_high: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wilson_low: Option<f64>,
}

impl From<NeedleCell> for CellFields {
    fn from(cell: NeedleCell) -> Self {
        let interval = cell.interval();
        CellFields {
            accuracy: cell.accuracy(),
            digit_accuracy: cell.digit_accuracy(),
            wilson_low: interval.map(|i| i.0),
            wilson_high: interval.map(|i| i.1),
            correct: cell.correct,
            depth: cell.depth,
            digits_correct: cell.digits_correct,
            length_multiple: cell.length_multiple,
            model: cell.model,
            scheme: cell.scheme,
            trials: cell.trials,
        }
    }
}

impl TryFrom<CellFields> for NeedleCell {
    type Error = String;

    fn try_from(f: CellFields) -> Result<Self, String> {
        let cell = NeedleCell {
            model: f.model,
            scheme: f.scheme,
            length_multiple: f.length_multiple,
            depth: f.depth,
            trials: f.trials,
            correct: f.correct,
            digits_correct: f.digits_correct,
        };
        let name = format!(
            "{} `{}` at {}x",
            cell.model, cell.scheme, cell.length_multiple
        );
        if cell.correct > cell.trials {
            return Err(format!(
                "{name} has {} correct of {} trials",
                cell.correct, cell.trials
            ));
        }
        if let Some(digits) = cell
            .digits_correct
            .filter(|&d| d > ANSWER_DIGITS * cell.trials)
        {
            return Err(format!(
                "{name} has {digits} answer digits right in {} trials of {ANSWER_DIGITS}",
                cell.trials
            ));
        }
        // The file's statistics must be the counts' (to the rounding a writer may apply).
        let interval = cell.interval();
        let derived = [
            ("accuracy", f.accuracy, cell.accuracy()),
            ("wilson_low", f.wilson_low, interval.map(|i| i.0)),
            ("wilson_high", f.wilson_high, interval.map(|i| i.1)),
            ("digit_accuracy", f.digit_accuracy, cell.digit_accuracy()),
        ];
        for (key, stored, computed) in derived {
            if let (Some(stored), Some(computed)) = (stored, computed) {
                if (stored - computed).abs() > 5e-4 {
                    return Err(format!(
                        "{name} has {key} {stored}, but its counts give {computed:.4}"
                    ));
                }
            }
        }
        Ok(cell)
    }
}

/// Pools per-depth cells into one per (model, scheme, length), in order of first
/// appearance. Digit counts are kept only where every pooled cell has them.
pub fn pool_depths(cells: &[NeedleCell]) -> Vec<NeedleCell> {
    let mut pooled: Vec<NeedleCell> = Vec::new();
    for cell in cells {
        match pooled
            .iter_mut()
            .find(|p| p.is(&cell.model, &cell.scheme, cell.length_multiple))
        {
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
    pooled
}

/// Confidence level of the needle grid's intervals.
pub const NEEDLE_CONFIDENCE: f64 = 0.95;

/// `niah.json`: the needle grid, per depth and with the depths pooled, and how the trials
/// were budgeted. Everything but `cells` is optional: the first files held `cells` (with
/// counts only) and nothing else.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NeedleGrid {
    /// One cell per (model, scheme, length, depth).
    pub cells: Vec<NeedleCell>,
    /// Confidence level of the intervals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Needle depths of the grid.
    #[serde(default)]
    pub depths: Vec<f64>,
    /// One cell per (model, scheme, length), depths pooled ([`pool_depths`] of `cells`
    /// where a file has none).
    #[serde(default)]
    pub lengths: Vec<NeedleCell>,
    /// Most trials per (model, scheme, length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_trials: Option<usize>,
    /// Fewest trials per (model, scheme, length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_trials: Option<usize>,
    /// Length multiples of the grid.
    #[serde(default)]
    pub multiples: Vec<usize>,
    /// Seed of the needle documents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Half-width of the interval the trials ran until.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_half_width: Option<f64>,
}

impl NeedleGrid {
    /// Parses `niah.json`, old (`cells` only) or new; pools the depths and lists the
    /// lengths and depths where the file does not. The error is the reason.
    pub fn parse(bytes: &[u8]) -> Result<NeedleGrid, String> {
        let mut grid: NeedleGrid = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if grid.lengths.is_empty() {
            grid.lengths = pool_depths(&grid.cells);
        }
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

/// A results file's text as `trainer eval` writes it: pretty JSON and a final newline.
pub fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string_pretty(value).expect("a results file always serialises") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys of a JSON text in the order they appear.
    fn keys(text: &str) -> Vec<&str> {
        text.split('"')
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[1].trim_start().starts_with(':'))
            .map(|w| w[0])
            .collect()
    }

    /// What `trainer eval` writes for the shipped file has its keys in the same order,
    /// and reads back to the same values (to the last bit or so: JSON floats).
    fn writes_like_the_shipped<T: Serialize>(
        shipped: &[u8],
        parsed: &T,
        reread: impl Fn(&str) -> T,
        close: impl Fn(&T, &T) -> bool,
    ) {
        let shipped = std::str::from_utf8(shipped).unwrap();
        let written = to_json(parsed);
        assert!(
            keys(&written) == keys(shipped),
            "key order differs from the shipped file"
        );
        assert!(
            close(&reread(&written), parsed),
            "values changed on a round trip"
        );
    }

    fn near(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-12 * y.abs().max(1.0))
    }

    #[test]
    fn the_shipped_files_read_and_write_back_alike() {
        let shipped = include_bytes!("../../public/results/perplexity.json");
        let table = PerplexityTable::parse(shipped).unwrap();
        assert_eq!(table.windows.len(), 4);
        assert!(table.rows.iter().any(|r| r.model == "drope"));
        writes_like_the_shipped(
            shipped,
            &table,
            |t| PerplexityTable::parse(t.as_bytes()).unwrap(),
            |a, b| {
                a.rows.len() == b.rows.len()
                    && a.rows.iter().zip(&b.rows).all(|(x, y)| {
                        (&x.model, &x.scheme) == (&y.model, &y.scheme)
                            && near(&x.nll, &y.nll)
                            && near(&x.perplexity, &y.perplexity)
                    })
            },
        );
        let shipped = include_bytes!("../../public/results/drope-c.json");
        let fit = DropeFit::parse(shipped).unwrap();
        assert!(fit.c.is_finite() && !fit.grid.is_empty());
        writes_like_the_shipped(
            shipped,
            &fit,
            |t| DropeFit::parse(t.as_bytes()).unwrap(),
            |a, b| {
                a.c == b.c
                    && a.grid.len() == b.grid.len()
                    && a.validation_sequences == b.validation_sequences
            },
        );
    }

    #[test]
    fn a_row_short_of_a_window_or_a_mistyped_value_is_refused() {
        let table = PerplexityTable {
            rows: vec![PerplexityRow {
                model: "rope".into(),
                scheme: "rope".into(),
                nll: vec![4.0, 4.5],
                perplexity: vec![54.6],
            }],
            sequences: 1,
            training_length: 128,
            windows: vec!["0-L".into(), "L-2L".into()],
        };
        let err = PerplexityTable::parse(to_json(&table).as_bytes()).unwrap_err();
        assert!(err.contains("one value per window"), "{err}");
        assert!(DropeFit::parse(br#"{"c": "x", "grid": []}"#).is_err());
        let minimal = DropeFit::parse(br#"{"c": 0.2, "grid": [[0.1, 4.0]]}"#).unwrap();
        assert_eq!((minimal.c, minimal.validation_sequences), (0.2, None));
    }

    /// The first format: per-depth cells with counts only.
    const NIAH_OLD: &str = r#"{"cells": [
  {"model": "rope", "scheme": "rope", "length_multiple": 1, "depth": 0.1, "trials": 4, "correct": 3},
  {"model": "rope", "scheme": "rope", "length_multiple": 1, "depth": 0.9, "trials": 4, "correct": 1},
  {"model": "rope", "scheme": "rope", "length_multiple": 2, "depth": 0.1, "trials": 4, "correct": 0},
  {"model": "drope", "scheme": "none", "length_multiple": 2, "depth": 0.1, "trials": 2, "correct": 2}
], "depths": [0.1, 0.9], "multiples": [1, 2]}"#;

    /// The format `trainer eval` writes: statistics per cell (here rounded to 4 places),
    /// the budget, `lengths`.
    const NIAH_NEW: &str = r#"{"depths": [0.5], "multiples": [1, 2, 4, 8], "seed": 7,
  "confidence": 0.95, "target_half_width": 0.05, "min_trials": 40, "max_trials": 400,
  "cells": [{"model": "drope", "scheme": "none+beta", "length_multiple": 4, "depth": 0.5,
    "trials": 10, "correct": 8, "digits_correct": 65, "accuracy": 0.8,
    "wilson_low": 0.4902, "wilson_high": 0.9433, "digit_accuracy": 0.9286}],
  "lengths": [{"model": "drope", "scheme": "none+beta", "length_multiple": 4,
    "trials": 10, "correct": 8, "digits_correct": 65, "accuracy": 0.8,
    "wilson_low": 0.4902, "wilson_high": 0.9433, "digit_accuracy": 0.9286}]}"#;

    #[test]
    fn the_shipped_needle_grid_writes_back_byte_for_byte() {
        let shipped = include_bytes!("../../public/results/niah.json");
        let grid = NeedleGrid::parse(shipped).unwrap();
        assert!(grid.pooled("drope", "none+beta", 2).is_some());
        assert_eq!(grid.lengths, pool_depths(&grid.cells));
        assert_eq!(to_json(&grid), std::str::from_utf8(shipped).unwrap());
    }

    #[test]
    fn the_first_needle_format_is_pooled_on_reading() {
        let grid = NeedleGrid::parse(NIAH_OLD.as_bytes()).unwrap();
        assert_eq!(grid.cells.len(), 4);
        assert_eq!(grid.cells[0].accuracy(), Some(0.75));
        assert_eq!(grid.lengths.len(), 3);
        let rope_1x = grid.pooled("rope", "rope", 1).unwrap();
        assert_eq!(
            (rope_1x.trials, rope_1x.correct, rope_1x.depth),
            (8, 4, None)
        );
        assert_eq!(rope_1x.accuracy(), Some(0.5));
        assert_eq!(
            rope_1x.digit_accuracy(),
            None,
            "no digit counts in this format"
        );
        assert_eq!(
            rope_1x.interval(),
            Some(crate::needles::wilson_interval(4, 8, crate::needles::Z_95))
        );
        assert_eq!(
            grid.rows(),
            vec![
                ("rope".into(), "rope".into()),
                ("drope".into(), "none".into())
            ]
        );
        assert_eq!((grid.multiples, grid.depths), (vec![1, 2], vec![0.1, 0.9]));
        assert_eq!(grid.seed, None);
    }

    #[test]
    fn the_current_needle_format_reads_its_budget_and_statistics() {
        let grid = NeedleGrid::parse(NIAH_NEW.as_bytes()).unwrap();
        let cell = grid.pooled("drope", "none+beta", 4).unwrap();
        let (low, high) = cell.interval().unwrap();
        assert!((low - 0.4902).abs() < 1e-4 && (high - 0.9433).abs() < 1e-4);
        assert_eq!(cell.digits_correct, Some(65));
        assert!((cell.digit_accuracy().unwrap() - 65.0 / 70.0).abs() < 1e-12);
        assert_eq!(grid.multiples, vec![1, 2, 4, 8]);
        assert_eq!((grid.min_trials, grid.max_trials), (Some(40), Some(400)));
        assert_eq!(
            grid.at_depth("drope", "none+beta", 4, 0.5),
            Some(&grid.cells[0])
        );
    }

    #[test]
    fn needle_files_that_contradict_themselves_are_refused() {
        assert!(NeedleGrid::parse(b"{}").is_err(), "cells are required");
        assert!(NeedleGrid::parse(b"[1, 2]").is_err());
        let cell = |fields: &str| {
            format!(
                r#"{{"cells": [{{"model": "rope", "scheme": "pi", "length_multiple": 2, {fields}}}]}}"#
            )
        };
        let err = NeedleGrid::parse(cell(r#""trials": 4, "correct": 5"#).as_bytes()).unwrap_err();
        assert!(err.contains("5 correct of 4 trials"), "{err}");
        let err =
            NeedleGrid::parse(cell(r#""trials": 1, "correct": 1, "digits_correct": 8"#).as_bytes())
                .unwrap_err();
        assert!(err.contains("8 answer digits"), "{err}");
        let err =
            NeedleGrid::parse(cell(r#""trials": 10, "correct": 8, "accuracy": 0.5"#).as_bytes())
                .unwrap_err();
        assert!(
            err.contains("accuracy 0.5, but its counts give 0.8"),
            "{err}"
        );
        assert!(NeedleGrid::parse(cell(r#""trials": "4", "correct": 1"#).as_bytes()).is_err());
    }

    #[test]
    fn pooling_adds_counts_and_keeps_digits_only_where_all_have_them() {
        let tally = |trials, correct, digits_correct| NeedleTally {
            trials,
            correct,
            digits_correct,
        };
        let mut no_digits = NeedleCell::new("rope", "pi", 4, Some(0.5), tally(3, 0, 0));
        no_digits.digits_correct = None;
        let cells = [
            NeedleCell::new("rope", "pi", 2, Some(0.1), tally(2, 1, 10)),
            NeedleCell::new("rope", "pi", 4, Some(0.1), tally(2, 0, 4)),
            NeedleCell::new("rope", "pi", 2, Some(0.9), tally(2, 0, 4)),
            no_digits,
        ];
        let pooled = pool_depths(&cells);
        assert_eq!(pooled.len(), 2);
        assert_eq!((pooled[0].length_multiple, pooled[0].depth), (2, None));
        assert_eq!(pooled[0].tally(), tally(4, 1, 14));
        assert_eq!(pooled[0].digit_accuracy(), Some(0.5));
        assert_eq!((pooled[1].trials, pooled[1].digits_correct), (5, None));
    }
}
