//! The WebGPU backend: the same forward pass as [`crate::cpu`], as wgpu compute
//! pipelines running the WGSL kernels in `kernels/`. Natively it runs on Vulkan
//! (Mesa's lavapipe in CI, a real GPU in benchmarks); in the browser on WebGPU.
//!
//! Per chunk of new tokens it records every kernel of every layer into one command
//! buffer, submits once and reads back only what the views need (row summaries, the
//! last row's logits, head statistics, the attention maps asked for). Keys and values
//! stay on the GPU in a [`GpuCache`], so extending a prompt by `k` tokens costs work
//! proportional to `k x T`. Chunks are split further when the attention scores would
//! exceed the adapter's `maxStorageBufferBindingSize`.

pub mod bench;
mod bind_groups;
mod context;
pub mod kernels;
mod matrix;
mod pool;
mod profile;
mod recorder;

use std::future::Future;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

pub use bind_groups::BindStats;
pub use context::GpuContext;

use crate::analysis::HeadStats;
use crate::backend::{
    check_capture, check_tokens, Backend, DeviceKind, ForwardInput, ForwardOutput, RowSummary,
};
use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::position::rotary_table;
use crate::weights::ModelWeights;
use kernels::{
    AttentionInputParams, AttentionParams, DecodeParams, EmbedParams, Kernel, LinearInput,
    MatmulParams, NormParams, PairParams, QkvParams, SoftmaxParams, SummaryParams,
};
use matrix::Matrix;
use recorder::{PassCaches, ReadBack, ReadSlot, Recorder, Region};

/// A token with no successor in the chunk (`logits_summary.wgsl`'s `NONE`).
const NO_TARGET: u32 = u32::MAX;
/// Most predictions per position the GPU summary returns.
pub const MAX_TOP_K: usize = 64;

/// The weights of the linear layers that follow an RMSNorm hold that norm's weight
/// folded in (see [`fold_norm`]).
struct GpuLayer {
    /// `[q; k; v]` stacked (one matmul projects every head of the new tokens), with the
    /// input norm's weight folded in.
    qkv: Matrix,
    o_proj: Matrix,
    /// `[gate; up]` stacked (one matmul yields both halves of the SwiGLU input), with
    /// the post-attention norm's weight folded in.
    gate_up: Matrix,
    down_proj: Matrix,
    /// `[q_norm; k_norm]` stacked, for models with QK-norm.
    qk_norm: Option<Region>,
}

/// A linear layer's input and the step it still needs (see [`LinearInput`]).
enum LayerInput<'r> {
    /// The rows themselves.
    Plain(&'r Region),
    /// Rows to RMS-normalise first (the norm's weight is in the layer's weights);
    /// `scratch` takes the normalised rows when a kernel of its own does that (many
    /// rows).
    Normed { x: &'r Region, scratch: &'r Region },
    /// Stacked `[gate; up]` rows, to combine as `silu(gate) * up` first (into
    /// `scratch` for many rows).
    Swiglu {
        gate_up: &'r Region,
        scratch: &'r Region,
    },
}

/// A model loaded onto the GPU.
pub struct GpuBackend {
    context: Rc<GpuContext>,
    config: ModelConfig,
    embed_tokens: Matrix,
    layers: Vec<GpuLayer>,
    /// The output head (`lm_head`, or the embedding table when tied) with the final
    /// norm's weight folded in.
    logits_head: Matrix,
    caches: PassCaches,
}

/// Keys and values of every layer, on the GPU: `[capacity, kv_heads * D]` per layer.
#[derive(Default)]
pub struct GpuCache {
    keys: Vec<wgpu::Buffer>,
    values: Vec<wgpu::Buffer>,
    capacity: usize,
    len: usize,
}

