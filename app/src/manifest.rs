//! `models/manifest.json`: which models the studio offers, and where their files are,
//! with sizes (for the progress bar) and SHA-256 digests (to catch stale or truncated
//! downloads). Also the byte-counting download those sizes feed.

use js_sys::{Reflect, Uint8Array};
use sha2::{Digest, Sha256};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{ReadableStream, ReadableStreamDefaultReader, Response};

use crate::assets::asset_url;
use crate::error::{js_message, AppError};
use crate::pause::next_frame;

/// Folder of the model files, relative to the page URL (trunk copies `public/models` there).
pub const MODELS_BASE: &str = "models/";

pub use engine::manifest::{FileEntry, Manifest, ModelEntry, ModelFiles};

/// The URL of a manifest file, relative to the page.
pub fn file_url(file: &FileEntry) -> String {
    format!("{MODELS_BASE}{}", file.path)
}

/// Checks a download against the manifest's size and digest.
pub async fn verify(file: &FileEntry, bytes: &[u8]) -> Result<(), AppError> {
    let mismatch = |reason: String| AppError::Integrity {
        url: file_url(file),
        reason,
    };
    if bytes.len() as u64 != file.bytes {
        return Err(mismatch(format!(
            "received {} bytes, expected {} (truncated download or stale manifest)",
            bytes.len(),
            file.bytes
        )));
    }
    if !file.sha256.is_empty() {
        let digest = sha256_hex(bytes).await;
        if !digest.eq_ignore_ascii_case(file.sha256.trim()) {
            return Err(mismatch(format!(
                "SHA-256 is {digest}, expected {}: the server's file is not the one the \
                 manifest lists (a deployment that updated one but not the other, or a \
                 proxy serving an old copy)",
                file.sha256
            )));
        }
    }
    Ok(())
}

/// Parses and checks `manifest.json` (`engine::manifest` holds the format).
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest, AppError> {
    Manifest::parse(bytes).map_err(|e| match e {
        engine::EngineError::Manifest(reason) => AppError::Manifest(reason),
        other => AppError::Manifest(other.to_string()),
    })
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
    parse_manifest(&bytes)
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
    // A manifest's size is a hint (at most 1 GiB is reserved on its word).
    read_stream(&body, size_hint.min(1 << 30), on_progress)
        .await
        .map_err(fail)
}

/// Reads a byte stream (a response's body, a file's `stream()`) to its end, calling
/// `on_progress` with the bytes read so far after every chunk. `size_hint` is reserved
/// up front (a local file's exact size); pass 0 when unknown.
pub async fn read_stream(
    stream: &ReadableStream,
    size_hint: u64,
    mut on_progress: impl FnMut(u64),
) -> Result<Vec<u8>, String> {
    let reader: ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    // Reserved whole: growing a vector of a large file doubles it for a moment (a
    // 1.5 GB checkpoint file would briefly need 3 GB).
    let mut bytes = Vec::with_capacity(size_hint as usize);
    loop {
        let chunk = JsFuture::from(reader.read())
            .await
            .map_err(|e| js_message(&e))?;
        let done = Reflect::get(&chunk, &JsValue::from_str("done"))
            .map_err(|e| js_message(&e))?
            .as_bool()
            .unwrap_or(true);
        if done {
            break;
        }
        let value: Uint8Array = Reflect::get(&chunk, &JsValue::from_str("value"))
            .map_err(|e| js_message(&e))?
            .dyn_into()
            .map_err(|_| "the stream yielded something other than bytes".to_string())?;
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

    // The format's own tests (parsing, round trip, the shipped file) are the engine's,
    // natively; these are the studio's part: URLs, digests and download checks.
    fn file(path: &str, bytes: u64, sha256: &str) -> FileEntry {
        FileEntry {
            path: path.into(),
            bytes,
            sha256: sha256.into(),
        }
    }

    #[test]
    fn files_are_fetched_under_the_models_folder_and_errors_name_the_manifest() {
        let weights = file("untrained/model.safetensors", 5, "");
        assert_eq!(file_url(&weights), "models/untrained/model.safetensors");
        let err = parse_manifest(br#"{"models": []}"#).unwrap_err();
        assert!(matches!(err, AppError::Manifest(_)), "{err}");
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
        // The digest of "hello", in upper case on purpose.
        let weights = file(
            "w",
            5,
            "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824",
        );
        verify(&weights, b"hello").await.unwrap();
        let wrong = verify(&weights, b"hellO").await.unwrap_err().to_string();
        assert!(wrong.contains("SHA-256"), "{wrong}");
        let short = verify(&weights, b"hell").await.unwrap_err().to_string();
        assert!(short.contains("received 4 bytes"), "{short}");
        verify(&file("c", 3, ""), b"abc").await.unwrap(); // no digest: size only
    }
}
