//! `Session`: a growing prompt with a KV cache. `extend` appends tokens and returns a
//! [`Trace`] of the new positions.
//!
//! Dynamic scale factors: `s = max(1, T / L)` is evaluated at the length `T` the
//! session has *after* an `extend`. Keys already in the cache were rotated (and every
//! later layer's input was computed) with the old `s`, so when `s` changes the session
//! discards the cache and recomputes all earlier tokens at the new `s` before running
//! the new ones. Results therefore always equal one full forward at the current length;
//! the price is a full forward whenever `s` changes, so dynamic schemes should grow in
//! chunks rather than token by token. [`Trace::recomputed`] tells the caller that earlier
//! positions' numbers would now differ.

use std::ops::Range;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::analysis::{log_softmax, rank_of, top_k, HeadStats, Prediction};
use crate::backend::{check_tokens, Backend, Capture, ForwardInput};
use crate::error::{EngineError, Result};
use crate::position::{AppliedScheme, SchemeSpec};

/// How a session runs.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionOptions {
    /// Position scheme applied at inference.
    pub scheme: SchemeSpec,
    /// Attention rows to record (and the span whose mass is measured).
    pub capture: Capture,
    /// Number of next-token predictions per position.
    pub top_k: usize,
    /// Longest prompt accepted, in tokens.
    pub max_tokens: usize,
    /// Tokens per backend call (bounds memory: attention scores are `chunk x T` per head).
    pub chunk_size: usize,
    /// Rotary position of the first token (0 normally; tests shift it).
    pub position_offset: usize,
    /// Positions whose attention rows [`Self::capture`] records: `0..attention_rows`.
    /// Later positions run without them (their head statistics and span mass are still
    /// measured), so a prompt can grow far past what every head's full map would take
    /// in memory.
    pub attention_rows: usize,
}

impl SessionOptions {
    /// Defaults for a model with training length `L`: top 5 predictions, prompts up to 8L.
    pub fn new(scheme: SchemeSpec, training_length: usize) -> Self {
        SessionOptions {
            scheme,
            capture: Capture::default(),
            top_k: 5,
            max_tokens: 8 * training_length,
            chunk_size: 256,
            position_offset: 0,
            attention_rows: usize::MAX,
        }
    }
}

/// One captured attention row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttentionRow {
    /// Layer index.
    pub layer: usize,
    /// Query head index.
    pub head: usize,
    /// Weight on each key `0..=position`.
    pub probs: Vec<f32>,
}

/// Everything recorded for one position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionTrace {
    /// Sequence index.
    pub position: usize,
    /// The token at this position.
    pub token: u32,
    /// `-ln p(token | earlier tokens)`; `None` for the first token, which has no context.
    pub nll: Option<f32>,
    /// Rank of `token` among the predictions made at the previous position (0 = top).
    pub rank: Option<u32>,
    /// The model's top-k predictions for the *next* token.
    pub predictions: Vec<Prediction>,
    /// Statistics of every head, `layer * heads + head`.
    pub heads: Vec<HeadStats>,
    /// The captured attention rows, in the order of [`Capture::heads`].
    pub attention: Vec<AttentionRow>,
}

/// The result of one [`Session::extend`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// Scale factor `s` the new positions were computed with.
    pub scale: f64,
    /// Attention logit multiplier used (YaRN temperature times DroPE beta).
    pub logit_scale: f64,
    /// Whether earlier positions were recomputed because a dynamic `s` changed.
    pub recomputed: bool,
    /// One entry per new token.
    pub positions: Vec<PositionTrace>,
}

/// A prompt being grown through a model.
pub struct Session<B: Backend> {
    backend: Arc<B>,
    options: SessionOptions,
    cache: B::Cache,
    tokens: Vec<u32>,
    applied: Option<AppliedScheme>,
    /// Log-probabilities predicted at the last position (for the next token's NLL).
    next_log_probs: Option<Vec<f32>>,
}

impl<B: Backend> Session<B> {
    /// Starts an empty session.
    pub fn new(backend: Arc<B>, options: SessionOptions) -> Result<Self> {
        options.scheme.validate()?;
        if options.chunk_size == 0 {
            return Err(EngineError::Input("chunk_size must be positive".into()));
        }
        let cache = backend.new_cache();
        Ok(Session {
            backend,
            options,
            cache,
            tokens: Vec::new(),
            applied: None,
            next_log_probs: None,
        })
    }

    /// Tokens seen so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Number of tokens seen so far.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether no token has been added.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The KV cache (where a backend placed the session's keys and values).
    pub fn cache(&self) -> &B::Cache {
        &self.cache
    }

    /// The session's options.
    pub fn options(&self) -> &SessionOptions {
        &self.options
    }

    /// Marks the span whose attention mass [`HeadStats::span_mass`] measures from now on.
    pub fn set_span(&mut self, span: Option<Range<usize>>) {
        self.options.capture.span = span;
    }

