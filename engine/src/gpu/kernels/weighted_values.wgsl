// out[t, h * D + d] = sum_{j <= last} scores[row + j] * v[j, kv, d], the probabilities
// of one (token, head) row weighting the values of its KV head. Shared by
// attention_values.wgsl and attention_decode.wgsl (kernels.rs appends it to each): the
// kernel runs 256 invocations per workgroup and declares Params with heads, kv_heads
// and head_dim, and the bindings `scores`, `v` and `out`.
// The 256 invocations split into 256 / D groups that each sum a strided share of the
// keys, then the groups' partial sums are added: a single token attending to 2048 keys
// is then 2048 / groups steps deep, not 2048 (extending a prompt by one token would
// otherwise wait on one long serial loop).

var<workgroup> partial: array<f32, 256>;

fn weighted_values(li: u32, row: u32, last: u32, t: u32, h: u32) {
    let kv = h / (p.heads / p.kv_heads);
    let parts = 256u / p.head_dim;
    let d = li % p.head_dim;
    let part = li / p.head_dim;
    // Four independent sums, so four loads are in flight at once (a single running
    // sum waits on each load in turn: one token over 2048 keys is latency-bound).
    var sums = vec4<f32>(0.0);
    let v_stride = p.kv_heads * p.head_dim;
    if (part < parts) {
        var j = part;
        for (; j + 3u * parts <= last; j += 4u * parts) {
            let at = (j * p.kv_heads + kv) * p.head_dim + d;
            sums += vec4<f32>(
                scores[row + j],
                scores[row + j + parts],
                scores[row + j + 2u * parts],
                scores[row + j + 3u * parts],
            ) * vec4<f32>(
                v[at],
                v[at + parts * v_stride],
                v[at + 2u * parts * v_stride],
                v[at + 3u * parts * v_stride],
            );
        }
        for (; j <= last; j += parts) {
            sums.x = fma(scores[row + j], v[(j * p.kv_heads + kv) * p.head_dim + d], sums.x);
        }
    }
    partial[li] = (sums.x + sums.y) + (sums.z + sums.w);
    workgroupBarrier();
    if (part == 0u) {
        var total = 0.0;
        for (var q = 0u; q < parts; q++) {
            total += partial[q * p.head_dim + d];
        }
        out[(t * p.heads + h) * p.head_dim + d] = total;
    }
}
