//! Records one forward pass: kernel dispatches with their parameter blocks, the copies
//! that gather results into one read-back buffer, then a single submit and a single
//! asynchronous map. All parameter blocks share one uniform buffer (written once),
//! every temporary buffer comes from the pool and goes back to it afterwards, and bind
//! groups that bind what the last pass bound are reused (see `bind_groups.rs`).

use std::rc::Rc;

use bytemuck::Pod;

use super::bind_groups::{BindGroupCache, BindKey};
use super::context::GpuContext;
use super::kernels::{Kernel, PipelineCache};
use super::pool::{BufferPool, STORAGE};
use super::profile::{KernelTimer, PhaseTimer};
use crate::error::{EngineError, Result};

/// A buffer region bound to a kernel: the buffer and the bytes of it to bind.
#[derive(Clone)]
pub struct Region {
    /// The buffer.
    pub buffer: wgpu::Buffer,
    /// Bytes bound, from offset 0 (pooled buffers may be larger than needed).
    pub bytes: u64,
}

struct Dispatch {
    kernel: Kernel,
    pipeline: Rc<wgpu::ComputePipeline>,
    params_offset: u64,
    params_bytes: u64,
    /// Buffers and the bytes bound of each, in binding order 1, 2, ...
    storage: Vec<(wgpu::Buffer, u64)>,
    groups: (u32, u32, u32),
}

/// A region of the read-back buffer, returned by [`Recorder::read_back`].
#[derive(Debug, Clone, Copy)]
pub struct ReadSlot {
    offset: usize,
    bytes: usize,
}

/// What a model's passes keep between them: compiled pipelines, free buffers and the
/// last pass's bind groups.
#[derive(Default)]
pub struct PassCaches {
    pub pipelines: PipelineCache,
    pub pool: BufferPool,
    pub bind_groups: BindGroupCache,
}

/// Collects the work of one forward pass.
pub struct Recorder<'a> {
    context: &'a GpuContext,
    pipelines: &'a PipelineCache,
    pool: &'a BufferPool,
    bind_groups: &'a BindGroupCache,
    trace: PhaseTimer,
    params: Vec<u8>,
    dispatches: Vec<Dispatch>,
    /// (source, source offset, bytes, offset in the read-back buffer)
    reads: Vec<(wgpu::Buffer, u64, u64, u64)>,
    read_bytes: u64,
    /// Copies to run before the kernels (KV cache growth).
    pre_copies: Vec<(wgpu::Buffer, wgpu::Buffer, u64)>,
    borrowed: Vec<wgpu::Buffer>,
}

impl<'a> Recorder<'a> {
    /// Starts an empty recording.
    pub fn new(context: &'a GpuContext, caches: &'a PassCaches) -> Self {
        Recorder {
            context,
            pipelines: &caches.pipelines,
            pool: &caches.pool,
            bind_groups: &caches.bind_groups,
            trace: PhaseTimer::start(),
            params: Vec::new(),
            dispatches: Vec::new(),
            reads: Vec::new(),
            read_bytes: 0,
            pre_copies: Vec::new(),
            borrowed: Vec::new(),
        }
    }

    /// A pooled storage buffer for `floats` 4-byte values, returned to the pool when the
    /// pass is done. The region is the whole pooled buffer (up to the device's binding
    /// limit): a pass one token longer than the last then binds the same bytes and
    /// reuses its bind groups. Kernels never read past the sizes their parameters give.
    pub fn scratch(&mut self, floats: usize) -> Region {
        let bytes = (floats.max(1) * 4) as u64;
        let buffer = self.pool.take(&self.context.device, bytes, STORAGE);
        self.borrowed.push(buffer.clone());
        let limit = self.context.limits.max_storage_buffer_binding_size;
        Region {
            bytes: buffer.size().min(limit).max(bytes),
            buffer,
        }
    }

    /// A pooled buffer holding `values` (token ids, rotation tables).
    pub fn upload<T: Pod>(&mut self, values: &[T]) -> Region {
        let region = self.scratch(values.len().max(1) * std::mem::size_of::<T>() / 4);
        if !values.is_empty() {
            self.context
                .queue
                .write_buffer(&region.buffer, 0, bytemuck::cast_slice(values));
        }
        region
    }

    /// Copies `bytes` of `from` into `to` before any kernel runs.
    pub fn copy_first(&mut self, from: &wgpu::Buffer, to: &wgpu::Buffer, bytes: u64) {
        if bytes > 0 {
            self.pre_copies.push((from.clone(), to.clone(), bytes));
        }
    }

    /// Records a dispatch of `kernel` with its parameter block and storage regions (in
    /// binding order 1, 2, ...).
    pub fn dispatch<P: Pod>(
        &mut self,
        kernel: Kernel,
        params: P,
        regions: &[&Region],
        groups: (u32, u32, u32),
    ) {
        let align = self
            .context
            .limits
            .min_uniform_buffer_offset_alignment
            .max(16) as usize;
        let offset = self.params.len().div_ceil(align) * align;
        self.params.resize(offset, 0);
        self.params.extend_from_slice(bytemuck::bytes_of(&params));
        self.dispatches.push(Dispatch {
            kernel,
            pipeline: self.pipelines.get(&self.context.device, kernel),
            params_offset: offset as u64,
            params_bytes: std::mem::size_of::<P>() as u64,
            storage: regions
                .iter()
                .map(|r| (r.buffer.clone(), r.bytes))
                .collect(),
            groups,
        });
    }

