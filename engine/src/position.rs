//! Position schemes: RoPE, its inference-time scalings (PI, NTK-aware, YaRN), and none
//! (DroPE / NoPE), each with a fixed or dynamic scale factor `s`, plus DroPE's logit
//! scale `beta(s) = 1 + c ln s`.
//!
//! YaRN comes in two forms. `yarn` ([`PositionScheme::Yarn`]) is YaRN as its authors'
//! reference code and Hugging Face transformers (`rope_type: "yarn"`) run it: the
//! correction range is rounded out to whole pairs and the blend ramps linearly over the
//! pair index. `yarn-ramp` ([`PositionScheme::YarnRamp`]) is the paper's formula read
//! literally: a continuous ramp in the number of turns `L / lambda_d` of each pair.
//!
//! Formulas: ../shared/paper-notes.md ("Baselines ... exact formulas"), which follows
//! Su et al. 2021 (RoPE), Chen et al. 2023 (PI), bloc97 2023 (NTK-aware), Peng et al.
//! 2023 (YaRN) and Gelberg et al. 2025 (DroPE). Pair `d` of a head of width `D` is the
//! pair of dimensions `(d, d + D/2)` (Hugging Face Llama's "rotate half" layout).

use std::f64::consts::PI as PI_F64;
use std::fmt;
use std::str::FromStr;

use crate::error::{EngineError, Result};

/// YaRN's default ramp bounds in turns within `L` (Peng et al. 2023, for Llama): alpha is
/// the reference code's `beta_slow`, beta its `beta_fast`.
pub const YARN_ALPHA: f64 = 1.0;
/// See [`YARN_ALPHA`].
pub const YARN_BETA: f64 = 32.0;

/// Which rotation (if any) queries and keys receive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PositionScheme {
    /// Plain rotary embeddings: pair `d` at position `m` turns by `m * theta_d`.
    Rope,
    /// Position interpolation: positions divided by `s`.
    Pi,
    /// NTK-aware scaling: base `b' = b * s^(D/(D-2))`.
    Ntk,
    /// YaRN as its reference code runs it (`yarn`): per-pair blend of PI and RoPE by a
    /// ramp that is linear in the pair index between the whole pairs `low` and `high`
    /// of [`yarn_correction_range`], plus an attention temperature `(0.1 ln s + 1)^2`.
    Yarn {
        /// Turns within `L` below which a pair is interpolated (`beta_slow`; sets `high`).
        alpha: f64,
        /// Turns within `L` above which a pair is kept as RoPE (`beta_fast`; sets `low`).
        beta: f64,
    },
    /// YaRN with the continuous ramp (`yarn-ramp`): per-pair blend of PI and RoPE by
    /// `g(L / lambda_d)` of [`yarn_ramp`], plus the same temperature as [`Self::Yarn`].
    YarnRamp {
        /// Ramp start (pairs with fewer than `alpha` turns within `L` are interpolated).
        alpha: f64,
        /// Ramp end (pairs with more than `beta` turns within `L` are kept as RoPE).
        beta: f64,
    },
    /// No rotation at all: DroPE after recalibration, or NoPE.
    None,
}

/// The scale factor `s = L' / L`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScaleFactor {
    /// A fixed target ratio, chosen ahead of time.
    Fixed(f64),
    /// `s = max(1, current_length / L)`, re-evaluated as the prompt grows.
    Dynamic,
}

/// Whether DroPE's logit scale `beta(s) = 1 + c ln s` multiplies the attention logits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LogitScale {
    /// Attention logits are not rescaled.
    Off,
    /// Use the coefficient `c` fitted for the model (`drope_c` in its config).
    Fitted,
    /// Use this coefficient `c`.
    Coefficient(f64),
    /// One fitted `c` per head (`drope_head_c` in the model's config): each head's logits
    /// scale by its own `beta(s)`. Not the paper's method (one `c` for the model); this
    /// studio fits both on validation text and shows both.
    PerHead,
}

/// A complete inference-time position setting: rotation, scale factor and logit scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SchemeSpec {
    /// Rotation of queries and keys.
    pub position: PositionScheme,
    /// How `s` is chosen.
    pub scale: ScaleFactor,
    /// DroPE's softmax temperature.
    pub logit_scale: LogitScale,
}

/// A scheme evaluated at one scale factor: what a backend needs to run attention.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedScheme {
    /// The scale factor `s` this was evaluated at.
    pub scale: f64,
    /// Angular frequency per pair (`D/2` values), or `None` when nothing rotates.
    pub frequencies: Option<Vec<f64>>,
    /// Multiplier of every attention logit (YaRN temperature times DroPE beta).
    pub logit_scale: f64,
    /// A further multiplier per head, index `layer * heads + head` (per-head beta), or
    /// `None` where every head uses `logit_scale` alone.
    pub head_scales: Option<Vec<f64>>,
}

