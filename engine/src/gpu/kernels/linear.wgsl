// The interface of the two linear-layer kernels, matmul.wgsl and matvec.wgsl (kernels.rs
// puts this in front of each): y[M, N] (+)= x[M, K] * w[N, K]^T, y's columns
// y_col.. of rows y_stride apart.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    // 1: add to y (residual connections), 0: overwrite.
    accumulate: u32,
    // RMSNorm epsilon (matvec.wgsl with INPUT 1).
    eps: f32,
    // Where y's columns start, and its row stride: a weight matrix too large for one
    // binding is uploaded as blocks of rows, each writing its own columns of y.
    y_col: u32,
    y_stride: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
