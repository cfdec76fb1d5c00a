// Rotates x[t, head, :] in place with the tables cos/sin[t, D/2] (computed on the CPU
// from the scheme's frequencies, in f64, by the same code the CPU path uses). Pair d is
// dims (d, d + D/2), as in Hugging Face Llama.

struct Params {
    tokens: u32,
    heads: u32,
    head_dim: u32,
    // Element offset of row 0 in x (keys are rotated where they sit in the KV cache).
    offset: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> cos_table: array<f32>;
@group(0) @binding(2) var<storage, read> sin_table: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let half = p.head_dim / 2u;
    let index = (wid.y * groups.x + wid.x) * 64u + li;
    if (index >= p.tokens * p.heads * half) {
        return;
    }
    let d = index % half;
    let h = (index / half) % p.heads;
    let t = index / (half * p.heads);
    let base = p.offset + (t * p.heads + h) * p.head_dim;
    let first = x[base + d];
    let second = x[base + d + half];
    let c = cos_table[t * half + d];
    let s = sin_table[t * half + d];
    x[base + d] = first * c - second * s;
    x[base + d + half] = second * c + first * s;
}
