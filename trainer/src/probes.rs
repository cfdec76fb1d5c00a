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
//! - Needles ([`needle_probe`]): a fixed set of retrieval documents of L tokens from the
//!   validation split, answered greedily as in `trainer eval`'s needle test. Too slow for
//!   every evaluation, so `trainer probe` ([`crate::probe`]) measures it afterwards on the
//!   snapshots a run saved.

use candle_core::{Device, Tensor, D};
use engine::cpu::{ForwardSettings, RotaryTables, Transformer};
use engine::init::SplitMix64;
pub use engine::train_log::{InductionScore, NeedleTally, ProbeRow};
use engine::{ModelConfig, SchemeSpec, TrainedPositions};

use crate::data::start_with;
use crate::eval::{greedy_answer, sequence_nll, EvalModel};
use crate::needles::NeedleMaker;

/// Sequences per induction measurement.
pub const INDUCTION_SEQUENCES: usize = 8;

/// Seed of the random spans: the same spans at every step and for every model.
const INDUCTION_SEED: u64 = 0x1d0c;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
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
    let applied = config
        .apply_scheme(&native_scheme(config), len)
        .map_err(err)?;
    let rotary = RotaryTables::for_scheme(&applied, 0, len, &Device::Cpu).map_err(err)?;
    let settings = ForwardSettings {
        rotary: rotary.as_ref(),
        logit_scale: applied.logit_scale,
        head_scales: applied.head_scales.as_deref(),
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

/// Needle documents per probe unless `trainer probe --trials` says otherwise.
pub const NEEDLE_TRIALS: usize = 24;

/// Seed of the probe's needle documents: the same documents at every step and for every
/// model of one training length.
const NEEDLE_SEED: u64 = 0x2ee0_d1e5;

/// Needle depths of a probe with `trials` documents: one per document, spread evenly over
/// (0, 1) (`(i + 0.5) / trials`).
pub fn needle_depths(trials: usize) -> Vec<f64> {
    (0..trials)
        .map(|i| (i as f64 + 0.5) / trials as f64)
        .collect()
}

/// The needle test at L under the model's native scheme, on `trials` documents with one
/// needle each at [`needle_depths`], haystacks cut from `haystack` (the validation split;
/// the test split is for `trainer eval`) at offsets drawn from a fixed seed: the same
/// documents for every snapshot and every model of one L. As in `trainer eval`'s needle
/// grid, the prompt is `L - 8` tokens, the answer greedily decoded after it (with the
/// model's first token in front when its config has one) and scored exact and per digit.
pub fn needle_probe(
    model: &EvalModel,
    maker: &NeedleMaker<'_>,
    haystack: &[u32],
    trials: usize,
) -> Result<NeedleTally, String> {
    let l = model.config.training_length();
    let room = haystack
        .len()
        .checked_sub(l)
        .filter(|&r| r > 0)
        .ok_or_else(|| {
            format!(
                "the needle probe needs a haystack of more than L = {l} tokens, got {}",
                haystack.len()
            )
        })?;
    let scheme = native_scheme(&model.config);
    let backend = model.backend()?;
    let mut rng = SplitMix64::new(NEEDLE_SEED);
    let mut tally = NeedleTally::default();
    for depth in needle_depths(trials) {
        let start = (rng.next_u64() % room as u64) as usize;
        let doc = maker
            .make(
                &haystack[start..start + l],
                l.saturating_sub(8),
                &[depth],
                0,
                &mut rng,
            )
            .map_err(|e| format!("needle probe at L = {l}: {e}"))?
            .with_bos(model.config.bos_token_id);
        let answer = greedy_answer(&backend, scheme, &doc)?;
        tally.record(maker.score(&doc, &answer)?);
    }
    Ok(tally)
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
        induction: Some(induction(
            model,
            &scheme,
            within_length(&model.config),
            bos,
        )?),
        induction_4l: Some(induction(model, &scheme, 4 * l, bos)?),
        previous_token: previous_token_mass(model, prose)?,
        needles: None,
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

    fn tiny_model(bos: Option<u32>) -> EvalModel {
        let config = ModelConfig {
            hidden_size: 32,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: Some(4),
            intermediate_size: 64,
            vocab_size: 4096,
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            tie_word_embeddings: true,
            max_position_embeddings: 128,
            head_dim: None,
            position_embedding: TrainedPositions::Rope,
            drope_c: None,
            drope_head_c: None,
            qk_norm: false,
            bos_token_id: bos,
            rope_scaling: None,
            foreign: Default::default(),
        };
        let weights = engine::init::random_weights(&config, 5, 0.02).unwrap();
        EvalModel {
            id: "tiny".into(),
            config,
            weights,
        }
    }

    #[test]
    fn the_needle_probe_counts_the_same_documents_every_time() {
        let tokenizer =
            engine::TextTokenizer::from_json(include_bytes!("../../public/models/tokenizer.json"))
                .unwrap();
        let maker = NeedleMaker::new(&tokenizer).unwrap();
        let haystack: Vec<u32> = tokenizer
            .encode(&"The tide came in over the flats while the gulls argued. ".repeat(80))
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(needle_depths(4), [0.125, 0.375, 0.625, 0.875]);
        for bos in [None, Some(0)] {
            let model = tiny_model(bos);
            let once = needle_probe(&model, &maker, &haystack, 6).unwrap();
            assert_eq!(once, needle_probe(&model, &maker, &haystack, 6).unwrap());
            assert_eq!(once.trials, 6);
            assert!(once.correct <= once.trials);
            assert!(once.digits_correct <= crate::needles::ANSWER_DIGITS * once.trials);
            assert_eq!(once.trials, 6);
        }
        let err = needle_probe(&tiny_model(None), &maker, &haystack[..128], 2).unwrap_err();
        assert!(err.contains("more than L = 128"), "{err}");
    }

    #[test]
    fn rows_with_needles_round_trip_and_older_rows_still_parse() {
        let score = InductionScore {
            tokens: 100,
            first: 8.5,
            second: 2.5,
        };
        let row = ProbeRow {
            step: 720,
            induction: Some(score),
            induction_4l: Some(InductionScore {
                tokens: 512,
                ..score
            }),
            previous_token: vec![vec![0.5, 0.25]],
            needles: Some(NeedleTally {
                trials: 24,
                correct: 3,
                digits_correct: 102,
            }),
        };
        let json = serde_json::to_string(&row).unwrap();
        assert!(json.contains(r#""needles":{"trials":24,"correct":3,"digits_correct":102}"#));
        assert_eq!(serde_json::from_str::<ProbeRow>(&json).unwrap(), row);
        // A row logged during training (or before the needle probe existed).
        let old = r#"{"step": 720, "induction": {"tokens": 100, "first": 8.5, "second": 2.5},
            "induction_4l": {"tokens": 512, "first": 8.5, "second": 2.5},
            "previous_token": [[0.5, 0.25]]}"#;
        let parsed: ProbeRow = serde_json::from_str(old).unwrap();
        assert_eq!(parsed.needles, None);
        assert_eq!(
            parsed,
            ProbeRow {
                needles: None,
                ..row
            }
        );
        assert!(!serde_json::to_string(&parsed).unwrap().contains("needles"));
        // A row `trainer probe` added where training logged none.
        let only: ProbeRow = serde_json::from_str(
            r#"{"step": 600, "needles": {"trials": 24, "correct": 0, "digits_correct": 20}}"#,
        )
        .unwrap();
        assert_eq!((only.induction, only.induction_4l), (None, None));
        assert!(only.previous_token.is_empty());
        assert_eq!(only.needles.unwrap().digits_correct, 20);
    }
}
