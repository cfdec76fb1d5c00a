// scores[h, t, j] = scale * head_scale[layer, h] * q[t, h, :] . k[j, h / group, :] for
// every cached or new key j <= cached + t (causal); later keys get 0 and are skipped by
// the softmax. scale = logit_scale / sqrt(D): YaRN's temperature and DroPE's beta enter
// here; head_scale holds a per-head beta (1 for every other scheme).
// Each invocation computes four neighbouring keys of one query, reading the query once
// and all rows as vec4s (D is a multiple of 4, checked when the model loads).

struct Params {
    new_tokens: u32,
    total: u32,
    cached: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    scale: f32,
    layer: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> scores: array<f32>;
// [layers, heads]
@group(0) @binding(4) var<storage, read> head_scale: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let quads = (p.total + 3u) / 4u;
    let index = (wid.y * groups.x + wid.x) * 64u + li;
    if (index >= p.heads * p.new_tokens * quads) {
        return;
    }
    let j0 = 4u * (index % quads);
    let t = (index / quads) % p.new_tokens;
    let h = index / (quads * p.new_tokens);
    let last = p.cached + t;
    let row = (h * p.new_tokens + t) * p.total;
    let kv = h / (p.heads / p.kv_heads);
    let d4 = p.head_dim / 4u;
    let q_base = (t * p.heads + h) * d4;
    let k_stride = p.kv_heads * d4;
    let k_base = (j0 * p.kv_heads + kv) * d4;
    let scale = p.scale * head_scale[p.layer * p.heads + h];
    var dots = vec4<f32>(0.0);
    if (j0 <= last) {
        // Keys past the row's end (or past `total`) read row j0 instead: in bounds,
        // and their results are overwritten with 0 below.
        let s1 = select(0u, k_stride, j0 + 1u <= last);
        let s2 = select(0u, 2u * k_stride, j0 + 2u <= last);
        let s3 = select(0u, 3u * k_stride, j0 + 3u <= last);
        for (var d = 0u; d < d4; d++) {
            let qv = q[q_base + d];
            dots.x += dot(qv, k[k_base + d]);
            dots.y += dot(qv, k[k_base + s1 + d]);
            dots.z += dot(qv, k[k_base + s2 + d]);
            dots.w += dot(qv, k[k_base + s3 + d]);
        }
    }
    for (var i = 0u; i < 4u; i++) {
        let j = j0 + i;
        if (j < p.total) {
            scores[row + j] = select(0.0, dots[i] * scale, j <= last);
        }
    }
}
