//! Model weights: Hugging Face Llama tensor names, loaded from safetensors bytes
//! (f32, f16 or bf16 storage), held as f32 candle tensors.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use crate::checkpoint::{reader_over, ReadRange, TensorReader};
use crate::config::ModelConfig;
use crate::error::{EngineError, Result};

/// The weights of one transformer block.
#[derive(Debug, Clone)]
pub struct LayerWeights {
    /// RMSNorm before attention, `[hidden]`.
    pub input_layernorm: Tensor,
    /// `[heads * D, hidden]`.
    pub q_proj: Tensor,
    /// `[kv_heads * D, hidden]`.
    pub k_proj: Tensor,
    /// `[kv_heads * D, hidden]`.
    pub v_proj: Tensor,
    /// `[hidden, heads * D]`.
    pub o_proj: Tensor,
    /// RMSNorm before the MLP, `[hidden]`.
    pub post_attention_layernorm: Tensor,
    /// `[intermediate, hidden]`.
    pub gate_proj: Tensor,
    /// `[intermediate, hidden]`.
    pub up_proj: Tensor,
    /// `[hidden, intermediate]`.
    pub down_proj: Tensor,
    /// Per-head RMSNorm weights of queries and keys, `[D]` each, when the config has
    /// `qk_norm`.
    pub qk_norm: Option<(Tensor, Tensor)>,
}

/// All weights of a Llama-style model.
#[derive(Debug, Clone)]
pub struct ModelWeights {
    /// `[vocab, hidden]`.
    pub embed_tokens: Tensor,
    /// One entry per block.
    pub layers: Vec<LayerWeights>,
    /// Final RMSNorm, `[hidden]`.
    pub norm: Tensor,
    /// `[vocab, hidden]`; `None` when tied to `embed_tokens`.
    pub lm_head: Option<Tensor>,
}

/// The Hugging Face name and shape of every tensor a config implies, in a stable order.
pub fn tensor_layout(config: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let h = config.hidden_size;
    let q = config.num_attention_heads * config.head_dim();
    let kv = config.kv_heads() * config.head_dim();
    let i = config.intermediate_size;
    let mut layout = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![config.vocab_size, h],
    )];
    for n in 0..config.num_hidden_layers {
        let p = format!("model.layers.{n}");
        layout.extend([
            (format!("{p}.input_layernorm.weight"), vec![h]),
            (format!("{p}.self_attn.q_proj.weight"), vec![q, h]),
            (format!("{p}.self_attn.k_proj.weight"), vec![kv, h]),
            (format!("{p}.self_attn.v_proj.weight"), vec![kv, h]),
            (format!("{p}.self_attn.o_proj.weight"), vec![h, q]),
            (format!("{p}.post_attention_layernorm.weight"), vec![h]),
            (format!("{p}.mlp.gate_proj.weight"), vec![i, h]),
            (format!("{p}.mlp.up_proj.weight"), vec![i, h]),
            (format!("{p}.mlp.down_proj.weight"), vec![h, i]),
        ]);
        if config.qk_norm {
            layout.extend([
                (
                    format!("{p}.self_attn.q_norm.weight"),
                    vec![config.head_dim()],
                ),
                (
                    format!("{p}.self_attn.k_norm.weight"),
                    vec![config.head_dim()],
                ),
            ]);
        }
    }
    layout.push(("model.norm.weight".to_string(), vec![h]));
    if !config.tie_word_embeddings {
        layout.push(("lm_head.weight".to_string(), vec![config.vocab_size, h]));
    }
    layout
}

