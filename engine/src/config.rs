//! `ModelConfig`: a Hugging Face Llama `config.json` plus the studio's own fields.

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::position::{
    AppliedScheme, LogitScale, PositionScheme, ScaleFactor, SchemeSpec, YARN_ALPHA, YARN_BETA,
};

/// The longest training length a config may declare (2^20 tokens): the studio runs up
/// to 8 times it, which must stay a small number of tokens even on 32-bit wasm.
pub const MAX_TRAINING_LENGTH: usize = 1 << 20;

/// The most parameters a config may declare (4 billion: 16 GB as f32, more than any
/// browser tab holds). Checked before anything is sized from the config, so a file
/// claiming absurd dimensions is refused instead of overflowing or allocating.
pub const MAX_PARAMETERS: u128 = 4_000_000_000;

/// How a checkpoint was trained with respect to positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TrainedPositions {
    /// Rotary embeddings in every layer (ordinary Llama).
    #[default]
    Rope,
    /// No positional embedding at all: DroPE after recalibration, or NoPE from scratch.
    None,
}

/// Model hyper-parameters. Field names follow Hugging Face's `LlamaConfig`, so a
/// `config.json` written by other Llama tooling parses here and ours parses there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Number of transformer blocks.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (grouped-query attention); defaults to the query heads.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Hidden width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Vocabulary size (rows of the embedding matrix).
    pub vocab_size: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base `b`.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// Whether `lm_head` shares the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// The training context length `L`.
    pub max_position_embeddings: usize,
    /// Per-head width; defaults to `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// Studio field: whether the model was trained with RoPE or with no positions.
    #[serde(default)]
    pub position_embedding: TrainedPositions,
    /// Studio field: the fitted DroPE logit-scale coefficient `c` in `beta(s) = 1 + c ln s`.
    #[serde(default)]
    pub drope_c: Option<f64>,
    /// Studio field: one fitted `c` per head, index `layer * heads + head`, for the
    /// per-head logit scale (`+beta=heads`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drope_head_c: Option<Vec<f64>>,
    /// Studio field: RMSNorm over each head's projected queries and keys (weights
    /// `self_attn.q_norm` / `k_norm`, `[head_dim]`), the paper's optional stabiliser.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub qk_norm: bool,
    /// The token every training sequence started with, if any (Hugging Face's name).
    /// Every prompt then starts with it too ([`ModelConfig::with_bos`]): a model without
    /// positions counts from it, and without it sees an input it never saw in training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<u32>,
    /// Hugging Face's `rope_scaling`: a context extension the checkpoint was trained or
    /// fine-tuned with. The studio runs it as the model's own scheme
    /// ([`ModelConfig::trained_scheme`]) and takes L from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<RopeScaling>,
    /// What the file says about the architecture (checked on load).
    #[serde(flatten)]
    pub foreign: ForeignFields,
}

/// The `config.json` fields that name the architecture: the studio computes one (the
/// Llama layout), checks them on load and writes them back as they were.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ForeignFields {
    /// `architectures` (e.g. `LlamaForCausalLM`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    /// Hugging Face's `model_type` (`llama`, `mistral`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    /// The MLP's activation; the studio computes SwiGLU with SiLU only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_act: Option<String>,
    /// Mistral's sliding-window attention span; the studio attends to every earlier token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding_window: Option<usize>,
    /// Biases on q/k/v/o (some Llama variants); the studio's projections have none.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub attention_bias: bool,
    /// Biases in the MLP; none in the studio's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mlp_bias: bool,
    /// The DroPE authors' released checkpoints (`DroPELlamaForCausalLM`, model type
    /// `llama_drope`): `nope` is attention without rotary embeddings, which the studio
    /// reads as `position_embedding: "none"`; their QK-norm variants (`qk_norm_nope`,
    /// `q_norm_nope`, `k_norm_nope`) normalise a whole projection at once and are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_type: Option<String>,
}

impl ForeignFields {
    /// What the trainer writes, so that Hugging Face tooling reads its checkpoints as
    /// Llama models.
    pub fn llama() -> Self {
        ForeignFields {
            architectures: vec!["LlamaForCausalLM".into()],
            model_type: Some("llama".into()),
            hidden_act: Some("silu".into()),
            ..Default::default()
        }
    }
}

