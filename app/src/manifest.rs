//! `models/manifest.json`: which models the studio offers, and where their files are,
//! with sizes (for the progress bar) and SHA-256 digests (to catch stale or truncated
//! downloads). Also the byte-counting download those sizes feed.

use js_sys::{Reflect, Uint8Array};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{ReadableStreamDefaultReader, Response};

use crate::assets::asset_url;
use crate::error::{js_message, AppError};
use crate::pause::next_frame;

/// Folder of the model files, relative to the page URL (trunk copies `public/models` there).
pub const MODELS_BASE: &str = "models/";

/// The list of models, in the order the page offers them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Manifest {
    /// Every model; the first is selected when the page opens.
    pub models: Vec<ModelEntry>,
}

/// One model of the manifest.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ModelEntry {
    /// Stable identifier (`untrained`, `rope`, `drope`, ...).
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
}

/// The files of one model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ModelFiles {
    /// Hugging Face `config.json`.
    pub config: FileEntry,
    /// `model.safetensors`.
    pub weights: FileEntry,
    /// `tokenizer.json`.
    pub tokenizer: FileEntry,
}

/// A file with its expected size and digest.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FileEntry {
    /// Path relative to [`MODELS_BASE`].
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Lower-case hex SHA-256; empty skips the check.
    #[serde(default)]
    pub sha256: String,
}

impl FileEntry {
    /// The URL to fetch, relative to the page.
    pub fn url(&self) -> String {
        format!("{MODELS_BASE}{}", self.path)
    }

    /// Checks a download against the manifest's size and digest.
    pub async fn verify(&self, bytes: &[u8]) -> Result<(), AppError> {
        let mismatch = |reason: String| AppError::Integrity {
            url: self.url(),
            reason,
        };
        if bytes.len() as u64 != self.bytes {
            return Err(mismatch(format!(
                "received {} bytes, expected {} (truncated download or stale manifest)",
                bytes.len(),
                self.bytes
            )));
        }
        if !self.sha256.is_empty() {
            let digest = sha256_hex(bytes).await;
            if !digest.eq_ignore_ascii_case(self.sha256.trim()) {
                return Err(mismatch(format!(
                    "SHA-256 is {digest}, expected {} (a stale cached copy?)",
                    self.sha256
                )));
            }
        }
        Ok(())
    }
}

impl ModelEntry {
    /// Total bytes of the model's files, for the progress bar.
    pub fn total_bytes(&self) -> u64 {
        self.files.config.bytes + self.files.weights.bytes + self.files.tokenizer.bytes
    }
}

