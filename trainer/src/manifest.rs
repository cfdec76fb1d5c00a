//! Writes `public/models/manifest.json` (its type, shared with the studio that reads it,
//! is `engine::manifest`): the models the page offers, with the size and sha256 of every
//! file so the browser can show progress and verify downloads.

use std::path::Path;

use engine::manifest::{FileEntry, Manifest, ModelCard, ModelEntry, ModelFiles};
use engine::ModelConfig;
use sha2::{Digest, Sha256};

use crate::args::Args;

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
                parameters: config.parameter_count() as u64,
                files,
                trained_scheme: Some(config.trained_scheme().to_string()),
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
    std::fs::write(models.join("manifest.json"), manifest.to_json()).map_err(|e| e.to_string())?;
    Ok(manifest)
}

/// `trainer manifest --models DIR`
pub fn run(argv: &[String]) -> Result<(), String> {
    let args = Args::parse(argv, &["models"])?;
    let manifest = write(Path::new(args.required("models")?))?;
    println!("manifest: {} models", manifest.models.len());
    Ok(())
}
