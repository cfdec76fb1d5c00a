//! The CPU backend: candle-core tensors on the CPU, the reference implementation.

pub mod cross_entropy;
mod kernel;
pub mod norm;
pub mod rotary;
pub mod softmax;
pub mod swiglu;
mod transformer;

pub use cross_entropy::{cross_entropy, fused_cross_entropy};
pub use norm::fused_rms_norm;
pub use rotary::fused_rotate;
pub use softmax::fused_causal_softmax;
pub use swiglu::fused_swiglu;
pub use transformer::{
    rms_norm, softmax_last_dim, token_tensor, ForwardSettings, Kernels, LayerCache, RotaryTables,
    Transformer,
};

use candle_core::Device;

use crate::analysis::{head_stats, summarize_row, HeadStats};
use crate::backend::{check_capture, Backend, DeviceKind, ForwardInput, ForwardOutput};
use crate::config::ModelConfig;
use crate::error::Result;
use crate::weights::ModelWeights;

/// A model loaded for the CPU path.
pub struct CpuBackend {
    config: ModelConfig,
    weights: ModelWeights,
}

impl CpuBackend {
    /// Loads `config.json` and `model.safetensors` bytes.
    pub fn load(config_json: &[u8], safetensors: &[u8]) -> Result<Self> {
        Self::load_shards(config_json, &[safetensors])
    }

    /// Loads `config.json` and a checkpoint's safetensors files (one, or the shards of
    /// `model.safetensors.index.json`).
    pub fn load_shards(config_json: &[u8], shards: &[&[u8]]) -> Result<Self> {
        let config = ModelConfig::from_json(config_json)?;
        let weights = ModelWeights::from_shards(&config, shards)?;
        Ok(CpuBackend { config, weights })
    }

    /// Wraps weights already in memory.
    pub fn from_weights(config: ModelConfig, weights: ModelWeights) -> Result<Self> {
        config.validate()?;
        Ok(CpuBackend { config, weights })
    }

    /// The model's weights.
    pub fn weights(&self) -> &ModelWeights {
        &self.weights
    }
}

impl Backend for CpuBackend {
    type Cache = Vec<LayerCache>;

    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn kind(&self) -> DeviceKind {
        DeviceKind::Cpu
    }

    fn new_cache(&self) -> Self::Cache {
        vec![LayerCache::default(); self.config.num_hidden_layers]
    }

    fn cache_len(&self, cache: &Self::Cache) -> usize {
        cache.first().map_or(0, LayerCache::len)
    }

    async fn forward(
        &self,
        cache: &mut Self::Cache,
        input: ForwardInput<'_>,
    ) -> Result<ForwardOutput> {
        let new = input.tokens.len();
        if new == 0 {
            return Ok(ForwardOutput::default());
        }
        let cached = self.cache_len(cache);
        let heads = self.config.num_attention_heads;
        let layers = self.config.num_hidden_layers;
        check_capture(input.capture, &self.config)?;
        let device = Device::Cpu;
        let rotary =
            RotaryTables::for_scheme(input.scheme, input.position_offset + cached, new, &device)?;
        let settings = ForwardSettings {
            rotary: rotary.as_ref(),
            logit_scale: input.scheme.logit_scale,
            head_scales: input.scheme.head_scales.as_deref(),
        };
        let total = cached + new;
        let mut head_stats_out = vec![vec![HeadStats::default(); layers * heads]; new];
        let mut attention = vec![vec![Vec::new(); input.capture.heads.len()]; new];
        let tokens = token_tensor(input.tokens, &device)?;
        let logits = Transformer::new(&self.config, &self.weights).forward(
            &tokens,
            &settings,
            Some(cache),
            |layer, probs| {
                // probs: [1, heads, new, total], row-major.
                let flat = probs.flatten_all()?.to_vec1::<f32>()?;
                let row = |head: usize, t: usize| &flat[(head * new + t) * total..][..total];
                for t in 0..new {
                    let query = cached + t;
                    for head in 0..heads {
                        head_stats_out[t][layer * heads + head] =
                            head_stats(row(head, t), query, input.capture.span.as_ref());
                    }
                    for (c, &(l, head)) in input.capture.heads.iter().enumerate() {
                        if l == layer {
                            attention[t][c] = row(head, t)[..=query].to_vec();
                        }
                    }
                }
                Ok(())
            },
        )?;
        let logits = logits.flatten_all()?.to_vec1::<f32>()?;
        let vocab = self.config.vocab_size;
        let rows = (0..new)
            .map(|t| {
                let next = input.tokens.get(t + 1).copied();
                summarize_row(&logits[t * vocab..][..vocab], input.top_k, next)
            })
            .collect();
        Ok(ForwardOutput {
            rows,
            last_logits: logits[(new - 1) * vocab..].to_vec(),
            logits: input.return_logits.then_some(logits),
            attention,
            head_stats: head_stats_out,
        })
    }
}
