//! The WGSL kernels, their parameter blocks, and the pipeline cache.
//!
//! Every kernel reads a uniform parameter block at binding 0 followed by its storage
//! buffers in binding order; pipelines use the layout derived from the shader, so a
//! kernel is fully described by its source. Parameter structs mirror the WGSL
//! `Params` structs field for field (16-byte multiples, as uniform blocks require);
//! `layout_tests` holds each to the struct naga reads from its kernel.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use bytemuck::{Pod, Zeroable};
// Parameter blocks serialise only so a test can read their field names and offsets.
use serde::Serialize;

/// Parameters and bindings shared by the two linear-layer kernels.
const LINEAR: &str = include_str!("kernels/linear.wgsl");
/// The softmax of a row with its head statistics, and the weighted sum of values: the
/// separate attention kernels and the fused one call the same functions.
const SOFTMAX_ROW: &str = include_str!("kernels/softmax_row.wgsl");
const WEIGHTED_VALUES: &str = include_str!("kernels/weighted_values.wgsl");
/// Rotating a query or key pair and placing it where attention reads it: the separate
/// kernel and the fused projection call the same function.
const ROTARY_PAIR: &str = include_str!("kernels/rotary_pair.wgsl");

/// One compute kernel of the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Embedding lookup.
    Embed,
    /// RMSNorm over rows.
    RmsNorm,
    /// Tiled `y (+)= x w^T`, with its register blocking.
    Matmul(MatmulTiling),
    /// `y (+)= x w^T` for a few rows of x, after the step `x` still needs, with the
    /// adapter's way of sharing an output among invocations.
    MatVec(LinearInput, MatVecShape),
    /// QK-norm and rotary embedding of the new queries and keys, which it puts with
    /// the values where attention reads them (keys and values into the KV cache).
    AttentionInputs,
    /// Causal attention logits.
    AttentionScores,
    /// Row softmax plus head statistics.
    AttentionSoftmax,
    /// Probability-weighted sum of values.
    AttentionValues,
    /// The three attention kernels in one, for a few new tokens.
    AttentionDecode,
    /// The normed q/k/v projection and `AttentionInputs` in one, for a few new tokens
    /// of a model without QK-norm.
    QkvDecode,
    /// `silu(gate) * up`.
    Swiglu,
    /// Log-normaliser, next-token score and top-k per logits row.
    LogitsSummary,
}

impl Kernel {
    /// The kernel's WGSL source.
    pub fn source(self) -> Cow<'static, str> {
        let fixed = match self {
            Kernel::Matmul(tiling) => return Cow::Owned(tiling.source()),
            Kernel::MatVec(input, shape) => {
                let lane_sum = match shape {
                    MatVecShape::Alone => include_str!("kernels/lane_sum_alone.wgsl"),
                    MatVecShape::Shared => include_str!("kernels/lane_sum_shared.wgsl"),
                };
                return Cow::Owned(
                    [LINEAR, include_str!("kernels/matvec.wgsl"), lane_sum]
                        .concat()
                        .replace("{INPUT}", &(input as u32).to_string())
                        .replace("{LANES}", &shape.lanes().to_string())
                        .replace("{WG}", &shape.workgroup().to_string()),
                );
            }
            Kernel::Embed => include_str!("kernels/embed.wgsl"),
            Kernel::RmsNorm => include_str!("kernels/rms_norm.wgsl"),
            Kernel::AttentionInputs => {
                return Cow::Owned(
                    [include_str!("kernels/attention_inputs.wgsl"), ROTARY_PAIR].concat(),
                )
            }
            Kernel::AttentionScores => include_str!("kernels/attention_scores.wgsl"),
            Kernel::AttentionSoftmax => {
                return Cow::Owned(
                    [include_str!("kernels/attention_softmax.wgsl"), SOFTMAX_ROW].concat(),
                )
            }
            Kernel::AttentionValues => {
                return Cow::Owned(
                    [
                        include_str!("kernels/attention_values.wgsl"),
                        WEIGHTED_VALUES,
                    ]
                    .concat(),
                )
            }
            Kernel::AttentionDecode => {
                return Cow::Owned(
                    [
                        include_str!("kernels/attention_decode.wgsl"),
                        SOFTMAX_ROW,
                        WEIGHTED_VALUES,
                    ]
                    .concat(),
                )
            }
            Kernel::QkvDecode => {
                return Cow::Owned([include_str!("kernels/qkv_decode.wgsl"), ROTARY_PAIR].concat())
            }
            Kernel::Swiglu => include_str!("kernels/swiglu.wgsl"),
            Kernel::LogitsSummary => include_str!("kernels/logits_summary.wgsl"),
        };
        Cow::Borrowed(fixed)
    }

    /// Invocations per workgroup along x for the element-wise kernels and `matvec.wgsl`.
    pub const WORKGROUP: u32 = 64;
}

