// attention_scores, attention_softmax and attention_values in one dispatch (sharing
// softmax_row.wgsl and weighted_values.wgsl with the last two), for a few
// new tokens (extending a prompt), where three dispatches that each wait on the last
// cost more than the work. One workgroup per (token, head); each invocation keeps the
// same keys j = li, li + 256, ... through the scores and the softmax, so it reads back
// only what it wrote itself; the values step reads every probability, after a storage
// barrier. The results are those of the three kernels: the probabilities (for
// attention maps) in scores[h, t, :], the head statistics, and out[t, h * D + d].

const WG: u32 = 256u;

struct Params {
    new_tokens: u32,
    total: u32,
    cached: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    scale: f32,
    layer: u32,
    layers: u32,
    span_start: u32,
    // span_end <= span_start: no span marked.
    span_end: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> scores: array<f32>;
// [new_tokens, layers * heads, 3]
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
// [layers, heads]: a per-head beta (1 for every other scheme), as in attention_scores.
@group(0) @binding(7) var<storage, read> head_scale: array<f32>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let pair = wid.y * groups.x + wid.x;
    if (pair >= p.new_tokens * p.heads) {
        return;
    }
    let t = pair / p.heads;
    let h = pair % p.heads;
    let kv = h / (p.heads / p.kv_heads);
    let query = p.cached + t;
    let row = (h * p.new_tokens + t) * p.total;

    // Scores (as attention_scores.wgsl: one running vec4 dot product per key).
    let d4 = p.head_dim / 4u;
    let q_base = (t * p.heads + h) * d4;
    let scale = p.scale * head_scale[p.layer * p.heads + h];
    var running = NO_SCORES;
    for (var j = li; j <= query; j += WG) {
        let k_base = (j * p.kv_heads + kv) * d4;
        var dots = 0.0;
        for (var d = 0u; d < d4; d++) {
            dots += dot(q[q_base + d], k[k_base + d]);
        }
        let score = dots * scale;
        scores[row + j] = score;
        running = add_score(running, score);
    }
    softmax_row(li, row, query, running, t, h);
    // Every probability written above is visible to the whole workgroup after this.
    storageBarrier();
    workgroupBarrier();
    weighted_values(li, row, query, t, h);
}
