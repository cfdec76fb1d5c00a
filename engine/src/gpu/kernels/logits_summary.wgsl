// Reduces each row of logits to what the views need (engine::analysis::summarize_row):
// out[row] = [log_norm, next_logit, next_rank, (token, logit) x top_k], where
// log_norm = ln sum exp(logits), next_* describe the following token (targets[row];
// 0xffffffff when unknown) and rank counts the logits strictly above it. Top-k picks,
// k times, the best logit ordered after the previous pick (value desc, then id asc).

struct Params {
    rows: u32,
    vocab: u32,
    top_k: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const NONE: u32 = 0xffffffffu;
var<workgroup> values: array<f32, 256>;
var<workgroup> ids: array<u32, 256>;

// Whether (a, ia) ranks before (b, ib).
fn before(a: f32, ia: u32, b: f32, ib: u32) -> bool {
    return a > b || (a == b && ia < ib);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = wid.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.vocab;
    let stride = 3u + 2u * p.top_k;
    let at = row * stride;

    var best = -3.0e38;
    for (var v = li; v < p.vocab; v += 256u) {
        best = max(best, logits[base + v]);
    }
    values[li] = best;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (li < s) {
            values[li] = max(values[li], values[li + s]);
        }
        workgroupBarrier();
    }
    let row_max = values[0];
    workgroupBarrier();

    let target_id = targets[row];
    var target_logit = 0.0;
    if (target_id != NONE) {
        target_logit = logits[base + target_id];
    }
    var sum = 0.0;
    var above = 0u;
    for (var v = li; v < p.vocab; v += 256u) {
        let x = logits[base + v];
        sum += exp(x - row_max);
        if (x > target_logit) {
            above += 1u;
        }
    }
    values[li] = sum;
    ids[li] = above;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (li < s) {
            values[li] += values[li + s];
            ids[li] += ids[li + s];
        }
        workgroupBarrier();
    }
    if (li == 0u) {
        out[at] = row_max + log(values[0]);
        if (target_id != NONE) {
            out[at + 1u] = target_logit;
            out[at + 2u] = f32(ids[0]);
        } else {
            out[at + 1u] = 0.0;
            out[at + 2u] = -1.0;
        }
    }
    workgroupBarrier();

    var last_value = 3.0e38;
    var last_id = NONE;
    for (var pick = 0u; pick < p.top_k; pick++) {
        var mine = -3.4e38;
        var mine_id = NONE;
        for (var v = li; v < p.vocab; v += 256u) {
            let x = logits[base + v];
            let after_last = last_id == NONE || before(last_value, last_id, x, v);
            if (after_last && (mine_id == NONE || before(x, v, mine, mine_id))) {
                mine = x;
                mine_id = v;
            }
        }
        values[li] = mine;
        ids[li] = mine_id;
        workgroupBarrier();
        for (var s = 128u; s > 0u; s >>= 1u) {
            if (li < s) {
                let other = ids[li + s];
                if (other != NONE && (ids[li] == NONE || before(values[li + s], other, values[li], ids[li]))) {
                    values[li] = values[li + s];
                    ids[li] = other;
                }
            }
            workgroupBarrier();
        }
        last_value = values[0];
        last_id = ids[0];
        if (li == 0u) {
            out[at + 3u + 2u * pick] = f32(last_id);
            out[at + 4u + 2u * pick] = last_value;
        }
        workgroupBarrier();
    }
}