/// What the input of `matvec.wgsl` holds. Each is a pipeline of its own (a constant in
/// the shader), so no invocation branches on it in its inner loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinearInput {
    /// The rows themselves.
    Plain = 0,
    /// Rows to RMS-normalise first (the norm's weight is folded into the layer's).
    Normed = 1,
    /// Stacked `[gate; up]` rows of width 2K, combined as `silu(gate) * up` first.
    Swiglu = 2,
}

/// How `matvec.wgsl` shares an output among invocations (see the kernel's comment).
/// Which is faster depends on the adapter, so `GpuContext` picks one per device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatVecShape {
    /// One invocation per output, walking its weight row alone: no workgroup memory and
    /// no barrier, which CPU implementations of WebGPU (SwiftShader, lavapipe) need.
    Alone,
    /// 32 invocations per output, reading neighbouring weights, their sums added through
    /// workgroup memory: a one-token pass on a GPU waits on short chains of loads.
    Shared,
}

impl MatVecShape {
    /// Both, for tests and benchmarks.
    pub const ALL: [MatVecShape; 2] = [MatVecShape::Alone, MatVecShape::Shared];

    /// `Alone` on adapters that run on the CPU (lavapipe natively; SwiftShader, which
    /// the browser reports as its fallback adapter), `Shared` on GPUs.
    pub fn for_device(device_type: wgpu::DeviceType) -> Self {
        match device_type {
            wgpu::DeviceType::Cpu => MatVecShape::Alone,
            _ => MatVecShape::Shared,
        }
    }

    /// Invocations per output.
    pub const fn lanes(self) -> u32 {
        match self {
            MatVecShape::Alone => 1,
            MatVecShape::Shared => 32,
        }
    }

    /// Invocations per workgroup.
    pub const fn workgroup(self) -> u32 {
        match self {
            MatVecShape::Alone => Kernel::WORKGROUP,
            MatVecShape::Shared => 256,
        }
    }

    /// Its name in benchmark tables and traces.
    pub const fn name(self) -> &'static str {
        match self {
            MatVecShape::Alone => "one invocation per output",
            MatVecShape::Shared => "32 invocations per output",
        }
    }
}

/// The register blocking of `matmul.wgsl`: each of a workgroup's 16 x 16 invocations
/// computes `rows x cols` outputs, and K is staged `depth` values at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MatmulTiling {
    /// Rows of y per invocation (4 or 8).
    pub rows: u32,
    /// Columns of y per invocation (4 or 8).
    pub cols: u32,
    /// K values staged per slice.
    pub depth: u32,
}

