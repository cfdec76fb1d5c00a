//! Probes of the circuits the story depends on, cheap enough to run at every evaluation
//! during training (so the training-story view shows when copying appears, what the drop
//! destroys and what recalibration restores) and on the exported models.
//!
//! - Induction: sequences of `n` random tokens repeated once. A model that copies from
//!   its context predicts the second copy far better than the first (uniform is
//!   `ln V`); one that has only learnt that repeats happen does not.
//! - Previous-token mass: per layer and head, the mean attention a token pays to the
//!   token right before it on prose. Induction heads are built on previous-token heads,
//!   and RoPE is what gives a model an easy way to form them.

use candle_core::{Device, Tensor, D};
use engine::cpu::{ForwardSettings, RotaryTables, Transformer};
use engine::init::SplitMix64;
use engine::{ModelConfig, SchemeSpec, TrainedPositions};
use serde::{Deserialize, Serialize};

use crate::data::start_with;
use crate::eval::{sequence_nll, EvalModel};

/// Sequences per induction measurement.
pub const INDUCTION_SEQUENCES: usize = 8;

/// Seed of the random spans: the same spans at every step and for every model.
const INDUCTION_SEED: u64 = 0x1d0c;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Mean NLL of the first and the second copy of a repeated random span.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InductionScore {
    /// Total sequence length (two copies of `total / 2` tokens).
    pub tokens: usize,
    /// Mean NLL over the first copy (its tokens after the first), nats.
    pub first: f64,
    /// Mean NLL over the second copy, nats.
    pub second: f64,
}

/// The scheme a model runs as trained: `rope` or `none`.
pub fn native_scheme(config: &ModelConfig) -> SchemeSpec {
    let text = match config.position_embedding {
        TrainedPositions::Rope => "rope",
        TrainedPositions::None => "none",
    };
    text.parse().expect("rope and none are schemes")
}

/// `count` sequences of `tokens` ids: a random span of `tokens / 2` repeated once.
pub fn repeated_random_sequences(vocab: usize, tokens: usize, count: usize) -> Vec<Vec<u32>> {
    let mut rng = SplitMix64::new(INDUCTION_SEED);
    let half = tokens / 2;
    (0..count)
        .map(|_| {
            let span: Vec<u32> = (0..half)
                .map(|_| (rng.next_u64() % vocab as u64) as u32)
                .collect();
            span.iter().chain(&span).copied().collect()
        })
        .collect()
}

/// The induction score of `model` under `scheme` on sequences of `tokens` tokens.
/// With `bos`, each sequence's first token is replaced by it (for models trained with a
/// beginning-of-sequence token at every window start).
pub fn induction(
    model: &EvalModel,
    scheme: &SchemeSpec,
    tokens: usize,
    bos: Option<u32>,
) -> Result<InductionScore, String> {
    // Two whole copies: an odd length loses its last token.
    let tokens = tokens / 2 * 2;
    if tokens < 6 {
        return Err(format!(
            "an induction probe needs at least 6 tokens, got {tokens}"
        ));
    }
    let mut sequences =
        repeated_random_sequences(model.config.vocab_size, tokens, INDUCTION_SEQUENCES);
    sequences.iter_mut().for_each(|s| start_with(s, bos));
    let refs: Vec<&[u32]> = sequences.iter().map(Vec::as_slice).collect();
    let half = tokens / 2;
    // Row t is the NLL of token t + 1. The first copy is tokens 1..half (rows
    // ..half - 1). In the second copy only tokens whose predecessor occurred earlier
    // followed by them can be copied: not token `half` (its predecessor, the span's last
    // token, was followed by this very token), nor with `bos` token `half + 1` (the
    // span's first token was replaced). So the second copy counts from row `half`
    // (`half + 1` with `bos`).
    let copyable = if bos.is_some() { half + 1 } else { half };
    let (mut first, mut second) = (0.0, 0.0);
    let mut rows = 0usize;
    for chunk in refs.chunks(4) {
        for row in sequence_nll(model, scheme, chunk)? {
            first += mean(&row[..half - 1]);
            second += mean(&row[copyable..]);
            rows += 1;
        }
    }
    Ok(InductionScore {
        tokens,
        first: first / rows as f64,
        second: second / rows as f64,
    })
}

fn mean(values: &[f32]) -> f64 {
    values.iter().map(|&x| x as f64).sum::<f64>() / values.len().max(1) as f64
}

