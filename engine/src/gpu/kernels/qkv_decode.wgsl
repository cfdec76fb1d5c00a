// The q/k/v projection of a few new tokens and attention_inputs.wgsl's placement in
// one dispatch, for models without QK-norm (extending a prompt, where each dispatch
// waits on the one before and costs more than its arithmetic). The input rows are
// RMS-normalised on the fly (the norm's weight is folded into w, as for matvec.wgsl).
// Each invocation computes the two outputs of one rotary pair of one head, dims c and
// c + D/2 (as in Hugging Face Llama), so it can rotate and place them itself
// (rotary_pair.wgsl, shared with attention_inputs.wgsl).

struct Params {
    tokens: u32,
    // Input width (the hidden size).
    width: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    // Element offset of the first new row in the cache (cached * KV * D).
    cache_offset: u32,
    // 1: rotate queries and keys (every scheme but "none").
    rotate: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// [(H + 2 KV) * D, width]: q, k and v stacked, the input norm's weight folded in.
@group(0) @binding(2) var<storage, read> w: array<f32>;
// cos[tokens, D/2], then sin[tokens, D/2].
@group(0) @binding(3) var<storage, read> tables: array<f32>;
@group(0) @binding(4) var<storage, read_write> q: array<f32>;
@group(0) @binding(5) var<storage, read_write> keys: array<f32>;
@group(0) @binding(6) var<storage, read_write> values: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.y;
    let half = p.head_dim / 2u;
    let slots = p.heads + 2u * p.kv_heads;
    if (gid.x >= slots * half) {
        return;
    }
    let slot = gid.x / half;
    let c = gid.x % half;
    let xb = t * p.width;
    let wa = (slot * p.head_dim + c) * p.width;
    let wb = wa + half * p.width;
    // Four independent sums per output keep loads in flight (see matvec.wgsl).
    var a = vec4<f32>(0.0);
    var b = vec4<f32>(0.0);
    var squares = vec4<f32>(0.0);
    var k = 0u;
    for (; k + 3u < p.width; k += 4u) {
        let inputs = vec4<f32>(x[xb + k], x[xb + k + 1u], x[xb + k + 2u], x[xb + k + 3u]);
        a += inputs * vec4<f32>(w[wa + k], w[wa + k + 1u], w[wa + k + 2u], w[wa + k + 3u]);
        b += inputs * vec4<f32>(w[wb + k], w[wb + k + 1u], w[wb + k + 2u], w[wb + k + 3u]);
        squares += inputs * inputs;
    }
    for (; k < p.width; k++) {
        let input = x[xb + k];
        a.x = fma(input, w[wa + k], a.x);
        b.x = fma(input, w[wb + k], b.x);
        squares.x = fma(input, input, squares.x);
    }
    let sum_squares = (squares.x + squares.y) + (squares.z + squares.w);
    let inv = 1.0 / sqrt(sum_squares / f32(p.width) + p.eps);
    let first = ((a.x + a.y) + (a.z + a.w)) * inv;
    let second = ((b.x + b.y) + (b.z + b.w)) * inv;
    place_pair(t, slot, c, vec2<f32>(first, second));
}
