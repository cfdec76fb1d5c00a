//! DroPE Studio's model runtime.
//!
//! Everything loads from bytes so the same code runs natively and in the browser:
//! [`ModelConfig`] from `config.json`, [`ModelWeights`] from `model.safetensors`,
//! [`TextTokenizer`] from `tokenizer.json`. A [`Backend`] runs the model (the CPU
//! path, [`cpu::CpuBackend`], is the reference; with the `gpu` feature, `gpu::GpuBackend`
//! runs the same pass as WGSL compute kernels on wgpu); a [`Session`] grows a prompt with a KV
//! cache under a [`SchemeSpec`] and returns a [`Trace`] per extension.
#![warn(missing_docs)]

pub mod analysis;
pub mod backend;
pub mod checkpoint;
pub mod config;
pub mod cpu;
#[cfg(feature = "gpu")]
pub mod device;
pub mod error;
#[cfg(not(target_arch = "wasm32"))]
pub mod fuzz;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod init;
pub mod manifest;
pub mod needle_trial;
pub mod needles;
pub mod paper;
pub mod position;
pub mod results;
pub mod samples;
pub mod session;
pub mod tokenizer;
pub mod train_log;
pub mod weights;
pub mod wire;

pub use analysis::{HeadStats, Prediction};
pub use backend::{Backend, Capture, DeviceKind, ForwardInput, ForwardOutput};
pub use config::{ModelConfig, TrainedPositions};
pub use error::{EngineError, Result};
pub use position::{AppliedScheme, LogitScale, PositionScheme, ScaleFactor, SchemeSpec};
pub use session::{AttentionRow, PositionTrace, Session, SessionOptions, Trace};
pub use tokenizer::{TextTokenizer, TokenPiece};
pub use weights::ModelWeights;
