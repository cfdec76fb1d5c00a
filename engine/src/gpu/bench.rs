//! The matmul kernel on its own: timed by `cargo xtask bench` (many dispatches in one
//! submission, so its throughput can be set beside candle's CPU matmul and the card's
//! peak; the caller times the call, as the clock differs natively and in a page), and
//! checked against a CPU product for every tiling by the conformance suite.

use super::context::GpuContext;
use super::kernels::{Kernel, MatmulParams, MatmulTiling};
use super::recorder::{PassCaches, Recorder};
use crate::error::Result;

/// `x[m, k] w[n, k]^T` computed by `kernel` (a tiled kernel or the few-rows one),
/// read back.
pub async fn matmul(
    context: &GpuContext,
    kernel: Kernel,
    x: &[f32],
    w: &[f32],
    (m, n, k): (usize, usize, usize),
) -> Result<Vec<f32>> {
    let caches = PassCaches::default();
    let mut rec = Recorder::new(context, &caches);
    let x = rec.upload(x);
    let w = rec.upload(w);
    let y = rec.scratch(m * n);
    let params = MatmulParams::new(m, n, k);
    rec.dispatch(kernel, params, &[&x, &w, &y], params.groups(kernel));
    let slot = rec.read_back(&y, 0, (m * n * 4) as u64);
    Ok(rec.run().await?.floats(slot))
}

/// Prepared inputs for timing `y[m, n] = x[m, k] w[n, k]^T` on the GPU.
pub struct MatmulBench<'c> {
    context: &'c GpuContext,
    caches: PassCaches,
    shape: (usize, usize, usize),
    tiling: MatmulTiling,
}

impl<'c> MatmulBench<'c> {
    /// Prepares a benchmark of the `m x k` by `k x n` product with the tiling the
    /// forward pass would pick for it.
    pub fn new(context: &'c GpuContext, m: usize, n: usize, k: usize) -> Self {
        Self::with_tiling(context, m, n, k, MatmulTiling::for_output(m, n))
    }

    /// The same with a chosen tiling (the benchmark's comparison of tilings).
    pub fn with_tiling(
        context: &'c GpuContext,
        m: usize,
        n: usize,
        k: usize,
        tiling: MatmulTiling,
    ) -> Self {
        MatmulBench {
            context,
            caches: PassCaches::default(),
            shape: (m, n, k),
            tiling,
        }
    }

    /// Runs the product `repeats` times in one submission and waits for the result.
    /// The first call also compiles the pipeline: time a later one.
    pub async fn run(&self, repeats: usize) -> Result<()> {
        let (m, n, k) = self.shape;
        let mut rec = Recorder::new(self.context, &self.caches);
        // Values do not matter for timing; pooled buffers are zero-filled on creation.
        let x = rec.scratch(m * k);
        let w = rec.scratch(n * k);
        let y = rec.scratch(m * n);
        let params = MatmulParams::new(m, n, k);
        for _ in 0..repeats {
            let kernel = Kernel::Matmul(self.tiling);
            rec.dispatch(kernel, params, &[&x, &w, &y], params.groups(kernel));
        }
        rec.read_back(&y, 0, 4);
        rec.run().await?;
        Ok(())
    }
}
