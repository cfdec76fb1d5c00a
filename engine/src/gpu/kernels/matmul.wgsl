// y[M, N] (+)= x[M, K] * w[N, K]^T: a linear layer with Hugging Face weight layout.
//
// A template: MatmulTiling (kernels.rs) sets TM, TN, BK and writes the unrolled
// register code at the {...} markers (explicit variables, no private arrays, because
// drivers may put dynamically indexed arrays in slow memory). A 16 x 16 workgroup
// computes a (16 TM) x (16 TN) tile of y; each invocation a TM x TN block, as groups
// of 4 x 4: rows 4 (lid.y + 16 i) + 0..3, columns 4 (lid.x + 16 j) + 0..3. K advances
// in slices of BK staged in workgroup memory as vec4s of four rows ([k][row / 4]), so
// one shared-memory read feeds four rows and TM/4 + TN/4 reads feed TM x TN
// fused multiply-adds.

// Params and bindings: linear.wgsl.

const TM: u32 = {TM}u;
const TN: u32 = {TN}u;
const BK: u32 = {BK}u;
const TILE_M: u32 = 16u * TM;
const TILE_N: u32 = 16u * TN;
// Row strides of the staged slices in vec4s, one vec4 of padding so that invocations
// storing neighbouring K values hit different banks.
const X_STRIDE: u32 = TILE_M / 4u + 1u;
const W_STRIDE: u32 = TILE_N / 4u + 1u;

var<workgroup> x_tile: array<vec4<f32>, BK * X_STRIDE>;
var<workgroup> w_tile: array<vec4<f32>, BK * W_STRIDE>;

// Rows r..r+3 of a [rows, K] matrix at column kk, zero outside it.
fn quad_x(r: u32, kk: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (kk < p.k) {
        if (r < p.m) { v.x = x[r * p.k + kk]; }
        if (r + 1u < p.m) { v.y = x[(r + 1u) * p.k + kk]; }
        if (r + 2u < p.m) { v.z = x[(r + 2u) * p.k + kk]; }
        if (r + 3u < p.m) { v.w = x[(r + 3u) * p.k + kk]; }
    }
    return v;
}

fn quad_w(r: u32, kk: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (kk < p.k) {
        if (r < p.n) { v.x = w[r * p.k + kk]; }
        if (r + 1u < p.n) { v.y = w[(r + 1u) * p.k + kk]; }
        if (r + 2u < p.n) { v.z = w[(r + 2u) * p.k + kk]; }
        if (r + 3u < p.n) { v.w = w[(r + 3u) * p.k + kk]; }
    }
    return v;
}

// Four outputs of one row, columns c..c+3.
fn store(row: u32, c: u32, values: vec4<f32>) {
    if (row >= p.m) {
        return;
    }
    for (var q = 0u; q < 4u; q++) {
        if (c + q < p.n) {
            let at = row * p.y_stride + p.y_col + c + q;
            var value = values[q];
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
    let row0 = wid.y * TILE_M;
    let col0 = wid.x * TILE_N;
{ACCUMULATORS}
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        // Consecutive invocations read consecutive K values of the same rows.
        for (var e = li; e < TILE_M / 4u * BK; e += 256u) {
            let c = e % BK;
            x_tile[c * X_STRIDE + e / BK] = quad_x(row0 + 4u * (e / BK), k0 + c);
        }
        for (var e = li; e < TILE_N / 4u * BK; e += 256u) {
            let c = e % BK;
            w_tile[c * W_STRIDE + e / BK] = quad_w(col0 + 4u * (e / BK), k0 + c);
        }
        workgroupBarrier();
        for (var c = 0u; c < BK; c++) {
            let xb = c * X_STRIDE + lid.y;
            let wb = c * W_STRIDE + lid.x;
{PRODUCTS}
        }
        workgroupBarrier();
    }
{STORES}
}
