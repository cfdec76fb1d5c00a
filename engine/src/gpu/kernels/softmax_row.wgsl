// One causal row of scores[h, t, :] turned into probabilities in place, with the
// head's statistics for that query (the formulas of engine::analysis::head_stats):
// entropy -sum p ln p, mean distance sum p (i - j), and the mass on a marked key span.
// Shared by attention_softmax.wgsl and attention_decode.wgsl (kernels.rs appends it to
// each): the kernel declares WG (its workgroup size, a multiple of 16), Params with
// total, heads, layer, layers, span_start and span_end, and the bindings `scores` and
// `stats`.
//
// Each invocation first folds the scores it visits into a running (max, sum of
// exp(score - max)) with `add_score`; `softmax_row` combines those of the workgroup.
// Workgroup reductions go in two levels (WG / 16 invocations each combine 16 values,
// then every invocation combines those few): two barriers where a tree takes
// log2(WG) + 1, and barriers cost CPU implementations of WebGPU (SwiftShader,
// lavapipe) far more than a few reads of shared memory.

const LEVEL: u32 = 16u;
var<workgroup> spread: array<vec4<f32>, WG>;
var<workgroup> gathered: array<vec4<f32>, WG / LEVEL>;

// The running (max, sum of exp(score - max)) of an invocation's scores; it starts at
// NO_SCORES.
const NO_SCORES = vec2<f32>(-3.0e38, 0.0);

fn combine(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let top = max(a.x, b.x);
    return vec2<f32>(top, a.y * exp(a.x - top) + b.y * exp(b.x - top));
}

// `combine` with a single score, with one exp instead of two.
fn add_score(running: vec2<f32>, score: f32) -> vec2<f32> {
    if (score > running.x) {
        return vec2<f32>(score, running.y * exp(running.x - score) + 1.0);
    }
    return vec2<f32>(running.x, running.y + exp(score - running.x));
}

// (max, sum) of the whole workgroup's scores. No barrier is needed after a reduction:
// an invocation can only write `spread` or `gathered` again once every invocation has
// passed the next reduction's first barrier, so after it read this one's results.
fn workgroup_scores(li: u32, running: vec2<f32>) -> vec2<f32> {
    spread[li] = vec4<f32>(running, 0.0, 0.0);
    workgroupBarrier();
    if (li < WG / LEVEL) {
        var part = NO_SCORES;
        for (var i = 0u; i < LEVEL; i++) {
            part = combine(part, spread[li * LEVEL + i].xy);
        }
        gathered[li] = vec4<f32>(part, 0.0, 0.0);
    }
    workgroupBarrier();
    var whole = NO_SCORES;
    for (var i = 0u; i < WG / LEVEL; i++) {
        whole = combine(whole, gathered[i].xy);
    }
    return whole;
}

// The workgroup's sum of `value` (same two levels).
fn workgroup_sum(li: u32, value: vec4<f32>) -> vec4<f32> {
    spread[li] = value;
    workgroupBarrier();
    if (li < WG / LEVEL) {
        var part = vec4<f32>(0.0);
        for (var i = 0u; i < LEVEL; i++) {
            part += spread[li * LEVEL + i];
        }
        gathered[li] = part;
    }
    workgroupBarrier();
    var whole = vec4<f32>(0.0);
    for (var i = 0u; i < WG / LEVEL; i++) {
        whole += gathered[i];
    }
    return whole;
}

// The row of query position `query` (its first `query + 1` keys count) at
// scores[base..base + total], for token t and head h; `running` is this invocation's
// (max, sum) over the keys it visited.
fn softmax_row(li: u32, base: u32, query: u32, running: vec2<f32>, t: u32, h: u32) {
    let count = query + 1u;
    let row = workgroup_scores(li, running);
    let row_max = row.x;
    let inv_sum = 1.0 / row.y;

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
    let totals = workgroup_sum(li, vec4<f32>(entropy, distance, span, 0.0));
    if (li == 0u) {
        let at = ((t * p.layers + p.layer) * p.heads + h) * 3u;
        stats[at] = totals.x;
        stats[at + 1u] = totals.y;
        stats[at + 2u] = totals.z;
    }
}
