// out = x / sqrt(mean(x^2) + eps), row by row (one workgroup per row). The many-rows
// path's norms before a linear layer, whose weights hold the norm's weight (GpuBackend
// folds it in at upload); matvec.wgsl does its own.

struct Params {
    rows: u32,
    width: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let row = wid.y * groups.x + wid.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.width;
    var sum = 0.0;
    for (var c = li; c < p.width; c += 64u) {
        let v = x[base + c];
        sum += v * v;
    }
    // Every invocation adds the 64 partial sums itself: one barrier instead of a
    // tree's seven, and barriers cost CPU implementations of WebGPU (SwiftShader,
    // lavapipe) far more than reading shared memory.
    partial[li] = sum;
    workgroupBarrier();
    var total = 0.0;
    for (var i = 0u; i < 64u; i++) {
        total += partial[i];
    }
    let inv = 1.0 / sqrt(total / f32(p.width) + p.eps);
    for (var c = li; c < p.width; c += 64u) {
        out[base + c] = x[base + c] * inv;
    }
}
