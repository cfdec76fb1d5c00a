//! `StudioBackend`: where a loaded model runs. WebGPU (or the CPU, on the page's own
//! thread) through the engine's `DeviceBackend`, or the CPU path in the worker
//! (`cpu_worker.rs`). One enum, so a `Session<StudioBackend>` runs on any of them.

use engine::device::{DeviceBackend, DeviceCache};
use engine::{Backend, DeviceKind, ForwardInput, ForwardOutput, ModelConfig};

use crate::cpu_worker::{WorkerBackend, WorkerCache};

/// A model on one of the studio's devices.
#[allow(clippy::large_enum_variant)] // one per loaded model
pub enum StudioBackend {
    /// WebGPU, or the CPU on the page's thread.
    Device(DeviceBackend),
    /// The CPU path in the Web Worker.
    Worker(WorkerBackend),
}

/// The KV cache of a [`StudioBackend`].
pub enum StudioCache {
    /// Of a [`StudioBackend::Device`].
    Device(DeviceCache),
    /// Of a [`StudioBackend::Worker`].
    Worker(WorkerCache),
}

impl StudioBackend {
    /// Whether the model runs on WebGPU.
    pub fn on_gpu(&self) -> bool {
        matches!(self, StudioBackend::Device(DeviceBackend::Gpu(_)))
    }
}

impl Backend for StudioBackend {
    type Cache = StudioCache;

    fn config(&self) -> &ModelConfig {
        match self {
            StudioBackend::Device(b) => b.config(),
            StudioBackend::Worker(b) => b.config(),
        }
    }

    fn kind(&self) -> DeviceKind {
        match self {
            StudioBackend::Device(b) => b.kind(),
            StudioBackend::Worker(b) => b.kind(),
        }
    }

    fn new_cache(&self) -> StudioCache {
        match self {
            StudioBackend::Device(b) => StudioCache::Device(b.new_cache()),
            StudioBackend::Worker(b) => StudioCache::Worker(b.new_cache()),
        }
    }

    fn cache_len(&self, cache: &StudioCache) -> usize {
        match (self, cache) {
            (StudioBackend::Device(b), StudioCache::Device(c)) => b.cache_len(c),
            (StudioBackend::Worker(b), StudioCache::Worker(c)) => b.cache_len(c),
            _ => 0,
        }
    }

    async fn forward(
        &self,
        cache: &mut StudioCache,
        input: ForwardInput<'_>,
    ) -> engine::Result<ForwardOutput> {
        match (self, cache) {
            (StudioBackend::Device(b), StudioCache::Device(c)) => b.forward(c, input).await,
            (StudioBackend::Worker(b), StudioCache::Worker(c)) => b.forward(c, input).await,
            _ => Err(engine::EngineError::Input(
                "a KV cache was used with another backend".into(),
            )),
        }
    }
}
