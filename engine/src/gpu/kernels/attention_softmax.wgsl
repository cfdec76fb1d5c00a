// Turns each causal row of scores[h, t, :] into probabilities in place and records the
// head's statistics for that query (softmax_row.wgsl). One workgroup per row.

const WG: u32 = 64u;

struct Params {
    new_tokens: u32,
    total: u32,
    cached: u32,
    heads: u32,
    layer: u32,
    layers: u32,
    span_start: u32,
    // span_end <= span_start: no span marked.
    span_end: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> scores: array<f32>;
// [new_tokens, layers * heads, 3]
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let row = wid.y * groups.x + wid.x;
    if (row >= p.heads * p.new_tokens) {
        return;
    }
    let h = row / p.new_tokens;
    let t = row % p.new_tokens;
    let query = p.cached + t;
    let base = row * p.total;
    var running = NO_SCORES;
    for (var j = li; j <= query; j += WG) {
        running = add_score(running, scores[base + j]);
    }
    softmax_row(li, base, query, running, t, h);
}