fn tensor_values(tensor: &candle_core::Tensor) -> Result<Vec<f32>> {
    Ok(tensor
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

/// Multiplies column c of the row-major matrices in `values` by `norm[c]`: a linear
/// layer after an RMSNorm computes `(x / rms(x) * g) W^T = (x / rms(x)) (W diag(g))^T`,
/// so with g folded into W the kernels only divide by the RMS. `matvec.wgsl` then
/// reads one vector per step instead of two, and takes the row's RMS from the very
/// values it multiplies (no reduction of its own).
fn fold_norm(values: &mut [f32], norm: &[f32]) {
    for row in values.chunks_exact_mut(norm.len()) {
        for (value, g) in row.iter_mut().zip(norm) {
            *value *= g;
        }
    }
}

impl GpuBackend {
    /// Uploads `weights` (as loaded for the CPU path) to the GPU at once.
    pub fn new(
        context: Rc<GpuContext>,
        config: ModelConfig,
        weights: &ModelWeights,
    ) -> Result<Self> {
        let upload = std::pin::pin!(Self::upload(context, config, weights, || {
            std::future::ready(())
        }));
        match upload.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => result,
            // Only `pause` could wait, and here it never does.
            Poll::Pending => Err(EngineError::Gpu("the weight upload did not finish".into())),
        }
    }

    /// Uploads `weights` to the GPU, awaiting `pause()` after the embedding table and
    /// after each layer: a browser passes a yield to its event loop, so the page keeps
    /// handling input (one model uploaded at once held the main thread ~120 ms).
    pub async fn upload<P: Future<Output = ()>>(
        context: Rc<GpuContext>,
        config: ModelConfig,
        weights: &ModelWeights,
        pause: impl FnMut() -> P,
    ) -> Result<Self> {
        let named: std::collections::HashMap<String, &candle_core::Tensor> =
            weights.named_tensors().into_iter().collect();
        let fetch = |name: &str, _shape: &[usize]| match named.get(name) {
            Some(tensor) => tensor_values(tensor),
            None => Err(EngineError::Weights(format!("missing tensor `{name}`"))),
        };
        Self::upload_from(context, config, fetch, pause).await
    }

    /// Uploads a model whose tensors `fetch(name, shape)` gives one at a time (read from
    /// a checkpoint's files and widened as they go: no second whole copy of the weights
    /// in memory), awaiting `pause()` as [`GpuBackend::upload`] does. A matrix larger
    /// than the adapter lets one binding see goes up in blocks of rows (`matrix.rs`).
    pub async fn upload_from<P: Future<Output = ()>>(
        context: Rc<GpuContext>,
        config: ModelConfig,
        mut fetch: impl FnMut(&str, &[usize]) -> Result<Vec<f32>>,
        mut pause: impl FnMut() -> P,
    ) -> Result<Self> {
        config.validate()?;
        // attention_values.wgsl spreads one head's D outputs over a 256-wide workgroup;
        // attention_scores.wgsl reads heads as vec4s.
        if config.head_dim() > 256 || !config.head_dim().is_multiple_of(4) {
            return Err(EngineError::Input(format!(
                "head_dim {} is not supported on the WebGPU path (it needs a multiple \
                 of 4, at most 256); use the CPU backend",
                config.head_dim()
            )));
        }
        context.check_alive()?;
        let block_bytes = context.weight_block_bytes();
        let shapes: std::collections::HashMap<String, Vec<usize>> =
            crate::weights::tensor_layout(&config).into_iter().collect();
        // Tensors that one kernel reads as one matrix are uploaded stacked, with the
        // weight of the norm before them (if any) folded in.
        let mut stacked = |parts: &[&str], norm: Option<&str>| -> Result<Matrix> {
            let mut fetch_named = |name: &str| {
                let shape = shapes
                    .get(name)
                    .ok_or_else(|| EngineError::Weights(format!("no tensor `{name}`")))?;
                fetch(name, shape)
            };
            let floats: usize = parts
                .iter()
                .map(|p| shapes.get(*p).map_or(0, |s| s.iter().product()))
                .sum();
            // Stacked parts share their row width (a vector is one row).
            let cols = parts
                .first()
                .and_then(|p| shapes.get(*p))
                .and_then(|s| s.last().copied())
                .unwrap_or(1);
            let mut values = Vec::with_capacity(floats);
            for part in parts {
                values.extend(fetch_named(part)?);
            }
            if let Some(norm) = norm {
                fold_norm(&mut values, &fetch_named(norm)?);
            }
            Matrix::upload(&context, &values, cols, block_bytes, &parts.join("` + `"))
        };
        let embed_tokens = stacked(&["model.embed_tokens.weight"], None)?;
        pause().await;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for n in 0..config.num_hidden_layers {
            let name = |part: &str| format!("model.layers.{n}.{part}.weight");
            let [q, k, v, o, gate, up, down, input_norm, mlp_norm, q_norm, k_norm] = [
                "self_attn.q_proj",
                "self_attn.k_proj",
                "self_attn.v_proj",
                "self_attn.o_proj",
                "mlp.gate_proj",
                "mlp.up_proj",
                "mlp.down_proj",
                "input_layernorm",
                "post_attention_layernorm",
                "self_attn.q_norm",
                "self_attn.k_norm",
            ]
            .map(name);
            layers.push(GpuLayer {
                qkv: stacked(&[&q, &k, &v], Some(&input_norm))?,
                o_proj: stacked(&[&o], None)?,
                gate_up: stacked(&[&gate, &up], Some(&mlp_norm))?,
                down_proj: stacked(&[&down], None)?,
                qk_norm: match config.qk_norm {
                    // 2 x head_dim floats: always one block.
                    true => stacked(&[&q_norm, &k_norm], None)?
                        .whole()
                        .cloned()
                        .map(Some)
                        .ok_or_else(|| EngineError::Gpu("the QK-norm weights are split".into()))?,
                    false => None,
                },
            });
            pause().await;
            // The device may have gone while the page did other work.
            context.check_alive()?;
        }
        // With tied embeddings this is a second copy of the table: the gather needs it
        // without the norm.
        let head = match config.tie_word_embeddings {
            true => "model.embed_tokens.weight",
            false => "lm_head.weight",
        };
        let logits_head = stacked(&[head], Some("model.norm.weight"))?;
        Ok(GpuBackend {
            embed_tokens,
            logits_head,
            layers,
            config,
            context,
            caches: PassCaches::default(),
        })
    }

    /// Loads `config.json` and `model.safetensors` bytes onto the GPU.
    pub fn load(context: Rc<GpuContext>, config_json: &[u8], safetensors: &[u8]) -> Result<Self> {
        let config = ModelConfig::from_json(config_json)?;
        let weights = ModelWeights::from_safetensors(&config, safetensors)?;
        Self::new(context, config, &weights)
    }

    /// The device this model runs on.
    pub fn context(&self) -> &Rc<GpuContext> {
        &self.context
    }

    /// How many of the model's weight matrices went up in more than one block of rows
    /// (too large for one binding on this adapter; see `matrix.rs`).
    pub fn split_matrices(&self) -> usize {
        let layers = self
            .layers
            .iter()
            .flat_map(|l| [&l.qkv, &l.o_proj, &l.gate_up, &l.down_proj]);
        [&self.embed_tokens, &self.logits_head]
            .into_iter()
            .chain(layers)
            .filter(|m| m.whole().is_none())
            .count()
    }

    /// How many bind groups the last pass reused and created (see `bind_groups.rs`).
    pub fn last_pass_bind_groups(&self) -> BindStats {
        self.caches.bind_groups.last_pass_stats()
    }

    /// How many of `wanted` new tokens after `cached` ones fit one pass under the
    /// adapter's buffer limits (attention scores, logits and MLP activations).
    fn tokens_per_pass(&self, cached: usize, wanted: usize) -> Result<usize> {
        let c = &self.config;
        let limit = self
            .context
            .limits
            .max_storage_buffer_binding_size
            .min(self.context.limits.max_buffer_size) as usize;
        let per_token_floats = [
            c.num_attention_heads * (cached + wanted),
            c.vocab_size,
            2 * c.intermediate_size,
        ];
        let widest = per_token_floats.into_iter().max().unwrap_or(1) * 4;
        let fits = (limit / widest).min(wanted);
        if fits == 0 {
            return Err(EngineError::Input(format!(
                "a prompt of {} tokens needs attention buffers larger than this GPU allows \
                 ({limit} bytes); use a shorter prompt or the CPU backend",
                cached + wanted
            )));
        }
        Ok(fits)
    }

    /// Makes room for `needed` positions, copying what is cached.
    fn reserve(&self, cache: &mut GpuCache, needed: usize, recorder: &mut Recorder<'_>) {
        if needed <= cache.capacity && cache.keys.len() == self.config.num_hidden_layers {
            return;
        }
        let row_bytes = (self.config.kv_heads() * self.config.head_dim() * 4) as u64;
        // Powers of two, so growing one token at a time copies the cache only now and
        // then (a prompt of 2047 tokens leaves room for the 2048th); never past the
        // largest buffer the device allows.
        let largest = (self.context.limits.max_buffer_size / row_bytes) as usize;
        let capacity = needed
            .next_power_of_two()
            .max(2 * cache.capacity)
            .max(256)
            .min(largest.max(needed));
        let make = || {
            self.context.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("kv-cache"),
                size: capacity as u64 * row_bytes,
                usage: pool::STORAGE,
                mapped_at_creation: false,
            })
        };
        let keys: Vec<wgpu::Buffer> = (0..self.config.num_hidden_layers).map(|_| make()).collect();
        let values: Vec<wgpu::Buffer> =
            (0..self.config.num_hidden_layers).map(|_| make()).collect();
        let used = cache.len as u64 * row_bytes;
        for (old, new) in cache
            .keys
            .iter()
            .zip(&keys)
            .chain(cache.values.iter().zip(&values))
        {
            recorder.copy_first(old, new, used);
        }
        cache.keys = keys;
        cache.values = values;
        cache.capacity = capacity;
    }

    /// Records `y[m, n] (+)= input[m, k] w[n, k]^T` with what precedes the layer (a
    /// norm or SwiGLU): for a few rows one `matvec.wgsl` dispatch does both; for many,
    /// that step's own kernel writes the input's scratch, then the tiled matmul runs.
    /// A product with a matrix in several blocks runs once per block.
    fn linear(
        &self,
        rec: &mut Recorder<'_>,
        input: LayerInput<'_>,
        w: &Matrix,
        y: &Region,
        (m, n, k): (usize, usize, usize),
        accumulate: bool,
    ) {
        let block_params = |first_row: usize, rows: usize| MatmulParams {
            accumulate: accumulate as u32,
            eps: self.config.rms_norm_eps as f32,
            y_col: first_row as u32,
            y_stride: n as u32,
            ..MatmulParams::new(m, rows, k)
        };
        let Some(tiling) = block_params(0, n).tiling() else {
            let (x, step) = match input {
                LayerInput::Plain(x) => (x, LinearInput::Plain),
                LayerInput::Normed { x, .. } => (x, LinearInput::Normed),
                LayerInput::Swiglu { gate_up, .. } => (gate_up, LinearInput::Swiglu),
            };
            let kernel = Kernel::MatVec(step, self.context.matvec_shape());
            for block in w.blocks() {
                let params = block_params(block.first_row, block.rows);
                rec.dispatch(
                    kernel,
                    params,
                    &[x, &block.region, y],
                    params.groups(kernel),
                );
            }
            return;
        };
        let eps = self.config.rms_norm_eps as f32;
        let x = match input {
            LayerInput::Plain(x) => x,
            LayerInput::Normed { x, scratch } => {
                rec.dispatch(
                    Kernel::RmsNorm,
                    NormParams {
                        rows: m as u32,
                        width: k as u32,
                        eps,
                        pad: 0,
                    },
                    &[x, scratch],
                    rec.grid(m, 1),
                );
                scratch
            }
            LayerInput::Swiglu { gate_up, scratch } => {
                rec.dispatch(
                    Kernel::Swiglu,
                    PairParams {
                        rows: m as u32,
                        width: k as u32,
                        pad: [0; 2],
                    },
                    &[gate_up, scratch],
                    rec.grid(m * k, Kernel::WORKGROUP),
                );
                scratch
            }
        };
        for block in w.blocks() {
            let params = block_params(block.first_row, block.rows);
            // The tiling of the whole product: the same kernel for every block.
            let kernel = Kernel::Matmul(tiling);
            rec.dispatch(
                kernel,
                params,
                &[x, &block.region, y],
                params.groups(kernel),
            );
        }
    }

    /// One pass over `tokens` (already split to fit the limits); `targets[t]` is the
    /// token after `tokens[t]`, or [`NO_TARGET`]. Its stages, in order: the inputs
    /// uploaded, the embedding, per layer the attention inputs, attention and the MLP,
    /// then the logits summarised, and what was asked for read back.
    async fn pass(
        &self,
        cache: &mut GpuCache,
        tokens: &[u32],
        targets: &[u32],
        input: &ForwardInput<'_>,
    ) -> Result<ForwardOutput> {
        let shape = PassShape::new(&self.config, tokens.len(), cache.len, input.top_k);
        let mut rec = Recorder::new(&self.context, &self.caches);
        self.reserve(cache, shape.total, &mut rec);
        let inputs = PassInputs::upload(&mut rec, &shape, tokens, targets, input);
        let scratch = Scratch::new(&mut rec, &shape);
        for block in self.embed_tokens.blocks() {
            rec.dispatch(
                Kernel::Embed,
                EmbedParams {
                    rows: shape.n as u32,
                    width: shape.hidden as u32,
                    first_row: block.first_row as u32,
                    table_rows: block.rows as u32,
                },
                &[&inputs.token_ids, &block.region, &scratch.x],
                rec.grid(shape.n * shape.hidden, Kernel::WORKGROUP),
            );
        }
        let mut scores_of_layer = Vec::with_capacity(shape.layers);
        for (index, layer) in self.layers.iter().enumerate() {
            let kv = LayerCacheRegions::of(cache, index, &shape);
            self.attention_inputs(&mut rec, &shape, layer, &kv, &inputs, &scratch);
            scores_of_layer
                .push(self.attention(&mut rec, &shape, index, &kv, input, &inputs, &scratch));
            self.mlp(&mut rec, &shape, layer, &scratch);
        }
        let (logits, summary) = self.logits_summary(&mut rec, &shape, &inputs, &scratch);
        let slots = ReadSlots::ask(
            &mut rec,
            &shape,
            input,
            &logits,
            &summary,
            &scratch.stats,
            &scores_of_layer,
        );
        let read = rec.run().await?;
        cache.len = shape.total;
        Ok(slots.output(&read, &shape, targets))
    }

    /// The new tokens' queries into `q`, their keys and values into the layer's cache:
    /// projected, QK-normed where the model has it, and rotated.
    fn attention_inputs(
        &self,
        rec: &mut Recorder<'_>,
        shape: &PassShape,
        layer: &GpuLayer,
        kv: &LayerCacheRegions,
        inputs: &PassInputs,
        scratch: &Scratch,
    ) {
        let PassShape {
            n,
            hidden,
            heads,
            kv_heads,
            head_dim,
            ..
        } = *shape;
        let (rotate, cache_offset) = (inputs.rotate, shape.cache_offset());
        let whole_qkv = layer.qkv.whole().filter(|_| layer.qk_norm.is_none());
        if let Some(qkv) = whole_qkv.filter(|_| shape.few_rows()) {
            // Projection, rotation and placement in one dispatch.
            let params = QkvParams {
                tokens: n as u32,
                width: hidden as u32,
                heads: heads as u32,
                kv_heads: kv_heads as u32,
                head_dim: head_dim as u32,
                cache_offset,
                rotate,
                eps: shape.eps,
            };
            rec.dispatch(
                Kernel::QkvDecode,
                params,
                &[
                    &scratch.x,
                    qkv,
                    &inputs.tables,
                    &scratch.q,
                    &kv.keys,
                    &kv.values,
                ],
                params.groups(),
            );
            return;
        }
        let qkv_width = (heads + 2 * kv_heads) * head_dim;
        self.linear(
            rec,
            LayerInput::Normed {
                x: &scratch.x,
                scratch: &scratch.h,
            },
            &layer.qkv,
            &scratch.qkv,
            (n, qkv_width, hidden),
            false,
        );
        rec.dispatch(
            Kernel::AttentionInputs,
            AttentionInputParams {
                tokens: n as u32,
                heads: heads as u32,
                kv_heads: kv_heads as u32,
                head_dim: head_dim as u32,
                cache_offset,
                rotate,
                qk_norm: layer.qk_norm.is_some() as u32,
                eps: shape.eps,
            },
            &[
                &scratch.qkv,
                &inputs.tables,
                layer.qk_norm.as_ref().unwrap_or(&inputs.no_qk_norm),
                &scratch.q,
                &kv.keys,
                &kv.values,
            ],
            rec.grid(n * (heads + 2 * kv_heads), Kernel::WORKGROUP),
        );
    }

    /// Causal attention of the new queries over every cached and new key into
    /// `attended`, with each head's statistics into `stats`; returns the layer's
    /// probabilities `[heads, n, total]` (read back for the captured heads).
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        rec: &mut Recorder<'_>,
        shape: &PassShape,
        index: usize,
        kv: &LayerCacheRegions,
        input: &ForwardInput<'_>,
        inputs: &PassInputs,
        scratch: &Scratch,
    ) -> Region {
        let PassShape {
            n,
            cached,
            total,
            heads,
            kv_heads,
            head_dim,
            layers,
            ..
        } = *shape;
        let attention = AttentionParams {
            new_tokens: n as u32,
            total: total as u32,
            cached: cached as u32,
            heads: heads as u32,
            kv_heads: kv_heads as u32,
            head_dim: head_dim as u32,
            scale: (input.scheme.logit_scale / (head_dim as f64).sqrt()) as f32,
            layer: index as u32,
        };
        let (span_start, span_end) = match &input.capture.span {
            Some(span) => (span.start as u32, span.end as u32),
            None => (0, 0),
        };
        let softmax = SoftmaxParams {
            new_tokens: n as u32,
            total: total as u32,
            cached: cached as u32,
            heads: heads as u32,
            layer: index as u32,
            layers: layers as u32,
            span_start,
            span_end,
        };
        let scores = rec.scratch(heads * n * total);
        if shape.few_rows() {
            rec.dispatch(
                Kernel::AttentionDecode,
                DecodeParams::combining(attention, softmax),
                &[
                    &scratch.q,
                    &kv.keys,
                    &kv.values,
                    &scores,
                    &scratch.stats,
                    &scratch.attended,
                    &inputs.head_scale,
                ],
                // One workgroup per (token, head).
                rec.grid(n * heads, 1),
            );
        } else {
            rec.dispatch(
                Kernel::AttentionScores,
                attention,
                &[&scratch.q, &kv.keys, &scores, &inputs.head_scale],
                // Four keys per invocation.
                rec.grid(heads * n * total.div_ceil(4), Kernel::WORKGROUP),
            );
            rec.dispatch(
                Kernel::AttentionSoftmax,
                softmax,
                &[&scores, &scratch.stats],
                rec.grid(heads * n, 1),
            );
            rec.dispatch(
                Kernel::AttentionValues,
                attention,
                &[&scores, &kv.values, &scratch.attended],
                // One workgroup per (token, head).
                rec.grid(n * heads, 1),
            );
        }
        scores
    }

    /// The attention output projected and added to the residual stream `x`, then the
    /// SwiGLU MLP, added too.
    fn mlp(&self, rec: &mut Recorder<'_>, shape: &PassShape, layer: &GpuLayer, scratch: &Scratch) {
        let PassShape {
            n,
            hidden,
            heads,
            head_dim,
            inter,
            ..
        } = *shape;
        self.linear(
            rec,
            LayerInput::Plain(&scratch.attended),
            &layer.o_proj,
            &scratch.x,
            (n, hidden, heads * head_dim),
            true,
        );
        self.linear(
            rec,
            LayerInput::Normed {
                x: &scratch.x,
                scratch: &scratch.h,
            },
            &layer.gate_up,
            &scratch.gate_up,
            (n, 2 * inter, hidden),
            false,
        );
        self.linear(
            rec,
            LayerInput::Swiglu {
                gate_up: &scratch.gate_up,
                scratch: &scratch.act,
            },
            &layer.down_proj,
            &scratch.x,
            (n, hidden, inter),
            true,
        );
    }

    /// The logits `[n, vocab]` and their summary per row: log-normaliser, the next
    /// token's logit and rank, and the top-k.
    fn logits_summary(
        &self,
        rec: &mut Recorder<'_>,
        shape: &PassShape,
        inputs: &PassInputs,
        scratch: &Scratch,
    ) -> (Region, Region) {
        let PassShape {
            n, vocab, hidden, ..
        } = *shape;
        let logits = rec.scratch(n * vocab);
        self.linear(
            rec,
            LayerInput::Normed {
                x: &scratch.x,
                scratch: &scratch.h,
            },
            &self.logits_head,
            &logits,
            (n, vocab, hidden),
            false,
        );
        let summary = rec.scratch(n * shape.summary_width());
        rec.dispatch(
            Kernel::LogitsSummary,
            SummaryParams {
                rows: n as u32,
                vocab: vocab as u32,
                top_k: shape.top_k as u32,
                pad: 0,
            },
            &[&logits, &inputs.target_ids, &summary],
            (n as u32, 1, 1),
        );
        (logits, summary)
    }
}