impl MatmulTiling {
    /// 64 x 64 tiles: enough workgroups to fill a GPU when M is small (a few tokens).
    pub const SMALL: MatmulTiling = MatmulTiling {
        rows: 4,
        cols: 4,
        depth: 16,
    };
    /// 128 x 128 tiles: twice the arithmetic per shared-memory read, for long prompts.
    pub const LARGE: MatmulTiling = MatmulTiling {
        rows: 8,
        cols: 8,
        depth: 8,
    };
    /// Every tiling the benchmark compares (the first two are the ones the model uses,
    /// and fit WebGPU's baseline limits; see [`MatmulTiling::fits`] for the others).
    pub const ALL: [MatmulTiling; 5] = [
        MatmulTiling::SMALL,
        MatmulTiling::LARGE,
        MatmulTiling {
            rows: 8,
            cols: 8,
            depth: 16,
        },
        MatmulTiling {
            rows: 8,
            cols: 4,
            depth: 16,
        },
        MatmulTiling {
            rows: 4,
            cols: 8,
            depth: 16,
        },
    ];

    /// The tiling the forward pass uses for an `m x n` output: large tiles only when
    /// there are enough of them to keep a GPU's cores busy (at least 256, about two
    /// per core of a large GPU; on an H100 large tiles were 35% slower than small ones
    /// at 1024 x 1024, 64 tiles, and 26% faster at 4096 x 4096: docs/BENCHMARKS.md).
    pub fn for_output(m: usize, n: usize) -> MatmulTiling {
        let large = MatmulTiling::LARGE;
        let tiles = m.div_ceil(large.tile_rows() as usize) * n.div_ceil(large.tile_cols() as usize);
        if tiles >= 256 {
            MatmulTiling::LARGE
        } else {
            MatmulTiling::SMALL
        }
    }

    /// Rows of y one workgroup computes.
    pub fn tile_rows(self) -> u32 {
        16 * self.rows
    }

    /// Columns of y one workgroup computes.
    pub fn tile_cols(self) -> u32 {
        16 * self.cols
    }

    /// Workgroup memory the kernel declares: two staged slices of `depth` rows of
    /// vec4s, each row one vec4 longer than the tile's quarter.
    pub fn workgroup_bytes(self) -> u32 {
        16 * self.depth * ((self.tile_rows() / 4 + 1) + (self.tile_cols() / 4 + 1))
    }

    /// Whether a device with `limits` can run this tiling (WebGPU's baseline allows
    /// 16 KiB of workgroup memory; 8 x 8 with K slices of 16 needs more).
    pub fn fits(self, limits: &wgpu::Limits) -> bool {
        self.workgroup_bytes() <= limits.max_compute_workgroup_storage_size
    }

    /// A short name for benchmark tables: `8x8 (k 8)`.
    pub fn name(self) -> String {
        format!("{}x{} (k {})", self.rows, self.cols, self.depth)
    }

    /// `matmul.wgsl` with this tiling's constants and its register code unrolled:
    /// accumulator `acc_R_J` holds row R of the block, columns 4J..4J+3.
    fn source(self) -> String {
        let (row_quads, col_quads) = (self.rows / 4, self.cols / 4);
        let (mut accumulators, mut products, mut stores) =
            (String::new(), String::new(), String::new());
        for i in 0..row_quads {
            products += &format!("            let xs{i} = x_tile[xb + {}u];\n", 16 * i);
        }
        for j in 0..col_quads {
            products += &format!("            let ws{j} = w_tile[wb + {}u];\n", 16 * j);
        }
        for r in 0..self.rows {
            let (quad, lane) = (r / 4, ["x", "y", "z", "w"][(r % 4) as usize]);
            for j in 0..col_quads {
                accumulators += &format!("    var acc_{r}_{j} = vec4<f32>(0.0);\n");
                products += &format!(
                    "            acc_{r}_{j} = fma(vec4<f32>(xs{quad}.{lane}), ws{j}, acc_{r}_{j});\n"
                );
                stores += &format!(
                    "    store(row0 + 4u * (lid.y + {}u) + {}u, col0 + 4u * (lid.x + {}u), acc_{r}_{j});\n",
                    16 * quad,
                    r % 4,
                    16 * j
                );
            }
        }
        [LINEAR, include_str!("kernels/matmul.wgsl")]
            .concat()
            .replace("{TM}", &self.rows.to_string())
            .replace("{TN}", &self.cols.to_string())
            .replace("{BK}", &self.depth.to_string())
            .replace("{ACCUMULATORS}\n", &accumulators)
            .replace("{PRODUCTS}\n", &products)
            .replace("{STORES}\n", &stores)
    }
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
                source: wgpu::ShaderSource::Wgsl(kernel.source()),
            });
            Rc::new(
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&format!("{kernel:?}")),
                    layout: None,
                    module: &module,
                    entry_point: Some("main"),
                    // Every kernel writes its workgroup memory before reading it, so
                    // zeroing it first (a barrier per workgroup, costly on CPU
                    // implementations) is skipped natively; browsers always zero it.
                    compilation_options: wgpu::PipelineCompilationOptions {
                        zero_initialize_workgroup_memory: false,
                        ..Default::default()
                    },
                    cache: None,
                }),
            )
        }))
    }
}

