//! DroPE Studio's trainer: corpus and tokenizer, retrieval documents, training of the
//! engine's own model code, export and the manifest. The binary (`src/main.rs`) is a thin
//! command-line front.
#![warn(missing_docs)]

pub mod anchor;
pub mod args;
pub mod backprop;
pub mod bench;
pub mod bpe;
pub mod corpus;
pub mod data;
pub mod eval;
pub mod export;
pub mod manifest;
pub mod matmul;
/// The needle documents live in the engine (the studio's live runner uses them too).
pub use engine::needles;
pub mod optimizer;
pub mod probe;
pub mod probes;
pub mod results;
pub mod samples;
pub mod score;
pub mod train;
pub mod untrained;
