// One causal row of scores[h, t, :] turned into probabilities in place, with the
// head's statistics for that query (the formulas of engine::analysis::head_stats):
// entropy -sum p ln p, mean distance sum p (i - j), and the mass on a marked key span.
// Shared by attention_softmax.wgsl and attention_decode.wgsl (kernels.rs appends it to
// each): the kernel declares WG (its workgroup size), Params with total, heads, layer,
// layers, span_start and span_end, and the bindings `scores` and `stats`.

var<workgroup> shared_a: array<f32, WG>;
var<workgroup> shared_b: array<f32, WG>;
var<workgroup> shared_c: array<f32, WG>;

fn reduce_max(li: u32, value: f32) -> f32 {
    shared_a[li] = value;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (li < stride) {
            shared_a[li] = max(shared_a[li], shared_a[li + stride]);
        }
        workgroupBarrier();
    }
    let result = shared_a[0];
    workgroupBarrier();
    return result;
}

// The row of query position `query` (its first `query + 1` keys count) at
// scores[base..base + total], whose largest score is `row_max`, for token t and head h.
fn softmax_row(li: u32, base: u32, query: u32, row_max: f32, t: u32, h: u32) {
    let count = query + 1u;
    var sum = 0.0;
    for (var j = li; j < count; j += WG) {
        sum += exp(scores[base + j] - row_max);
    }
    shared_a[li] = sum;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
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
    for (var j = li; j < p.total; j += WG) {
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
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
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
    workgroupBarrier();
}
