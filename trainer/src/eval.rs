//! `trainer eval`: the paper's measurements on the exported models, on the test split.
//!
//! - Perplexity in windows 0-L, L-2L, 2L-4L, 4L-8L of 8L-token test sequences, for every
//!   model/scheme pair. A fixed-`s` scheme runs each sequence once at `s = 8`; a dynamic
//!   one runs the prefix ending at each window's end `bL` with `s = b`, i.e. the scale a
//!   dynamic model would have reached there.
//! - Needle in a haystack at 1x, 2x, 4x, 8x L and several depths: a test-split haystack,
//!   one needle, greedy decoding of the answer, exact match and per-digit score. Trials
//!   per length run until the 95% Wilson interval of the accuracy is narrow enough
//!   ([`NeedleBudget`]). Schemes use `s = T / L`.
//! - DroPE's `c` in `beta(s) = 1 + c ln s`, fitted on the *validation* split (`fit_c`).

use candle_core::{Device, Tensor, D};
use engine::cpu::{token_tensor, ForwardSettings, RotaryTables, Transformer};
use engine::init::SplitMix64;
use engine::{ModelConfig, ModelWeights, SchemeSpec};
use serde::Serialize;

use crate::needles::{scheme_at, AnswerScore, NeedleMaker, ANSWER_DIGITS};

/// Window edges in multiples of L.
pub const WINDOWS: [(usize, usize); 4] = [(0, 1), (1, 2), (2, 4), (4, 8)];