/// Architectures whose checkpoints the studio runs: the Llama layout (RMSNorm, rotary
/// attention with grouped-query heads, SwiGLU), under the names tooling gives it.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &[
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "DroPELlamaForCausalLM",
];

/// `model_type` values of the same layout, for configs without `architectures`.
const SUPPORTED_MODEL_TYPES: &[&str] = &["llama", "mistral", "llama_drope"];

/// Hugging Face's `rope_scaling` block. Written as `{"rope_type": "yarn", "factor": 4.0,
/// "original_max_position_embeddings": 2048}` (older files say `"type"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeScaling {
    /// `linear` (position interpolation) or `yarn`; others are refused by name.
    #[serde(alias = "type")]
    pub rope_type: String,
    /// The scale factor `s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<f64>,
    /// The length the model was pretrained at, before the extension (YaRN's L).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_max_position_embeddings: Option<usize>,
    /// YaRN: turns within L above which a pair keeps RoPE's frequency (32 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta_fast: Option<f64>,
    /// YaRN: turns within L below which a pair is interpolated (1 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta_slow: Option<f64>,
    /// YaRN's attention temperature when not the paper's `0.1 ln s + 1`: refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_factor: Option<f64>,
    /// DeepSeek-style YaRN temperature settings: refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mscale: Option<f64>,
    /// See `mscale`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mscale_all_dim: Option<f64>,
}

impl RopeScaling {
    /// The scheme this extension is, or why the studio cannot run it.
    pub fn scheme(&self) -> std::result::Result<SchemeSpec, String> {
        let factor = self.factor.ok_or("rope_scaling has no factor")?;
        if !(factor.is_finite() && factor >= 1.0) {
            return Err(format!("rope_scaling factor must be >= 1, got {factor}"));
        }
        let position = match self.rope_type.as_str() {
            "linear" => PositionScheme::Pi,
            "yarn" => {
                if self.attention_factor.is_some()
                    || self.mscale.is_some()
                    || self.mscale_all_dim.is_some()
                {
                    return Err("rope_scaling (yarn) sets attention_factor or mscale: only \
                                YaRN's own temperature, 0.1 ln s + 1, is supported"
                        .into());
                }
                PositionScheme::Yarn {
                    alpha: self.beta_slow.unwrap_or(YARN_ALPHA),
                    beta: self.beta_fast.unwrap_or(YARN_BETA),
                }
            }
            other => {
                return Err(format!(
                    "rope_scaling type `{other}` is not supported (supported: linear, yarn)"
                ))
            }
        };
        let scheme = SchemeSpec {
            position,
            scale: ScaleFactor::Fixed(factor),
            logit_scale: LogitScale::Off,
        };
        scheme
            .validate()
            .map_err(|e| format!("rope_scaling: {e}"))?;
        Ok(scheme)
    }
}

fn default_rms_norm_eps() -> f64 {
    1e-6
}

fn default_rope_theta() -> f64 {
    10_000.0
}