/// Parameters of `matmul.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, Serialize)]
pub struct MatmulParams {
    /// Rows of x and y.
    pub m: u32,
    /// Columns of y (rows of w).
    pub n: u32,
    /// Inner dimension.
    pub k: u32,
    /// 1 to add into y.
    pub accumulate: u32,
    /// RMSNorm epsilon, for `matvec.wgsl` with [`LinearInput::Normed`].
    pub eps: f32,
    /// The first column of y this product writes (a block of a split weight matrix).
    pub y_col: u32,
    /// Floats per row of y (`n` unless the weight is split into blocks of rows).
    pub y_stride: u32,
    /// Padding.
    pub pad: u32,
}

impl MatmulParams {
    /// `y[m, n] = x[m, k] w[n, k]^T`, overwriting y from its start.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        MatmulParams {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            accumulate: 0,
            eps: 0.0,
            y_col: 0,
            y_stride: n as u32,
            pad: 0,
        }
    }

    /// Rows up to which [`MatmulParams::tiling`] leaves the product to `matvec.wgsl`.
    pub const FEW_ROWS: u32 = 15;

    /// The tiling [`MatmulTiling::for_output`] picks for this product, or `None` for a
    /// few rows, which `matvec.wgsl` computes instead.
    pub fn tiling(&self) -> Option<MatmulTiling> {
        (self.m > Self::FEW_ROWS)
            .then(|| MatmulTiling::for_output(self.m as usize, self.n as usize))
    }

    /// Workgroups of `kernel` (a matmul kernel): one per tile of y, or for
    /// `matvec.wgsl` one per `workgroup / lanes` outputs of a row.
    pub fn groups(&self, kernel: Kernel) -> (u32, u32, u32) {
        let Kernel::Matmul(tiling) = kernel else {
            let per_group = match kernel {
                Kernel::MatVec(_, shape) => shape.workgroup() / shape.lanes(),
                _ => Kernel::WORKGROUP,
            };
            return (self.n.div_ceil(per_group), self.m, 1);
        };
        (
            self.n.div_ceil(tiling.tile_cols()),
            self.m.div_ceil(tiling.tile_rows()),
            1,
        )
    }
}

/// Parameters of `embed.wgsl`: the lookup of `rows` tokens in one block of table rows.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, Serialize)]
pub struct EmbedParams {
    /// Tokens looked up.
    pub rows: u32,
    /// Width of a row (the hidden size).
    pub width: u32,
    /// The token id of the block's first row.
    pub first_row: u32,
    /// Rows in the block.
    pub table_rows: u32,
}

/// Parameters of `swiglu.wgsl` (two counts).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, Serialize)]
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
#[derive(Debug, Clone, Copy, Pod, Zeroable, Serialize)]
pub struct NormParams {
    /// Rows to normalise.
    pub rows: u32,
    /// Width of a row.
    pub width: u32,
    /// Epsilon.
    pub eps: f32,
    /// Padding.
    pub pad: u32,
}

