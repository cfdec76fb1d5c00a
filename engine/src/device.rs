//! `DeviceBackend`: one model on either device, chosen at run time (the app picks WebGPU
//! when an adapter exists and falls back to the CPU). A plain enum over the backends,
//! so callers hold one type and a `Session<DeviceBackend>` works on both.

use std::rc::Rc;

use crate::backend::{Backend, DeviceKind, ForwardInput, ForwardOutput};
use crate::config::ModelConfig;
use crate::cpu::{CpuBackend, LayerCache};
use crate::error::{EngineError, Result};
use crate::gpu::{GpuBackend, GpuCache, GpuContext};
use crate::weights::ModelWeights;

/// A model on the CPU or on the GPU. Few of these exist (one per loaded model), so the
/// size difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum DeviceBackend {
    /// candle on the CPU (the reference).
    Cpu(CpuBackend),
    /// WGSL kernels on wgpu.
    Gpu(GpuBackend),
}

/// The KV cache of a [`DeviceBackend`].
pub enum DeviceCache {
    /// CPU cache.
    Cpu(Vec<LayerCache>),
    /// GPU cache.
    Gpu(GpuCache),
}

impl DeviceBackend {
    /// Loads `config.json` and `model.safetensors` bytes onto the GPU when a context is
    /// given, else onto the CPU.
    pub fn load(
        context: Option<Rc<GpuContext>>,
        config_json: &[u8],
        safetensors: &[u8],
    ) -> Result<Self> {
        let config = ModelConfig::from_json(config_json)?;
        let weights = ModelWeights::from_safetensors(&config, safetensors)?;
        Self::from_weights(context, config, weights)
    }

    /// Wraps weights already in memory.
    pub fn from_weights(
        context: Option<Rc<GpuContext>>,
        config: ModelConfig,
        weights: ModelWeights,
    ) -> Result<Self> {
        Ok(match context {
            Some(context) => DeviceBackend::Gpu(GpuBackend::new(context, config, &weights)?),
            None => DeviceBackend::Cpu(CpuBackend::from_weights(config, weights)?),
        })
    }
}

impl Backend for DeviceBackend {
    type Cache = DeviceCache;

    fn config(&self) -> &ModelConfig {
        match self {
            DeviceBackend::Cpu(b) => b.config(),
            DeviceBackend::Gpu(b) => b.config(),
        }
    }

    fn kind(&self) -> DeviceKind {
        match self {
            DeviceBackend::Cpu(b) => b.kind(),
            DeviceBackend::Gpu(b) => b.kind(),
        }
    }

    fn new_cache(&self) -> Self::Cache {
        match self {
            DeviceBackend::Cpu(b) => DeviceCache::Cpu(b.new_cache()),
            DeviceBackend::Gpu(b) => DeviceCache::Gpu(b.new_cache()),
        }
    }

    fn cache_len(&self, cache: &Self::Cache) -> usize {
        match (self, cache) {
            (DeviceBackend::Cpu(b), DeviceCache::Cpu(c)) => b.cache_len(c),
            (DeviceBackend::Gpu(b), DeviceCache::Gpu(c)) => b.cache_len(c),
            _ => 0,
        }
    }

    async fn forward(
        &self,
        cache: &mut Self::Cache,
        input: ForwardInput<'_>,
    ) -> Result<ForwardOutput> {
        match (self, cache) {
            (DeviceBackend::Cpu(b), DeviceCache::Cpu(c)) => b.forward(c, input).await,
            (DeviceBackend::Gpu(b), DeviceCache::Gpu(c)) => b.forward(c, input).await,
            _ => Err(EngineError::Input(
                "this KV cache belongs to the other device; start a new session".into(),
            )),
        }
    }
}
