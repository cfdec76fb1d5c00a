//! A model ready to run: its manifest entry, the backend holding its weights, and its
//! tokenizer; and the download that produces one.

use std::sync::Arc;

use engine::cpu::CpuBackend;
use engine::{Backend, ModelConfig, TextTokenizer, TrainedPositions};

use crate::error::AppError;
use crate::manifest::{fetch_bytes, FileEntry, ModelEntry};

/// A downloaded and parsed model.
pub struct LoadedModel {
    /// What the manifest says about it.
    pub entry: ModelEntry,
    /// The weights on the CPU backend (shared with every session).
    pub backend: Arc<CpuBackend>,
    /// The tokenizer the model was trained with.
    pub tokenizer: Arc<TextTokenizer>,
}

impl LoadedModel {
    /// The model's `config.json`.
    pub fn config(&self) -> &ModelConfig {
        self.backend.config()
    }

    /// The training length `L`.
    pub fn training_length(&self) -> usize {
        self.config().training_length()
    }

    /// The longest prompt the page runs: 8L, the range the studio studies.
    pub fn max_tokens(&self) -> usize {
        8 * self.training_length()
    }

    /// The inference scheme that matches how the model was trained (text form).
    pub fn default_scheme(&self) -> &'static str {
        match self.config().position_embedding {
            TrainedPositions::Rope => "rope",
            TrainedPositions::None => "none",
        }
    }
}

/// Bytes received so far out of the total, for the progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadProgress {
    /// Bytes received over all of the model's files.
    pub received: u64,
    /// Sum of the manifest's sizes.
    pub total: u64,
}

/// Downloads, verifies and parses a model's three files, reporting progress over all
/// of them.
pub async fn load_model(
    entry: &ModelEntry,
    on_progress: impl Fn(DownloadProgress),
) -> Result<LoadedModel, AppError> {
    let total = entry.total_bytes();
    let mut done = 0u64;
    let mut download = |file: FileEntry| {
        let start = done;
        done += file.bytes;
        let on_progress = &on_progress;
        async move {
            let bytes = fetch_bytes(&file.url(), file.bytes, |received| {
                on_progress(DownloadProgress {
                    received: start + received,
                    total,
                })
            })
            .await?;
            file.verify(&bytes)?;
            Ok::<_, AppError>(bytes)
        }
    };
    let config = download(entry.files.config.clone()).await?;
    let tokenizer = download(entry.files.tokenizer.clone()).await?;
    let weights = download(entry.files.weights.clone()).await?;
    let backend = CpuBackend::load(&config, &weights)?;
    let tokenizer = TextTokenizer::from_json(&tokenizer)?;
    Ok(LoadedModel {
        entry: entry.clone(),
        backend: Arc::new(backend),
        tokenizer: Arc::new(tokenizer),
    })
}