/// Parameters of `attention_inputs.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, Serialize)]
pub struct AttentionInputParams {
    /// New tokens.
    pub tokens: u32,
    /// Query heads.
    pub heads: u32,
    /// Key/value heads.
    pub kv_heads: u32,
    /// Per-head width D.
    pub head_dim: u32,
    /// Element offset of the first new row in the KV cache.
    pub cache_offset: u32,
    /// 1 to rotate queries and keys.
    pub rotate: u32,
    /// 1 to QK-norm queries and keys first.
    pub qk_norm: u32,
    /// RMSNorm epsilon of the QK-norm.
    pub eps: f32,
}

/// Parameters of `qkv_decode.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, Serialize)]
pub struct QkvParams {
    /// New tokens.
    pub tokens: u32,
    /// Input width (the hidden size).
    pub width: u32,
    /// Query heads.
    pub heads: u32,
    /// Key/value heads.
    pub kv_heads: u32,
    /// Per-head width D.
    pub head_dim: u32,
    /// Element offset of the first new row in the KV cache.
    pub cache_offset: u32,
    /// 1 to rotate queries and keys.
    pub rotate: u32,
    /// RMSNorm epsilon of the input norm.
    pub eps: f32,
}

impl QkvParams {
    /// Workgroups: one invocation per rotary pair of every head, per token.
    pub fn groups(&self) -> (u32, u32, u32) {
        let pairs = (self.heads + 2 * self.kv_heads) * self.head_dim / 2;
        (pairs.div_ceil(Kernel::WORKGROUP), self.tokens, 1)
    }
}

/// Parameters of the attention kernels (`attention_scores`, `attention_values`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, Serialize)]
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
    /// This layer (scores only: its row of the per-head scales).
    pub layer: u32,
}

/// Parameters of `attention_softmax.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, Serialize)]
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

/// Parameters of `attention_decode.wgsl`: those of the three kernels it combines.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, Serialize)]
pub struct DecodeParams {
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
    /// Logit multiplier: logit_scale / sqrt(D).
    pub scale: f32,
    /// This layer.
    pub layer: u32,
    /// All layers (stride of the statistics).
    pub layers: u32,
    /// First key of the marked span.
    pub span_start: u32,
    /// End of the marked span (<= start: none).
    pub span_end: u32,
    /// Padding.
    pub pad: u32,
}

impl DecodeParams {
    /// The parameters of the scores and values kernels and of the softmax, in one.
    pub fn combining(attention: AttentionParams, softmax: SoftmaxParams) -> Self {
        DecodeParams {
            new_tokens: attention.new_tokens,
            total: attention.total,
            cached: attention.cached,
            heads: attention.heads,
            kv_heads: attention.kv_heads,
            head_dim: attention.head_dim,
            scale: attention.scale,
            layer: softmax.layer,
            layers: softmax.layers,
            span_start: softmax.span_start,
            span_end: softmax.span_end,
            pad: 0,
        }
    }
}

/// Parameters of `logits_summary.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable, Serialize)]
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