/// The sizes of one pass: `n` new tokens after `cached` ones.
#[derive(Clone, Copy)]
struct PassShape {
    n: usize,
    cached: usize,
    total: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    hidden: usize,
    inter: usize,
    vocab: usize,
    top_k: usize,
    eps: f32,
}

impl PassShape {
    fn new(c: &ModelConfig, n: usize, cached: usize, top_k: usize) -> Self {
        PassShape {
            n,
            cached,
            total: cached + n,
            layers: c.num_hidden_layers,
            heads: c.num_attention_heads,
            kv_heads: c.kv_heads(),
            head_dim: c.head_dim(),
            hidden: c.hidden_size,
            inter: c.intermediate_size,
            vocab: c.vocab_size,
            top_k: top_k.min(c.vocab_size).min(MAX_TOP_K),
            eps: c.rms_norm_eps as f32,
        }
    }

    /// Few enough new tokens for the one-dispatch kernels (extending a prompt).
    fn few_rows(&self) -> bool {
        self.n as u32 <= MatmulParams::FEW_ROWS
    }

    /// Floats of one cache row (every key/value head of one position).
    fn kv_width(&self) -> usize {
        self.kv_heads * self.head_dim
    }

    /// Element offset of the first new row in a layer's cache.
    fn cache_offset(&self) -> u32 {
        (self.cached * self.kv_width()) as u32
    }

