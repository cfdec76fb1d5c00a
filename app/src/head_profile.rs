//! What each attention head does over a prompt, from its captured rows: how spread its
//! attention is, how far it looks, and a label by a fixed, documented rule. Also the
//! small pooled maps the head grid draws as thumbnails.
//!
//! The rule (see [`HeadKind::of`]): a head is an *attention sink* when, on average, at
//! least half of a query's attention goes to the first token; else *local / positional*
//! when at least half goes to the query itself and the two tokens before it (a fixed
//! offset pattern, which rotary positions make easy); else *spread / content*: where it
//! looks depends on what the tokens say. Queries before position 8 are left out of the
//! averages (with so few keys every head looks local).

use std::sync::Arc;

use crate::analysis::AttentionMap;

/// Queries earlier than this are left out of a head's averages.
pub const MIN_QUERY: usize = 8;
/// Keys at distance `0..LOCAL_SPAN` count as local.
pub const LOCAL_SPAN: usize = 3;
/// Average mass that makes a head local, or a sink.
pub const KIND_THRESHOLD: f32 = 0.5;

/// The label of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadKind {
    /// Most attention on the first token.
    Sink,
    /// Most attention on the nearest tokens: a positional pattern.
    Local,
    /// Attention spread by content.
    Content,
}

impl HeadKind {
    /// The rule in the module documentation.
    pub fn of(sink_mass: f32, local_mass: f32) -> HeadKind {
        if sink_mass >= KIND_THRESHOLD {
            HeadKind::Sink
        } else if local_mass >= KIND_THRESHOLD {
            HeadKind::Local
        } else {
            HeadKind::Content
        }
    }

    /// Short name for the grid and the table.
    pub fn name(self) -> &'static str {
        match self {
            HeadKind::Sink => "sink",
            HeadKind::Local => "local / positional",
            HeadKind::Content => "spread / content",
        }
    }
}

/// One head's averages over the queries from [`MIN_QUERY`] on.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadProfile {
    /// Layer index.
    pub layer: usize,
    /// Head index in the layer.
    pub head: usize,
    /// Mean entropy of a query's attention, in nats.
    pub entropy: f32,
    /// Mean entropy over that of a uniform row (`ln(q + 1)`): 0 = one key, 1 = uniform.
    pub relative_entropy: f32,
    /// Mean attended distance `sum_k p_k (q - k)`, in tokens.
    pub mean_distance: f32,
    /// Mean mass on the [`LOCAL_SPAN`] nearest keys.
    pub local_mass: f32,
    /// Mean mass on the first token.
    pub sink_mass: f32,
    /// The label.
    pub kind: HeadKind,
    /// Queries averaged over.
    pub queries: usize,
    /// Mean mass more than L tokens back ([`long_range_mass`]); `None` until
    /// [`HeadProfile::with_far_mass`] is given L, or on a prompt within L.
    pub far_mass: Option<f32>,
}

impl HeadProfile {
    /// The profile with its mass more than `l` tokens back, from the same rows.
    pub fn with_far_mass(mut self, rows: &[Arc<[f32]>], l: usize) -> HeadProfile {
        self.far_mass = long_range_mass(rows, l);
        self
    }
}

/// The profile of one head from its causal rows (row `q` holds keys `0..=q`).
pub fn profile(layer: usize, head: usize, rows: &[Arc<[f32]>]) -> HeadProfile {
    let (mut entropy, mut relative, mut distance, mut local, mut sink) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let mut queries = 0;
    for (q, row) in rows.iter().enumerate().skip(MIN_QUERY) {
        let row = &row[..row.len().min(q + 1)];
        let mut h = 0.0f32;
        let mut d = 0.0f32;
        for (k, &p) in row.iter().enumerate() {
            if p > 0.0 {
                h -= p * p.ln();
            }
            d += p * (q - k) as f32;
        }
        entropy += h;
        relative += h / ((q + 1) as f32).ln();
        distance += d;
        local += row.iter().rev().take(LOCAL_SPAN).sum::<f32>();
        sink += row.first().copied().unwrap_or(0.0);
        queries += 1;
    }
    let n = queries.max(1) as f32;
    let (local_mass, sink_mass) = (local / n, sink / n);
    HeadProfile {
        layer,
        head,
        entropy: entropy / n,
        relative_entropy: relative / n,
        mean_distance: distance / n,
        local_mass,
        sink_mass,
        kind: HeadKind::of(sink_mass, local_mass),
        queries,
        far_mass: None,
    }
}

/// Mean mass a query past `l` puts on keys more than `l` tokens back, the first token
/// left out (a sink is not reading far): how much a head reads beyond the distances
/// its training showed it. `None` when the prompt is not longer than `l + 1` tokens.
pub fn long_range_mass(rows: &[Arc<[f32]>], l: usize) -> Option<f32> {
    let far: Vec<f32> = rows
        .iter()
        .enumerate()
        .skip(l + 1)
        .map(|(q, row)| {
            row.get(1..q - l)
                .map_or(0.0, |keys| keys.iter().sum::<f32>())
        })
        .collect();
    (!far.is_empty()).then(|| far.iter().sum::<f32>() / far.len() as f32)
}

