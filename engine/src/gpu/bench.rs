//! Kernel-level measurements for `cargo xtask bench`: run the matmul kernel alone, many
//! times in one submission, so its throughput can be set beside candle's CPU matmul and
//! the card's peak. The caller times the call (the clock differs natively and in a page).

use super::context::GpuContext;
use super::kernels::{Kernel, MatmulParams, PipelineCache};
use super::pool::BufferPool;
use super::recorder::Recorder;
use crate::error::Result;

/// Prepared inputs for timing `y[m, n] = x[m, k] w[n, k]^T` on the GPU.
pub struct MatmulBench<'c> {
    context: &'c GpuContext,
    pipelines: PipelineCache,
    pool: BufferPool,
    shape: (usize, usize, usize),
}

impl<'c> MatmulBench<'c> {
    /// Prepares a benchmark of the `m x k` by `k x n` product.
    pub fn new(context: &'c GpuContext, m: usize, n: usize, k: usize) -> Self {
        MatmulBench {
            context,
            pipelines: PipelineCache::default(),
            pool: BufferPool::default(),
            shape: (m, n, k),
        }
    }

    /// Runs the product `repeats` times in one submission and waits for the result.
    /// The first call also compiles the pipeline: time a later one.
    pub async fn run(&self, repeats: usize) -> Result<()> {
        let (m, n, k) = self.shape;
        let mut rec = Recorder::new(self.context, &self.pipelines, &self.pool);
        // Values do not matter for timing; pooled buffers are zero-filled on creation.
        let x = rec.scratch(m * k);
        let w = rec.scratch(n * k);
        let y = rec.scratch(m * n);
        let params = MatmulParams::new(m, n, k);
        for _ in 0..repeats {
            rec.dispatch(Kernel::Matmul, params, &[&x, &w, &y], params.groups());
        }
        rec.read_back(&y, 0, 4);
        rec.run().await?;
        Ok(())
    }
}
