//! Native diagnostics for tuning the GPU path, off unless asked for by environment
//! variables (the browser never sets them):
//! - `DROPE_GPU_TRACE`: wall time of each phase of a pass (planning the dispatches, bind
//!   groups, recording, error scopes, GPU work plus read-back), to tell fixed per-pass
//!   costs from GPU work;
//! - `DROPE_GPU_PROFILE`: GPU time of every kernel from timestamp queries (each dispatch
//!   in its own compute pass, so only where the adapter has `TIMESTAMP_QUERY`), summed by
//!   kernel, to see which kernels a pass waits on (`DROPE_GPU_PROFILE=each` also
//!   lists every dispatch in order).

use std::collections::BTreeMap;

use super::kernels::Kernel;

/// Whether kernel profiling was asked for (native only).
pub fn profiling_requested() -> bool {
    #[cfg(not(target_arch = "wasm32"))]
    return std::env::var_os("DROPE_GPU_PROFILE").is_some();
    #[cfg(target_arch = "wasm32")]
    false
}

/// Timestamp queries around each dispatch of one pass.
pub struct KernelTimer {
    pub queries: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    /// Where the resolved ticks are copied for mapping.
    pub staging: wgpu::Buffer,
    kernels: Vec<Kernel>,
}

impl KernelTimer {
    /// A timer for `kernels` (in dispatch order), or `None` when there are more
    /// dispatches than one query set holds.
    pub fn new(device: &wgpu::Device, kernels: Vec<Kernel>) -> Option<Self> {
        let count = 2 * kernels.len() as u32;
        if count == 0 || count > wgpu::QUERY_SET_MAX_QUERIES {
            return None;
        }
        let bytes = count as u64 * wgpu::QUERY_SIZE as u64;
        let buffer = |usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("kernel-timestamps"),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        Some(KernelTimer {
            queries: device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("kernel-timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count,
            }),
            resolved: buffer(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC),
            staging: buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST),
            kernels,
        })
    }

    /// The timestamp writes around dispatch `index`.
    pub fn writes(&self, index: usize) -> wgpu::ComputePassTimestampWrites<'_> {
        wgpu::ComputePassTimestampWrites {
            query_set: &self.queries,
            beginning_of_pass_write_index: Some(2 * index as u32),
            end_of_pass_write_index: Some(2 * index as u32 + 1),
        }
    }

    /// Records copying the timestamps to the staging buffer (after the passes).
    pub fn resolve(&self, encoder: &mut wgpu::CommandEncoder) {
        let count = 2 * self.kernels.len() as u32;
        encoder.resolve_query_set(&self.queries, 0..count, &self.resolved, 0);
        encoder.copy_buffer_to_buffer(&self.resolved, 0, &self.staging, 0, self.staging.size());
    }

    /// Prints GPU microseconds per kernel (summed over its dispatches), largest first,
    /// from the mapped timestamps; `period` is nanoseconds per tick.
    pub fn report(&self, ticks: &[u8], period: f32) {
        let ticks: Vec<u64> = ticks
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .collect();
        let each = std::env::var("DROPE_GPU_PROFILE").is_ok_and(|v| v == "each");
        if each {
            eprintln!("  GPU time by dispatch:");
        }
        let mut by_kernel: BTreeMap<String, (f64, usize)> = BTreeMap::new();
        for (kernel, pair) in self.kernels.iter().zip(ticks.chunks_exact(2)) {
            let micros = pair[1].saturating_sub(pair[0]) as f64 * period as f64 / 1e3;
            let entry = by_kernel.entry(format!("{kernel:?}")).or_default();
            entry.0 += micros;
            entry.1 += 1;
            if each {
                eprintln!("    {micros:>10.1} us  {kernel:?}");
            }
        }
        let mut rows: Vec<_> = by_kernel.into_iter().collect();
        rows.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
        let total: f64 = rows.iter().map(|(_, (micros, _))| micros).sum();
        eprintln!("  GPU time by kernel ({total:.1} us in all):");
        for (name, (micros, count)) in rows {
            eprintln!("    {micros:>10.1} us  {count:>4} x  {name}");
        }
    }
}

/// Prints how long each phase of a pass took when `DROPE_GPU_TRACE` is set (native
/// only).
pub struct PhaseTimer {
    #[cfg(not(target_arch = "wasm32"))]
    last: Option<std::cell::Cell<std::time::Instant>>,
}

impl PhaseTimer {
    /// Starts timing a pass (at the start of its recording).
    pub fn start() -> Self {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let on = std::env::var_os("DROPE_GPU_TRACE").is_some();
            if on {
                eprintln!("gpu pass:");
            }
            PhaseTimer {
                last: on.then(|| std::cell::Cell::new(std::time::Instant::now())),
            }
        }
        #[cfg(target_arch = "wasm32")]
        PhaseTimer {}
    }

    /// Prints the time since the previous mark.
    pub fn mark(&self, phase: &str) {
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(last) = &self.last {
            let now = std::time::Instant::now();
            eprintln!(
                "  {phase}: {:.3} ms",
                (now - last.get()).as_secs_f64() * 1e3
            );
            last.set(now);
        }
        #[cfg(target_arch = "wasm32")]
        let _ = phase;
    }
}
