// y[M, N] (+)= x[M, K] * w[N, K]^T for a few rows (extending a prompt by a token or
// a handful): the tiled kernel would compute 64 rows where only M are wanted. Each
// invocation computes one output, walking its weight row alone: no workgroup memory and
// no barrier. CPU implementations of WebGPU (SwiftShader, lavapipe) run a workgroup's
// invocations as coroutines when it has a barrier, and a barrier costs them more than
// a whole output's arithmetic; a GPU's caches serve the strided reads of neighbouring
// rows, and at these sizes a pass waits on the launches, not on the arithmetic.
// It also applies what precedes a linear layer: the RMSNorm before the attention and
// MLP projections and the logits, or the SwiGLU before the down projection. A dispatch
// each would cost more than the arithmetic when extending by one token, where every
// kernel waits on the one before.

// What x holds (kernels.rs sets it, one pipeline each): 0 the rows themselves; 1 rows
// to RMS-normalise first (w holds the norm's weight, folded in at upload, so only the
// row's 1 / rms is left, a scalar that multiplies the dot product at the end); 2
// stacked [gate; up] rows of width 2K, to combine as silu(gate) * up first.
const INPUT: u32 = {INPUT}u;

// Value k of the row starting at xb, after the input's preceding step (bar the norm's
// scalar factor).
fn input_at(xb: u32, k: u32) -> f32 {
    if (INPUT == 2u) {
        let gate = x[xb + k];
        return gate / (1.0 + exp(-gate)) * x[xb + p.k + k];
    }
    return x[xb + k];
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.y;
    let col = gid.x;
    if (col >= p.n) {
        return;
    }
    // Stacked [gate; up] rows are twice as wide.
    let xb = row * p.k * select(1u, 2u, INPUT == 2u);
    let wb = col * p.k;
    // Four independent sums keep four loads in flight (see attention_values.wgsl).
    var sums = vec4<f32>(0.0);
    var squares = vec4<f32>(0.0);
    var k = 0u;
    for (; k + 3u < p.k; k += 4u) {
        let inputs = vec4<f32>(
            input_at(xb, k),
            input_at(xb, k + 1u),
            input_at(xb, k + 2u),
            input_at(xb, k + 3u),
        );
        sums += inputs * vec4<f32>(w[wb + k], w[wb + k + 1u], w[wb + k + 2u], w[wb + k + 3u]);
        if (INPUT == 1u) {
            squares += inputs * inputs;
        }
    }
    for (; k < p.k; k++) {
        let input = input_at(xb, k);
        sums.x = fma(input, w[wb + k], sums.x);
        squares.x = fma(input, input, squares.x);
    }
    var total = (sums.x + sums.y) + (sums.z + sums.w);
    if (INPUT == 1u) {
        let sum_squares = (squares.x + squares.y) + (squares.z + squares.w);
        total *= 1.0 / sqrt(sum_squares / f32(p.k) + p.eps);
    }
    let at = row * p.n + col;
    if (p.accumulate != 0u) {
        total += y[at];
    }
    y[at] = total;
}