    /// Floats per row of the logits summary.
    fn summary_width(&self) -> usize {
        3 + 2 * self.top_k
    }
}

/// What a pass uploads before its first dispatch.
struct PassInputs {
    token_ids: Region,
    target_ids: Region,
    /// Cos/sin tables of the new positions (one unused float without rotation).
    tables: Region,
    /// 1 when the scheme rotates queries and keys.
    rotate: u32,
    /// Each head's own logit multiplier on top of the scheme's (per-head beta), else 1.
    head_scale: Region,
    /// Bound where a model has no QK-norm weights.
    no_qk_norm: Region,
}

impl PassInputs {
    fn upload(
        rec: &mut Recorder<'_>,
        shape: &PassShape,
        tokens: &[u32],
        targets: &[u32],
        input: &ForwardInput<'_>,
    ) -> Self {
        let tables = match input.scheme.frequencies.as_deref() {
            Some(freqs) => {
                let first = input.position_offset + shape.cached;
                let (cos, sin) = rotary_table(freqs, first, shape.n);
                rec.upload(&[cos, sin].concat())
            }
            None => rec.scratch(1),
        };
        let heads = shape.heads;
        let head_scale: Vec<f32> = (0..shape.layers * heads)
            .map(|i| input.scheme.head_scale(i / heads, heads, i % heads) as f32)
            .collect();
        PassInputs {
            token_ids: rec.upload(tokens),
            target_ids: rec.upload(targets),
            tables,
            rotate: input.scheme.frequencies.is_some() as u32,
            head_scale: rec.upload(&head_scale),
            no_qk_norm: rec.scratch(1),
        }
    }
}