impl Manifest {
    /// Parses and checks `manifest.json`.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, AppError> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| AppError::Manifest(e.to_string()))?;
        if manifest.models.is_empty() {
            return Err(AppError::Manifest("the list of models is empty".into()));
        }
        for (i, model) in manifest.models.iter().enumerate() {
            if manifest.models[..i].iter().any(|m| m.id == model.id) {
                return Err(AppError::Manifest(format!(
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
}

/// Lower-case hex SHA-256 of `bytes`, a step at a time.
pub async fn sha256_hex(bytes: &[u8]) -> String {
    let mut hasher = Sha256::new();
    for (i, step) in bytes.chunks(HASH_STEP).enumerate() {
        if i > 0 {
            next_frame().await;
        }
        hasher.update(step);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Bytes hashed per task: SHA-256 of a whole 10 MB model held Chromium's main thread
/// for 50-80 ms; 2 MiB take a few milliseconds, and a pause between steps lets the
/// page handle input and paint.
const HASH_STEP: usize = 2 << 20;

/// Downloads `manifest.json`.
pub async fn fetch_manifest() -> Result<Manifest, AppError> {
    let bytes = fetch_bytes(&format!("{MODELS_BASE}manifest.json"), 0, |_| {}).await?;
    Manifest::parse(&bytes)
}

/// Downloads `url`, calling `on_progress` with the bytes received so far after every
/// chunk (the response body is read as a stream, so the count grows while it arrives).
/// `size_hint` preallocates; pass 0 when unknown.
pub async fn fetch_bytes(
    url: &str,
    size_hint: u64,
    mut on_progress: impl FnMut(u64),
) -> Result<Vec<u8>, AppError> {
    let fail = |reason: String| AppError::Fetch {
        url: url.to_string(),
        reason,
    };
    let js_fail = |e: JsValue| fail(js_message(&e));
    let window = web_sys::window().ok_or_else(|| fail("no window".into()))?;
    let response: Response = JsFuture::from(window.fetch_with_str(&asset_url(url)))
        .await
        .map_err(js_fail)?
        .dyn_into()
        .map_err(|_| fail("fetch did not return a Response".into()))?;
    if !response.ok() {
        return Err(fail(format!(
            "HTTP {} {}",
            response.status(),
            response.status_text()
        )));
    }
    let Some(body) = response.body() else {
        // No stream (an empty body): nothing to count.
        let buffer = JsFuture::from(response.array_buffer().map_err(js_fail)?)
            .await
            .map_err(js_fail)?;
        let bytes = Uint8Array::new(&buffer).to_vec();
        on_progress(bytes.len() as u64);
        return Ok(bytes);
    };
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut bytes = Vec::with_capacity(size_hint.min(1 << 30) as usize);
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(js_fail)?;
        let done = Reflect::get(&chunk, &JsValue::from_str("done"))
            .map_err(js_fail)?
            .as_bool()
            .unwrap_or(true);
        if done {
            break;
        }
        let value: Uint8Array = Reflect::get(&chunk, &JsValue::from_str("value"))
            .map_err(js_fail)?
            .dyn_into()
            .map_err(|_| fail("the response stream yielded something other than bytes".into()))?;
        let start = bytes.len();
        bytes.resize(start + value.length() as usize, 0);
        value.copy_to(&mut bytes[start..]);
        on_progress(bytes.len() as u64);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    const MANIFEST: &str = r#"{"models": [{"id": "untrained", "label": "Untrained (random weights)",
      "trained": false, "description": "Random.", "training_length": 64, "parameters": 123456,
      "files": {"config": {"path": "untrained/config.json", "bytes": 3, "sha256": ""},
                "weights": {"path": "untrained/model.safetensors", "bytes": 5,
                            "sha256": "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824"},
                "tokenizer": {"path": "tokenizer.json", "bytes": 7}}, "extra": 1}]}"#;

    #[wasm_bindgen_test]
    fn parses_the_documented_format() {
        let m = Manifest::parse(MANIFEST.as_bytes()).unwrap();
        let entry = m.model("untrained").unwrap();
        assert!(!entry.trained);
        assert_eq!(entry.total_bytes(), 15);
        assert_eq!(
            entry.files.weights.url(),
            "models/untrained/model.safetensors"
        );
    }

    #[wasm_bindgen_test]
    fn rejects_empty_and_duplicate_lists() {
        assert!(Manifest::parse(br#"{"models": []}"#).is_err());
        assert!(Manifest::parse(b"not json").is_err());
        let m = Manifest::parse(MANIFEST.as_bytes()).unwrap();
        let twice = format!(
            r#"{{"models": [{0}, {0}]}}"#,
            serde_json::to_string(&serde_json::json!({
                "id": "a", "label": "A", "trained": true, "training_length": 64,
                "files": {"config": {"path": "c", "bytes": 1}, "weights": {"path": "w", "bytes": 1},
                          "tokenizer": {"path": "t", "bytes": 1}}
            }))
            .unwrap()
        );
        let err = Manifest::parse(twice.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("twice"), "{err}");
        assert_eq!(m.models.len(), 1);
    }

    #[wasm_bindgen_test]
    async fn digest_in_steps_is_the_whole_digest() {
        // Three steps, the last a short one.
        let bytes: Vec<u8> = (0..2 * HASH_STEP + 5)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let whole: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sha256_hex(&bytes).await, whole);
    }

    #[wasm_bindgen_test]
    async fn verify_checks_size_and_digest() {
        let m = Manifest::parse(MANIFEST.as_bytes()).unwrap();
        let weights = &m.models[0].files.weights;
        weights.verify(b"hello").await.unwrap(); // digest given in upper case on purpose
        let wrong = weights.verify(b"hellO").await.unwrap_err().to_string();
        assert!(wrong.contains("SHA-256"), "{wrong}");
        let short = weights.verify(b"hell").await.unwrap_err().to_string();
        assert!(short.contains("received 4 bytes"), "{short}");
        m.models[0].files.config.verify(b"abc").await.unwrap(); // no digest: size only
    }
}