impl AppliedScheme {
    /// One head's own multiplier on top of `logit_scale` (1 without per-head scales).
    pub fn head_scale(&self, layer: usize, heads: usize, head: usize) -> f64 {
        self.head_scales
            .as_ref()
            .and_then(|s| s.get(layer * heads + head))
            .copied()
            .unwrap_or(1.0)
    }

    /// The logit multiplier of one head: `logit_scale` times its own.
    pub fn head_logit_scale(&self, layer: usize, heads: usize, head: usize) -> f64 {
        self.logit_scale * self.head_scale(layer, heads, head)
    }
}

/// The `[len, D/2]` cos and sin of positions `first .. first + len` at the given per-pair
/// frequencies, row-major: what every backend rotates with (the CPU path as tensors, the
/// WebGPU path uploaded as they are), so both use identical numbers. Angles are computed
/// in f64 so long positions keep their precision.
pub fn rotary_table(frequencies: &[f64], first: usize, len: usize) -> (Vec<f32>, Vec<f32>) {
    let mut cos = Vec::with_capacity(len * frequencies.len());
    let mut sin = Vec::with_capacity(len * frequencies.len());
    for p in first..first + len {
        for f in frequencies {
            let angle = p as f64 * f;
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    (cos, sin)
}

/// RoPE's frequency per pair: `theta_d = b^(-2d/D)`.
pub fn rope_frequencies(head_dim: usize, base: f64) -> Vec<f64> {
    (0..head_dim / 2)
        .map(|d| base.powf(-2.0 * d as f64 / head_dim as f64))
        .collect()
}

/// The continuous ramp of `yarn-ramp`, `g(r)`: 0 below `alpha`, 1 above `beta`, linear
/// in between (`r` is a pair's turns within `L`, `L / lambda_d`).
pub fn yarn_ramp(r: f64, alpha: f64, beta: f64) -> f64 {
    if r < alpha {
        0.0
    } else if r > beta {
        1.0
    } else {
        (r - alpha) / (beta - alpha)
    }
}

/// YaRN's correction range `(low, high)` in pair indices, as the reference code computes
/// it: the (fractional) pair with `r` turns within `L` is
/// `d(r) = D ln(L / (2 pi r)) / (2 ln b)` (solving `L theta_d / 2pi = r`), and
/// `low = max(floor(d(beta)), 0)`, `high = min(ceil(d(alpha)), D - 1)`. (The upper clamp
/// is `D - 1`, not `D/2 - 1`, in the reference; it is kept so the tables match.)
pub fn yarn_correction_range(
    head_dim: usize,
    base: f64,
    training_length: usize,
    alpha: f64,
    beta: f64,
) -> (f64, f64) {
    let width = head_dim as f64;
    let pair_with_turns =
        |r: f64| width * (training_length as f64 / (r * 2.0 * PI_F64)).ln() / (2.0 * base.ln());
    let low = pair_with_turns(beta).floor().max(0.0);
    let high = pair_with_turns(alpha).ceil().min(width - 1.0);
    (low, high)
}

/// The reference YaRN's interpolation weight of pair `d`: `(d - low) / (high - low)`
/// clamped to [0, 1] (with `high` nudged by 0.001 when it equals `low`). 0 keeps the
/// pair as RoPE, 1 interpolates it as PI.
pub fn yarn_pair_ramp(pair: usize, low: f64, high: f64) -> f64 {
    let high = if low == high { high + 0.001 } else { high };
    ((pair as f64 - low) / (high - low)).clamp(0.0, 1.0)
}

/// YaRN's attention temperature as a multiplier of the logits: `(0.1 ln s + 1)^2`
/// (YaRN scales both rotated q and k by `0.1 ln s + 1`).
pub fn yarn_logit_scale(s: f64) -> f64 {
    let t = 0.1 * s.max(1.0).ln() + 1.0;
    t * t
}

/// The range of DroPE logit-scale coefficients c accepted (`+beta=c`, `drope_c`). c is
/// fitted on held-out text (the trainer searches [-0.3, 1]; a negative c softens
/// attention past L). At 10, beta = 1 + c ln s already multiplies the logits by 8 at
/// s = 2, and a huge c makes the scaled logits infinite in f32, every probability NaN.
pub const BETA_COEFFICIENT_RANGE: std::ops::RangeInclusive<f64> = -1.0..=10.0;

/// An error unless c is in [`BETA_COEFFICIENT_RANGE`].
pub fn check_beta_coefficient(c: f64) -> std::result::Result<(), String> {
    if BETA_COEFFICIENT_RANGE.contains(&c) {
        Ok(())
    } else {
        Err(format!(
            "the DroPE coefficient c (beta = 1 + c ln s) must be between {} and {}, got {c}",
            BETA_COEFFICIENT_RANGE.start(),
            BETA_COEFFICIENT_RANGE.end()
        ))
    }
}

/// DroPE's logit scale `beta(s) = 1 + c ln s`, and 1 for `s <= 1`.
pub fn drope_beta(c: f64, s: f64) -> f64 {
    if s <= 1.0 {
        1.0
    } else {
        1.0 + c * s.ln()
    }
}

impl ScaleFactor {
    /// The scale factor for a context of `len` tokens and training length `L`.
    pub fn at(self, len: usize, training_length: usize) -> f64 {
        match self {
            ScaleFactor::Fixed(s) => s,
            ScaleFactor::Dynamic => (len as f64 / training_length.max(1) as f64).max(1.0),
        }
    }
}

impl PositionScheme {
    /// Angular frequency per pair at scale `s`, or `None` for [`PositionScheme::None`].
    pub fn frequencies(
        self,
        head_dim: usize,
        base: f64,
        training_length: usize,
        s: f64,
    ) -> Option<Vec<f64>> {
        let theta = rope_frequencies(head_dim, base);
        let d_total = head_dim as f64;
        let scaled = match self {
            PositionScheme::None => return None,
            PositionScheme::Rope => theta,
            PositionScheme::Pi => theta.iter().map(|t| t / s).collect(),
            PositionScheme::Ntk => theta
                .iter()
                .enumerate()
                .map(|(d, t)| t * s.powf(-2.0 * d as f64 / (d_total - 2.0)))
                .collect(),
            PositionScheme::Yarn { alpha, beta } => {
                let (low, high) =
                    yarn_correction_range(head_dim, base, training_length, alpha, beta);
                theta
                    .iter()
                    .enumerate()
                    .map(|(d, t)| {
                        // The reference's names: extrapolated (RoPE) share = 1 - ramp.
                        let extrapolation = 1.0 - yarn_pair_ramp(d, low, high);
                        t / s * (1.0 - extrapolation) + t * extrapolation
                    })
                    .collect()
            }
            PositionScheme::YarnRamp { alpha, beta } => theta
                .iter()
                .map(|t| {
                    let wavelength = 2.0 * PI_F64 / t;
                    let g = yarn_ramp(training_length as f64 / wavelength, alpha, beta);
                    (1.0 - g) * t / s + g * t
                })
                .collect(),
        };
        Some(scaled)
    }

    /// The scheme's own multiplier of the attention logits (YaRN's temperature).
    pub fn logit_scale(self, s: f64) -> f64 {
        match self {
            PositionScheme::Yarn { .. } | PositionScheme::YarnRamp { .. } => yarn_logit_scale(s),
            _ => 1.0,
        }
    }

    fn name(self) -> &'static str {
        match self {
            PositionScheme::Rope => "rope",
            PositionScheme::Pi => "pi",
            PositionScheme::Ntk => "ntk",
            PositionScheme::Yarn { .. } => "yarn",
            PositionScheme::YarnRamp { .. } => "yarn-ramp",
            PositionScheme::None => "none",
        }
    }
}

impl SchemeSpec {
    /// Plain RoPE, the training-time setting of a RoPE model.
    pub const ROPE: SchemeSpec = SchemeSpec {
        position: PositionScheme::Rope,
        scale: ScaleFactor::Fixed(1.0),
        logit_scale: LogitScale::Off,
    };
    /// No positions and no logit scale: DroPE without beta, or NoPE.
    pub const NONE: SchemeSpec = SchemeSpec {
        position: PositionScheme::None,
        scale: ScaleFactor::Fixed(1.0),
        logit_scale: LogitScale::Off,
    };
    /// `yarn:dyn`: the reference YaRN with `s` following the context.
    pub const YARN_DYNAMIC: SchemeSpec = SchemeSpec {
        position: PositionScheme::Yarn {
            alpha: YARN_ALPHA,
            beta: YARN_BETA,
        },
        scale: ScaleFactor::Dynamic,
        logit_scale: LogitScale::Off,
    };
    /// `none:dyn+beta`: DroPE with its fitted logit scale, `s` following the context.
    pub const DROPE_DYNAMIC: SchemeSpec = SchemeSpec {
        position: PositionScheme::None,
        scale: ScaleFactor::Dynamic,
        logit_scale: LogitScale::Fitted,
    };

    /// Checks the parameters: `s >= 1` and finite, YaRN's `0 <= alpha < beta`.
    pub fn validate(&self) -> Result<()> {
        if let ScaleFactor::Fixed(s) = self.scale {
            if !(s.is_finite() && s >= 1.0) {
                return Err(EngineError::Scheme(format!(
                    "scale factor s must be a number >= 1, got {s}"
                )));
            }
        }
        if let PositionScheme::Yarn { alpha, beta } | PositionScheme::YarnRamp { alpha, beta } =
            self.position
        {
            if !(alpha.is_finite() && beta.is_finite() && 0.0 <= alpha && alpha < beta) {
                return Err(EngineError::Scheme(format!(
                    "YaRN needs 0 <= alpha < beta, got alpha = {alpha}, beta = {beta}"
                )));
            }
        }
        if let LogitScale::Coefficient(c) = self.logit_scale {
            check_beta_coefficient(c).map_err(EngineError::Scheme)?;
        }
        Ok(())
    }

    /// Whether the applied scheme changes as the context grows (so caches go stale).
    pub fn is_dynamic(&self) -> bool {
        self.scale == ScaleFactor::Dynamic
    }

    /// Evaluates the scheme for a context of `len` tokens ([`crate::ModelConfig::apply_scheme`]
    /// takes the rest from a model's configuration).
    ///
    /// `fitted_c` is the model's `drope_c`, used by [`LogitScale::Fitted`];
    /// `fitted_head_c` its `drope_head_c`, used by [`LogitScale::PerHead`].
    pub fn apply(
        &self,
        len: usize,
        head_dim: usize,
        base: f64,
        training_length: usize,
        fitted_c: Option<f64>,
        fitted_head_c: Option<&[f64]>,
    ) -> Result<AppliedScheme> {
        self.validate()?;
        let s = self.scale.at(len, training_length);
        let mut head_scales = None;
        let beta = match self.logit_scale {
            LogitScale::Off => 1.0,
            LogitScale::PerHead => {
                let cs = fitted_head_c.ok_or_else(|| {
                    EngineError::Scheme(
                        "this model has no per-head DroPE coefficients (drope_head_c in \
                         config.json)"
                            .into(),
                    )
                })?;
                let betas: Vec<f64> = cs.iter().map(|&c| drope_beta(c, s)).collect();
                if let Some(&lowest) = betas.iter().min_by(|a, b| a.total_cmp(b)) {
                    check_beta_positive(lowest, s)?;
                }
                head_scales = Some(betas);
                1.0
            }
            LogitScale::Coefficient(c) => drope_beta(c, s),
            LogitScale::Fitted => {
                let c = fitted_c.ok_or_else(|| {
                    EngineError::Scheme(
                        "this model has no fitted DroPE coefficient c (drope_c in config.json)"
                            .into(),
                    )
                })?;
                drope_beta(c, s)
            }
        };
        check_beta_positive(beta, s)?;
        Ok(AppliedScheme {
            scale: s,
            frequencies: self
                .position
                .frequencies(head_dim, base, training_length, s),
            logit_scale: self.position.logit_scale(s) * beta,
            head_scales,
        })
    }
}

/// A negative c (softer attention past L) turns beta negative at a large enough s:
/// attention would then go to the least similar keys.
fn check_beta_positive(beta: f64, s: f64) -> Result<()> {
    if beta <= 0.0 {
        return Err(EngineError::Scheme(format!(
            "beta = 1 + c ln s is {beta:.3} at s = {s}: a DroPE logit scale must stay above \
             0 (use a smaller s or a larger c)"
        )));
    }
    Ok(())
}

/// Text form used in URLs and on the command line:
/// `<scheme>[:<s>|:dyn][+beta[=<c>|=heads]]`, for example `rope`, `pi:4`, `ntk:dyn`,
/// `yarn:8`, `yarn-ramp:8`, `none`, `none:dyn+beta`, `none:4+beta=0.412`,
/// `none:dyn+beta=heads`. `yarn` is the reference YaRN, `yarn-ramp` the
/// continuous-ramp one; both always use alpha = 1, beta = 32 in this form.
impl FromStr for SchemeSpec {
    type Err = EngineError;

    fn from_str(text: &str) -> Result<Self> {
        let bad = |why: &str| {
            EngineError::Scheme(format!(
                "`{text}` is not a scheme ({why}); expected e.g. rope, pi:4, ntk:dyn, yarn:8, yarn-ramp:8, none:dyn+beta"
            ))
        };
        let text_lower = text.trim().to_ascii_lowercase();
        let (head, beta_part) = match text_lower.split_once('+') {
            Some((head, tail)) => (head, Some(tail)),
            None => (text_lower.as_str(), None),
        };
        let (name, scale_part) = match head.split_once(':') {
            Some((name, scale)) => (name, Some(scale)),
            None => (head, None),
        };
        let position = match name {
            "rope" => PositionScheme::Rope,
            "pi" => PositionScheme::Pi,
            "ntk" => PositionScheme::Ntk,
            "yarn" => PositionScheme::Yarn {
                alpha: YARN_ALPHA,
                beta: YARN_BETA,
            },
            "yarn-ramp" => PositionScheme::YarnRamp {
                alpha: YARN_ALPHA,
                beta: YARN_BETA,
            },
            "none" | "drope" | "nope" => PositionScheme::None,
            _ => return Err(bad("unknown scheme name")),
        };
        let scale = match scale_part {
            None => ScaleFactor::Fixed(1.0),
            Some("dyn") | Some("dynamic") => ScaleFactor::Dynamic,
            Some(number) => {
                ScaleFactor::Fixed(number.parse().map_err(|_| bad("scale is not a number"))?)
            }
        };
        let logit_scale = match beta_part {
            None => LogitScale::Off,
            Some("beta") => LogitScale::Fitted,
            Some("beta=heads") => LogitScale::PerHead,
            Some(other) => match other.strip_prefix("beta=") {
                Some(c) => {
                    LogitScale::Coefficient(c.parse().map_err(|_| bad("c is not a number"))?)
                }
                None => return Err(bad("expected +beta, +beta=<c> or +beta=heads")),
            },
        };
        let spec = SchemeSpec {
            position,
            scale,
            logit_scale,
        };
        spec.validate()?;
        Ok(spec)
    }
}

impl fmt::Display for SchemeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.position.name())?;
        match self.scale {
            ScaleFactor::Dynamic => f.write_str(":dyn")?,
            ScaleFactor::Fixed(s) if s != 1.0 => write!(f, ":{s}")?,
            ScaleFactor::Fixed(_) => {}
        }
        match self.logit_scale {
            LogitScale::Off => Ok(()),
            LogitScale::Fitted => f.write_str("+beta"),
            LogitScale::Coefficient(c) => write!(f, "+beta={c}"),
            LogitScale::PerHead => f.write_str("+beta=heads"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: usize = 8;
    const BASE: f64 = 10_000.0;
    const L: usize = 1024;

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-12 + 1e-9 * y.abs(), "{a:?} != {b:?}");
        }
    }

    fn freqs(p: PositionScheme, s: f64) -> Vec<f64> {
        p.frequencies(D, BASE, L, s).unwrap()
    }

    // theta_d = 10000^(-d/4) for D = 8: 1, 0.1, 0.01, 0.001.
    #[test]
    fn rope_is_the_base_frequencies_at_any_scale() {
        close(&freqs(PositionScheme::Rope, 1.0), &[1.0, 0.1, 0.01, 0.001]);
        close(&freqs(PositionScheme::Rope, 4.0), &[1.0, 0.1, 0.01, 0.001]);
    }

    #[test]
    fn pi_divides_every_frequency_by_s() {
        close(&freqs(PositionScheme::Pi, 2.0), &[0.5, 0.05, 0.005, 0.0005]);
        close(
            &freqs(PositionScheme::Pi, 4.0),
            &[0.25, 0.025, 0.0025, 0.00025],
        );
    }

    // theta'_d = theta_d * s^(-2d/(D-2)): d=1 -> 0.1 * 2^(-1/3), d=3 -> 0.001 / s.
    #[test]
    fn ntk_keeps_the_highest_and_divides_the_lowest_by_s() {
        close(
            &freqs(PositionScheme::Ntk, 2.0),
            &[
                1.0,
                0.079_370_052_598_409_98,
                0.006_299_605_249_474_366,
                0.0005,
            ],
        );
        close(
            &freqs(PositionScheme::Ntk, 4.0),
            &[
                1.0,
                0.062_996_052_494_743_66,
                0.003_968_502_629_920_499,
                0.00025,
            ],
        );
    }

    // r_d = L theta_d / 2pi = 162.97, 16.297, 1.6297, 0.16297; g = 1, 0.49347, 0.020314, 0.
    #[test]
    fn yarn_ramp_blends_by_the_continuous_ramp() {
        let yarn = PositionScheme::YarnRamp {
            alpha: 1.0,
            beta: 32.0,
        };
        close(
            &freqs(yarn, 2.0),
            &[
                1.0,
                0.074_673_332_536_467_88,
                0.005_101_572_035_042_098,
                0.0005,
            ],
        );
        close(
            &freqs(yarn, 4.0),
            &[
                1.0,
                0.062_009_998_804_701_816,
                0.002_652_358_052_563_147_5,
                0.00025,
            ],
        );
    }

    const REFERENCE_YARN: PositionScheme = PositionScheme::Yarn {
        alpha: YARN_ALPHA,
        beta: YARN_BETA,
    };

    /// Reference YaRN's frequencies for a head of width `head_dim`, base 10000.
    fn reference(head_dim: usize, training_length: usize, s: f64) -> Vec<f64> {
        REFERENCE_YARN
            .frequencies(head_dim, BASE, training_length, s)
            .unwrap()
    }

    fn near(got: f64, want: f64) {
        assert!(
            (got - want).abs() <= 1e-15 + 1e-12 * want.abs(),
            "{got} != {want}"
        );
    }

    // The pair with r turns within L: d(r) = D ln(L / (2 pi r)) / (2 ln b); 2 ln 10000
    // = 18.420681.
    #[test]
    fn reference_yarn_rounds_the_correction_range_to_whole_pairs() {
        // D = 32, L = 128: L / 2pi = 20.371833.
        // d(32) = 32 ln(20.371833 / 32) / 18.420681 = 32 (-0.451583) / 18.420681 = -0.78448
        //   -> floor -1 -> max(., 0) = 0.
        // d(1) = 32 ln(20.371833) / 18.420681 = 32 (3.014153) / 18.420681 = 5.23612 -> 6.
        assert_eq!(yarn_correction_range(32, BASE, 128, 1.0, 32.0), (0.0, 6.0));
        // D = 64, L = 256: L / 2pi = 40.743665.
        // d(32) = 64 ln(1.273240) / 18.420681 = 64 (0.241564) / 18.420681 = 0.83928 -> 0.
        // d(1) = 64 ln(40.743665) / 18.420681 = 64 (3.707300) / 18.420681 = 12.88048 -> 13.
        assert_eq!(yarn_correction_range(64, BASE, 256, 1.0, 32.0), (0.0, 13.0));
        // D = 64, L = 4096: L / 2pi = 651.898638.
        // d(32) = 64 ln(20.371833) / 18.420681 = 10.47224 -> 10.
        // d(1) = 64 ln(651.898638) / 18.420681 = 64 (6.479755) / 18.420681 = 22.51344 -> 23.
        assert_eq!(
            yarn_correction_range(64, BASE, 4096, 1.0, 32.0),
            (10.0, 23.0)
        );
        // The upper clamp is D - 1 (not D/2 - 1), as in the reference: D = 8,
        // L = 65536: d(32) = 2.51315 -> 2, d(1) = 4.01830 -> 5 (kept, although the last
        // pair is 3).
        assert_eq!(yarn_correction_range(8, BASE, 65536, 1.0, 32.0), (2.0, 5.0));
    }

    // theta_d = 10000^(-2d/32) = 10^(-d/4); low = 0, high = 6, so pair d is interpolated
    // by ramp d/6: theta'_d = theta_d (ramp / s + 1 - ramp), s = 8.
    #[test]
    fn reference_yarn_blends_by_whole_pairs_d32_l128() {
        let f = reference(32, 128, 8.0);
        assert_eq!(f.len(), 16);
        // Pair 0 (ramp 0, fully extrapolated): RoPE's 1, although it turns only 20.4
        // times within L (the continuous ramp would give 0.6718 here).
        assert_eq!(f[0], 1.0);
        // Pair 1: ramp 1/6: 10^(-0.25) (1/48 + 5/6) = 0.562341 x 0.854167 = 0.480333.
        near(f[1], 0.480_333_215_266_756_5);
        // Pair 2: ramp 1/3: 10^(-0.5) (1/24 + 2/3) = 0.316228 x 17/24 = 0.223995.
        near(f[2], 0.223_994_667_595_260_2);
        // Pair 3: ramp 1/2: 10^(-0.75) (1/16 + 1/2) = 0.177828 x 0.5625 = 0.100028.
        near(f[3], 0.100_028_216_814_689_42);
        // Pairs 6 .. 15 (ramp 1, fully interpolated): PI's theta_d / 8.
        // Pair 6: 10^(-1.5) / 8 = 0.0316228 / 8 = 0.00395285.
        near(f[6], 0.003_952_847_075_210_474);
        // Pair 15: 10^(-3.75) / 8 = 1.77828e-4 / 8 = 2.22285e-5.
        near(f[15], 2.222_849_262_548_653_4e-5);
        let rope = PositionScheme::Rope
            .frequencies(32, BASE, 128, 8.0)
            .unwrap();
        let pi = PositionScheme::Pi.frequencies(32, BASE, 128, 8.0).unwrap();
        near(f[0], rope[0]);
        for d in 6..16 {
            near(f[d], pi[d]);
        }
    }

    // theta_d = 10000^(-2d/64) = 10^(-d/8); low = 0, high = 13, ramp d/13, s = 4.
    #[test]
    fn reference_yarn_blends_by_whole_pairs_d64_l256() {
        let f = reference(64, 256, 4.0);
        let rope = PositionScheme::Rope
            .frequencies(64, BASE, 256, 4.0)
            .unwrap();
        let pi = PositionScheme::Pi.frequencies(64, BASE, 256, 4.0).unwrap();
        assert_eq!(f[0], rope[0]);
        // Pair 5: ramp 5/13: 10^(-0.625) (5/52 + 8/13) = 0.237137 x 37/52 = 0.168732.
        near(f[5], 0.168_732_359_825_925_44);
        // Pair 12: ramp 12/13: 10^(-1.5) (12/52 + 1/13) = 0.0316228 x 16/52 = 0.00973009.
        near(f[12], 0.009_730_085_108_210_398);
        // Pair 13 on (ramp 1): PI's; pair 13: 10^(-1.625) / 4 = 0.0237137 / 4 = 0.00592843.
        near(f[13], 0.005_928_434_264_154_138_5);
        for d in 13..32 {
            near(f[d], pi[d]);
        }
    }

    // D = 64, L = 4096, s = 16: low = 10, high = 23; theta_d = 10^(-d/8).
    #[test]
    fn reference_yarn_keeps_pairs_below_low_as_rope() {
        let f = reference(64, 4096, 16.0);
        let rope = PositionScheme::Rope
            .frequencies(64, BASE, 4096, 16.0)
            .unwrap();
        let pi = PositionScheme::Pi
            .frequencies(64, BASE, 4096, 16.0)
            .unwrap();
        for d in 0..=10 {
            near(f[d], rope[d]);
        }
        // Pair 16: ramp 6/13: 10^(-2) (6/208 + 7/13) = 0.01 x 118/208 = 0.00567308.
        near(f[16], 0.005_673_076_923_076_923);
        for d in 23..32 {
            near(f[d], pi[d]);
        }
    }

    #[test]
    fn reference_yarn_edges() {
        // D = 8, L = 65536, s = 2: low = 2, high = 5, so the last pair (3) is only a third
        // interpolated: 0.001 (1/6 + 2/3) = 8.3333e-4; pair 2 stays RoPE's 0.01.
        let f = reference(8, 65536, 2.0);
        near(f[2], 0.01);
        near(f[3], 0.001 * 5.0 / 6.0);
        // D = 8, L = 6 (< 2 pi): d(1) = 8 ln(0.95493) / 18.420681 = -0.02 -> ceil 0, so
        // low = high = 0 and high becomes 0.001: pair 0 is RoPE, every other pair PI.
        assert_eq!(yarn_correction_range(8, BASE, 6, 1.0, 32.0).1, 0.0);
        close(&reference(8, 6, 4.0), &[1.0, 0.025, 0.0025, 0.00025]);
        assert_eq!(yarn_pair_ramp(0, 0.0, 0.0), 0.0);
        assert_eq!(yarn_pair_ramp(1, 0.0, 0.0), 1.0);
        // At s = 1 every scheme is RoPE.
        close(&reference(32, 128, 1.0), &rope_frequencies(32, BASE));
        // Both YaRNs share the temperature.
        assert_eq!(REFERENCE_YARN.logit_scale(8.0), yarn_logit_scale(8.0));
        let ramp = PositionScheme::YarnRamp {
            alpha: YARN_ALPHA,
            beta: YARN_BETA,
        };
        assert_eq!(ramp.logit_scale(8.0), yarn_logit_scale(8.0));
    }

    #[test]
    fn yarn_is_the_reference_and_yarn_ramp_the_continuous_ramp() {
        let yarn: SchemeSpec = "yarn:8".parse().unwrap();
        assert_eq!(yarn.position, REFERENCE_YARN);
        let ramp: SchemeSpec = "YaRN-Ramp:8".parse().unwrap();
        assert_eq!(
            ramp.position,
            PositionScheme::YarnRamp {
                alpha: YARN_ALPHA,
                beta: YARN_BETA,
            }
        );
        assert_ne!(
            yarn.apply(10, 32, BASE, 128, None, None)
                .unwrap()
                .frequencies,
            ramp.apply(10, 32, BASE, 128, None, None)
                .unwrap()
                .frequencies
        );
    }

    #[test]
    fn yarn_ramp_edges() {
        assert_eq!(yarn_ramp(0.5, 1.0, 32.0), 0.0);
        assert_eq!(yarn_ramp(1.0, 1.0, 32.0), 0.0);
        assert_eq!(yarn_ramp(32.0, 1.0, 32.0), 1.0);
        assert_eq!(yarn_ramp(33.0, 1.0, 32.0), 1.0);
        assert!((yarn_ramp(16.5, 1.0, 32.0) - 0.5).abs() < 1e-15);
    }

    #[test]
    fn yarn_temperature_and_drope_beta() {
        assert!((yarn_logit_scale(2.0) - 1.143_433_966_251_171).abs() < 1e-12);
        assert!((yarn_logit_scale(4.0) - 1.296_476_992_780_706_3).abs() < 1e-12);
        assert_eq!(yarn_logit_scale(1.0), 1.0);
        assert_eq!(drope_beta(0.412, 1.0), 1.0);
        assert_eq!(drope_beta(0.412, 0.5), 1.0);
        assert!((drope_beta(0.412, 8.0) - 1.856_729_915_172_092_4).abs() < 1e-12);
    }

    #[test]
    fn none_has_no_rotation() {
        assert!(PositionScheme::None.frequencies(D, BASE, L, 2.0).is_none());
    }

    #[test]
    fn dynamic_scale_follows_length() {
        assert_eq!(ScaleFactor::Dynamic.at(100, 256), 1.0);
        assert_eq!(ScaleFactor::Dynamic.at(512, 256), 2.0);
        assert_eq!(ScaleFactor::Fixed(4.0).at(10, 256), 4.0);
    }

    #[test]
    fn apply_combines_yarn_temperature_and_beta() {
        let spec: SchemeSpec = "yarn:4+beta=0.412".parse().unwrap();
        let applied = spec.apply(10, D, BASE, L, None, None).unwrap();
        let expected = yarn_logit_scale(4.0) * drope_beta(0.412, 4.0);
        assert!((applied.logit_scale - expected).abs() < 1e-12);
        let fitted: SchemeSpec = "none:dyn+beta".parse().unwrap();
        assert!(
            fitted.apply(4096, D, BASE, L, None, None).is_err(),
            "no fitted c must be an error"
        );
        // A negative c is allowed until beta would reach 0.
        let soft: SchemeSpec = "none:2+beta=-0.3".parse().unwrap();
        assert!(soft.apply(10, D, BASE, L, None, None).unwrap().logit_scale < 1.0);
        let past_zero: SchemeSpec = "none:100+beta=-0.3".parse().unwrap();
        let err = past_zero.apply(10, D, BASE, L, None, None).unwrap_err();
        assert!(err.to_string().contains("above 0"), "{err}");
        let a = fitted.apply(8 * L, D, BASE, L, Some(0.412), None).unwrap();
        assert_eq!(a.scale, 8.0);
        assert!((a.logit_scale - 1.856_729_915_172_092_4).abs() < 1e-12);
    }

    #[test]
    fn per_head_beta_scales_each_head_by_its_own_c() {
        let spec: SchemeSpec = "none:dyn+beta=heads".parse().unwrap();
        assert_eq!(spec.logit_scale, LogitScale::PerHead);
        let err = spec.apply(4 * L, D, BASE, L, Some(0.2), None).unwrap_err();
        assert!(err.to_string().contains("drope_head_c"), "{err}");
        let cs = [0.0, 0.5, -0.2, 1.0];
        let a = spec.apply(4 * L, D, BASE, L, None, Some(&cs)).unwrap();
        assert_eq!((a.scale, a.logit_scale), (4.0, 1.0));
        // beta = 1 + c ln 4 per head, layer-major (here 2 layers of 2 heads).
        let ln4 = 4f64.ln();
        close(
            a.head_scales.as_deref().unwrap(),
            &[1.0, 1.0 + 0.5 * ln4, 1.0 - 0.2 * ln4, 1.0 + ln4],
        );
        assert!((a.head_logit_scale(1, 2, 1) - (1.0 + ln4)).abs() < 1e-12);
        // Within L every beta is 1.
        let inside = spec.apply(L / 2, D, BASE, L, None, Some(&cs)).unwrap();
        assert!(inside.head_scales.unwrap().iter().all(|&b| b == 1.0));
        // With YaRN, its temperature multiplies each head's beta.
        let yarn: SchemeSpec = "yarn:4+beta=heads".parse().unwrap();
        let y = yarn.apply(10, D, BASE, L, None, Some(&cs)).unwrap();
        assert!(
            (y.head_logit_scale(0, 2, 1) - yarn_logit_scale(4.0) * (1.0 + 0.5 * ln4)).abs() < 1e-12
        );
        // A head whose beta would reach 0 is refused, like the one-c scheme.
        let far = spec
            .apply(1000 * L, D, BASE, L, None, Some(&[-0.3, 0.1]))
            .unwrap_err();
        assert!(far.to_string().contains("above 0"), "{far}");
    }

    #[test]
    fn text_form_round_trips_and_rejects_nonsense() {
        for text in [
            "rope",
            "pi:4",
            "ntk:dyn",
            "yarn:8",
            "yarn:dyn",
            "yarn-ramp:8",
            "yarn-ramp:dyn",
            "yarn-ramp",
            "yarn-ramp:4+beta=0.412",
            "none",
            "none:dyn+beta",
            "none:4+beta=0.412",
            "none:4+beta=0",
            "none:4+beta=10",
            "none:dyn+beta=heads",
            "yarn:4+beta=heads",
        ] {
            let spec: SchemeSpec = text.parse().unwrap();
            assert_eq!(spec.to_string(), text);
        }
        for (constant, text) in [
            (SchemeSpec::ROPE, "rope"),
            (SchemeSpec::NONE, "none"),
            (SchemeSpec::YARN_DYNAMIC, "yarn:dyn"),
            (SchemeSpec::DROPE_DYNAMIC, "none:dyn+beta"),
        ] {
            assert_eq!(constant, text.parse().unwrap());
        }
        for bad in [
            "",
            "alibi",
            "yarn-rampx:2",
            "yarnramp:2",
            "pi:0.5",
            "pi:abc",
            "pi:NaN",
            "none+gamma",
            "none+beta=x",
            "pi:inf",
            "none:8+beta=-1.5",
            "none:2+beta=1e300",
        ] {
            assert!(
                bad.parse::<SchemeSpec>().is_err(),
                "{bad} should be rejected"
            );
        }
    }
}