/// A model under evaluation.
pub struct EvalModel {
    /// Manifest id ("rope", "drope", "nope").
    pub id: String,
    /// Its configuration.
    pub config: ModelConfig,
    /// Its weights.
    pub weights: ModelWeights,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Per-position NLL of `tokens[1..]` given `tokens[..len]`, for a batch of equal-length
/// sequences, under `scheme` evaluated at context length `len`.
pub fn sequence_nll(
    model: &EvalModel,
    scheme: &SchemeSpec,
    sequences: &[&[u32]],
) -> Result<Vec<Vec<f32>>, String> {
    let config = &model.config;
    let len = sequences[0].len() - 1;
    let applied = scheme.apply_to(config, len).map_err(err)?;
    let rotary = RotaryTables::for_scheme(&applied, 0, len, &Device::Cpu).map_err(err)?;
    let settings = ForwardSettings {
        rotary: rotary.as_ref(),
        logit_scale: applied.logit_scale,
    };
    let inputs: Vec<u32> = sequences
        .iter()
        .flat_map(|s| s[..len].iter().copied())
        .collect();
    let targets: Vec<u32> = sequences
        .iter()
        .flat_map(|s| s[1..].iter().copied())
        .collect();
    let b = sequences.len();
    let inputs = Tensor::from_vec(inputs, (b, len), &Device::Cpu).map_err(err)?;
    let targets = Tensor::from_vec(targets, (b, len, 1), &Device::Cpu).map_err(err)?;
    let logits = Transformer::new(config, &model.weights)
        .forward(&inputs, &settings, None, |_, _| Ok(()))
        .map_err(err)?;
    let log_norm = logits.log_sum_exp(D::Minus1).map_err(err)?;
    let picked = logits
        .gather(&targets, D::Minus1)
        .map_err(err)?
        .squeeze(D::Minus1)
        .map_err(err)?;
    (log_norm - picked)
        .map_err(err)?
        .to_vec2::<f32>()
        .map_err(err)
}

pub use engine::results::PerplexityRow;

/// Mean NLL per window of `sequences` (each `8L + 1` tokens) for one model and scheme.
pub fn window_perplexity(
    model: &EvalModel,
    scheme: &SchemeSpec,
    sequences: &[&[u32]],
    batch: usize,
) -> Result<PerplexityRow, String> {
    let l = model.config.training_length();
    let mut sums = [0f64; 4];
    let mut counts = [0usize; 4];
    for group in sequences.chunks(batch.max(1)) {
        if scheme.is_dynamic() {
            for (w, &(start, end)) in WINDOWS.iter().enumerate() {
                let prefixes: Vec<&[u32]> = group.iter().map(|s| &s[..end * l + 1]).collect();
                for row in sequence_nll(model, scheme, &prefixes)? {
                    sums[w] += row[start * l..end * l]
                        .iter()
                        .map(|&x| x as f64)
                        .sum::<f64>();
                    counts[w] += (end - start) * l;
                }
            }
        } else {
            for row in sequence_nll(model, scheme, group)? {
                for (w, &(start, end)) in WINDOWS.iter().enumerate() {
                    sums[w] += row[start * l..end * l]
                        .iter()
                        .map(|&x| x as f64)
                        .sum::<f64>();
                    counts[w] += (end - start) * l;
                }
            }
        }
    }
    let nll: Vec<f64> = sums
        .iter()
        .zip(counts)
        .map(|(s, c)| s / c.max(1) as f64)
        .collect();
    Ok(PerplexityRow {
        model: model.id.clone(),
        scheme: scheme.to_string(),
        perplexity: nll.iter().map(|x| x.exp()).collect(),
        nll,
    })
}

/// Mean NLL over whole sequences of `m L` tokens for m = 2, 4, 8, with DroPE's logit scale
/// at coefficient `c` and `s = m`: the objective the paper minimises to fit `c`.
pub fn beta_objective(
    model: &EvalModel,
    c: f64,
    sequences: &[&[u32]],
    batch: usize,
) -> Result<f64, String> {
    let l = model.config.training_length();
    let mut total = 0.0;
    for m in [2usize, 4, 8] {
        let scheme: SchemeSpec = format!("none:{m}+beta={c}").parse().map_err(err)?;
        let (mut sum, mut count) = (0.0, 0usize);
        for group in sequences.chunks(batch.max(1)) {
            let prefixes: Vec<&[u32]> = group.iter().map(|s| &s[..m * l + 1]).collect();
            for row in sequence_nll(model, &scheme, &prefixes)? {
                sum += row.iter().map(|&x| x as f64).sum::<f64>();
                count += row.len();
            }
        }
        total += sum / count as f64;
    }
    Ok(total / 3.0)
}

/// The result of [`fit_c`].
pub struct CoefficientFit {
    /// The fitted `c` (rounded to 3 decimals).
    pub c: f64,
    /// The objective (mean NLL) at `c`.
    pub objective: f64,
    /// `(c, objective)` at every grid point.
    pub grid: Vec<(f64, f64)>,
}

/// Fits `c` on validation sequences: a grid over [-0.3, 1] in steps of 0.1, then a parabola
/// through the best grid point and its neighbours.
pub fn fit_c(
    model: &EvalModel,
    sequences: &[&[u32]],
    batch: usize,
) -> Result<CoefficientFit, String> {
    let mut grid = Vec::new();
    // Negative c (softer attention at length) is allowed: the data decides the sign.
    for i in -3..=10 {
        let c = i as f64 / 10.0;
        grid.push((c, beta_objective(model, c, sequences, batch)?));
    }
    let best = (0..grid.len())
        .min_by(|&a, &b| grid[a].1.total_cmp(&grid[b].1))
        .unwrap_or(0);
    let mut c = grid[best].0;
    if best > 0 && best + 1 < grid.len() {
        let ((x0, y0), (x1, y1), (x2, y2)) = (grid[best - 1], grid[best], grid[best + 1]);
        let denom = (x0 - x1) * (x0 - x2) * (x1 - x2);
        let a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denom;
        let b = (x2 * x2 * (y0 - y1) + x1 * x1 * (y2 - y0) + x0 * x0 * (y1 - y2)) / denom;
        if a > 0.0 {
            c = (-b / (2.0 * a)).clamp(x0, x2);
        }
    }
    let value = beta_objective(model, c, sequences, batch)?;
    let (c, objective) = if value <= grid[best].1 {
        (c, value)
    } else {
        grid[best]
    };
    Ok(CoefficientFit {
        c: (c * 1000.0).round() / 1000.0,
        objective,
        grid,
    })
}

/// Shortest context (tokens) the needle test is run at.
pub const MIN_NEEDLE_CONTEXT: usize = 128;

/// Normal quantile of a two-sided 95% interval.
pub const Z_95: f64 = 1.959_964;

/// Wilson score interval `(low, high)` of a binomial proportion, `successes` out of
/// `trials`, at normal quantile `z`. Unlike the normal approximation it stays inside
/// [0, 1] and is not degenerate at 0% or 100%, which is where weak or strong models sit.
/// No trials: `(0, 1)`.
pub fn wilson_interval(successes: usize, trials: usize, z: f64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let n = trials as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Counts of needle trials.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NeedleTally {
    /// Trials run.
    pub trials: usize,
    /// Exact matches.
    pub correct: usize,
    /// Answer digits right in the right place, over all trials.
    pub digits_correct: usize,
}

impl NeedleTally {
    /// Adds one trial.
    pub fn record(&mut self, score: AnswerScore) {
        self.trials += 1;
        self.correct += usize::from(score.exact);
        self.digits_correct += score.digits_right;
    }

    /// Adds another tally's trials.
    pub fn add(&mut self, other: NeedleTally) {
        self.trials += other.trials;
        self.correct += other.correct;
        self.digits_correct += other.digits_correct;
    }

    /// Exact-match accuracy (0 without trials).
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.trials.max(1) as f64
    }

    /// Fraction of answer digits right in the right place (0 without trials).
    pub fn digit_accuracy(&self) -> f64 {
        self.digits_correct as f64 / (ANSWER_DIGITS * self.trials).max(1) as f64
    }

    /// 95% Wilson interval of the exact-match accuracy.
    pub fn wilson(&self) -> (f64, f64) {
        wilson_interval(self.correct, self.trials, Z_95)
    }
}

/// When to stop running needle trials at one length (depths pooled).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NeedleBudget {
    /// Trials always run.
    pub min_trials: usize,
    /// Trials never started once reached (a round over the depths is finished first).
    pub max_trials: usize,
    /// Target half-width of the 95% Wilson interval of the exact-match accuracy.
    pub half_width: f64,
}

