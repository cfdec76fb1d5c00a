//! `public/models/manifest.json`: the list of models the page offers, with the size and
//! sha256 of every file so the browser can show progress and verify downloads.

use std::path::Path;

use engine::ModelConfig;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::args::Args;

/// One file of a model, relative to the models folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to `models/`.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Lower-case hex sha256.
    pub sha256: String,
}

/// The files a model needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelFiles {
    /// `config.json`.
    pub config: FileEntry,
    /// `model.safetensors`.
    pub weights: FileEntry,
    /// `tokenizer.json`.
    pub tokenizer: FileEntry,
}

/// One model offered by the page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelEntry {
    /// Folder name and URL id.
    pub id: String,
    /// Name shown on the page.
    pub label: String,
    /// False for random-weight placeholders.
    pub trained: bool,
    /// One sentence on what the model is.
    pub description: String,
    /// Training length L.
    pub training_length: usize,
    /// Parameter count.
    pub parameters: usize,
    /// Files to download.
    pub files: ModelFiles,
}

/// What `manifest.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Manifest {
    /// Models in display order.
    pub models: Vec<ModelEntry>,
}

/// The descriptive part of a model folder, kept beside its weights in `model-card.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    /// Name shown on the page.
    pub label: String,
    /// False for random-weight placeholders.
    pub trained: bool,
    /// One sentence on what the model is.
    pub description: String,
    /// Display order (lower first).
    pub order: u32,
    /// Tokenizer path relative to the models folder.
    pub tokenizer: String,
}

fn file_entry(models: &Path, relative: &str) -> Result<FileEntry, String> {
    let bytes = std::fs::read(models.join(relative)).map_err(|e| format!("{relative}: {e}"))?;
    let sha256 = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(FileEntry {
        path: relative.to_string(),
        bytes: bytes.len() as u64,
        sha256,
    })
}

/// Rebuilds the manifest from every folder of `models` that has a `model-card.json`.
pub fn rebuild(models: &Path) -> Result<Manifest, String> {
    let mut entries: Vec<(u32, ModelEntry)> = Vec::new();
    let dirs = std::fs::read_dir(models).map_err(|e| format!("{}: {e}", models.display()))?;
    for dir in dirs.filter_map(|d| d.ok()) {
        let card_path = dir.path().join("model-card.json");
        if !card_path.exists() {
            continue;
        }
        let id = dir.file_name().to_string_lossy().into_owned();
        let card: ModelCard =
            serde_json::from_slice(&std::fs::read(&card_path).map_err(|e| e.to_string())?)
                .map_err(|e| format!("{}: {e}", card_path.display()))?;
        let config_path = format!("{id}/config.json");
        let config = ModelConfig::from_json(
            &std::fs::read(models.join(&config_path)).map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("{config_path}: {e}"))?;
        let files = ModelFiles {
            config: file_entry(models, &config_path)?,
            weights: file_entry(models, &format!("{id}/model.safetensors"))?,
            tokenizer: file_entry(models, &card.tokenizer)?,
        };
        entries.push((
            card.order,
            ModelEntry {
                id,
                label: card.label,
                trained: card.trained,
                description: card.description,
                training_length: config.training_length(),
                parameters: config.parameter_count(),
                files,
            },
        ));
    }
    entries.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
    Ok(Manifest {
        models: entries.into_iter().map(|(_, e)| e).collect(),
    })
}

/// Writes `manifest.json` into `models`.
pub fn write(models: &Path) -> Result<Manifest, String> {
    let manifest = rebuild(models)?;
    let json = serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())?;
    std::fs::write(models.join("manifest.json"), json + "\n").map_err(|e| e.to_string())?;
    Ok(manifest)
}

/// `trainer manifest --models DIR`
pub fn run(argv: &[String]) -> Result<(), String> {
    let args = Args::parse(argv, &["models"])?;
    let manifest = write(Path::new(args.required("models")?))?;
    println!("manifest: {} models", manifest.models.len());
    Ok(())
}