/// Each kernel's uniform `Params` block, as naga reads it from the WGSL, against the Rust
/// struct the pass uploads: same size, and every WGSL member that is not padding at the
/// same offset in the Rust struct, under the same name and of the same scalar type.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod layout_tests {
    use super::*;
    use naga::{ScalarKind, TypeInner};

    /// A field layout: `(name, byte offset, scalar type)`.
    type Fields = Vec<(String, usize, &'static str)>;

    /// `(size, fields)` of a parameter struct, read without naming a field: a value whose
    /// 4-byte word `i` holds `i + 1` serialises each field as the number of its first
    /// word, a `u32` as an integer and an `f32` as a (tiny) float.
    fn rust_layout<T: Pod + Serialize>() -> (usize, Fields) {
        let size = std::mem::size_of::<T>();
        let words: Vec<u32> = (1..=(size / 4) as u32).collect();
        let value: T = bytemuck::pod_read_unaligned(bytemuck::cast_slice(&words));
        let json = serde_json::to_value(value).unwrap();
        let fields = json
            .as_object()
            .unwrap()
            .iter()
            .filter_map(|(name, v)| {
                let (word, kind) = match v.as_u64() {
                    Some(word) => (word as usize, "u32"),
                    None => ((v.as_f64()? as f32).to_bits() as usize, "f32"),
                };
                Some((name.clone(), 4 * (word - 1), kind))
            })
            .collect();
        (size, fields)
    }

    /// Every kernel variant with the layout of the struct its dispatches upload.
    fn kernels() -> Vec<(Kernel, &'static str, (usize, Fields))> {
        let attention = || rust_layout::<AttentionParams>();
        let mut all = vec![
            (Kernel::Embed, "EmbedParams", rust_layout::<EmbedParams>()),
            (Kernel::Swiglu, "PairParams", rust_layout::<PairParams>()),
            (Kernel::RmsNorm, "NormParams", rust_layout::<NormParams>()),
            (
                Kernel::AttentionInputs,
                "AttentionInputParams",
                rust_layout::<AttentionInputParams>(),
            ),
            (Kernel::QkvDecode, "QkvParams", rust_layout::<QkvParams>()),
            (Kernel::AttentionScores, "AttentionParams", attention()),
            (Kernel::AttentionValues, "AttentionParams", attention()),
            (
                Kernel::AttentionSoftmax,
                "SoftmaxParams",
                rust_layout::<SoftmaxParams>(),
            ),
            (
                Kernel::AttentionDecode,
                "DecodeParams",
                rust_layout::<DecodeParams>(),
            ),
            (
                Kernel::LogitsSummary,
                "SummaryParams",
                rust_layout::<SummaryParams>(),
            ),
        ];
        for tiling in [MatmulTiling::SMALL, MatmulTiling::LARGE] {
            all.push((
                Kernel::Matmul(tiling),
                "MatmulParams",
                rust_layout::<MatmulParams>(),
            ));
        }
        for input in [LinearInput::Plain, LinearInput::Normed, LinearInput::Swiglu] {
            for shape in MatVecShape::ALL {
                let kernel = Kernel::MatVec(input, shape);
                all.push((kernel, "MatmulParams", rust_layout::<MatmulParams>()));
            }
        }
        all
    }

    /// `(size, fields)` of the uniform at group 0, binding 0 of a kernel's source.
    fn wgsl_layout(source: &str) -> (usize, Fields) {
        let module = naga::front::wgsl::parse_str(source).expect("the kernel parses");
        let (_, global) = module
            .global_variables
            .iter()
            .find(|(_, g)| {
                g.binding
                    .as_ref()
                    .is_some_and(|b| b.group == 0 && b.binding == 0)
            })
            .expect("a uniform at binding 0");
        let TypeInner::Struct { members, span } = &module.types[global.ty].inner else {
            panic!("binding 0 is not a struct");
        };
        let fields = members
            .iter()
            .map(|m| {
                let kind = match module.types[m.ty].inner {
                    TypeInner::Scalar(s) if s.width == 4 && s.kind == ScalarKind::Uint => "u32",
                    TypeInner::Scalar(s) if s.width == 4 && s.kind == ScalarKind::Float => "f32",
                    _ => "another type",
                };
                (m.name.clone().unwrap_or_default(), m.offset as usize, kind)
            })
            .collect();
        (*span as usize, fields)
    }

    #[test]
    fn every_parameter_struct_matches_its_wgsl_block() {
        for (kernel, name, (size, fields)) in kernels() {
            let (wgsl_size, members) = wgsl_layout(&kernel.source());
            assert_eq!(wgsl_size, size, "{kernel:?}: WGSL Params against {name}");
            assert_eq!(size % 16, 0, "{name}: uniform blocks are 16-byte multiples");
            for (member, offset, kind) in members {
                if member.trim_start_matches('_').starts_with("pad") {
                    continue;
                }
                let field = fields.iter().find(|f| f.0 == member);
                assert_eq!(
                    field.map(|f| (f.1, f.2)),
                    Some((offset, kind)),
                    "{kernel:?}: WGSL member `{member}` ({kind} at byte {offset}) in {name}"
                );
            }
        }
    }
}