impl Default for NeedleBudget {
    /// At least 40 trials, at most 400; +-5 points. 0% or 100% reach +-5 points at
    /// 35 trials, 50% (the worst case) at 381.
    fn default() -> Self {
        NeedleBudget {
            min_trials: 40,
            max_trials: 400,
            half_width: 0.05,
        }
    }
}

impl NeedleBudget {
    /// Whether `tally` needs no more trials.
    pub fn is_met(&self, tally: &NeedleTally) -> bool {
        let (low, high) = tally.wilson();
        tally.trials >= self.max_trials
            || (tally.trials >= self.min_trials && (high - low) / 2.0 <= self.half_width)
    }
}

/// One cell of the needle grid: a model/scheme at one length and depth, or all depths
/// pooled (`depth` absent). Counts and the statistics derived from them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NeedleCell {
    /// Model id.
    pub model: String,
    /// Scheme family in text form (its `s` is set per length).
    pub scheme: String,
    /// Context length in multiples of L.
    pub length_multiple: usize,
    /// Needle depth (0 = start of the haystack, 1 = end); `None` when depths are pooled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth: Option<f64>,
    /// Trials run.
    pub trials: usize,
    /// Exact matches.
    pub correct: usize,
    /// Answer digits right in the right place, over all trials (7 per trial at most).
    pub digits_correct: usize,
    /// `correct / trials`.
    pub accuracy: f64,
    /// Lower end of the 95% Wilson interval of `accuracy`.
    pub wilson_low: f64,
    /// Upper end of the 95% Wilson interval of `accuracy`.
    pub wilson_high: f64,
    /// `digits_correct / (7 trials)`: partial retrieval that exact match hides.
    pub digit_accuracy: f64,
}

impl NeedleCell {
    /// A cell with the statistics of `tally`.
    pub fn new(
        model: &str,
        scheme: &str,
        length_multiple: usize,
        depth: Option<f64>,
        tally: NeedleTally,
    ) -> Self {
        let (wilson_low, wilson_high) = tally.wilson();
        NeedleCell {
            model: model.to_string(),
            scheme: scheme.to_string(),
            length_multiple,
            depth,
            trials: tally.trials,
            correct: tally.correct,
            digits_correct: tally.digits_correct,
            accuracy: tally.accuracy(),
            wilson_low,
            wilson_high,
            digit_accuracy: tally.digit_accuracy(),
        }
    }

