// Turns each causal row of scores[h, t, :] into probabilities in place, and records the
// head's statistics for that query (the formulas of engine::analysis::head_stats):
// entropy -sum p ln p, mean distance sum p (i - j), and the mass on a marked key span.

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

var<workgroup> shared_a: array<f32, 64>;
var<workgroup> shared_b: array<f32, 64>;
var<workgroup> shared_c: array<f32, 64>;

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
    let count = query + 1u;
    let base = row * p.total;

    var best = -3.0e38;
    for (var j = li; j < count; j += 64u) {
        best = max(best, scores[base + j]);
    }
    shared_a[li] = best;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride >>= 1u) {
        if (li < stride) {
            shared_a[li] = max(shared_a[li], shared_a[li + stride]);
        }
        workgroupBarrier();
    }
    let row_max = shared_a[0];
    workgroupBarrier();

    var sum = 0.0;
    for (var j = li; j < count; j += 64u) {
        sum += exp(scores[base + j] - row_max);
    }
    shared_a[li] = sum;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride >>= 1u) {
        if (li < stride) {
            shared_a[li] += shared_a[li + stride];
        }
        workgroupBarrier();
    }
    let inv_sum = 1.0 / shared_a[0];
    workgroupBarrier();

    var entropy = 0.0;
    var distance = 0.0;
    var span = 0.0;
    for (var j = li; j < p.total; j += 64u) {
        if (j < count) {
            let prob = exp(scores[base + j] - row_max) * inv_sum;
            scores[base + j] = prob;
            if (prob > 0.0) {
                entropy -= prob * log(prob);
            }
            distance += prob * f32(query - j);
            if (j >= p.span_start && j < p.span_end) {
                span += prob;
            }
        } else {
            scores[base + j] = 0.0;
        }
    }
    shared_a[li] = entropy;
    shared_b[li] = distance;
    shared_c[li] = span;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride >>= 1u) {
        if (li < stride) {
            shared_a[li] += shared_a[li + stride];
            shared_b[li] += shared_b[li + stride];
            shared_c[li] += shared_c[li + stride];
        }
        workgroupBarrier();
    }
    if (li == 0u) {
        let at = ((t * p.layers + p.layer) * p.heads + h) * 3u;
        stats[at] = shared_a[0];
        stats[at + 1u] = shared_b[0];
        stats[at + 2u] = shared_c[0];
    }
}