/// The buffers every layer of a pass writes and reads.
struct Scratch {
    /// The residual stream `[n, hidden]`.
    x: Region,
    /// Normalised rows, where a kernel of its own normalises.
    h: Region,
    qkv: Region,
    q: Region,
    attended: Region,
    gate_up: Region,
    act: Region,
    /// Head statistics `[n, layers * heads, 3]`.
    stats: Region,
}

impl Scratch {
    fn new(rec: &mut Recorder<'_>, s: &PassShape) -> Self {
        let qkv_width = (s.heads + 2 * s.kv_heads) * s.head_dim;
        Scratch {
            x: rec.scratch(s.n * s.hidden),
            h: rec.scratch(s.n * s.hidden),
            qkv: rec.scratch(s.n * qkv_width),
            q: rec.scratch(s.n * s.heads * s.head_dim),
            attended: rec.scratch(s.n * s.heads * s.head_dim),
            gate_up: rec.scratch(s.n * 2 * s.inter),
            act: rec.scratch(s.n * s.inter),
            stats: rec.scratch(s.n * s.layers * s.heads * 3),
        }
    }
}

/// One layer's keys and values as bound (the whole capacity).
struct LayerCacheRegions {
    keys: Region,
    values: Region,
}

impl LayerCacheRegions {
    fn of(cache: &GpuCache, layer: usize, shape: &PassShape) -> Self {
        let region = |b: &wgpu::Buffer| Region {
            buffer: b.clone(),
            bytes: (cache.capacity * shape.kv_width() * 4) as u64,
        };
        LayerCacheRegions {
            keys: region(&cache.keys[layer]),
            values: region(&cache.values[layer]),
        }
    }
}

