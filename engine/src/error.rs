//! The engine's error type: every input a user can supply fails with one of these,
//! never with a panic.

use thiserror::Error;

/// Everything that can go wrong while loading or running a model.
#[derive(Debug, Error)]
pub enum EngineError {
    /// `config.json` is not valid JSON or misses a required field.
    #[error("config.json: {0}")]
    Config(String),
    /// A safetensors file (or shard) is truncated, malformed, or lacks a tensor.
    #[error("the weights: {0}")]
    Weights(String),
    /// A tensor's shape disagrees with what `config.json` implies.
    #[error("the weights: tensor `{name}` has shape {found:?}, config.json implies {expected:?}")]
    Shape {
        /// Hugging Face tensor name.
        name: String,
        /// Shape implied by the config.
        expected: Vec<usize>,
        /// Shape stored in the file.
        found: Vec<usize>,
    },
    /// `tokenizer.json` could not be parsed, or text could not be encoded.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A position scheme was given invalid parameters (for example s < 1).
    #[error("position scheme: {0}")]
    Scheme(String),
    /// A request the session cannot serve (prompt over the cap, token id out of range...).
    #[error("{0}")]
    Input(String),
    /// An error inside the tensor library: a bug, not a user error, but still reported as a value.
    #[error("tensor computation failed: {0}")]
    Compute(String),
    /// `manifest.json` is malformed, empty, or names a model twice.
    #[error("manifest.json: {0}")]
    Manifest(String),
    /// The WebGPU path failed: no adapter, device lost, out of GPU memory, or a
    /// validation error. The app falls back to the CPU path on this error.
    #[error("WebGPU: {0}")]
    Gpu(String),
}

impl From<candle_core::Error> for EngineError {
    fn from(err: candle_core::Error) -> Self {
        EngineError::Compute(err.to_string())
    }
}

/// Result alias used across the engine.
pub type Result<T> = std::result::Result<T, EngineError>;
