// scores[h, t, j] = scale * q[t, h, :] . k[j, h / group, :] for every cached or new key
// j <= cached + t (causal); later keys get 0 and are skipped by the softmax.
// scale = logit_scale / sqrt(D): YaRN's temperature and DroPE's beta enter here.

struct Params {
    new_tokens: u32,
    total: u32,
    cached: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    scale: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read_write> scores: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let index = (wid.y * groups.x + wid.x) * 64u + li;
    if (index >= p.heads * p.new_tokens * p.total) {
        return;
    }
    let j = index % p.total;
    let t = (index / p.total) % p.new_tokens;
    let h = index / (p.total * p.new_tokens);
    if (j > p.cached + t) {
        scores[index] = 0.0;
        return;
    }
    let kv = h / (p.heads / p.kv_heads);
    let q_base = (t * p.heads + h) * p.head_dim;
    let k_base = (j * p.kv_heads + kv) * p.head_dim;
    var dot = 0.0;
    for (var d = 0u; d < p.head_dim; d++) {
        dot = fma(q[q_base + d], k[k_base + d], dot);
    }
    scores[index] = dot * p.scale;
}