/// What a pass reads back, asked for before it runs.
struct ReadSlots {
    summary: ReadSlot,
    last_logits: ReadSlot,
    logits: Option<ReadSlot>,
    stats: ReadSlot,
    /// One per captured head, in the capture's order.
    captured: Vec<ReadSlot>,
}

impl ReadSlots {
    fn ask(
        rec: &mut Recorder<'_>,
        shape: &PassShape,
        input: &ForwardInput<'_>,
        logits: &Region,
        summary: &Region,
        stats: &Region,
        scores_of_layer: &[Region],
    ) -> Self {
        let PassShape {
            n,
            total,
            layers,
            heads,
            vocab,
            ..
        } = *shape;
        let row_bytes = (vocab * 4) as u64;
        let block = (n * total * 4) as u64;
        ReadSlots {
            summary: rec.read_back(summary, 0, (n * shape.summary_width() * 4) as u64),
            last_logits: rec.read_back(logits, (n as u64 - 1) * row_bytes, row_bytes),
            logits: input
                .return_logits
                .then(|| rec.read_back(logits, 0, n as u64 * row_bytes)),
            stats: rec.read_back(stats, 0, (n * layers * heads * 3 * 4) as u64),
            captured: input
                .capture
                .heads
                .iter()
                .map(|&(layer, head)| {
                    rec.read_back(&scores_of_layer[layer], head as u64 * block, block)
                })
                .collect(),
        }
    }

