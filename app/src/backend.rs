//! `StudioBackend`: where a loaded model runs. WebGPU on the page, or the CPU path in
//! the worker (`cpu_worker.rs`). One enum, so a `Session<StudioBackend>` runs on either.
//! (Not the engine's `DeviceBackend`: its CPU variant would link candle into the page.)

use engine::gpu::{GpuBackend, GpuCache};
use engine::{Backend, DeviceKind, ForwardInput, ForwardOutput, ModelConfig};

use crate::cpu_worker::{WorkerBackend, WorkerCache};

/// A model on one of the studio's devices.
#[allow(clippy::large_enum_variant)] // one per loaded model
pub enum StudioBackend {
    /// WebGPU.
    Gpu(GpuBackend),
    /// The CPU path in the Web Worker.
    Worker(WorkerBackend),
}

/// The KV cache of a [`StudioBackend`].
pub enum StudioCache {
    /// Of a [`StudioBackend::Gpu`].
    Gpu(GpuCache),
    /// Of a [`StudioBackend::Worker`].
    Worker(WorkerCache),
}

impl StudioBackend {
    /// Whether the model runs on WebGPU.
    pub fn on_gpu(&self) -> bool {
        matches!(self, StudioBackend::Gpu(_))
    }
}

impl Backend for StudioBackend {
    type Cache = StudioCache;

    fn config(&self) -> &ModelConfig {
        match self {
            StudioBackend::Gpu(b) => b.config(),
            StudioBackend::Worker(b) => b.config(),
        }
    }

    fn kind(&self) -> DeviceKind {
        match self {
            StudioBackend::Gpu(b) => b.kind(),
            StudioBackend::Worker(b) => b.kind(),
        }
    }

    fn new_cache(&self) -> StudioCache {
        match self {
            StudioBackend::Gpu(b) => StudioCache::Gpu(b.new_cache()),
            StudioBackend::Worker(b) => StudioCache::Worker(b.new_cache()),
        }
    }

    fn cache_len(&self, cache: &StudioCache) -> usize {
        match (self, cache) {
            (StudioBackend::Gpu(b), StudioCache::Gpu(c)) => b.cache_len(c),
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
            (StudioBackend::Gpu(b), StudioCache::Gpu(c)) => b.forward(c, input).await,
            (StudioBackend::Worker(b), StudioCache::Worker(c)) => b.forward(c, input).await,
            _ => Err(engine::EngineError::Input(
                "a KV cache was used with another backend".into(),
            )),
        }
    }
}
