//! A pool of storage buffers, so the forward pass does not create and destroy GPU
//! buffers on every call (buffer creation is one of WebGPU's slowest operations).
//! Sizes are rounded up to a power of two, so a prompt that grows by one token
//! reuses last call's buffers.

use std::cell::RefCell;
use std::collections::HashMap;

/// Usage of every pooled buffer: kernels read and write it, copies read it.
pub const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Free buffers by size class; at most `MAX_POOLED_BYTES` are kept.
#[derive(Default)]
pub struct BufferPool {
    free: RefCell<HashMap<(u64, u32), Vec<wgpu::Buffer>>>,
}

const MAX_POOLED_BYTES: u64 = 512 << 20;

impl BufferPool {
    /// A buffer of at least `bytes` bytes with `usage`, from the pool when one is free.
    pub fn take(
        &self,
        device: &wgpu::Device,
        bytes: u64,
        usage: wgpu::BufferUsages,
    ) -> wgpu::Buffer {
        // Powers of two up to 16 MiB; above that 1 MiB steps, so a large buffer does not
        // double past the device's maximum buffer size.
        let size = if bytes <= 16 << 20 {
            bytes.max(256).next_power_of_two()
        } else {
            bytes.div_ceil(1 << 20) << 20
        };
        if let Some(buffer) = self
            .free
            .borrow_mut()
            .get_mut(&(size, usage.bits()))
            .and_then(Vec::pop)
        {
            return buffer;
        }
        device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage,
            mapped_at_creation: false,
        })
    }

    /// Returns buffers for reuse (dropping them instead when the pool is full).
    pub fn give_back(&self, buffers: impl IntoIterator<Item = wgpu::Buffer>) {
        let mut free = self.free.borrow_mut();
        let mut held: u64 = free
            .iter()
            .map(|((size, _), v)| size * v.len() as u64)
            .sum();
        for buffer in buffers {
            if held + buffer.size() > MAX_POOLED_BYTES {
                continue;
            }
            held += buffer.size();
            free.entry((buffer.size(), buffer.usage().bits()))
                .or_default()
                .push(buffer);
        }
    }
}
