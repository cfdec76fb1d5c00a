//! The seam between "what the model computes" and "on which device": a [`Backend`]
//! runs a chunk of tokens through the model, appending to its KV cache. The CPU path
//! (candle) is the reference; other backends are tested against it.

use std::ops::Range;

use crate::analysis::HeadStats;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::position::AppliedScheme;

/// What to record besides logits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Capture {
    /// `(layer, head)` pairs whose full attention rows are returned.
    pub heads: Vec<(usize, usize)>,
    /// A span of key positions (e.g. the needle) whose attention mass is measured.
    pub span: Option<Range<usize>>,
}

/// One chunk of new tokens for [`Backend::forward`].
#[derive(Debug, Clone, Copy)]
pub struct ForwardInput<'a> {
    /// Token ids, appended after the tokens already in the cache.
    pub tokens: &'a [u32],
    /// Rotary position of sequence index 0 (0 normally; tests shift it).
    pub position_offset: usize,
    /// Rotation frequencies and logit scale to use for these tokens.
    pub scheme: &'a AppliedScheme,
    /// Attention rows and span to record.
    pub capture: &'a Capture,
}

/// What a backend returns for a chunk of `k` new tokens.
#[derive(Debug, Clone, Default)]
pub struct ForwardOutput {
    /// Logits, `k * vocab` values, row-major.
    pub logits: Vec<f32>,
    /// `attention[t][c]`: the row of captured head `c` for new token `t`
    /// (length = its sequence index + 1).
    pub attention: Vec<Vec<Vec<f32>>>,
    /// `head_stats[t][layer * heads + head]`, for every head.
    pub head_stats: Vec<Vec<HeadStats>>,
}

/// A device that can run the model incrementally.
pub trait Backend {
    /// Keys and values of the tokens seen so far.
    type Cache;
    /// The model's configuration.
    fn config(&self) -> &ModelConfig;
    /// A name for display ("CPU", "WebGPU").
    fn name(&self) -> &'static str;
    /// An empty cache.
    fn new_cache(&self) -> Self::Cache;
    /// Number of tokens held in `cache`.
    fn cache_len(&self, cache: &Self::Cache) -> usize;
    /// Runs `input.tokens` after the cached ones, appends their keys and values to
    /// `cache`, and returns their logits, captured attention and head statistics.
    fn forward(&self, cache: &mut Self::Cache, input: ForwardInput<'_>) -> Result<ForwardOutput>;
}
