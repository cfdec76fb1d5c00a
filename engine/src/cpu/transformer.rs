//! The Llama forward pass on candle tensors, which the trainer trains and the CPU backend
//! runs for inference. Two sets of kernels ([`Kernels`]): the reference in plain,
//! differentiable candle ops (candle 0.11's fused rope / rms_norm / softmax have no
//! backward), and our fused ops with hand-written gradients, one pass each way where the
//! reference chains several broadcast ops, each allocating. Tests hold each fused op to
//! its reference.

use candle_core::{Device, Tensor, D};

use super::{fused_causal_softmax, fused_rms_norm, fused_rotate, fused_swiglu};
use crate::config::ModelConfig;
use crate::error::Result;
use crate::position::{rotary_table, AppliedScheme};
use crate::weights::{LayerWeights, ModelWeights};

/// Cos/sin tables for a run of consecutive positions: `[T, D/2]` each.
pub struct RotaryTables {
    cos: Tensor,
    sin: Tensor,
}

impl RotaryTables {
    /// Tables for positions `first .. first + len` at the given per-pair frequencies.
    pub fn new(frequencies: &[f64], first: usize, len: usize, device: &Device) -> Result<Self> {
        let half = frequencies.len();
        let (cos, sin) = rotary_table(frequencies, first, len);
        Ok(RotaryTables {
            cos: Tensor::from_vec(cos, (len, half), device)?,
            sin: Tensor::from_vec(sin, (len, half), device)?,
        })
    }

    /// The `[T, D/2]` cos and sin values, row-major (the trainer's hand-written step
    /// rotates with them).
    pub fn cos_sin(&self) -> Result<(Vec<f32>, Vec<f32>)> {
        Ok((
            self.cos.flatten_all()?.to_vec1()?,
            self.sin.flatten_all()?.to_vec1()?,
        ))
    }

    /// Tables for an applied scheme, or `None` when the scheme does not rotate.
    pub fn for_scheme(
        scheme: &AppliedScheme,
        first: usize,
        len: usize,
        device: &Device,
    ) -> Result<Option<Self>> {
        scheme
            .frequencies
            .as_deref()
            .map(|freqs| RotaryTables::new(freqs, first, len, device))
            .transpose()
    }

    /// Rotates `x` of shape `[B, heads, T, D]` with `kernels`.
    pub fn rotate_with(&self, kernels: Kernels, x: &Tensor) -> Result<Tensor> {
        match kernels {
            Kernels::Reference => self.rotate(x),
            Kernels::Fused => fused_rotate(x, &self.cos, &self.sin),
        }
    }

    /// Rotates `x` of shape `[B, heads, T, D]`: pair `d` is dims `(d, d + D/2)`.
    pub fn rotate(&self, x: &Tensor) -> Result<Tensor> {
        let half = x.dim(D::Minus1)? / 2;
        let x1 = x.narrow(D::Minus1, 0, half)?;
        let x2 = x.narrow(D::Minus1, half, half)?;
        let first = (x1.broadcast_mul(&self.cos)? - x2.broadcast_mul(&self.sin)?)?;
        let second = (x2.broadcast_mul(&self.cos)? + x1.broadcast_mul(&self.sin)?)?;
        Ok(Tensor::cat(&[first, second], D::Minus1)?)
    }
}

/// Keys and values of one layer for the tokens seen so far: `[B, kv_heads, T, D]`.
#[derive(Debug, Clone, Default)]
pub struct LayerCache {
    /// Rotated keys.
    pub keys: Option<Tensor>,
    /// Values.
    pub values: Option<Tensor>,
}

impl LayerCache {
    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.keys.as_ref().and_then(|k| k.dim(2).ok()).unwrap_or(0)
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn append(&mut self, keys: Tensor, values: Tensor) -> Result<(Tensor, Tensor)> {
        let joined = |old: &Option<Tensor>, new: Tensor| -> Result<Tensor> {
            Ok(match old {
                Some(old) => Tensor::cat(&[old, &new], 2)?,
                None => new,
            })
        };
        let keys = joined(&self.keys, keys)?;
        let values = joined(&self.values, values)?;
        self.keys = Some(keys.clone());
        self.values = Some(values.clone());
        Ok((keys, values))
    }
}

/// Settings of one forward call.
pub struct ForwardSettings<'a> {
    /// Rotation for the new positions, or `None` for no positional embedding.
    pub rotary: Option<&'a RotaryTables>,
    /// Multiplier of every attention logit (YaRN temperature, DroPE beta).
    pub logit_scale: f64,
    /// A further multiplier per head (`layer * heads + head`), or `None` for 1.
    pub head_scales: Option<&'a [f64]>,
}

/// Which implementation of the element-wise parts of the model runs (matrix products
/// are candle's either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// Differentiable candle ops only: the definition the fused ops are tested against.
    Reference,
    /// Fused ops with hand-written gradients (RMSNorm, rotation, causal softmax, SwiGLU,
    /// the loss): what training and inference run.
    Fused,
}

