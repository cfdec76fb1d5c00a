// out[t, h * D + d] = sum_{j <= cached + t} probs[h, t, j] * v[j, h / group, d].
// One workgroup per (token, head). Its 256 invocations split into 256 / D groups that
// each sum a strided share of the keys, then the groups' partial sums are added: a
// single token attending to 2048 keys is then 2048 / groups steps deep, not 2048
// (extending a prompt by one token would otherwise wait on one long serial loop).

struct Params {
    new_tokens: u32,
    total: u32,
    cached: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> probs: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, 256>;

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
    let parts = 256u / p.head_dim;
    let d = li % p.head_dim;
    let part = li / p.head_dim;
    let row = (h * p.new_tokens + t) * p.total;
    // Four independent sums, so four loads are in flight at once (a single running
    // sum waits on each load in turn: one token over 2048 keys is latency-bound).
    var sums = vec4<f32>(0.0);
    let last = p.cached + t;
    let v_stride = p.kv_heads * p.head_dim;
    if (part < parts) {
        var j = part;
        for (; j + 3u * parts <= last; j += 4u * parts) {
            let at = (j * p.kv_heads + kv) * p.head_dim + d;
            sums += vec4<f32>(
                probs[row + j],
                probs[row + j + parts],
                probs[row + j + 2u * parts],
                probs[row + j + 3u * parts],
            ) * vec4<f32>(
                v[at],
                v[at + parts * v_stride],
                v[at + 2u * parts * v_stride],
                v[at + 3u * parts * v_stride],
            );
        }
        for (; j <= last; j += parts) {
            sums.x = fma(probs[row + j], v[(j * p.kv_heads + kv) * p.head_dim + d], sums.x);
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
