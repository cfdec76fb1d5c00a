// Puts each head of the new tokens' stacked projection qkv[t, (H + 2 KV) * D] where
// attention reads it: queries into q[t, H, D], keys and values into the KV cache after
// the cached rows. Queries and keys are QK-normalised (models with qk_norm: RMSNorm
// over each head with the q_norm or k_norm weight) and then rotated with the tables
// cos/sin[t, D/2] (computed on the CPU from the scheme's frequencies, in f64, by the
// same code the CPU path uses; pair d is dims (d, d + D/2), as in Hugging Face Llama;
// rotary_pair.wgsl rotates and places each pair).
// One invocation per (token, head): one dispatch does what took six.

struct Params {
    tokens: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    // Element offset of the first new row in the cache (cached * KV * D).
    cache_offset: u32,
    // 1: rotate queries and keys (every scheme but "none").
    rotate: u32,
    // 1: QK-norm queries and keys first.
    qk_norm: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
// cos[tokens, D/2], then sin[tokens, D/2].
@group(0) @binding(2) var<storage, read> tables: array<f32>;
// q_norm[D], then k_norm[D].
@group(0) @binding(3) var<storage, read> norms: array<f32>;
@group(0) @binding(4) var<storage, read_write> q: array<f32>;
@group(0) @binding(5) var<storage, read_write> keys: array<f32>;
@group(0) @binding(6) var<storage, read_write> values: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let slots = p.heads + 2u * p.kv_heads;
    let item = (wid.y * groups.x + wid.x) * 64u + li;
    if (item >= p.tokens * slots) {
        return;
    }
    let t = item / slots;
    let slot = item % slots;
    let d = p.head_dim;
    let half = d / 2u;
    let source = item * d;
    if (slot >= p.heads + p.kv_heads) {
        for (var c = 0u; c < half; c++) {
            place_pair(t, slot, c, vec2<f32>(qkv[source + c], qkv[source + c + half]));
        }
        return;
    }
    var inv = 1.0;
    if (p.qk_norm != 0u) {
        var sum = 0.0;
        for (var c = 0u; c < d; c++) {
            let v = qkv[source + c];
            sum += v * v;
        }
        inv = 1.0 / sqrt(sum / f32(d) + p.eps);
    }
    let norm_base = select(d, 0u, slot < p.heads);
    for (var c = 0u; c < half; c++) {
        var pair = vec2<f32>(qkv[source + c], qkv[source + c + half]);
        if (p.qk_norm != 0u) {
            pair = pair * inv * vec2<f32>(norms[norm_base + c], norms[norm_base + c + half]);
        }
        place_pair(t, slot, c, pair);
    }
}