impl ModelWeights {
    /// Builds the weights by asking `fetch` for each tensor of [`tensor_layout`], in order.
    /// The loader reads them from a file; the trainer creates trainable variables.
    pub fn from_layout(
        config: &ModelConfig,
        mut fetch: impl FnMut(&str, &[usize]) -> Result<Tensor>,
    ) -> Result<Self> {
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        for (name, shape) in tensor_layout(config) {
            let tensor = fetch(&name, &shape)?;
            if tensor.dims() != shape.as_slice() {
                return Err(EngineError::Shape {
                    name,
                    expected: shape,
                    found: tensor.dims().to_vec(),
                });
            }
            tensors.insert(name, tensor);
        }
        let mut take = |name: &str| {
            tensors
                .remove(name)
                .ok_or_else(|| EngineError::Weights(format!("missing tensor `{name}`")))
        };
        let embed_tokens = take("model.embed_tokens.weight")?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for n in 0..config.num_hidden_layers {
            let p = format!("model.layers.{n}");
            layers.push(LayerWeights {
                input_layernorm: take(&format!("{p}.input_layernorm.weight"))?,
                q_proj: take(&format!("{p}.self_attn.q_proj.weight"))?,
                k_proj: take(&format!("{p}.self_attn.k_proj.weight"))?,
                v_proj: take(&format!("{p}.self_attn.v_proj.weight"))?,
                o_proj: take(&format!("{p}.self_attn.o_proj.weight"))?,
                post_attention_layernorm: take(&format!("{p}.post_attention_layernorm.weight"))?,
                gate_proj: take(&format!("{p}.mlp.gate_proj.weight"))?,
                up_proj: take(&format!("{p}.mlp.up_proj.weight"))?,
                down_proj: take(&format!("{p}.mlp.down_proj.weight"))?,
                qk_norm: if config.qk_norm {
                    Some((
                        take(&format!("{p}.self_attn.q_norm.weight"))?,
                        take(&format!("{p}.self_attn.k_norm.weight"))?,
                    ))
                } else {
                    None
                },
            });
        }
        let norm = take("model.norm.weight")?;
        let lm_head = if config.tie_word_embeddings {
            None
        } else {
            Some(take("lm_head.weight")?)
        };
        Ok(ModelWeights {
            embed_tokens,
            layers,
            norm,
            lm_head,
        })
    }

    /// Loads a `model.safetensors` file held in memory. Every tensor must be present with
    /// the shape the config implies; extra tensors (e.g. `rotary_emb.inv_freq`) are ignored.
    pub fn from_safetensors(config: &ModelConfig, bytes: &[u8]) -> Result<Self> {
        Self::from_shards(config, &[bytes])
    }

    /// Loads a checkpoint whose tensors are spread over several safetensors files (the
    /// shards of `model.safetensors.index.json`), each held in memory; each tensor is
    /// taken from the first file that has it, widened to f32.
    pub fn from_shards(config: &ModelConfig, shards: &[&[u8]]) -> Result<Self> {
        Self::from_reader(config, &mut reader_over(shards)?)
    }

    /// Loads a checkpoint one tensor at a time from `reader`.
    pub fn from_reader<R: ReadRange>(
        config: &ModelConfig,
        reader: &mut TensorReader<R>,
    ) -> Result<Self> {
        Self::from_layout(config, |name, shape| {
            Ok(Tensor::from_vec(
                reader.values(name, shape)?,
                shape,
                &Device::Cpu,
            )?)
        })
    }

    /// Every tensor with its Hugging Face name, in [`tensor_layout`] order.
    pub fn named_tensors(&self) -> Vec<(String, &Tensor)> {
        let mut out = vec![("model.embed_tokens.weight".to_string(), &self.embed_tokens)];
        for (n, l) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{n}");
            out.extend([
                (format!("{p}.input_layernorm.weight"), &l.input_layernorm),
                (format!("{p}.self_attn.q_proj.weight"), &l.q_proj),
                (format!("{p}.self_attn.k_proj.weight"), &l.k_proj),
                (format!("{p}.self_attn.v_proj.weight"), &l.v_proj),
                (format!("{p}.self_attn.o_proj.weight"), &l.o_proj),
                (
                    format!("{p}.post_attention_layernorm.weight"),
                    &l.post_attention_layernorm,
                ),
                (format!("{p}.mlp.gate_proj.weight"), &l.gate_proj),
                (format!("{p}.mlp.up_proj.weight"), &l.up_proj),
                (format!("{p}.mlp.down_proj.weight"), &l.down_proj),
            ]);
            if let Some((q_norm, k_norm)) = &l.qk_norm {
                out.extend([
                    (format!("{p}.self_attn.q_norm.weight"), q_norm),
                    (format!("{p}.self_attn.k_norm.weight"), k_norm),
                ]);
            }
        }
        out.push(("model.norm.weight".to_string(), &self.norm));
        if let Some(head) = &self.lm_head {
            out.push(("lm_head.weight".to_string(), head));
        }
        out
    }

    /// Serialises to safetensors bytes with the given storage type (F32, F16 or BF16).
    pub fn to_safetensors(&self, storage: DType) -> Result<Vec<u8>> {
        let converted = self
            .named_tensors()
            .into_iter()
            .map(|(name, t)| Ok((name, t.to_dtype(storage)?)))
            .collect::<Result<Vec<_>>>()?;
        let mut metadata = HashMap::new();
        metadata.insert("format".to_string(), "pt".to_string());
        safetensors::serialize(
            converted.iter().map(|(n, t)| (n.as_str(), t)),
            Some(metadata),
        )
        .map_err(|e| EngineError::Weights(e.to_string()))
    }
}
