//! The prompt samples: held-out (test-split) text shipped in `samples.json` by
//! `trainer samples`, one per corpus file, each long enough for 8L tokens.

pub use engine::samples::{Sample, SampleSet};

use crate::error::AppError;
use crate::manifest::fetch_bytes;

/// Where the page finds the samples (relative, so a sub-path deployment works).
pub const SAMPLES_URL: &str = "samples.json";

/// Parses `samples.json`, refusing a file with no samples.
pub fn parse_samples(bytes: &[u8]) -> Result<SampleSet, AppError> {
    let set: SampleSet = serde_json::from_slice(bytes)
        .map_err(|e| AppError::Input(format!("{SAMPLES_URL} is malformed: {e}")))?;
    if set.samples.is_empty() {
        return Err(AppError::Input(format!("{SAMPLES_URL} lists no samples")));
    }
    Ok(set)
}

/// Downloads and parses `samples.json`.
pub async fn fetch_samples() -> Result<SampleSet, AppError> {
    parse_samples(&fetch_bytes(SAMPLES_URL, 0, |_| {}).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn parses_and_rejects() {
        let json = br#"{"training_length": 256, "samples": [
            {"id": "kjv-2", "title": "King James Bible", "source": "kjv.txt#2", "text": "In the beginning", "tokens": 4}]}"#;
        let set = parse_samples(json).unwrap();
        assert_eq!(set.get("kjv-2").unwrap().tokens, 4);
        assert!(set.get("austen-1").is_none());
        let empty = parse_samples(br#"{"training_length": 256, "samples": []}"#);
        assert!(empty.unwrap_err().to_string().contains("no samples"));
        assert!(parse_samples(b"{\"samples\": 3").is_err());
    }
}
