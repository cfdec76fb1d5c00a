// The interface of the two linear-layer kernels, matmul.wgsl and matvec.wgsl (kernels.rs
// puts this in front of each): y[M, N] (+)= x[M, K] * w[N, K]^T.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    // 1: add to y (residual connections), 0: overwrite.
    accumulate: u32,
    // RMSNorm epsilon (matvec.wgsl with INPUT 1).
    eps: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
