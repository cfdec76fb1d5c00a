// `lane_sum` for matvec.wgsl with LANES > 1: the LANES invocations li - lane .. of one
// output add their partial sums through workgroup memory; lane 0 gets the total (the
// other lanes' results are not used). Every invocation of the workgroup must call it.
var<workgroup> partial: array<vec2<f32>, WG>;

fn lane_sum(li: u32, lane: u32, sums: vec2<f32>) -> vec2<f32> {
    partial[li] = sums;
    workgroupBarrier();
    var total = vec2<f32>(0.0);
    if (lane == 0u) {
        for (var i = 0u; i < LANES; i++) {
            total += partial[li + i];
        }
    }
    return total;
}