/// The head to show first, `(layer, head)`: the one that reads furthest past L
/// ([`HeadProfile::far_mass`]), where the positional schemes differ most; on a prompt
/// within L, the one with the longest mean attended distance. `None` without profiles.
pub fn informative_head(profiles: &[HeadProfile]) -> Option<(usize, usize)> {
    let score = |p: &HeadProfile| p.far_mass.unwrap_or(0.0);
    let far = profiles.iter().any(|p| p.far_mass.is_some());
    profiles
        .iter()
        // The first of equals: reversed so that `max_by` keeps it.
        .rev()
        .max_by(|a, b| match far {
            true => score(a).total_cmp(&score(b)),
            false => a.mean_distance.total_cmp(&b.mean_distance),
        })
        .map(|p| (p.layer, p.head))
}

/// A `size x size` map of a head's attention pooled into blocks of positions: cell
/// `(i, j)` is the mass a query of block `i` puts on the keys of block `j`, averaged
/// over the block's queries (so every row still sums to 1).
pub fn pooled_map(rows: &[Arc<[f32]>], size: usize) -> AttentionMap {
    let t = rows.len();
    let size = size.min(t).max(1);
    let block = |position: usize| position * size / t.max(1);
    let mut mass = vec![0.0f32; size * size];
    let mut count = vec![0usize; size];
    for (q, row) in rows.iter().enumerate() {
        let i = block(q);
        count[i] += 1;
        for (k, &p) in row.iter().enumerate().take(q + 1) {
            mass[i * size + block(k)] += p;
        }
    }
    for (i, &n) in count.iter().enumerate() {
        if n > 0 {
            mass[i * size..(i + 1) * size]
                .iter_mut()
                .for_each(|m| *m /= n as f32);
        }
    }
    AttentionMap {
        len: size,
        weights: mass.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `t` causal rows from a rule giving each query's weights.
    fn rows(t: usize, weights: impl Fn(usize) -> Vec<f32>) -> Vec<Arc<[f32]>> {
        (0..t).map(|q| Arc::from(weights(q))).collect()
    }

    #[test]
    fn a_previous_token_head_is_local() {
        let r = rows(40, |q| {
            let mut w = vec![0.0; q + 1];
            w[q.saturating_sub(1)] = 1.0;
            w
        });
        let p = profile(1, 2, &r);
        assert_eq!(p.kind, HeadKind::Local);
        assert!((p.mean_distance - 1.0).abs() < 1e-6);
        assert!(p.entropy.abs() < 1e-6 && p.local_mass > 0.99);
        assert_eq!(p.queries, 40 - MIN_QUERY);
    }

    #[test]
    fn uniform_and_sink_heads() {
        let uniform = profile(0, 0, &rows(40, |q| vec![1.0 / (q + 1) as f32; q + 1]));
        assert_eq!(uniform.kind, HeadKind::Content);
        assert!((uniform.relative_entropy - 1.0).abs() < 1e-4);
        let sink = profile(
            0,
            1,
            &rows(40, |q| {
                let mut w = vec![0.3 / q.max(1) as f32; q + 1];
                w[0] = 0.7;
                w
            }),
        );
        assert_eq!(sink.kind, HeadKind::Sink);
        assert!((sink.sink_mass - 0.7).abs() < 1e-5);
    }

    #[test]
    fn the_head_shown_first_is_the_one_that_reads_furthest_past_l() {
        let l = 8;
        // Previous token: nothing past L. Sink: all on the first token, which does not
        // count. Reader: half its mass on the key 2L back where there is one.
        let previous = rows(30, |q| {
            let mut w = vec![0.0; q + 1];
            w[q.saturating_sub(1)] = 1.0;
            w
        });
        let sink = rows(30, |q| {
            let mut w = vec![0.0; q + 1];
            w[0] = 1.0;
            w
        });
        let reader = rows(30, |q| {
            let mut w = vec![0.0; q + 1];
            match q.checked_sub(2 * l).filter(|&k| k > 0) {
                Some(k) => (w[k], w[q]) = (0.5, 0.5),
                None => w[q] = 1.0,
            }
            w
        });
        assert_eq!(long_range_mass(&previous, l), Some(0.0));
        assert_eq!(long_range_mass(&sink, l), Some(0.0));
        // Queries 9..=29: those from 17 on (13 of 21) put 0.5 more than L back.
        let mass = long_range_mass(&reader, l).unwrap();
        assert!((mass - 0.5 * 13.0 / 21.0).abs() < 1e-6, "{mass}");
        let attention = [previous.clone(), sink, previous, reader];
        let profiles = |upto: usize| -> Vec<HeadProfile> {
            attention
                .iter()
                .enumerate()
                .map(|(i, r)| profile(i / 2, i % 2, &r[..upto]).with_far_mass(&r[..upto], l))
                .collect()
        };
        assert_eq!(informative_head(&profiles(30)), Some((1, 1)));
        // A prompt within L: the longest mean distance (the sink, here).
        assert_eq!(informative_head(&profiles(l + 1)), Some((0, 1)));
        assert_eq!(informative_head(&[]), None);
        assert_eq!(long_range_mass(&attention[0][..l + 1], l), None);
    }

    #[test]
    fn pooled_rows_keep_their_mass() {
        let r = rows(10, |q| vec![1.0 / (q + 1) as f32; q + 1]);
        let map = pooled_map(&r, 4);
        assert_eq!(map.len, 4);
        for i in 0..4 {
            let sum: f32 = (0..4).map(|j| map.weight(i, j)).sum();
            assert!((sum - 1.0).abs() < 1e-5, "row {i} sums to {sum}");
            for j in i + 1..4 {
                assert_eq!(map.weight(i, j), 0.0, "future block ({i}, {j})");
            }
        }
        assert_eq!(pooled_map(&r, 64).len, 10, "never more cells than tokens");
    }
}
