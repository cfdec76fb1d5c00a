//! Numbers derived from logits and attention rows: log-probabilities, NLL, rank,
//! top-k, and per-head statistics. Shared by every backend so they agree by design.

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// A candidate next token and its probability.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Vocabulary id.
    pub token: u32,
    /// Probability under the model.
    pub probability: f32,
}

/// The next-token distribution at one position, reduced to what the views need.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowSummary {
    /// `ln sum_v exp(logit_v)`: a token's log-probability is its logit minus this.
    pub log_norm: f32,
    /// The `top_k` highest `(token, logit)` pairs, best first, ties to the lower id.
    pub top: Vec<(u32, f32)>,
    /// For the token that follows in the same chunk: its logit and its rank (the number
    /// of tokens with a strictly higher logit). `None` for the chunk's last position.
    pub next: Option<(f32, u32)>,
}

/// Statistics of one head's attention row at one query position.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct HeadStats {
    /// Shannon entropy of the row in nats (0 = all weight on one key; ln(i+1) = uniform).
    pub entropy: f32,
    /// Expected distance `sum_j p_j (i - j)` from the query to the attended keys.
    pub mean_distance: f32,
    /// Attention mass on the marked span (e.g. the needle), 0 when no span is marked.
    pub span_mass: f32,
}

/// Numerically stable log-softmax of one row of logits.
pub fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let log_sum = log_norm(logits);
    logits.iter().map(|&x| x - log_sum).collect()
}

/// 0-based rank of `token` among `log_probs` (0 = the model's top choice).
pub fn rank_of(log_probs: &[f32], token: u32) -> u32 {
    let target = log_probs[token as usize];
    log_probs.iter().filter(|&&x| x > target).count() as u32
}

/// The `k` most probable tokens, most probable first (ties broken by lower id), from
/// log-probabilities (or logits: `probability` is then `exp(logit)`, unnormalised).
pub fn top_k(log_probs: &[f32], k: usize) -> Vec<Prediction> {
    let mut ids: Vec<u32> = (0..log_probs.len() as u32).collect();
    let k = k.min(ids.len());
    if k == 0 {
        return Vec::new();
    }
    let by_prob = |a: &u32, b: &u32| {
        log_probs[*b as usize]
            .total_cmp(&log_probs[*a as usize])
            .then(a.cmp(b))
    };
    ids.select_nth_unstable_by(k - 1, by_prob);
    ids.truncate(k);
    ids.sort_by(by_prob);
    ids.into_iter()
        .map(|token| Prediction {
            token,
            probability: log_probs[token as usize].exp(),
        })
        .collect()
}

/// `ln sum exp(logits)`, computed stably in f64.
pub fn log_norm(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&x| ((x - max) as f64).exp()).sum();
    (max as f64 + sum.ln()) as f32
}

/// Reduces one row of logits to a [`RowSummary`]: what every backend returns per
/// position. `next` is the token that follows, when it is known.
pub fn summarize_row(logits: &[f32], top: usize, next: Option<u32>) -> RowSummary {
    RowSummary {
        log_norm: log_norm(logits),
        top: top_k(logits, top)
            .into_iter()
            .map(|p| (p.token, logits[p.token as usize]))
            .collect(),
        next: next.map(|token| (logits[token as usize], rank_of(logits, token))),
    }
}

/// Statistics of the attention row of the query at sequence index `query`
/// (`row[j]` is the weight on key `j`, for `j <= query`).
pub fn head_stats(row: &[f32], query: usize, span: Option<&Range<usize>>) -> HeadStats {
    let mut stats = HeadStats::default();
    for (j, &p) in row.iter().enumerate().take(query + 1) {
        if p > 0.0 {
            stats.entropy -= p * p.ln();
        }
        stats.mean_distance += p * (query - j) as f32;
    }
    if let Some(span) = span {
        let end = span.end.min(query + 1);
        if span.start < end {
            stats.span_mass = row[span.start..end].iter().sum();
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_normalises() {
        let lp = log_softmax(&[1.0, 2.0, 3.0, 1000.0]);
        let total: f32 = lp.iter().map(|x| x.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert!(lp[3].abs() < 1e-6);
    }

    #[test]
    fn top_k_and_rank_agree() {
        let lp = log_softmax(&[0.1, 3.0, 2.0, 3.0, -1.0]);
        let top = top_k(&lp, 3);
        assert_eq!(
            top.iter().map(|p| p.token).collect::<Vec<_>>(),
            vec![1, 3, 2]
        );
        assert_eq!(rank_of(&lp, 2), 2);
        assert_eq!(rank_of(&lp, 4), 4);
        assert_eq!(top_k(&lp, 10).len(), 5);
    }

    #[test]
    fn head_stats_of_uniform_and_peaked_rows() {
        let uniform = [0.25f32; 4];
        let s = head_stats(&uniform, 3, Some(&(1..3)));
        assert!((s.entropy - 4f32.ln()).abs() < 1e-6);
        assert!((s.mean_distance - 1.5).abs() < 1e-6);
        assert!((s.span_mass - 0.5).abs() < 1e-6);
        let peaked = [1.0f32, 0.0, 0.0];
        let s = head_stats(&peaked, 2, None);
        assert_eq!(s.entropy, 0.0);
        assert_eq!(s.mean_distance, 2.0);
        assert_eq!(s.span_mass, 0.0);
    }
}
