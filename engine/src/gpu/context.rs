//! The GPU device: adapter and device acquisition, the limits the forward pass must
//! respect, device-loss tracking, and asynchronous read-back.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::kernels::MatVecShape;
use crate::error::{EngineError, Result};

/// A wgpu device and queue with what the engine needs to know about them.
pub struct GpuContext {
    /// The device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// The limits the device was created with (the adapter's own).
    pub limits: wgpu::Limits,
    /// Adapter name and driver, for display and benchmark tables.
    pub adapter: String,
    /// Kernel timestamps were asked for and the adapter has them (see `profile.rs`).
    pub profiling: bool,
    /// How `matvec.wgsl` shares an output among invocations on this adapter.
    matvec_shape: Cell<MatVecShape>,
    /// A smaller weight block than the limits allow, set by tests (see
    /// [`GpuContext::set_weight_block_bytes`]).
    weight_block_override: Cell<Option<u64>>,
    lost: Arc<Mutex<Option<String>>>,
    uncaptured: Arc<AtomicBool>,
}

impl GpuContext {
    /// Requests a high-performance adapter and a device with the adapter's own limits
    /// (so large models are not held to WebGPU's defaults). Fails with
    /// [`EngineError::Gpu`] when there is no adapter.
    pub async fn new() -> Result<Self> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| EngineError::Gpu(format!("no WebGPU adapter ({e})")))?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let profiling = super::profile::profiling_requested()
            && adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("drope-studio"),
                required_features: if profiling {
                    wgpu::Features::TIMESTAMP_QUERY
                } else {
                    wgpu::Features::empty()
                },
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| EngineError::Gpu(format!("could not open the GPU device ({e})")))?;
        let lost = Arc::new(Mutex::new(None));
        let lost_flag = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut slot) = lost_flag.lock() {
                *slot = Some(format!("{reason:?}: {message}"));
            }
        });
        // Errors outside an error scope would otherwise panic natively.
        let uncaptured = Arc::new(AtomicBool::new(false));
        let seen = Arc::clone(&uncaptured);
        device.on_uncaptured_error(Arc::new(move |_error: wgpu::Error| {
            seen.store(true, Ordering::SeqCst);
        }));
        // Browsers do not expose the adapter's name to wgpu.
        let adapter = if info.name.is_empty() {
            format!("{:?} adapter (name not exposed)", info.backend)
        } else if info.driver.is_empty() {
            format!("{} ({:?})", info.name, info.backend)
        } else {
            format!("{} ({:?}, {})", info.name, info.backend, info.driver)
        };
        Ok(GpuContext {
            device,
            queue,
            limits,
            adapter,
            profiling,
            matvec_shape: Cell::new(MatVecShape::for_device(info.device_type)),
            weight_block_override: Cell::new(None),
            lost,
            uncaptured,
        })
    }

    /// How `matvec.wgsl` shares an output among invocations: picked by adapter when
    /// the context is created.
    pub fn matvec_shape(&self) -> MatVecShape {
        self.matvec_shape.get()
    }

    /// Uses `shape` for the passes recorded from now on (tests and benchmarks run both
    /// on one device).
    pub fn set_matvec_shape(&self, shape: MatVecShape) {
        self.matvec_shape.set(shape);
    }

    /// The most bytes of a weight matrix one buffer holds: what one binding may see
    /// (and one buffer hold) on this adapter; larger matrices go up in blocks of rows
    /// (see `matrix.rs`).
    pub fn weight_block_bytes(&self) -> u64 {
        let limit = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size);
        self.weight_block_override
            .get()
            .map_or(limit, |b| b.min(limit))
    }

    /// Makes models uploaded from now on split their matrices into blocks of at most
    /// `bytes` (`None`: the adapter's limit), so that tests run the split path with
    /// small models on any adapter.
    pub fn set_weight_block_bytes(&self, bytes: Option<u64>) {
        self.weight_block_override.set(bytes);
    }

    /// An error if the device was lost (driver reset, tab in the background too long...).
    pub fn check_alive(&self) -> Result<()> {
        let lost = self.lost.lock().ok().and_then(|slot| slot.clone());
        match lost {
            Some(reason) => Err(EngineError::Gpu(format!(
                "the GPU device was lost ({reason})"
            ))),
            None if self.uncaptured.load(Ordering::SeqCst) => Err(EngineError::Gpu(
                "the GPU reported an error outside the forward pass".into(),
            )),
            None => Ok(()),
        }
    }

    /// Copies `size` bytes of a mappable buffer to the host once the GPU is done with
    /// it. Natively this blocks in `poll`; in a browser it yields to the event loop.
    pub async fn read(&self, buffer: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        let (sender, receiver) = futures_channel::oneshot::channel();
        buffer.map_async(wgpu::MapMode::Read, 0..size, move |result| {
            let _ = sender.send(result);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| EngineError::Gpu(format!("waiting for the GPU failed ({e})")))?;
        receiver
            .await
            .map_err(|_| EngineError::Gpu("the read-back was cancelled".into()))?
            .map_err(|e| EngineError::Gpu(format!("reading results back failed ({e})")))?;
        let bytes = buffer
            .get_mapped_range(0..size)
            .map_err(|e| EngineError::Gpu(format!("reading results back failed ({e:?})")))?
            .to_vec();
        buffer.unmap();
        Ok(bytes)
    }
}
