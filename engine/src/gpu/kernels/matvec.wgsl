// y[M, N] (+)= x[M, K] * w[N, K]^T for a few rows (extending a prompt by a token or
// a handful): the tiled kernel would compute 64 rows where only M are wanted. Each
// workgroup computes 32 outputs of one row; 8 invocations share an output, reading
// neighbouring K values of its weight row (coalesced), and their partial sums are added.
// It also applies what precedes a linear layer: the RMSNorm before the attention and
// MLP projections and the logits, or the SwiGLU before the down projection. A dispatch
// each would cost more than the arithmetic when extending by one token, where every
// kernel waits on the one before.

// What x holds (kernels.rs sets it, one pipeline each): 0 the rows themselves; 1 rows
// to RMS-normalise with norm_weight and p.eps first; 2 stacked [gate; up] rows of
// width 2K, to combine as silu(gate) * up first.
const INPUT: u32 = {INPUT}u;

// Params and bindings: linear.wgsl; and (read for INPUT 1 only, always bound):
@group(0) @binding(4) var<storage, read> norm_weight: array<f32>;

const LANES: u32 = 8u;
var<workgroup> partial: array<f32, 256>;

// The row's RMSNorm factor 1 / sqrt(mean(x^2) + eps), from all 256 invocations.
fn inverse_rms(xb: u32, li: u32) -> f32 {
    var sum = 0.0;
    for (var k = li; k < p.k; k += 256u) {
        sum = fma(x[xb + k], x[xb + k], sum);
    }
    partial[li] = sum;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride >>= 1u) {
        if (li < stride) {
            partial[li] += partial[li + stride];
        }
        workgroupBarrier();
    }
    let inv = 1.0 / sqrt(partial[0] / f32(p.k) + p.eps);
    workgroupBarrier();
    return inv;
}

// Value k of the row starting at xb, after the input's preceding step.
fn input_at(xb: u32, k: u32, inv: f32) -> f32 {
    switch INPUT {
        case 1u: {
            return x[xb + k] * inv * norm_weight[k];
        }
        case 2u: {
            let gate = x[xb + k];
            return gate / (1.0 + exp(-gate)) * x[xb + p.k + k];
        }
        default: {
            return x[xb + k];
        }
    }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = wid.y;
    let col = wid.x * (256u / LANES) + li / LANES;
    let lane = li % LANES;
    // Stacked [gate; up] rows are twice as wide.
    let xb = row * p.k * select(1u, 2u, INPUT == 2u);
    var inv = 1.0;
    if (INPUT == 1u) {
        inv = inverse_rms(xb, li);
    }
    // Four independent sums keep four loads in flight (see attention_values.wgsl).
    var sums = vec4<f32>(0.0);
    if (col < p.n) {
        let wb = col * p.k;
        var k = lane;
        for (; k + 3u * LANES < p.k; k += 4u * LANES) {
            sums += vec4<f32>(
                input_at(xb, k, inv),
                input_at(xb, k + LANES, inv),
                input_at(xb, k + 2u * LANES, inv),
                input_at(xb, k + 3u * LANES, inv),
            ) * vec4<f32>(
                w[wb + k],
                w[wb + k + LANES],
                w[wb + k + 2u * LANES],
                w[wb + k + 3u * LANES],
            );
        }
        for (; k < p.k; k += LANES) {
            sums.x = fma(input_at(xb, k, inv), w[wb + k], sums.x);
        }
    }
    partial[li] = (sums.x + sums.y) + (sums.z + sums.w);
    workgroupBarrier();
    if (lane == 0u && col < p.n) {
        var total = 0.0;
        for (var i = 0u; i < LANES; i++) {
            total += partial[li + i];
        }
        let at = row * p.n + col;
        if (p.accumulate != 0u) {
            total += y[at];
        }
        y[at] = total;
    }
}
