// y[M, N] (+)= x[M, K] * w[N, K]^T: a linear layer with Hugging Face weight layout.
// Register-blocked tiling: a 16 x 16 workgroup computes a 64 x 64 tile of y, each
// invocation a 4 x 4 block (rows lid.y + 16i, columns lid.x + 16j, so neighbouring
// invocations read neighbouring shared-memory words and write neighbouring outputs).
// K advances in slices of 16 staged through workgroup memory.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    // 1: add to y (residual connections), 0: overwrite.
    accumulate: u32,
    // Element offset into y (the KV cache row to append at).
    y_offset: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

const TILE: u32 = 64u;
const SLICE: u32 = 16u;
// Row stride of the staged tiles: one word of padding, so the 16 invocations that
// store neighbouring K values of one row hit 16 different banks.
const STRIDE: u32 = 65u;

// [SLICE][TILE] (padded), transposed so the inner loop reads along the tile.
var<workgroup> x_tile: array<f32, 1040>;
var<workgroup> w_tile: array<f32, 1040>;

fn store(r: u32, c0: u32, values: vec4<f32>) {
    if (r >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let c = c0 + 16u * j;
        if (c < p.n) {
            let at = p.y_offset + r * p.n + c;
            var value = values[j];
            if (p.accumulate != 0u) {
                value += y[at];
            }
            y[at] = value;
        }
    }
}

@compute @workgroup_size(16, 16)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    // Sixteen accumulators as four vectors (row i of the 4 x 4 block in acc_i), so
    // no private array is indexed dynamically: compilers keep them in registers.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 += SLICE) {
        // 1024 values of each tile, 4 per invocation, consecutive invocations along K
        // (coalesced global reads).
        for (var i = 0u; i < 4u; i++) {
            let e = li + i * 256u;
            let r = e / SLICE;
            let c = e % SLICE;
            let kk = k0 + c;
            var xv = 0.0;
            if (row0 + r < p.m && kk < p.k) {
                xv = x[(row0 + r) * p.k + kk];
            }
            x_tile[c * STRIDE + r] = xv;
            var wv = 0.0;
            if (col0 + r < p.n && kk < p.k) {
                wv = w[(col0 + r) * p.k + kk];
            }
            w_tile[c * STRIDE + r] = wv;
        }
        workgroupBarrier();
        for (var c = 0u; c < SLICE; c++) {
            let base = c * STRIDE;
            let xs = vec4<f32>(
                x_tile[base + lid.y],
                x_tile[base + lid.y + 16u],
                x_tile[base + lid.y + 32u],
                x_tile[base + lid.y + 48u],
            );
            let ws = vec4<f32>(
                w_tile[base + lid.x],
                w_tile[base + lid.x + 16u],
                w_tile[base + lid.x + 32u],
                w_tile[base + lid.x + 48u],
            );
            acc0 = fma(vec4<f32>(xs.x), ws, acc0);
            acc1 = fma(vec4<f32>(xs.y), ws, acc1);
            acc2 = fma(vec4<f32>(xs.z), ws, acc2);
            acc3 = fma(vec4<f32>(xs.w), ws, acc3);
        }
        workgroupBarrier();
    }
    let c0 = col0 + lid.x;
    store(row0 + lid.y, c0, acc0);
    store(row0 + lid.y + 16u, c0, acc1);
    store(row0 + lid.y + 32u, c0, acc2);
    store(row0 + lid.y + 48u, c0, acc3);
}