    /// The counts behind the cell.
    pub fn tally(&self) -> NeedleTally {
        NeedleTally {
            trials: self.trials,
            correct: self.correct,
            digits_correct: self.digits_correct,
        }
    }
}

/// Pools per-depth cells into one cell per (model, scheme, length), in order of first
/// appearance.
pub fn pool_depths(cells: &[NeedleCell]) -> Vec<NeedleCell> {
    let mut pooled: Vec<(NeedleCell, NeedleTally)> = Vec::new();
    for cell in cells {
        let same = |(p, _): &&mut (NeedleCell, NeedleTally)| {
            p.model == cell.model
                && p.scheme == cell.scheme
                && p.length_multiple == cell.length_multiple
        };
        match pooled.iter_mut().find(same) {
            Some((_, tally)) => tally.add(cell.tally()),
            None => pooled.push((cell.clone(), cell.tally())),
        }
    }
    pooled
        .into_iter()
        .map(|(c, tally)| NeedleCell::new(&c.model, &c.scheme, c.length_multiple, None, tally))
        .collect()
}

/// Greedy answer of `prompt` under `scheme` (`s` fixed for the whole prompt + answer).
pub fn greedy_answer(
    model: &EvalModel,
    scheme: &SchemeSpec,
    prompt: &[u32],
    answer_len: usize,
) -> Result<Vec<u32>, String> {
    let config = &model.config;
    // A model trained with a beginning-of-sequence token reads it first (the studio's
    // needle runner does the same).
    let mut next: Vec<u32> = config.with_bos(prompt);
    let total = next.len() + answer_len;
    let applied = scheme.apply_to(config, total).map_err(err)?;
    let mut cache = vec![engine::cpu::LayerCache::default(); config.num_hidden_layers];
    let transformer = Transformer::new(config, &model.weights);
    let mut position = 0;
    let mut out = Vec::new();
    while out.len() < answer_len {
        let rotary =
            RotaryTables::for_scheme(&applied, position, next.len(), &Device::Cpu).map_err(err)?;
        let settings = ForwardSettings {
            rotary: rotary.as_ref(),
            logit_scale: applied.logit_scale,
        };
        let tokens = token_tensor(&next, &Device::Cpu).map_err(err)?;
        let logits = transformer
            .forward(&tokens, &settings, Some(&mut cache), |_, _| Ok(()))
            .map_err(err)?;
        let last = logits
            .squeeze(0)
            .map_err(err)?
            .get(next.len() - 1)
            .map_err(err)?;
        let token = last
            .argmax(D::Minus1)
            .map_err(err)?
            .to_scalar::<u32>()
            .map_err(err)?;
        position += next.len();
        out.push(token);
        next = vec![token];
    }
    Ok(out)
}

