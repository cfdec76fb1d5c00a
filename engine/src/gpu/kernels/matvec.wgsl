// y[M, N] (+)= x[M, K] * w[N, K]^T for a few rows (extending a prompt by a token or
// a handful): the tiled kernel would compute 64 rows where only M are wanted. Each
// workgroup computes 32 outputs of one row; 8 invocations share an output, reading
// neighbouring K values of its weight row (coalesced), and their partial sums are added.

// Params and bindings: linear.wgsl.

const LANES: u32 = 8u;
var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = wid.y;
    let col = wid.x * (256u / LANES) + li / LANES;
    let lane = li % LANES;
    // Four independent sums keep four loads in flight (see attention_values.wgsl).
    var sums = vec4<f32>(0.0);
    if (col < p.n) {
        let xb = row * p.k;
        let wb = col * p.k;
        var k = lane;
        for (; k + 3u * LANES < p.k; k += 4u * LANES) {
            sums += vec4<f32>(
                x[xb + k],
                x[xb + k + LANES],
                x[xb + k + 2u * LANES],
                x[xb + k + 3u * LANES],
            ) * vec4<f32>(
                w[wb + k],
                w[wb + k + LANES],
                w[wb + k + 2u * LANES],
                w[wb + k + 3u * LANES],
            );
        }
        for (; k < p.k; k += LANES) {
            sums.x = fma(x[xb + k], w[wb + k], sums.x);
        }
    }
    partial[li] = (sums.x + sums.y) + (sums.z + sums.w);
    workgroupBarrier();
    if (lane == 0u && col < p.n) {
        var total = 0.0;
        for (var i = 0u; i < LANES; i++) {
            total += partial[li + i];
        }
        let at = p.y_offset + row * p.n + col;
        if (p.accumulate != 0u) {
            total += y[at];
        }
        y[at] = total;
    }
}
