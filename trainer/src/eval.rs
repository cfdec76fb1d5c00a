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

use std::sync::Arc;

use candle_core::{Device, Tensor, D};
use engine::cpu::{CpuBackend, ForwardSettings, RotaryTables, Transformer};
use engine::init::SplitMix64;
use engine::needle_trial::{run_trial, trial_scheme};
use engine::results::NeedleCell;
use engine::{Backend, ModelConfig, ModelWeights, SchemeSpec, Session, SessionOptions};

use crate::needles::{NeedleDocument, NeedleMaker, NeedleTally};

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

impl EvalModel {
    /// The model as a CPU backend, for a [`Session`](engine::Session) (the studio's path).
    pub fn backend(&self) -> Result<Arc<CpuBackend>, String> {
        CpuBackend::from_weights(self.config.clone(), self.weights.clone())
            .map(Arc::new)
            .map_err(err)
    }
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
    let applied = config.apply_scheme(scheme, len).map_err(err)?;
    let rotary = RotaryTables::for_scheme(&applied, 0, len, &Device::Cpu).map_err(err)?;
    let settings = ForwardSettings {
        rotary: rotary.as_ref(),
        logit_scale: applied.logit_scale,
        head_scales: applied.head_scales.as_deref(),
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

/// Per-position NLL of `tokens[1..]` given `tokens[..len]` (`len = tokens.len() - 1`,
/// the context length a dynamic scheme's `s` follows) through a [`Session`] on the CPU,
/// the path the studio's live runs take: the session holds `tokens[..len]` and scores
/// the last token from its next-token distribution.
pub fn session_nll(
    backend: &Arc<CpuBackend>,
    scheme: SchemeSpec,
    tokens: &[u32],
) -> Result<Vec<f32>, String> {
    let (&last, context) = tokens
        .split_last()
        .filter(|(_, c)| !c.is_empty())
        .ok_or("a sequence to score needs at least two tokens")?;
    let mut options = SessionOptions::new(scheme, backend.config().training_length());
    options.max_tokens = context.len();
    options.top_k = 0;
    let mut session = Session::new(Arc::clone(backend), options).map_err(err)?;
    // The CPU backend's futures are ready when first polled.
    let trace = pollster::block_on(session.extend(context)).map_err(err)?;
    let missing = || "a scored position has no NLL".to_string();
    let mut nll = trace
        .positions
        .iter()
        .skip(1)
        .map(|p| p.nll.ok_or_else(missing))
        .collect::<Result<Vec<f32>, String>>()?;
    nll.push(session.next_nll(last).ok_or_else(missing)?);
    Ok(nll)
}

/// Mean NLL per window of `sequences` (each `8L + 1` tokens) for one model and scheme,
/// each sequence run through a [`Session`] as the studio runs it ([`session_nll`]).
pub fn window_perplexity(
    model: &EvalModel,
    scheme: &SchemeSpec,
    sequences: &[&[u32]],
) -> Result<PerplexityRow, String> {
    let l = model.config.training_length();
    let backend = model.backend()?;
    let mut sums = [0f64; 4];
    let mut counts = [0usize; 4];
    let mut add = |w: usize, nll: &[f32]| {
        let (start, end) = WINDOWS[w];
        sums[w] += nll[start * l..end * l]
            .iter()
            .map(|&x| x as f64)
            .sum::<f64>();
        counts[w] += (end - start) * l;
    };
    for sequence in sequences {
        if scheme.is_dynamic() {
            // Each window's prefix alone, at the scale a dynamic model has reached there.
            for (w, &(_, end)) in WINDOWS.iter().enumerate() {
                add(
                    w,
                    &session_nll(&backend, *scheme, &sequence[..end * l + 1])?,
                );
            }
        } else {
            let nll = session_nll(&backend, *scheme, sequence)?;
            (0..WINDOWS.len()).for_each(|w| add(w, &nll));
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
    scaled_objective(model, &format!("+beta={c}"), sequences, batch)
}

/// [`beta_objective`] with the logit scale given by `beta` (`+beta=<c>` or
/// `+beta=heads`, the model's `drope_head_c`).
fn scaled_objective(
    model: &EvalModel,
    beta: &str,
    sequences: &[&[u32]],
    batch: usize,
) -> Result<f64, String> {
    let l = model.config.training_length();
    let mut total = 0.0;
    for m in [2usize, 4, 8] {
        let scheme: SchemeSpec = format!("none:{m}{beta}").parse().map_err(err)?;
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

/// The result of [`fit_head_c`].
pub struct HeadFit {
    /// One `c` per head, `layer * heads + head` (rounded to 3 decimals).
    pub c: Vec<f64>,
    /// The objective (mean NLL) at `c`.
    pub objective: f64,
}

/// A needle document scored by its answer alone, for [`HeadObjective::Answers`].
pub struct AnswerDoc {
    /// The document's length in multiples of L: the scale `s` it is scored at.
    pub multiple: usize,
    /// The prompt followed by the answer.
    pub tokens: Vec<u32>,
    /// Where the answer starts in `tokens`.
    pub answer_start: usize,
}

/// What [`fit_head_c`] minimises.
pub enum HeadObjective<'a> {
    /// Mean NLL of prose at 2L, 4L and 8L, as [`fit_c`].
    Prose {
        /// Validation sequences of at least `8L + 1` tokens.
        sequences: &'a [&'a [u32]],
        /// Sequences per forward pass.
        batch: usize,
    },
    /// Mean NLL of the answer tokens of needle documents, each at its own length: what
    /// the needle test asks of a head, rather than what prose asks.
    Answers(&'a [AnswerDoc]),
}

impl HeadObjective<'_> {
    /// The objective with the model's per-head coefficients (`+beta=heads`).
    fn value(&self, model: &EvalModel) -> Result<f64, String> {
        match self {
            HeadObjective::Prose { sequences, batch } => {
                scaled_objective(model, "+beta=heads", sequences, *batch)
            }
            HeadObjective::Answers(docs) => {
                let (mut sum, mut count) = (0.0, 0usize);
                for doc in docs.iter() {
                    let scheme: SchemeSpec = format!("none:{}+beta=heads", doc.multiple)
                        .parse()
                        .map_err(err)?;
                    let nll = sequence_nll(model, &scheme, &[&doc.tokens])?;
                    // Row j scores token j + 1.
                    let answer = &nll[0][doc.answer_start - 1..];
                    sum += answer.iter().map(|&x| x as f64).sum::<f64>();
                    count += answer.len();
                }
                Ok(sum / count.max(1) as f64)
            }
        }
    }
}

/// Steps tried for a coefficient (or a layer's coefficients together) in each pass of
/// [`fit_head_c`].
const HEAD_STEPS: [f64; 8] = [-0.2, -0.1, -0.05, 0.05, 0.1, 0.2, 0.4, 0.8];

/// Fits one `c` per head to `objective`: every head starts at `start` (the model's one
/// fitted `c`); two passes move each layer's heads together, then one pass moves each head
/// alone, each trying the steps of [`HEAD_STEPS`] and keeping a step only if the objective
/// falls. Steps that would leave the allowed range, or turn a head's beta negative at 8L,
/// are skipped. Not the paper's method (one `c` per model): heads that track position need
/// a sharper scale past L than heads that match content, and one `c` must compromise.
pub fn fit_head_c(
    model: &mut EvalModel,
    start: f64,
    objective: &HeadObjective<'_>,
) -> Result<HeadFit, String> {
    let heads = model.config.num_attention_heads;
    let count = model.config.num_hidden_layers * heads;
    let objective_at = |model: &mut EvalModel, c: &[f64]| {
        model.config.drope_head_c = Some(c.to_vec());
        objective.value(model)
    };
    let allowed =
        |c: f64| engine::position::check_beta_coefficient(c).is_ok() && 1.0 + c * 8f64.ln() > 0.0;
    let mut c = vec![start; count];
    let mut best = objective_at(model, &c)?;
    let groups: Vec<Vec<usize>> = (0..count / heads)
        .map(|layer| (layer * heads..(layer + 1) * heads).collect())
        .collect();
    let singles: Vec<Vec<usize>> = (0..count).map(|i| vec![i]).collect();
    for pass in [&groups, &groups, &singles] {
        for group in pass {
            for step in HEAD_STEPS {
                let mut trial = c.clone();
                group.iter().for_each(|&i| trial[i] += step);
                if !group.iter().all(|&i| allowed(trial[i])) {
                    continue;
                }
                let value = objective_at(model, &trial)?;
                if value < best {
                    (best, c) = (value, trial);
                }
            }
        }
    }
    let c: Vec<f64> = c.iter().map(|x| (x * 1000.0).round() / 1000.0).collect();
    let objective = objective_at(model, &c)?;
    Ok(HeadFit { c, objective })
}

/// Shortest context (tokens) the needle test is run at.
pub const MIN_NEEDLE_CONTEXT: usize = 128;

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

/// The greedy answer to `doc` (the model's first token already in it) under `scheme`,
/// through a [`Session`](engine::Session) on the CPU: the path the studio's live needle
/// test runs ([`engine::needle_trial`]).
pub fn greedy_answer(
    backend: &Arc<CpuBackend>,
    scheme: SchemeSpec,
    doc: &NeedleDocument,
) -> Result<Vec<u32>, String> {
    // The CPU backend's futures are ready when first polled.
    let run = pollster::block_on(run_trial(Arc::clone(backend), scheme, doc)).map_err(err)?;
    Ok(run.generated)
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
    let family: SchemeSpec = scheme_family.parse().map_err(err)?;
    let backend = model.backend()?;
    let mut cells = Vec::new();
    // Below this, the needle and the question leave almost no haystack: not a real test.
    for &m in multiples.iter().filter(|&&m| m * l >= MIN_NEEDLE_CONTEXT) {
        let scheme = trial_scheme(&family, m);
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
                let doc = maker
                    .make(&haystack[start..start + total], total - 8, &[depth], 0, rng)?
                    .with_bos(model.config.bos_token_id);
                let answer = greedy_answer(&backend, scheme, &doc)?;
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

    /// A random model of 2 layers x 4 heads, L = 8, vocabulary 64, with peaked attention
    /// (weights of std 0.3) so the scheme matters.
    fn tiny(positions: &str, seed: u64) -> EvalModel {
        let config = ModelConfig::from_json(
            format!(
                r#"{{"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                "intermediate_size": 48, "vocab_size": 64, "max_position_embeddings": 8,
                "position_embedding": "{positions}"}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        let weights = engine::init::random_weights(&config, seed, 0.3).unwrap();
        EvalModel {
            id: positions.into(),
            config,
            weights,
        }
    }

    #[test]
    fn a_session_scores_a_sequence_as_the_batched_forward_does() {
        let model = tiny("rope", 4);
        let mut rng = SplitMix64::new(5);
        let tokens: Vec<u32> = (0..8 * 8 + 1)
            .map(|_| (rng.next_u64() % 64) as u32)
            .collect();
        for scheme in ["rope", "yarn:8", "yarn:dyn"] {
            let scheme: SchemeSpec = scheme.parse().unwrap();
            let batched = &sequence_nll(&model, &scheme, &[&tokens]).unwrap()[0];
            let session = session_nll(&model.backend().unwrap(), scheme, &tokens).unwrap();
            assert_eq!(session.len(), batched.len());
            for (a, b) in session.iter().zip(batched) {
                assert!((a - b).abs() < 1e-4, "{scheme}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn per_head_coefficients_fit_at_least_as_well_as_the_one_they_start_from() {
        let mut model = tiny("none", 3);
        let mut rng = SplitMix64::new(9);
        // Repeated spans: something attention at a distance can predict.
        let sequences: Vec<Vec<u32>> = (0..2)
            .map(|_| {
                let span: Vec<u32> = (0..13).map(|_| (rng.next_u64() % 64) as u32).collect();
                span.iter().copied().cycle().take(8 * 8 + 1).collect()
            })
            .collect();
        let sequences: Vec<&[u32]> = sequences.iter().map(Vec::as_slice).collect();
        let start = 0.2;
        let one_c = beta_objective(&model, start, &sequences, 2).unwrap();
        let objective = HeadObjective::Prose {
            sequences: &sequences,
            batch: 2,
        };
        let fit = fit_head_c(&mut model, start, &objective).unwrap();
        assert_eq!(fit.c.len(), 8);
        assert!(fit.objective <= one_c + 1e-4, "{} > {one_c}", fit.objective);
        assert!(
            fit.c.iter().all(|&c| 1.0 + c * 8f64.ln() > 0.0),
            "{:?}",
            fit.c
        );
        // The objective reported is the model's with those coefficients.
        model.config.drope_head_c = Some(fit.c.clone());
        let again = scaled_objective(&model, "+beta=heads", &sequences, 2).unwrap();
        assert!((again - fit.objective).abs() < 1e-9);
    }

    #[test]
    fn per_head_coefficients_fitted_on_answers_score_only_the_answers() {
        let mut model = tiny("none", 4);
        let mut rng = SplitMix64::new(11);
        // A span, filler, then the span again: the "answer" is the repeat's last 4 tokens.
        let docs: Vec<AnswerDoc> = [2usize, 4]
            .iter()
            .map(|&m| {
                let span: Vec<u32> = (0..6).map(|_| (rng.next_u64() % 64) as u32).collect();
                let mut tokens = span.clone();
                tokens.extend((0..m * 8 - 12).map(|_| (rng.next_u64() % 64) as u32));
                tokens.extend(&span);
                let answer_start = tokens.len() - 4;
                AnswerDoc {
                    multiple: m,
                    tokens,
                    answer_start,
                }
            })
            .collect();
        let objective = HeadObjective::Answers(&docs);
        let start = 0.2;
        model.config.drope_head_c = Some(vec![start; 8]);
        let at_start = objective.value(&model).unwrap();
        // By hand: the mean NLL of each document's last 4 tokens at s = its multiple.
        let mut by_hand = 0.0;
        for doc in &docs {
            let scheme: SchemeSpec = format!("none:{}+beta={start}", doc.multiple)
                .parse()
                .unwrap();
            let nll = sequence_nll(&model, &scheme, &[&doc.tokens]).unwrap();
            by_hand += nll[0][nll[0].len() - 4..]
                .iter()
                .map(|&x| x as f64)
                .sum::<f64>();
        }
        assert!(
            (at_start - by_hand / 8.0).abs() < 1e-5,
            "{at_start} vs {}",
            by_hand / 8.0
        );
        let fit = fit_head_c(&mut model, start, &objective).unwrap();
        assert!(
            fit.objective <= at_start + 1e-4,
            "{} > {at_start}",
            fit.objective
        );
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
}