    /// The backend's output from what was read.
    fn output(self, read: &ReadBack, shape: &PassShape, targets: &[u32]) -> ForwardOutput {
        let PassShape {
            n,
            cached,
            total,
            layers,
            heads,
            ..
        } = *shape;
        let summary = read.floats(self.summary);
        let rows = summary
            .chunks_exact(shape.summary_width())
            .zip(targets)
            .map(|(row, &target)| RowSummary {
                log_norm: row[0],
                next: (target != NO_TARGET).then_some((row[1], row[2] as u32)),
                top: row[3..]
                    .chunks_exact(2)
                    .map(|pair| (pair[0] as u32, pair[1]))
                    .collect(),
            })
            .collect();
        let stats = read.floats(self.stats);
        let head_stats = stats
            .chunks_exact(layers * heads * 3)
            .map(|per_token| {
                per_token
                    .chunks_exact(3)
                    .map(|s| HeadStats {
                        entropy: s[0],
                        mean_distance: s[1],
                        span_mass: s[2],
                    })
                    .collect()
            })
            .collect();
        let blocks: Vec<Vec<f32>> = self
            .captured
            .into_iter()
            .map(|slot| read.floats(slot))
            .collect();
        let attention = (0..n)
            .map(|t| {
                blocks
                    .iter()
                    .map(|block| block[t * total..t * total + cached + t + 1].to_vec())
                    .collect()
            })
            .collect();
        ForwardOutput {
            rows,
            last_logits: read.floats(self.last_logits),
            logits: self.logits.map(|slot| read.floats(slot)),
            attention,
            head_stats,
        }
    }
}

