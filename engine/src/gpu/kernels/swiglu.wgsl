// act[t, i] = silu(gate[t, i]) * up[t, i], reading gate and up side by side from one
// matmul against the concatenated [gate; up] weights: gate_up[t, 0..I] and [t, I..2I].

// rows = tokens, width = intermediate (PairParams).
struct Params {
    rows: u32,
    width: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gate_up: array<f32>;
@group(0) @binding(2) var<storage, read_write> act: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let index = (wid.y * groups.x + wid.x) * 64u + li;
    if (index >= p.rows * p.width) {
        return;
    }
    let t = index / p.width;
    let i = index % p.width;
    let gate = gate_up[t * 2u * p.width + i];
    let up = gate_up[t * 2u * p.width + p.width + i];
    act[index] = gate / (1.0 + exp(-gate)) * up;
}
