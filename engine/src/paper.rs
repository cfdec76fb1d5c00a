//! The paper's published numbers, in one place: Gelberg, Eguchi, Akiba, Cetin (2025),
//! "Extending the Context of Pretrained LLMs by Dropping Their Positional Embeddings"
//! (arXiv 2512.12167), as transcribed in `../shared/paper-notes.md`.
//!
//! The studio shows these beside its own measurements, always labelled as the paper's:
//! they come from much larger models and are there for the shape of the effect. The
//! trainer's report (`trainer eval`) and the app's views both read them from here.

/// The model of the paper's needle-in-a-haystack table (paper-notes.md, "Headline
/// numbers to show beside ours").
pub const NIAH_MODEL: &str = "SmolLM-360M";

/// Training length `L` of [`NIAH_MODEL`].
pub const NIAH_TRAINING_LENGTH: usize = 2048;

/// Context lengths of the paper's needle table, in multiples of `L`; the accuracy
/// arrays below follow this order.
pub const NIAH_MULTIPLES: [usize; 3] = [2, 4, 8];

/// Standard NIAH accuracy (%) of NTK-aware scaling at 2x / 4x / 8x `L`.
pub const NIAH_NTK: [f64; 3] = [29.84, 14.37, 7.19];

/// Standard NIAH accuracy (%) of YaRN at 2x / 4x / 8x `L`.
pub const NIAH_YARN: [f64; 3] = [48.25, 25.62, 12.18];

/// Standard NIAH accuracy (%) of LongRoPE2 at 2x / 4x / 8x `L`.
pub const NIAH_LONGROPE2: [f64; 3] = [44.20, 26.20, 16.45];

/// Standard NIAH accuracy (%) of DroPE at 2x / 4x / 8x `L`.
pub const NIAH_DROPE: [f64; 3] = [74.92, 55.00, 52.20];

/// Every row of the paper's needle table, `(method, accuracy % at 2x / 4x / 8x L)`,
/// in the paper's order.
pub const NIAH_TABLE: [(&str, [f64; 3]); 4] = [
    ("NTK", NIAH_NTK),
    ("YaRN", NIAH_YARN),
    ("LongRoPE2", NIAH_LONGROPE2),
    ("DroPE", NIAH_DROPE),
];

/// DroPE's fitted logit-scale coefficient `c` in `beta(s) = 1 + c ln s` for the
/// paper's from-scratch model (494M parameters, `L` = 1024) (paper-notes.md, "The
/// method", step 4).
pub const C_FROM_SCRATCH: f64 = 0.412;

/// DroPE's fitted `c` for SmolLM-360M (`L` = 2048) (paper-notes.md, "The method").
pub const C_SMOLLM: f64 = 0.103;

/// Validation perplexity of the paper's drop-point ablation (500M model trained from
/// scratch), `(setting, perplexity)` (paper-notes.md, "Drop-point ablation"): the
/// later RoPE is dropped, the closer DroPE gets to RoPE; NoPE from scratch is worst.
pub const DROP_POINT_PERPLEXITY: [(&str, f64); 4] = [
    ("NoPE from scratch", 23.77),
    ("drop at 8K steps", 22.42),
    ("drop at 14K steps", 21.73),
    ("RoPE, never dropped", 21.72),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_rows_are_the_named_constants() {
        assert_eq!(NIAH_TABLE[0].1, NIAH_NTK);
        assert_eq!(NIAH_TABLE[3], ("DroPE", NIAH_DROPE));
        // DroPE beats every scaling method at every length in the paper's table.
        for (i, drope) in NIAH_DROPE.iter().enumerate() {
            assert!(NIAH_TABLE[..3].iter().all(|(_, row)| row[i] < *drope));
        }
    }
}