impl ModelConfig {
    /// Parses and validates a `config.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let mut config: ModelConfig =
            serde_json::from_slice(bytes).map_err(|e| EngineError::Config(e.to_string()))?;
        // The DroPE authors' format declares a model without positions its own way.
        if config.foreign.attention_type.as_deref() == Some("nope") {
            config.position_embedding = TrainedPositions::None;
        }
        config.validate()?;
        Ok(config)
    }

    /// Serialises to pretty JSON (what the trainer writes), without null fields.
    pub fn to_json(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.retain(|_, v| !v.is_null());
        }
        serde_json::to_string_pretty(&value).unwrap_or_default()
    }

    /// `tokens` as the model must see them: after its beginning-of-sequence token, when
    /// it was trained with one.
    pub fn with_bos(&self, tokens: &[u32]) -> Vec<u32> {
        self.bos_token_id
            .into_iter()
            .chain(tokens.iter().copied())
            .collect()
    }

    /// Checks that the dimensions are consistent with each other.
    pub fn validate(&self) -> Result<()> {
        let fail = |msg: String| Err(EngineError::Config(msg));
        for (name, value) in [
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("vocab_size", self.vocab_size),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if value == 0 {
                return fail(format!("{name} must be positive"));
            }
        }
        let kv = self.kv_heads();
        if kv == 0 || !self.num_attention_heads.is_multiple_of(kv) {
            return fail(format!(
                "num_attention_heads ({}) must be a multiple of num_key_value_heads ({kv})",
                self.num_attention_heads
            ));
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return fail(format!(
                "hidden_size ({}) is not divisible by num_attention_heads ({})",
                self.hidden_size, self.num_attention_heads
            ));
        }
        let head_dim = self.head_dim();
        if head_dim < 4 || !head_dim.is_multiple_of(2) {
            return fail(format!("head_dim ({head_dim}) must be even and at least 4"));
        }
        // Both: L is the original length under a rope_scaling, max_position_embeddings
        // otherwise, and the studio sizes caches from either.
        for (name, length) in [
            ("max_position_embeddings", self.max_position_embeddings),
            ("the training length", self.training_length()),
        ] {
            if length > MAX_TRAINING_LENGTH {
                return fail(format!(
                    "{name} ({length}) is over {MAX_TRAINING_LENGTH}: the studio runs prompts \
                     up to 8 times the training length"
                ));
            }
        }
        let parameters = self.parameters_exact();
        if parameters > MAX_PARAMETERS {
            return fail(format!(
                "the config describes {parameters} parameters, more than the {MAX_PARAMETERS} \
                 the studio opens"
            ));
        }
        if !(self.rope_theta > 1.0 && self.rope_theta.is_finite()) {
            return fail(format!("rope_theta ({}) must be > 1", self.rope_theta));
        }
        if !(self.rms_norm_eps > 0.0 && self.rms_norm_eps.is_finite()) {
            return fail(format!("rms_norm_eps ({}) must be > 0", self.rms_norm_eps));
        }
        if let Some(c) = self.drope_c {
            crate::position::check_beta_coefficient(c)
                .map_err(|e| EngineError::Config(format!("drope_c: {e}")))?;
        }
        if let Some(cs) = &self.drope_head_c {
            let heads = self.num_hidden_layers * self.num_attention_heads;
            if cs.len() != heads {
                return fail(format!(
                    "drope_head_c has {} values; the model has {heads} heads ({} layers of {})",
                    cs.len(),
                    self.num_hidden_layers,
                    self.num_attention_heads
                ));
            }
            for (i, &c) in cs.iter().enumerate() {
                crate::position::check_beta_coefficient(c).map_err(|e| {
                    EngineError::Config(format!(
                        "drope_head_c (layer {}, head {}): {e}",
                        i / self.num_attention_heads,
                        i % self.num_attention_heads
                    ))
                })?;
            }
        }
        self.check_architecture().map_err(EngineError::Config)?;
        if let Some(scaling) = &self.rope_scaling {
            if self.position_embedding == TrainedPositions::None {
                return fail("rope_scaling is set on a model without positions".into());
            }
            scaling.scheme().map_err(EngineError::Config)?;
            if scaling.original_max_position_embeddings == Some(0) {
                return fail(
                    "rope_scaling: original_max_position_embeddings must be positive".into(),
                );
            }
        }
        if let Some(bos) = self.bos_token_id {
            if bos as usize >= self.vocab_size {
                return fail(format!(
                    "bos_token_id ({bos}) is not in the vocabulary of {} tokens",
                    self.vocab_size
                ));
            }
        }
        Ok(())
    }

    /// Whether the studio computes this architecture: the Llama layout, no biases, SiLU,
    /// attention over the whole context (no sliding window short of 8L).
    fn check_architecture(&self) -> std::result::Result<(), String> {
        let ForeignFields {
            architectures,
            model_type,
            hidden_act,
            sliding_window,
            attention_bias,
            mlp_bias,
            attention_type,
        } = &self.foreign;
        if let Some(kind) = attention_type.as_deref().filter(|k| *k != "nope") {
            return Err(format!(
                "attention_type `{kind}` is not supported: the studio runs DroPE checkpoints \
                 with attention_type `nope`; the QK-norm variants normalise a whole \
                 projection, which it does not compute"
            ));
        }
        let known = |list: &[&str], name: &str| list.contains(&name);
        if !architectures.is_empty()
            && !architectures
                .iter()
                .any(|a| known(SUPPORTED_ARCHITECTURES, a))
        {
            return Err(format!(
                "architecture {} is not supported (supported: {})",
                architectures.join(", "),
                SUPPORTED_ARCHITECTURES.join(", ")
            ));
        }
        if let Some(kind) = model_type.as_deref() {
            if architectures.is_empty() && !known(SUPPORTED_MODEL_TYPES, kind) {
                return Err(format!(
                    "model_type `{kind}` is not supported (supported: {})",
                    SUPPORTED_MODEL_TYPES.join(", ")
                ));
            }
        }
        if let Some(act) = hidden_act.as_deref() {
            if act != "silu" {
                return Err(format!(
                    "hidden_act `{act}` is not supported (the studio's MLP is SwiGLU with silu)"
                ));
            }
        }
        if *attention_bias || *mlp_bias {
            return Err(
                "attention_bias / mlp_bias are not supported (no biases in the \
                        studio's projections)"
                    .into(),
            );
        }
        if let Some(window) = *sliding_window {
            let longest = 8 * self.training_length();
            if window < longest {
                return Err(format!(
                    "sliding_window ({window}) is shorter than the longest prompt the studio \
                     runs (8 x L = {longest}): sliding-window attention is not supported"
                ));
            }
        }
        Ok(())
    }

    /// The scheme the model was trained with: its `rope_scaling` when it has one, else
    /// plain RoPE, or no positions for a DroPE / NoPE model.
    pub fn trained_scheme(&self) -> SchemeSpec {
        match (self.position_embedding, &self.rope_scaling) {
            (TrainedPositions::None, _) => SchemeSpec::NONE,
            (TrainedPositions::Rope, Some(scaling)) => scaling.scheme().unwrap_or(SchemeSpec::ROPE),
            (TrainedPositions::Rope, None) => SchemeSpec::ROPE,
        }
    }

    /// Number of key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Per-head width `D`.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// The training length `L`: `max_position_embeddings`, or under an existing
    /// `rope_scaling` the length before that extension
    /// (`original_max_position_embeddings`), where the scaling's own range is measured.
    pub fn training_length(&self) -> usize {
        self.rope_scaling
            .as_ref()
            .and_then(|r| r.original_max_position_embeddings)
            .unwrap_or(self.max_position_embeddings)
    }

    /// Evaluates `scheme` for a context of `len` tokens of this model: its head width,
    /// RoPE base, training length and fitted `drope_c` / `drope_head_c`.
    pub fn apply_scheme(&self, scheme: &SchemeSpec, len: usize) -> Result<AppliedScheme> {
        scheme.apply(
            len,
            self.head_dim(),
            self.rope_theta,
            self.training_length(),
            self.drope_c,
            self.drope_head_c.as_deref(),
        )
    }

    /// Number of parameters stored in the checkpoint.
    pub fn parameter_count(&self) -> usize {
        usize::try_from(self.parameters_exact()).unwrap_or(usize::MAX)
    }

    /// The parameter count in u128, saturating: a config claiming absurd dimensions
    /// gets a huge count (and is refused), never an overflow.
    fn parameters_exact(&self) -> u128 {
        let n = |x: usize| x as u128;
        let mul = |xs: &[u128]| xs.iter().fold(1u128, |a, &x| a.saturating_mul(x));
        let (h, d) = (n(self.hidden_size), n(self.head_dim()));
        let heads = (2 * n(self.num_attention_heads)).saturating_add(2 * n(self.kv_heads()));
        let attention = mul(&[h, d, heads]);
        let mlp = mul(&[3, h, n(self.intermediate_size)]);
        let qk_norm = if self.qk_norm { 2 * d } else { 0 };
        let per_layer = attention
            .saturating_add(mlp)
            .saturating_add(2 * h)
            .saturating_add(qk_norm);
        let embed = mul(&[n(self.vocab_size), h]);
        let head = if self.tie_word_embeddings { 0 } else { embed };
        embed
            .saturating_add(mul(&[n(self.num_hidden_layers), per_layer]))
            .saturating_add(h)
            .saturating_add(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA_JSON: &str = r#"{
        "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "vocab_size": 300, "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "tie_word_embeddings": true, "torch_dtype": "float32"
    }"#;

    #[test]
    fn parses_hugging_face_llama_config() {
        let c = ModelConfig::from_json(LLAMA_JSON.as_bytes()).unwrap();
        assert_eq!(c.head_dim(), 16);
        assert_eq!(c.kv_heads(), 2);
        assert_eq!(c.training_length(), 64);
        assert_eq!(c.position_embedding, TrainedPositions::Rope);
        assert_eq!(c.drope_c, None);
        let again = ModelConfig::from_json(c.to_json().as_bytes()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn an_existing_rope_scaling_is_the_models_own_scheme() {
        let with = |scaling: &str| {
            let json = LLAMA_JSON.replace(
                "\"torch_dtype\"",
                &format!("\"rope_scaling\": {scaling}, \"torch_dtype\""),
            );
            ModelConfig::from_json(json.as_bytes())
        };
        let yarn =
            with(r#"{"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32}"#)
                .unwrap();
        // L is the length before the extension; the scheme as trained is YaRN at s = 4.
        assert_eq!(yarn.training_length(), 32);
        assert_eq!(yarn.trained_scheme().to_string(), "yarn:4");
        let linear = with(r#"{"type": "linear", "factor": 2.0}"#).unwrap();
        assert_eq!(linear.training_length(), 64);
        assert_eq!(linear.trained_scheme().to_string(), "pi:2");
        assert_eq!(
            ModelConfig::from_json(linear.to_json().as_bytes())
                .unwrap()
                .rope_scaling,
            linear.rope_scaling
        );
        for (bad, says) in [
            (
                r#"{"rope_type": "llama3", "factor": 8.0}"#,
                "`llama3` is not supported",
            ),
            (
                r#"{"rope_type": "yarn", "factor": 4.0, "attention_factor": 1.2}"#,
                "temperature",
            ),
            (r#"{"rope_type": "linear", "factor": 0.5}"#, ">= 1"),
            (r#"{"rope_type": "linear"}"#, "no factor"),
        ] {
            let e = with(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn only_the_llama_layout_is_accepted() {
        let c = ModelConfig::from_json(LLAMA_JSON.as_bytes()).unwrap();
        assert_eq!(c.trained_scheme(), SchemeSpec::ROPE);
        let other = |from: &str, to: &str| {
            ModelConfig::from_json(LLAMA_JSON.replace(from, to).as_bytes())
                .unwrap_err()
                .to_string()
        };
        let e = other("LlamaForCausalLM", "GPT2LMHeadModel");
        assert!(e.contains("GPT2LMHeadModel is not supported"), "{e}");
        assert!(e.contains("LlamaForCausalLM"), "{e}");
        let e = other(
            "\"torch_dtype\"",
            "\"hidden_act\": \"gelu\", \"torch_dtype\"",
        );
        assert!(e.contains("gelu"), "{e}");
        let e = other(
            "\"torch_dtype\"",
            "\"attention_bias\": true, \"torch_dtype\"",
        );
        assert!(e.contains("bias"), "{e}");
        // Mistral's layout is Llama's; a sliding window short of 8L is not.
        let mistral = LLAMA_JSON.replace("LlamaForCausalLM", "MistralForCausalLM");
        assert!(ModelConfig::from_json(mistral.as_bytes()).is_ok());
        let windowed = mistral.replace(
            "\"torch_dtype\"",
            "\"sliding_window\": 128, \"torch_dtype\"",
        );
        let e = ModelConfig::from_json(windowed.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.contains("sliding_window (128)"), "{e}");
        let unbounded = mistral.replace(
            "\"torch_dtype\"",
            "\"sliding_window\": null, \"torch_dtype\"",
        );
        assert!(ModelConfig::from_json(unbounded.as_bytes()).is_ok());
    }

    #[test]
    fn rejects_inconsistent_heads() {
        let bad = LLAMA_JSON.replace("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3");
        let err = ModelConfig::from_json(bad.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("multiple"), "{err}");
    }

    #[test]
    fn rejects_missing_fields_and_garbage() {
        assert!(ModelConfig::from_json(b"{}").is_err());
        assert!(ModelConfig::from_json(b"not json").is_err());
        let zero = LLAMA_JSON.replace("\"vocab_size\": 300", "\"vocab_size\": 0");
        assert!(ModelConfig::from_json(zero.as_bytes()).is_err());
    }

    #[test]
    fn rejects_values_out_of_range() {
        let with_c = |c: &str| LLAMA_JSON.replacen('{', &format!("{{\"drope_c\": {c},"), 1);
        assert_eq!(
            ModelConfig::from_json(with_c("0.4").as_bytes())
                .unwrap()
                .drope_c,
            Some(0.4)
        );
        let long = LLAMA_JSON.replace(
            "\"max_position_embeddings\": 64",
            "\"max_position_embeddings\": 2000000000",
        );
        let err = ModelConfig::from_json(long.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("max_position_embeddings"), "{err}");
        for bad in ["-5", "1e300"] {
            let err = ModelConfig::from_json(with_c(bad).as_bytes()).unwrap_err();
            assert!(err.to_string().contains("drope_c"), "{bad}: {err}");
        }
        let with_heads =
            |cs: &str| LLAMA_JSON.replacen('{', &format!("{{\"drope_head_c\": {cs},"), 1);
        let heads = {
            let c = ModelConfig::from_json(LLAMA_JSON.as_bytes()).unwrap();
            c.num_hidden_layers * c.num_attention_heads
        };
        let fine = format!("[{}]", vec!["0.25"; heads].join(", "));
        let c = ModelConfig::from_json(with_heads(&fine).as_bytes()).unwrap();
        assert_eq!(c.drope_head_c, Some(vec![0.25; heads]));
        assert_eq!(ModelConfig::from_json(c.to_json().as_bytes()).unwrap(), c);
        let err = ModelConfig::from_json(with_heads("[0.1, 0.2]").as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("drope_head_c has 2 values"),
            "{err}"
        );
        let mut out_of_range = vec!["0.25"; heads];
        out_of_range[heads - 1] = "-5";
        let err =
            ModelConfig::from_json(with_heads(&format!("[{}]", out_of_range.join(","))).as_bytes())
                .unwrap_err();
        assert!(err.to_string().contains("drope_head_c (layer"), "{err}");
    }

    #[test]
    fn the_drope_authors_format_is_read_as_a_model_without_positions() {
        // What their released checkpoints' config.json says (custom_models/drope.py).
        let theirs = |kind: &str| {
            LLAMA_JSON.replace(
                "\"architectures\": [\"LlamaForCausalLM\"],",
                &format!(
                    "\"architectures\": [\"DroPELlamaForCausalLM\"], \"model_type\": \
                     \"llama_drope\", \"attention_type\": \"{kind}\","
                ),
            )
        };
        let c = ModelConfig::from_json(theirs("nope").as_bytes()).unwrap();
        assert_eq!(c.position_embedding, TrainedPositions::None);
        assert_eq!(c.trained_scheme().to_string(), "none");
        // Written back as it was read (and read back the same).
        assert!(c.to_json().contains("\"attention_type\": \"nope\""));
        assert_eq!(ModelConfig::from_json(c.to_json().as_bytes()).unwrap(), c);
        for variant in ["qk_norm_nope", "k_norm_nope"] {
            let err = ModelConfig::from_json(theirs(variant).as_bytes()).unwrap_err();
            assert!(err.to_string().contains(variant), "{err}");
        }
    }

    #[test]
    fn a_beginning_of_sequence_token_is_kept_checked_and_put_first() {
        let with_bos =
            |id: &str| LLAMA_JSON.replacen('{', &format!("{{\"bos_token_id\": {id},"), 1);
        let c = ModelConfig::from_json(with_bos("299").as_bytes()).unwrap();
        assert_eq!(c.bos_token_id, Some(299));
        assert_eq!(c.with_bos(&[5, 6]), vec![299, 5, 6]);
        assert_eq!(c.with_bos(&[]), vec![299]);
        assert_eq!(ModelConfig::from_json(c.to_json().as_bytes()).unwrap(), c);
        let err = ModelConfig::from_json(with_bos("300").as_bytes()).unwrap_err();
        assert!(err.to_string().contains("bos_token_id (300)"), "{err}");
        let plain = ModelConfig::from_json(LLAMA_JSON.as_bytes()).unwrap();
        assert_eq!(plain.with_bos(&[5, 6]), vec![5, 6]);
        assert!(
            !plain.to_json().contains("bos_token_id"),
            "absent stays absent"
        );
    }
}