/// The needle grid of one model and scheme family (`scheme_family` without a scale, e.g.
/// "pi", "none+beta"; `s = multiple`): per length, rounds of one trial per depth until
/// `budget` is met by the pooled exact-match accuracy. Returns one cell per (length, depth).
#[allow(clippy::too_many_arguments)]
pub fn needle_grid(
    model: &EvalModel,
    scheme_family: &str,
    maker: &NeedleMaker<'_>,
    haystack: &[u32],
    multiples: &[usize],
    depths: &[f64],
    budget: &NeedleBudget,
    seed: u64,
) -> Result<Vec<NeedleCell>, String> {
    if depths.is_empty() {
        return Err("the needle grid needs at least one depth".into());
    }
    let l = model.config.training_length();
    let mut cells = Vec::new();
    // Below this, the needle and the question leave almost no haystack: not a real test.
    for &m in multiples.iter().filter(|&&m| m * l >= MIN_NEEDLE_CONTEXT) {
        let scheme: SchemeSpec = scheme_at(scheme_family, m).parse().map_err(err)?;
        let total = m * l;
        // One generator per (length, depth), independent of the model: the k-th document
        // at a depth is the same for every model and scheme however many trials each one
        // needs, so comparisons are paired.
        let mut rngs: Vec<SplitMix64> = depths
            .iter()
            .map(|&d| SplitMix64::for_stream(seed, ((m as u64) << 32) | (d * 1000.0) as u64))
            .collect();
        let mut tallies = vec![NeedleTally::default(); depths.len()];
        let mut pooled = NeedleTally::default();
        // Whole rounds keep the depths balanced; only the pooled accuracy decides when to stop.
        while !budget.is_met(&pooled) {
            for ((rng, &depth), tally) in rngs.iter_mut().zip(depths).zip(&mut tallies) {
                let start = (rng.next_u64() % (haystack.len() - total) as u64) as usize;
                let doc =
                    maker.make(&haystack[start..start + total], total - 8, &[depth], 0, rng)?;
                let answer = greedy_answer(model, &scheme, &doc.prompt, doc.answer.len())?;
                let score = maker.score(&doc, &answer)?;
                tally.record(score);
                pooled.record(score);
            }
        }
        cells.extend(depths.iter().zip(tallies).map(|(&depth, tally)| {
            NeedleCell::new(&model.id, scheme_family, m, Some(depth), tally)
        }));
    }
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: (f64, f64), b: (f64, f64)) -> bool {
        (a.0 - b.0).abs() < 5e-4 && (a.1 - b.1).abs() < 5e-4
    }

    #[test]
    fn wilson_interval_matches_hand_computed_values() {
        // centre 0.5, half-width 1.96 / 1.0384 * sqrt(0.0025 + 0.000096) = 0.0962.
        assert!(close(wilson_interval(50, 100, Z_95), (0.4038, 0.5962)));
        // 0 successes: [0, z^2 / (n + z^2)] = [0, 3.8415 / 78.8415].
        assert!(close(wilson_interval(0, 75, Z_95), (0.0, 0.0487)));
        assert!(close(wilson_interval(75, 75, Z_95), (0.9513, 1.0)));
        // centre 0.99207 / 1.38415 = 0.7167, half-width 1.4160 * 0.16001 = 0.2266.
        assert!(close(wilson_interval(8, 10, Z_95), (0.4902, 0.9433)));
        assert_eq!(wilson_interval(0, 0, Z_95), (0.0, 1.0));
    }

    #[test]
    fn the_budget_stops_at_the_target_width_between_the_minimum_and_the_cap() {
        let budget = NeedleBudget::default();
        let tally = |correct, trials| NeedleTally {
            trials,
            correct,
            digits_correct: 0,
        };
        assert!(
            !budget.is_met(&tally(0, 35)),
            "narrow enough but under the minimum"
        );
        assert!(
            budget.is_met(&tally(0, 40)),
            "0/40: [0, 0.088], half-width 0.044"
        );
        assert!(!budget.is_met(&tally(20, 40)), "20/40: half-width 0.15");
        assert!(!budget.is_met(&tally(190, 380)), "50% needs 381 trials");
        assert!(budget.is_met(&tally(190, 381)));
        assert!(budget.is_met(&tally(200, 400)), "the cap");
    }

    #[test]
    fn tallies_pool_across_depths() {
        let score = |exact, digits_right| AnswerScore {
            exact,
            digits_right,
        };
        let mut a = NeedleTally::default();
        a.record(score(true, 7));
        a.record(score(false, 3));
        let mut b = NeedleTally::default();
        b.record(score(false, 0));
        b.record(score(false, 4));
        let cells = [
            NeedleCell::new("rope", "pi", 2, Some(0.1), a),
            NeedleCell::new("rope", "pi", 4, Some(0.1), b),
            NeedleCell::new("rope", "pi", 2, Some(0.9), b),
        ];
        let pooled = pool_depths(&cells);
        assert_eq!(pooled.len(), 2);
        let two = &pooled[0];
        assert_eq!((two.length_multiple, two.depth), (2, None));
        assert_eq!((two.trials, two.correct, two.digits_correct), (4, 1, 14));
        assert_eq!((two.accuracy, two.digit_accuracy), (0.25, 0.5));
        assert_eq!(
            (two.wilson_low, two.wilson_high),
            wilson_interval(1, 4, Z_95)
        );
        assert_eq!(pooled[1].tally(), b);
    }
}