impl Kernels {
    fn rms_norm(self, x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
        match self {
            Kernels::Reference => rms_norm(x, weight, eps),
            Kernels::Fused => fused_rms_norm(x, weight, eps),
        }
    }
}

/// RMSNorm: `x / sqrt(mean(x^2) + eps) * weight`.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let mean_square = x.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = x.broadcast_div(&(mean_square + eps)?.sqrt()?)?;
    Ok(normed.broadcast_mul(weight)?)
}

/// Softmax over the last dimension (max subtracted for stability; the max is a
/// constant for the gradient, which leaves softmax's value and gradient unchanged).
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let exp = x.broadcast_sub(&max)?.exp()?;
    Ok(exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)?)
}

/// `x @ w^T` for `x: [B, T, in]`, `w: [out, in]`.
fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (b, t, i) = x.dims3()?;
    let out = x.reshape((b * t, i))?.matmul(&w.t()?)?;
    Ok(out.reshape((b, t, w.dim(0)?))?)
}

/// Causal mask for `new` queries after `cached` keys: `[new, cached + new]`, 0 where a
/// query may look, -inf where the key lies in its future.
pub(super) fn causal_mask(cached: usize, new: usize, device: &Device) -> Result<Tensor> {
    let total = cached + new;
    let mask: Vec<f32> = (0..new)
        .flat_map(|t| {
            (0..total).map(move |j| {
                if j > cached + t {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Ok(Tensor::from_vec(mask, (new, total), device)?)
}

/// The model as a function of its weights.
pub struct Transformer<'w> {
    config: &'w ModelConfig,
    weights: &'w ModelWeights,
    kernels: Kernels,
}

impl<'w> Transformer<'w> {
    /// Wraps weights that match `config`, with the fused kernels.
    pub fn new(config: &'w ModelConfig, weights: &'w ModelWeights) -> Self {
        Transformer {
            config,
            weights,
            kernels: Kernels::Fused,
        }
    }

    /// The same model with the given kernels.
    pub fn with_kernels(self, kernels: Kernels) -> Self {
        Transformer { kernels, ..self }
    }

    /// Runs `tokens` (`[B, T]`, u32) after the `cache` contents (if any) and returns the
    /// logits `[B, T, vocab]`. `observe(layer, probs)` sees each layer's attention
    /// probabilities `[B, heads, T, cached + T]`.
    pub fn forward(
        &self,
        tokens: &Tensor,
        settings: &ForwardSettings<'_>,
        mut cache: Option<&mut [LayerCache]>,
        mut observe: impl FnMut(usize, &Tensor) -> Result<()>,
    ) -> Result<Tensor> {
        let (batch, len) = tokens.dims2()?;
        let cached = cache
            .as_ref()
            .and_then(|c| c.first())
            .map_or(0, |c| c.len());
        let device = tokens.device();
        // The fused softmax masks the future itself.
        let mask = match self.kernels {
            Kernels::Reference => Some(causal_mask(cached, len, device)?),
            Kernels::Fused => None,
        };
        let mut x = self
            .weights
            .embed_tokens
            .index_select(&tokens.flatten_all()?, 0)?
            .reshape((batch, len, self.config.hidden_size))?;
        for (index, layer) in self.weights.layers.iter().enumerate() {
            let layer_cache = cache.as_mut().map(|c| &mut c[index]);
            let (attended, probs) =
                self.attention(&x, index, settings, mask.as_ref(), layer_cache)?;
            observe(index, &probs)?;
            x = (x + attended)?;
            x = (&x + self.mlp(&x, layer)?)?;
        }
        let x = self
            .kernels
            .rms_norm(&x, &self.weights.norm, self.config.rms_norm_eps)?;
        let head = self
            .weights
            .lm_head
            .as_ref()
            .unwrap_or(&self.weights.embed_tokens);
        linear(&x, head)
    }

    fn attention(
        &self,
        x: &Tensor,
        index: usize,
        settings: &ForwardSettings<'_>,
        mask: Option<&Tensor>,
        cache: Option<&mut LayerCache>,
    ) -> Result<(Tensor, Tensor)> {
        let layer = &self.weights.layers[index];
        let c = self.config;
        let (batch, len, _) = x.dims3()?;
        let (heads, kv_heads, head_dim) = (c.num_attention_heads, c.kv_heads(), c.head_dim());
        let h = self
            .kernels
            .rms_norm(x, &layer.input_layernorm, c.rms_norm_eps)?;
        let split_heads = |t: Tensor, n: usize| -> Result<Tensor> {
            Ok(t.reshape((batch, len, n, head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let mut q = split_heads(linear(&h, &layer.q_proj)?, heads)?;
        let mut k = split_heads(linear(&h, &layer.k_proj)?, kv_heads)?;
        let v = split_heads(linear(&h, &layer.v_proj)?, kv_heads)?;
        if let Some((q_norm, k_norm)) = &layer.qk_norm {
            q = self.kernels.rms_norm(&q, q_norm, c.rms_norm_eps)?;
            k = self.kernels.rms_norm(&k, k_norm, c.rms_norm_eps)?;
        }
        if let Some(rotary) = settings.rotary {
            q = rotary.rotate_with(self.kernels, &q)?;
            k = rotary.rotate_with(self.kernels, &k)?;
        }
        // A per-head logit scale multiplies that head's queries: the same as scaling its
        // logits, without a second scale in the softmax.
        if let Some(scales) = settings.head_scales {
            let own: Vec<f32> = (0..heads)
                .map(|h| scales.get(index * heads + h).map_or(1.0, |&s| s as f32))
                .collect();
            q = q.broadcast_mul(&Tensor::from_vec(own, (1, heads, 1, 1), q.device())?)?;
        }
        let (k, v) = match cache {
            Some(cache) => cache.append(k, v)?,
            None => (k, v),
        };
        let repeat = heads / kv_heads;
        let (k, v) = (repeat_kv(k, repeat)?, repeat_kv(v, repeat)?);
        let scale = settings.logit_scale / (head_dim as f64).sqrt();
        let scores = q.matmul(&k.t()?)?;
        let probs = match mask {
            Some(mask) => softmax_last_dim(&(scores * scale)?.broadcast_add(mask)?)?,
            None => fused_causal_softmax(&scores, scale)?,
        };
        let attended =
            probs
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((batch, len, heads * head_dim))?;
        Ok((linear(&attended, &layer.o_proj)?, probs))
    }

    fn mlp(&self, x: &Tensor, layer: &LayerWeights) -> Result<Tensor> {
        let h =
            self.kernels
                .rms_norm(x, &layer.post_attention_layernorm, self.config.rms_norm_eps)?;
        let gate = linear(&h, &layer.gate_proj)?;
        let up = linear(&h, &layer.up_proj)?;
        let activated = match self.kernels {
            Kernels::Reference => (gate.silu()? * up)?,
            Kernels::Fused => fused_swiglu(&gate, &up)?,
        };
        linear(&activated, &layer.down_proj)
    }
}

/// Grouped-query attention: head `h` reads key/value head `h / repeat`.
fn repeat_kv(x: Tensor, repeat: usize) -> Result<Tensor> {
    if repeat == 1 {
        return Ok(x);
    }
    let (b, kv, t, d) = x.dims4()?;
    Ok(x.unsqueeze(2)?
        .expand((b, kv, repeat, t, d))?
        .reshape((b, kv * repeat, t, d))?)
}

/// Convenience: token ids as a `[1, T]` tensor.
pub fn token_tensor(tokens: &[u32], device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_vec(
        tokens.to_vec(),
        (1, tokens.len()),
        device,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::kernel::max_difference;
    use crate::init::random_weights;
    use crate::position::rope_frequencies;

    /// The whole model under both kernels: grouped-query attention, QK-norm, rotation and
    /// a second call after cached keys (the causal mask's offset), on weights large
    /// enough that attention is far from uniform.
    #[test]
    fn fused_and_reference_kernels_give_the_same_logits() {
        let config = ModelConfig::from_json(
            br#"{"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "intermediate_size": 48, "vocab_size": 64,
            "max_position_embeddings": 32, "qk_norm": true}"#,
        )
        .unwrap();
        let weights = random_weights(&config, 7, 0.3).unwrap();
        let device = Device::Cpu;
        let tokens: Vec<u32> = (0..12).map(|i| (i * 37 + 5) % 64).collect();
        let frequencies = rope_frequencies(config.head_dim(), config.rope_theta);
        let run = |kernels: Kernels| -> Vec<Tensor> {
            let model = Transformer::new(&config, &weights).with_kernels(kernels);
            let mut cache = vec![LayerCache::default(); config.num_hidden_layers];
            let mut out = Vec::new();
            for (first, part) in [(0, &tokens[..8]), (8, &tokens[8..])] {
                let rotary = RotaryTables::new(&frequencies, first, part.len(), &device).unwrap();
                let settings = ForwardSettings {
                    rotary: Some(&rotary),
                    logit_scale: 1.3,
                    head_scales: None,
                };
                let ids = token_tensor(part, &device).unwrap();
                let mut probs = Vec::new();
                let logits = model
                    .forward(&ids, &settings, Some(&mut cache), |_, p| {
                        probs.push(p.clone());
                        Ok(())
                    })
                    .unwrap();
                out.push(logits);
                out.extend(probs);
            }
            out
        };
        let (reference, fused) = (run(Kernels::Reference), run(Kernels::Fused));
        assert_eq!(reference.len(), fused.len());
        for (r, f) in reference.iter().zip(&fused) {
            assert_eq!(r.dims(), f.dims());
            let diff = max_difference(r, f);
            assert!(diff < 1e-4, "kernels differ by {diff} in a {:?}", r.dims());
        }
        // The logits are not trivially equal: the model's output varies with the input.
        let spread = reference[0].flatten_all().unwrap().var(0).unwrap();
        assert!(spread.to_scalar::<f32>().unwrap() > 1e-2);
    }
}
