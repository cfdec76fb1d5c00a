//! A weight matrix on the GPU, as blocks of whole rows. WebGPU lets one binding see at
//! most the adapter's `maxStorageBufferBindingSize` (128 MiB on many adapters), and a
//! large vocabulary's table is bigger than that (SmolLM-360M's embedding: 189 MB in
//! f32). Such a matrix goes up as several blocks; a product with it runs once per
//! block, each writing its own columns of the output (`y_col`, `y_stride` in
//! `linear.wgsl`), and the embedding lookup once per block, each taking the tokens
//! whose ids fall in it.

use super::context::GpuContext;
use super::pool;
use super::recorder::Region;
use crate::error::{EngineError, Result};

/// Rows `first_row..first_row + rows` of a matrix, in a buffer of their own.
pub struct RowBlock {
    /// The rows, row-major.
    pub region: Region,
    /// The index of the block's first row in the whole matrix.
    pub first_row: usize,
    /// Rows in the block.
    pub rows: usize,
}

/// A row-major `[rows, cols]` matrix on the GPU, in one block or more.
pub struct Matrix {
    blocks: Vec<RowBlock>,
}

impl Matrix {
    /// Uploads the row-major `[values.len() / cols, cols]` matrix `values` in blocks of
    /// at most `block_bytes` each (`what` names it in the error when even one row is
    /// larger than that).
    pub fn upload(
        context: &GpuContext,
        values: &[f32],
        cols: usize,
        block_bytes: u64,
        what: &str,
    ) -> Result<Self> {
        let row_bytes = (cols.max(1) * 4) as u64;
        let rows_per_block = (block_bytes / row_bytes) as usize;
        if rows_per_block == 0 {
            return Err(EngineError::Gpu(format!(
                "one row of `{what}` takes {row_bytes} bytes, more than the {block_bytes} \
                 this GPU lets one buffer hold"
            )));
        }
        let rows = values.len() / cols.max(1);
        let blocks = (0..rows.max(1))
            .step_by(rows_per_block)
            .map(|first_row| {
                let end = (first_row + rows_per_block).min(rows);
                RowBlock {
                    region: upload_values(context, &values[first_row * cols..end * cols]),
                    first_row,
                    rows: end - first_row,
                }
            })
            .collect();
        Ok(Matrix { blocks })
    }

    /// The blocks, in row order.
    pub fn blocks(&self) -> &[RowBlock] {
        &self.blocks
    }

    /// The whole matrix as one region, where it is one block (kernels that read a
    /// matrix whole, such as `qkv_decode.wgsl`).
    pub fn whole(&self) -> Option<&Region> {
        match &self.blocks[..] {
            [only] => Some(&only.region),
            _ => None,
        }
    }
}

/// A storage buffer of its own holding `values`.
fn upload_values(context: &GpuContext, values: &[f32]) -> Region {
    let bytes = (values.len() * 4) as u64;
    let buffer = context.device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: bytes.max(4),
        usage: pool::STORAGE,
        mapped_at_creation: false,
    });
    context
        .queue
        .write_buffer(&buffer, 0, bytemuck::cast_slice(values));
    Region { buffer, bytes }
}
