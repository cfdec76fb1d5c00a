//! Model files kept in the browser's Cache API between visits, keyed by path and
//! SHA-256 (a new model under the same path is a new key, so a stale copy is never
//! used), and checked against the manifest whether they come from the cache or the
//! network. Where the Cache API is missing or refused (an opaque-origin sandbox, a
//! non-secure page), files come from the network as before.

use js_sys::{Promise, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Cache, Response};

use crate::error::AppError;
use crate::manifest::{fetch_bytes, file_url, verify, FileEntry};

/// The cache's name; bump it when the stored format changes.
pub const CACHE_NAME: &str = "drope-studio-weights-v1";

/// The cache key of a file: its URL with the digest, so any change of content is a miss.
pub fn cache_key(file: &FileEntry) -> String {
    if file.sha256.is_empty() {
        file_url(file)
    } else {
        format!(
            "{}?sha256={}",
            file_url(file),
            file.sha256.to_ascii_lowercase()
        )
    }
}

/// Where a file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The browser's Cache API.
    Cache,
    /// The network (and stored in the cache when it could be).
    Network,
}

async fn open_cache() -> Option<Cache> {
    let caches = web_sys::window()?.caches().ok()?;
    let opened = JsFuture::from(caches.open(CACHE_NAME)).await.ok()?;
    opened.dyn_into().ok()
}

async fn await_promise(promise: Promise) -> Option<JsValue> {
    JsFuture::from(promise).await.ok()
}

/// The cached bytes of `key`, if any.
async fn cached(cache: &Cache, key: &str) -> Option<Vec<u8>> {
    let hit = await_promise(cache.match_with_str(key)).await?;
    let response: Response = hit.dyn_into().ok()?;
    let buffer = await_promise(response.array_buffer().ok()?).await?;
    Some(Uint8Array::new(&buffer).to_vec())
}

/// Stores `bytes` under `key`; failures (quota, private mode) only cost the next visit.
async fn store(cache: &Cache, key: &str, bytes: &[u8]) {
    let mut copy = bytes.to_vec();
    if let Ok(response) = Response::new_with_opt_u8_array(Some(&mut copy)) {
        let _ = await_promise(cache.put_with_str(key, &response)).await;
    }
}

/// The file's bytes, verified against the manifest: from the cache when a good copy is
/// there (a bad one is dropped and downloaded again), else from the network, reporting
/// the bytes received so far.
pub async fn fetch_verified(
    file: &FileEntry,
    on_progress: impl FnMut(u64),
) -> Result<(Vec<u8>, Source), AppError> {
    let cache = open_cache().await;
    let key = cache_key(file);
    let mut on_progress = on_progress;
    if let Some(cache) = &cache {
        if let Some(bytes) = cached(cache, &key).await {
            if verify(file, &bytes).await.is_ok() {
                on_progress(bytes.len() as u64);
                return Ok((bytes, Source::Cache));
            }
            let _ = await_promise(cache.delete_with_str(&key)).await;
        }
    }
    let bytes = fetch_bytes(&file_url(file), file.bytes, on_progress).await?;
    verify(file, &bytes).await?;
    if let Some(cache) = &cache {
        store(cache, &key, &bytes).await;
    }
    Ok((bytes, Source::Network))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn entry(sha256: &str) -> FileEntry {
        FileEntry {
            path: "rope/model.safetensors".into(),
            bytes: 5,
            sha256: sha256.into(),
        }
    }

    #[test]
    fn keys_change_with_the_digest() {
        assert_eq!(cache_key(&entry("")), "models/rope/model.safetensors");
        assert_eq!(
            cache_key(&entry("ABC")),
            "models/rope/model.safetensors?sha256=abc"
        );
        assert_ne!(cache_key(&entry("abc")), cache_key(&entry("abd")));
    }

    #[wasm_bindgen_test]
    async fn a_bad_cached_copy_is_replaced() {
        let Some(cache) = open_cache().await else {
            return; // No Cache API in this browser: nothing to test.
        };
        // "hello" has this digest; the cached copy holds other bytes of the same size.
        let file = entry("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        let key = format!("{}-test", cache_key(&file));
        store(&cache, &key, b"HELLO").await;
        assert_eq!(cached(&cache, &key).await.as_deref(), Some(&b"HELLO"[..]));
        assert!(verify(&file, b"HELLO").await.is_err());
        assert!(verify(&file, b"hello").await.is_ok());
        let _ = await_promise(cache.delete_with_str(&key)).await;
        assert!(cached(&cache, &key).await.is_none());
    }
}
