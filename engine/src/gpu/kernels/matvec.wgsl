// y[M, N] (+)= x[M, K] * w[N, K]^T for a few rows (extending a prompt by a token or
// a handful): the tiled kernel would compute 64 rows where only M are wanted. LANES
// invocations share an output, each summing every LANES-th term of its dot product
// (kernels.rs, `MatVecShape`, picks per adapter):
// - LANES = 1, for CPU implementations of WebGPU (SwiftShader, lavapipe): each
//   invocation walks its weight row alone, with no workgroup memory and no barrier.
//   They run a workgroup's invocations as coroutines when it has a barrier, and a
//   barrier costs them more than a whole output's arithmetic.
// - LANES = 32, for GPUs: neighbouring invocations read neighbouring weights (one
//   coalesced read per step where LANES = 1 reads 32 rows apart), and each invocation's
//   chain of dependent loads is K / 32 long instead of K. Extending by one token waits
//   on each kernel's longest chain, not on its arithmetic; one barrier then adds the
//   lanes' sums.
// kernels.rs appends the `lane_sum` that goes with LANES (lane_sum_alone.wgsl or
// lane_sum_shared.wgsl), so the LANES = 1 kernel holds no barrier at all, not even
// one behind a constant condition.
// It also applies what precedes a linear layer: the RMSNorm before the attention and
// MLP projections and the logits, or the SwiGLU before the down projection. A dispatch
// each would cost more than the arithmetic when extending by one token, where every
// kernel waits on the one before.

// What x holds (kernels.rs sets it, one pipeline each): 0 the rows themselves; 1 rows
// to RMS-normalise first (w holds the norm's weight, folded in at upload, so only the
// row's 1 / rms is left, a scalar that multiplies the dot product at the end); 2
// stacked [gate; up] rows of width 2K, to combine as silu(gate) * up first.
const INPUT: u32 = {INPUT}u;
const LANES: u32 = {LANES}u;
const WG: u32 = {WG}u;

// Value k of the row starting at xb, after the input's preceding step (bar the norm's
// scalar factor).
fn input_at(xb: u32, k: u32) -> f32 {
    if (INPUT == 2u) {
        let gate = x[xb + k];
        return gate / (1.0 + exp(-gate)) * x[xb + p.k + k];
    }
    return x[xb + k];
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = wid.y;
    let col = wid.x * (WG / LANES) + li / LANES;
    let lane = li % LANES;
    // Stacked [gate; up] rows are twice as wide.
    let xb = row * p.k * select(1u, 2u, INPUT == 2u);
    // Four independent sums keep four loads in flight (see attention_values.wgsl).
    var sums = vec4<f32>(0.0);
    var squares = vec4<f32>(0.0);
    // No early return before `lane_sum`: with LANES > 1 every invocation must reach
    // its barrier.
    if (col < p.n) {
        let wb = col * p.k;
        var k = lane;
        for (; k + 3u * LANES < p.k; k += 4u * LANES) {
            let inputs = vec4<f32>(
                input_at(xb, k),
                input_at(xb, k + LANES),
                input_at(xb, k + 2u * LANES),
                input_at(xb, k + 3u * LANES),
            );
            sums += inputs * vec4<f32>(
                w[wb + k],
                w[wb + k + LANES],
                w[wb + k + 2u * LANES],
                w[wb + k + 3u * LANES],
            );
            if (INPUT == 1u) {
                squares += inputs * inputs;
            }
        }
        for (; k < p.k; k += LANES) {
            let input = input_at(xb, k);
            sums.x = fma(input, w[wb + k], sums.x);
            squares.x = fma(input, input, squares.x);
        }
    }
    // (dot product, sum of squares) of the whole row, in lane 0.
    let whole = lane_sum(
        li,
        lane,
        vec2<f32>((sums.x + sums.y) + (sums.z + sums.w), (squares.x + squares.y) + (squares.z + squares.w)),
    );
    if (lane != 0u || col >= p.n) {
        return;
    }
    var total = whole.x;
    if (INPUT == 1u) {
        total *= 1.0 / sqrt(whole.y / f32(p.k) + p.eps);
    }
    let at = row * p.y_stride + p.y_col + col;
    if (p.accumulate != 0u) {
        total += y[at];
    }
    y[at] = total;
}
