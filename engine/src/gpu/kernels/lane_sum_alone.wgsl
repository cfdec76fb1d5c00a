// `lane_sum` for matvec.wgsl with LANES = 1: each invocation's sums are already the
// whole row's (no workgroup memory, no barrier).
fn lane_sum(li: u32, lane: u32, sums: vec2<f32>) -> vec2<f32> {
    return sums;
}