/// Mean attention on the previous token, `[layer][head]`, over `windows` (each at
/// least two tokens, all of one length) run under the model's native scheme.
pub fn previous_token_mass(model: &EvalModel, windows: &[&[u32]]) -> Result<Vec<Vec<f64>>, String> {
    let config = &model.config;
    let len = windows.first().map_or(0, |w| w.len());
    if len < 2 || windows.iter().any(|w| w.len() != len) {
        return Err("previous-token mass needs windows of one length >= 2".into());
    }
    let applied = native_scheme(config).apply_to(config, len).map_err(err)?;
    let rotary = RotaryTables::for_scheme(&applied, 0, len, &Device::Cpu).map_err(err)?;
    let settings = ForwardSettings {
        rotary: rotary.as_ref(),
        logit_scale: applied.logit_scale,
    };
    let heads = config.num_attention_heads;
    let mut sums = vec![vec![0f64; heads]; config.num_hidden_layers];
    let tokens: Vec<u32> = windows.iter().flat_map(|w| w.iter().copied()).collect();
    let input = Tensor::from_vec(tokens, (windows.len(), len), &Device::Cpu).map_err(err)?;
    // The sub-diagonal of each [T, T] map: query t's weight on key t - 1, for t >= 1.
    let picks: Vec<u32> = (0..len as u32).map(|t| t.saturating_sub(1)).collect();
    let picks = Tensor::from_vec(picks, (1, 1, len, 1), &Device::Cpu).map_err(err)?;
    Transformer::new(config, &model.weights)
        .forward(&input, &settings, None, |layer, probs| {
            let (b, h, t, k) = probs.dims4()?;
            let index = picks.broadcast_as((b, h, t, 1))?.contiguous()?;
            let previous = probs.gather(&index, D::Minus1)?.squeeze(D::Minus1)?;
            // Drop query 0 (it has no previous token), mean over batch and queries.
            let per_head = previous
                .narrow(2, 1, t - 1)?
                .mean(2)?
                .mean(0)?
                .to_vec1::<f32>()?;
            debug_assert_eq!(k, t);
            for (head, value) in per_head.into_iter().enumerate() {
                sums[layer][head] = value as f64;
            }
            Ok(())
        })
        .map_err(err)?;
    Ok(sums)
}

/// The strongest previous-token head of each layer, from `[layer][head]` masses.
pub fn strongest_per_layer(previous_token: &[Vec<f64>]) -> Vec<f64> {
    previous_token
        .iter()
        .map(|heads| heads.iter().copied().fold(0.0, f64::max))
        .collect()
}

/// One row of probes, at one training step (or for one exported model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeRow {
    /// Training step.
    pub step: usize,
    /// Induction within L (sequences of `min(100, L)` tokens).
    pub induction: InductionScore,
    /// Induction at 4L under the model's native scheme (RoPE unscaled), where RoPE's
    /// unseen rotations break copying and a model without positions need not.
    pub induction_4l: InductionScore,
    /// Previous-token mass `[layer][head]` on validation prose.
    pub previous_token: Vec<Vec<f64>>,
}

/// Length of the within-L induction probe: 100 tokens (50 repeated), or L if shorter.
pub fn within_length(config: &ModelConfig) -> usize {
    config.training_length().min(100)
}

/// All probes of `model` at `step`; `prose` are validation windows of L tokens (starting
/// with `bos` when the model was trained with one).
pub fn probe(
    model: &EvalModel,
    step: usize,
    prose: &[&[u32]],
    bos: Option<u32>,
) -> Result<ProbeRow, String> {
    let scheme = native_scheme(&model.config);
    let l = model.config.training_length();
    Ok(ProbeRow {
        step,
        induction: induction(model, &scheme, within_length(&model.config), bos)?,
        induction_4l: induction(model, &scheme, 4 * l, bos)?,
        previous_token: previous_token_mass(model, prose)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_sequences_repeat_and_are_the_same_every_time() {
        let a = repeated_random_sequences(4096, 100, 3);
        assert_eq!(a, repeated_random_sequences(4096, 100, 3));
        for s in &a {
            assert_eq!(s.len(), 100);
            assert_eq!(s[..50], s[50..]);
            assert!(s.iter().all(|&t| t < 4096));
        }
        assert_ne!(a[0], a[1]);
    }
}
