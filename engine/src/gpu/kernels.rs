//! The WGSL kernels, their parameter blocks, and the pipeline cache.
//!
//! Every kernel reads a uniform parameter block at binding 0 followed by its storage
//! buffers in binding order; pipelines use the layout derived from the shader, so a
//! kernel is fully described by its source. Parameter structs mirror the WGSL
//! `Params` structs field for field (16-byte multiples, as uniform blocks require).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use bytemuck::{Pod, Zeroable};

/// One compute kernel of the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Embedding lookup.
    Embed,
    /// RMSNorm over rows.
    RmsNorm,
    /// Tiled `y (+)= x w^T`.
    Matmul,
    /// Rotary embedding, in place.
    Rope,
    /// Causal attention logits.
    AttentionScores,
    /// Row softmax plus head statistics.
    AttentionSoftmax,
    /// Probability-weighted sum of values.
    AttentionValues,
    /// `silu(gate) * up`.
    Swiglu,
    /// Log-normaliser, next-token score and top-k per logits row.
    LogitsSummary,
}

impl Kernel {
    /// The kernel's WGSL source.
    pub fn source(self) -> &'static str {
        match self {
            Kernel::Embed => include_str!("kernels/embed.wgsl"),
            Kernel::RmsNorm => include_str!("kernels/rms_norm.wgsl"),
            Kernel::Matmul => include_str!("kernels/matmul.wgsl"),
            Kernel::Rope => include_str!("kernels/rope.wgsl"),
            Kernel::AttentionScores => include_str!("kernels/attention_scores.wgsl"),
            Kernel::AttentionSoftmax => include_str!("kernels/attention_softmax.wgsl"),
            Kernel::AttentionValues => include_str!("kernels/attention_values.wgsl"),
            Kernel::Swiglu => include_str!("kernels/swiglu.wgsl"),
            Kernel::LogitsSummary => include_str!("kernels/logits_summary.wgsl"),
        }
    }

    /// Invocations per workgroup along x for the element-wise kernels (64), and the
    /// matmul tile edge (64 outputs).
    pub const WORKGROUP: u32 = 64;
    /// Rows and columns of `y` one matmul workgroup computes.
    pub const MATMUL_TILE: u32 = 64;
}

/// Compiled pipelines, created on first use and kept for the device's lifetime
/// (compiling WGSL is the slowest step of a first forward pass).
#[derive(Default)]
pub struct PipelineCache {
    pipelines: RefCell<HashMap<Kernel, Rc<wgpu::ComputePipeline>>>,
}

impl PipelineCache {
    /// The pipeline of `kernel`, compiled on first request.
    pub fn get(&self, device: &wgpu::Device, kernel: Kernel) -> Rc<wgpu::ComputePipeline> {
        let mut pipelines = self.pipelines.borrow_mut();
        Rc::clone(pipelines.entry(kernel).or_insert_with(|| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(&format!("{kernel:?}")),
                source: wgpu::ShaderSource::Wgsl(kernel.source().into()),
            });
            Rc::new(
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&format!("{kernel:?}")),
                    layout: None,
                    module: &module,
                    entry_point: Some("main"),
                    compilation_options: Default::default(),
                    cache: None,
                }),
            )
        }))
    }
}

/// Parameters of `matmul.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct MatmulParams {
    /// Rows of x and y.
    pub m: u32,
    /// Columns of y (rows of w).
    pub n: u32,
    /// Inner dimension.
    pub k: u32,
    /// 1 to add into y.
    pub accumulate: u32,
    /// Element offset into y.
    pub y_offset: u32,
    /// Padding.
    pub pad: [u32; 3],
}

impl MatmulParams {
    /// `y[m, n] = x[m, k] w[n, k]^T`, overwriting y from its start.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        MatmulParams {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            accumulate: 0,
            y_offset: 0,
            pad: [0; 3],
        }
    }

    /// Workgroups: one per 64 x 64 tile of y.
    pub fn groups(&self) -> (u32, u32, u32) {
        let tile = Kernel::MATMUL_TILE;
        (self.n.div_ceil(tile), self.m.div_ceil(tile), 1)
    }
}

/// Parameters of `embed.wgsl` and `swiglu.wgsl` (two counts).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct PairParams {
    /// Rows (tokens).
    pub rows: u32,
    /// Width of a row.
    pub width: u32,
    /// Padding.
    pub pad: [u32; 2],
}

/// Parameters of `rms_norm.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct NormParams {
    /// Rows to normalise.
    pub rows: u32,
    /// Width of a row.
    pub width: u32,
    /// Epsilon.
    pub eps: f32,
    /// Element offset of row 0 in the output.
    pub out_offset: u32,
}

/// Parameters of `rope.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct RopeParams {
    /// Tokens to rotate.
    pub tokens: u32,
    /// Heads per token.
    pub heads: u32,
    /// Per-head width D.
    pub head_dim: u32,
    /// Element offset of the first row.
    pub offset: u32,
}

/// Parameters of the attention kernels (`attention_scores`, `attention_values`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct AttentionParams {
    /// New query tokens.
    pub new_tokens: u32,
    /// Keys: cached + new.
    pub total: u32,
    /// Keys cached before this chunk.
    pub cached: u32,
    /// Query heads.
    pub heads: u32,
    /// Key/value heads.
    pub kv_heads: u32,
    /// Per-head width D.
    pub head_dim: u32,
    /// Logit multiplier (scores only): logit_scale / sqrt(D).
    pub scale: f32,
    /// Padding.
    pub pad: u32,
}

/// Parameters of `attention_softmax.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct SoftmaxParams {
    /// New query tokens.
    pub new_tokens: u32,
    /// Keys: cached + new.
    pub total: u32,
    /// Keys cached before this chunk.
    pub cached: u32,
    /// Query heads.
    pub heads: u32,
    /// This layer.
    pub layer: u32,
    /// All layers (stride of the statistics).
    pub layers: u32,
    /// First key of the marked span.
    pub span_start: u32,
    /// End of the marked span (<= start: none).
    pub span_end: u32,
}

/// Parameters of `logits_summary.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct SummaryParams {
    /// Rows of logits.
    pub rows: u32,
    /// Vocabulary size.
    pub vocab: u32,
    /// Predictions per row.
    pub top_k: u32,
    /// Padding.
    pub pad: u32,
}