impl Backend for GpuBackend {
    type Cache = GpuCache;

    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn kind(&self) -> DeviceKind {
        DeviceKind::WebGpu
    }

    fn new_cache(&self) -> Self::Cache {
        GpuCache::default()
    }

    fn cache_len(&self, cache: &Self::Cache) -> usize {
        cache.len
    }

    async fn forward(
        &self,
        cache: &mut Self::Cache,
        input: ForwardInput<'_>,
    ) -> Result<ForwardOutput> {
        if input.tokens.is_empty() {
            return Ok(ForwardOutput::default());
        }
        check_capture(input.capture, &self.config)?;
        self.context.check_alive()?;
        check_tokens(input.tokens, &self.config)?;
        let targets: Vec<u32> = (0..input.tokens.len())
            .map(|t| input.tokens.get(t + 1).copied().unwrap_or(NO_TARGET))
            .collect();
        let mut output = ForwardOutput::default();
        let mut done = 0;
        while done < input.tokens.len() {
            let remaining = input.tokens.len() - done;
            let n = self.tokens_per_pass(cache.len, remaining)?;
            let part = self
                .pass(
                    cache,
                    &input.tokens[done..done + n],
                    &targets[done..done + n],
                    &input,
                )
                .await?;
            output.rows.extend(part.rows);
            output.attention.extend(part.attention);
            output.head_stats.extend(part.head_stats);
            if let Some(logits) = part.logits {
                output.logits.get_or_insert_with(Vec::new).extend(logits);
            }
            output.last_logits = part.last_logits;
            done += n;
        }
        Ok(output)
    }
}