    /// Workgroups for `count` independent items of `per_group` each, spread over x and
    /// y when x alone would pass the device's per-dimension limit (kernels index items
    /// as `(wid.y * groups.x + wid.x) * per_group + local`).
    pub fn grid(&self, count: usize, per_group: u32) -> (u32, u32, u32) {
        let groups = (count.max(1) as u64).div_ceil(per_group as u64);
        let max = self
            .context
            .limits
            .max_compute_workgroups_per_dimension
            .max(1) as u64;
        if groups <= max {
            (groups as u32, 1, 1)
        } else {
            (max as u32, groups.div_ceil(max) as u32, 1)
        }
    }

    /// Schedules `bytes` of `source` from `offset` to be read back after the kernels.
    pub fn read_back(&mut self, source: &Region, offset: u64, bytes: u64) -> ReadSlot {
        let slot = ReadSlot {
            offset: self.read_bytes as usize,
            bytes: bytes as usize,
        };
        self.reads
            .push((source.buffer.clone(), offset, bytes, self.read_bytes));
        self.read_bytes += bytes.div_ceil(4) * 4;
        slot
    }

    /// Submits everything and waits (asynchronously) for the read-back. Validation and
    /// out-of-memory errors of the whole pass come back as [`EngineError::Gpu`].
    pub async fn run(mut self) -> Result<ReadBack> {
        let trace = self.trace;
        trace.mark(&format!("{} dispatches planned", self.dispatches.len()));
        let device = &self.context.device;
        let out_of_memory = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);

        let params_buffer = self.pool.take(
            device,
            self.params.len().max(16) as u64,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        );
        self.context
            .queue
            .write_buffer(&params_buffer, 0, &self.params);
        let staging = self.pool.take(
            device,
            self.read_bytes.max(4),
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );

        let mut encoder = device.create_command_encoder(&Default::default());
        for (from, to, bytes) in &self.pre_copies {
            encoder.copy_buffer_to_buffer(from, 0, to, 0, *bytes);
        }
        // The keys take the storage bindings: recording needs only pipelines and groups.
        let keys = self
            .dispatches
            .iter_mut()
            .map(|d| BindKey {
                kernel: d.kernel,
                params: (params_buffer.clone(), d.params_offset, d.params_bytes),
                storage: std::mem::take(&mut d.storage),
            })
            .collect();
        let (bind_groups, reuse) = self.bind_groups.take_or_create(keys, |key| {
            let (params, offset, size) = &key.params;
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: params,
                    offset: *offset,
                    size: wgpu::BufferSize::new(*size),
                }),
            }];
            for (i, (buffer, bytes)) in key.storage.iter().enumerate() {
                entries.push(wgpu::BindGroupEntry {
                    binding: i as u32 + 1,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer,
                        offset: 0,
                        size: wgpu::BufferSize::new(*bytes),
                    }),
                });
            }
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &self
                    .pipelines
                    .get(device, key.kernel)
                    .get_bind_group_layout(0),
                entries: &entries,
            })
        });
        trace.mark(&format!(
            "bind groups ({} reused, {} created)",
            reuse.reused, reuse.created
        ));
        let timer = self
            .context
            .profiling
            .then(|| KernelTimer::new(device, self.dispatches.iter().map(|d| d.kernel).collect()))
            .flatten();
        match &timer {
            None => {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                for (d, group) in self.dispatches.iter().zip(&bind_groups) {
                    pass.set_pipeline(&d.pipeline);
                    pass.set_bind_group(0, group, &[]);
                    pass.dispatch_workgroups(d.groups.0, d.groups.1, d.groups.2);
                }
            }
            // Profiling: one pass per dispatch, timestamps around each.
            Some(timer) => {
                for (index, (d, group)) in self.dispatches.iter().zip(&bind_groups).enumerate() {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: None,
                        timestamp_writes: Some(timer.writes(index)),
                    });
                    pass.set_pipeline(&d.pipeline);
                    pass.set_bind_group(0, group, &[]);
                    pass.dispatch_workgroups(d.groups.0, d.groups.1, d.groups.2);
                }
                timer.resolve(&mut encoder);
            }
        }
        for (source, offset, bytes, target) in &self.reads {
            encoder.copy_buffer_to_buffer(
                source,
                *offset,
                &staging,
                *target,
                bytes.div_ceil(4) * 4,
            );
        }
        self.context.queue.submit([encoder.finish()]);
        trace.mark("recorded and submitted");

        let validation = validation.pop().await;
        let out_of_memory = out_of_memory.pop().await;
        if let Some(error) = out_of_memory.or(validation) {
            return Err(EngineError::Gpu(error.to_string()));
        }
        trace.mark("error scopes");
        let bytes = self.context.read(&staging, self.read_bytes.max(4)).await?;
        trace.mark("GPU work and read-back");
        if let Some(timer) = &timer {
            let ticks = self
                .context
                .read(&timer.staging, timer.staging.size())
                .await?;
            timer.report(&ticks, self.context.queue.get_timestamp_period());
        }
        self.context.check_alive()?;
        // In reverse, so the next pass's takes get the same buffers in the same order
        // (the pool hands out the last buffer given back first).
        self.pool.give_back(self.borrowed.into_iter().rev());
        self.pool.give_back([params_buffer, staging]);
        Ok(ReadBack { bytes })
    }
}

/// The bytes read back after a pass.
pub struct ReadBack {
    bytes: Vec<u8>,
}

impl ReadBack {
    /// The f32 values of a slot.
    pub fn floats(&self, slot: ReadSlot) -> Vec<f32> {
        self.bytes[slot.offset..slot.offset + slot.bytes]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }
}
