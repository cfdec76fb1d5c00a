// out[t, h * D + d] = sum_{j <= cached + t} probs[h, t, j] * v[j, h / group, d], with
// the probabilities in the scores buffer (weighted_values.wgsl). One workgroup per
// (token, head).

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
@group(0) @binding(1) var<storage, read> scores: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

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
    weighted_values(li, (h * p.new_tokens + t) * p.total, p.cached + t, t, h);
}
