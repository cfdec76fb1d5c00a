//! The seam between "what the model computes" and "on which device": a [`Backend`]
//! runs a chunk of tokens through the model, appending to its KV cache. The CPU path
//! (candle) is the reference; the WebGPU path is tested against it.
//!
//! `forward` is async because a GPU's results come back asynchronously (in a browser the
//! page must yield while the GPU works); the CPU path's future is ready at once.
//! A backend returns what the views need, not whole logit rows: per position the
//! normaliser, the top-k and the score of the token that follows it, so a GPU reads back
//! kilobytes instead of `T x vocab` floats.

use std::ops::Range;

use crate::analysis::HeadStats;
pub use crate::analysis::RowSummary;
use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
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
    /// Number of top predictions to return per position.
    pub top_k: usize,
    /// Also return every position's full logits (conformance tests; costly on a GPU).
    pub return_logits: bool,
}

/// What a backend returns for a chunk of `k` new tokens.
#[derive(Debug, Clone, Default)]
pub struct ForwardOutput {
    /// One summary per new token.
    pub rows: Vec<RowSummary>,
    /// The last new token's logits (`vocab` values): they score the next chunk's first
    /// token and give the predictions for greedy generation.
    pub last_logits: Vec<f32>,
    /// All `k * vocab` logits, row-major, only when [`ForwardInput::return_logits`].
    pub logits: Option<Vec<f32>>,
    /// `attention[t][c]`: the row of captured head `c` for new token `t`
    /// (length = its sequence index + 1).
    pub attention: Vec<Vec<Vec<f32>>>,
    /// `head_stats[t][layer * heads + head]`, for every head.
    pub head_stats: Vec<Vec<HeadStats>>,
}

/// The kind of device a backend runs on: compared by value, shown by [`DeviceKind::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// The CPU (natively, in the page or in a Web Worker).
    Cpu,
    /// A WebGPU adapter (wgpu natively).
    WebGpu,
}

impl DeviceKind {
    /// The name shown to people: "CPU" or "WebGPU".
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "CPU",
            DeviceKind::WebGpu => "WebGPU",
        }
    }
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A device that can run the model incrementally.
pub trait Backend {
    /// Keys and values of the tokens seen so far.
    type Cache;
    /// The model's configuration.
    fn config(&self) -> &ModelConfig;
    /// The kind of device it runs on.
    fn kind(&self) -> DeviceKind;
    /// An empty cache.
    fn new_cache(&self) -> Self::Cache;
    /// Number of tokens held in `cache`.
    fn cache_len(&self, cache: &Self::Cache) -> usize;
    /// Runs `input.tokens` after the cached ones, appends their keys and values to
    /// `cache`, and returns their row summaries, captured attention and head statistics.
    /// On error the cache may hold part of the chunk: start a new cache.
    #[allow(async_fn_in_trait)] // single-threaded callers (browser, tests); no Send bound wanted
    async fn forward(
        &self,
        cache: &mut Self::Cache,
        input: ForwardInput<'_>,
    ) -> Result<ForwardOutput>;
}

/// Rejects token ids outside the model's vocabulary (on the GPU an out-of-range id
/// would read past the embedding table silently).
pub fn check_tokens(tokens: &[u32], config: &ModelConfig) -> Result<()> {
    match tokens.iter().find(|&&t| t as usize >= config.vocab_size) {
        Some(bad) => Err(EngineError::Input(format!(
            "token id {bad} is outside the model's vocabulary of {}",
            config.vocab_size
        ))),
        None => Ok(()),
    }
}

/// Rejects a capture request for a layer or head the model does not have.
pub fn check_capture(capture: &Capture, config: &ModelConfig) -> Result<()> {
    let (layers, heads) = (config.num_hidden_layers, config.num_attention_heads);
    match capture
        .heads
        .iter()
        .find(|&&(layer, head)| layer >= layers || head >= heads)
    {
        Some((layer, head)) => Err(EngineError::Input(format!(
            "attention capture asks for layer {layer} head {head}; the model has {layers} layers of {heads} heads"
        ))),
        None => Ok(()),
    }
}
