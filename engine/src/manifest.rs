//! `models/manifest.json`: which models the studio offers, and where their files are,
//! with sizes (for the progress bar) and SHA-256 digests (to catch stale or truncated
//! downloads). One type for the file: the trainer writes it (`trainer manifest`, after
//! every export), the studio reads it ([`Manifest::parse`]); a test here round-trips it.
//! Each model folder also keeps its descriptive part in `model-card.json`
//! ([`ModelCard`]), from which the trainer rebuilds the manifest.

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

/// The list of models, in the order the page offers them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Manifest {
    /// Every model; the first is selected when the page opens.
    pub models: Vec<ModelEntry>,
}

/// One model of the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// Folder name and URL id (`untrained`, `rope`, `drope`, ...).
    pub id: String,
    /// Name shown in the model selector.
    pub label: String,
    /// `false` for random weights: the page then labels the model "untrained".
    pub trained: bool,
    /// One or two sentences on how the model was made.
    #[serde(default)]
    pub description: String,
    /// The training length `L` (the config's `max_position_embeddings` is authoritative).
    pub training_length: usize,
    /// Number of parameters, for display.
    #[serde(default)]
    pub parameters: u64,
    /// The three files that make up the model.
    pub files: ModelFiles,
    /// The scheme the model was trained with, in its text form (`rope`, `none`, `yarn:4`:
    /// its config's `trained_scheme`), so that the page can name and colour a series
    /// before the config is downloaded. Absent from older manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trained_scheme: Option<String>,
}

/// The files of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFiles {
    /// Hugging Face `config.json`.
    pub config: FileEntry,
    /// `model.safetensors`.
    pub weights: FileEntry,
    /// `tokenizer.json`.
    pub tokenizer: FileEntry,
}

/// A file with its expected size and digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the models folder.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Lower-case hex SHA-256; empty skips the check.
    #[serde(default)]
    pub sha256: String,
}

/// The descriptive part of a model folder, kept beside its weights in `model-card.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

impl ModelEntry {
    /// The scheme the model was trained with, when the manifest says (and says it well).
    pub fn trained_scheme(&self) -> Option<crate::SchemeSpec> {
        self.trained_scheme.as_deref()?.parse().ok()
    }

    /// Total bytes of the model's files, for the progress bar.
    pub fn total_bytes(&self) -> u64 {
        self.files.config.bytes + self.files.weights.bytes + self.files.tokenizer.bytes
    }
}

impl Manifest {
    /// Parses and checks `manifest.json`: at least one model, no id twice.
    pub fn parse(bytes: &[u8]) -> Result<Manifest> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| EngineError::Manifest(e.to_string()))?;
        if manifest.models.is_empty() {
            return Err(EngineError::Manifest("the list of models is empty".into()));
        }
        for (i, model) in manifest.models.iter().enumerate() {
            if manifest.models[..i].iter().any(|m| m.id == model.id) {
                return Err(EngineError::Manifest(format!(
                    "model id `{}` appears twice",
                    model.id
                )));
            }
        }
        Ok(manifest)
    }

    /// The model with this id.
    pub fn model(&self, id: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.id == id)
    }

    /// The file's text as the trainer writes it: pretty JSON and a final newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a manifest always serialises") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"{"models": [{"id": "untrained", "label": "Untrained (random weights)",
      "trained": false, "description": "Random.", "training_length": 64, "parameters": 123456,
      "files": {"config": {"path": "untrained/config.json", "bytes": 3, "sha256": ""},
                "weights": {"path": "untrained/model.safetensors", "bytes": 5,
                            "sha256": "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824"},
                "tokenizer": {"path": "tokenizer.json", "bytes": 7}}, "extra": 1}]}"#;

    #[test]
    fn the_trained_scheme_is_read_when_given_and_well_formed() {
        let with = |scheme: &str| {
            MANIFEST.replace(r#""extra": 1"#, &format!(r#""trained_scheme": "{scheme}""#))
        };
        let scheme =
            |text: &str| Manifest::parse(text.as_bytes()).unwrap().models[0].trained_scheme();
        assert_eq!(scheme(MANIFEST), None);
        assert_eq!(scheme(&with("none")), Some(crate::SchemeSpec::NONE));
        assert_eq!(scheme(&with("yarn:4")).unwrap().to_string(), "yarn:4");
        assert_eq!(
            scheme(&with("warp:9")),
            None,
            "an unknown scheme is no scheme"
        );
    }

    #[test]
    fn parses_the_documented_format() {
        let m = Manifest::parse(MANIFEST.as_bytes()).unwrap();
        let entry = m.model("untrained").unwrap();
        assert!(!entry.trained);
        assert_eq!(entry.total_bytes(), 15);
        assert_eq!(entry.parameters, 123456);
        assert_eq!(entry.files.tokenizer.sha256, "");
    }

    #[test]
    fn what_is_written_reads_back_the_same() {
        let m = Manifest::parse(MANIFEST.as_bytes()).unwrap();
        assert_eq!(Manifest::parse(m.to_json().as_bytes()).unwrap(), m);
    }

    #[test]
    fn the_shipped_manifest_reads() {
        let shipped = include_bytes!("../../public/models/manifest.json");
        let m = Manifest::parse(shipped).unwrap();
        assert!(m.model("rope").is_some() && m.model("drope").is_some());
        assert_eq!(
            m.to_json().as_bytes(),
            shipped,
            "the file is exactly what to_json writes"
        );
    }

    #[test]
    fn rejects_empty_and_duplicate_lists() {
        assert!(Manifest::parse(br#"{"models": []}"#).is_err());
        assert!(Manifest::parse(b"not json").is_err());
        let model = serde_json::json!({
            "id": "a", "label": "A", "trained": true, "training_length": 64,
            "files": {"config": {"path": "c", "bytes": 1}, "weights": {"path": "w", "bytes": 1},
                      "tokenizer": {"path": "t", "bytes": 1}}
        });
        let twice = serde_json::json!({ "models": [model, model] }).to_string();
        let err = Manifest::parse(twice.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("twice"), "{err}");
    }
}