    /// The model's top-k predictions after the last token (for greedy generation).
    pub fn next_predictions(&self, k: usize) -> Vec<Prediction> {
        self.next_log_probs
            .as_deref()
            .map(|lp| top_k(lp, k))
            .unwrap_or_default()
    }

    /// `-ln p(token | the tokens so far)`: the NLL of a token not yet appended (scoring a
    /// sequence's last token at the length before it). `None` before the first token.
    pub fn next_nll(&self, token: u32) -> Option<f32> {
        self.next_log_probs
            .as_deref()
            .and_then(|lp| lp.get(token as usize))
            .map(|lp| -lp)
    }

    /// Appends `tokens` and returns the trace of the new positions.
    pub async fn extend(&mut self, tokens: &[u32]) -> Result<Trace> {
        let config = self.backend.config().clone();
        check_tokens(tokens, &config)?;
        let new_len = self.tokens.len() + tokens.len();
        if new_len > self.options.max_tokens {
            return Err(EngineError::Input(format!(
                "the prompt would be {new_len} tokens; this session accepts at most {}",
                self.options.max_tokens
            )));
        }
        let applied = config.apply_scheme(&self.options.scheme, new_len)?;
        let recomputed = !self.tokens.is_empty() && self.applied.as_ref() != Some(&applied);
        if recomputed {
            self.recompute(&applied).await?;
        }
        let mut positions = Vec::with_capacity(tokens.len());
        let mut rest = tokens;
        while !rest.is_empty() {
            // A chunk ends where recording attention rows does, so each backend call
            // either records them for all its positions or for none.
            let start = self.tokens.len();
            let limit = self.options.attention_rows;
            let mut capture = self.options.capture.clone();
            let mut len = rest.len().min(self.options.chunk_size);
            if start < limit {
                len = len.min(limit - start);
            } else {
                capture.heads.clear();
            }
            let (chunk, tail) = rest.split_at(len);
            positions.extend(self.run_chunk(chunk, &applied, &capture).await?);
            rest = tail;
        }
        let trace = Trace {
            scale: applied.scale,
            logit_scale: applied.logit_scale,
            recomputed,
            positions,
        };
        self.applied = Some(applied);
        Ok(trace)
    }

    /// Rebuilds the cache for the tokens seen so far at a new scheme evaluation.
    async fn recompute(&mut self, applied: &AppliedScheme) -> Result<()> {
        let old = std::mem::take(&mut self.tokens);
        self.cache = self.backend.new_cache();
        self.next_log_probs = None;
        let no_capture = Capture {
            heads: Vec::new(),
            span: None,
        };
        for chunk in old.chunks(self.options.chunk_size) {
            self.run_chunk(chunk, applied, &no_capture).await?;
        }
        Ok(())
    }

    async fn run_chunk(
        &mut self,
        chunk: &[u32],
        applied: &AppliedScheme,
        capture: &Capture,
    ) -> Result<Vec<PositionTrace>> {
        let start = self.tokens.len();
        let result = self
            .backend
            .forward(
                &mut self.cache,
                ForwardInput {
                    tokens: chunk,
                    position_offset: self.options.position_offset,
                    scheme: applied,
                    capture,
                    top_k: self.options.top_k,
                    return_logits: false,
                },
            )
            .await;
        let output = match result {
            Ok(output) => output,
            Err(e) => {
                // The cache may hold part of the chunk: start over on the next call.
                self.cache = self.backend.new_cache();
                self.tokens.clear();
                self.applied = None;
                self.next_log_probs = None;
                return Err(e);
            }
        };
        let mut attention = output.attention.into_iter();
        let mut stats = output.head_stats.into_iter();
        let mut traces = Vec::with_capacity(chunk.len());
        for (t, (&token, row)) in chunk.iter().zip(&output.rows).enumerate() {
            // The first token is scored by the previous chunk's last row, the others by
            // their predecessor's summary.
            let (nll, rank) = if t == 0 {
                match &self.next_log_probs {
                    Some(previous) => (
                        Some(-previous[token as usize]),
                        Some(rank_of(previous, token)),
                    ),
                    None => (None, None),
                }
            } else {
                let previous = &output.rows[t - 1];
                match previous.next {
                    Some((logit, rank)) => (Some(previous.log_norm - logit), Some(rank)),
                    None => (None, None),
                }
            };
            let rows = attention.next().unwrap_or_default();
            traces.push(PositionTrace {
                position: start + t,
                token,
                nll,
                rank,
                predictions: row
                    .top
                    .iter()
                    .map(|&(token, logit)| Prediction {
                        token,
                        probability: (logit - row.log_norm).exp(),
                    })
                    .collect(),
                heads: stats.next().unwrap_or_default(),
                attention: capture
                    .heads
                    .iter()
                    .zip(rows)
                    .map(|(&(layer, head), probs)| AttentionRow { layer, head, probs })
                    .collect(),
            });
        }
        self.next_log_probs = Some(log_softmax(&output.last_logits));
        self.tokens.extend_from_slice(chunk);
        Ok(traces)
    }
}
