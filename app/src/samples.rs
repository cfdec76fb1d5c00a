//! The prompt samples: held-out (test-split) text shipped in `samples.json` by
//! `trainer samples`, one per corpus file, each long enough for 8L tokens.

pub use engine::samples::{Sample, SampleSet};

use crate::error::AppError;
use crate::format::thousands;
use crate::manifest::fetch_bytes;
use crate::url_state::PromptSource;

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

/// The text `source` names: its own, or a sample's (the first when none is named); an
/// unknown sample id is an error that lists the ids there are.
pub fn resolve_prompt(source: &PromptSource, set: &SampleSet) -> Result<String, String> {
    match source {
        PromptSource::Text(text) => Ok(text.clone()),
        PromptSource::Sample(id) if id.is_empty() => set
            .samples
            .first()
            .map(|s| s.text.clone())
            .ok_or_else(|| "no prompt samples".to_string()),
        PromptSource::Sample(id) => set.get(id).map(|s| s.text.clone()).ok_or_else(|| {
            let ids: Vec<&str> = set.samples.iter().map(|s| s.id.as_str()).collect();
            format!("no sample `{id}` (samples: {})", ids.join(", "))
        }),
    }
}

/// Prompts longer than this many characters are refused before tokenizing (a pasted
/// megabyte would stall the page; 8L tokens are about 10,000 characters).
pub const MAX_PROMPT_CHARS: usize = 100_000;

/// An error for a prompt over [`MAX_PROMPT_CHARS`] (the studio's and the embeds').
pub fn check_prompt_size(text: &str) -> Result<(), String> {
    let chars = text.chars().count();
    if chars <= MAX_PROMPT_CHARS {
        return Ok(());
    }
    Err(format!(
        "The prompt is {} characters; the studio takes at most {} (it runs at most 8L \
         tokens, about 10,000 characters). Shorten it, or pick a sample.",
        thousands(chars as u64),
        thousands(MAX_PROMPT_CHARS as u64)
    ))
}

/// Downloads and parses `samples.json`.
pub async fn fetch_samples() -> Result<SampleSet, AppError> {
    parse_samples(&fetch_bytes(SAMPLES_URL, 0, |_| {}).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
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

    #[test]
    fn prompts_over_the_cap_are_refused() {
        assert!(check_prompt_size(&"é".repeat(MAX_PROMPT_CHARS)).is_ok());
        let error = check_prompt_size(&"a".repeat(MAX_PROMPT_CHARS + 1)).unwrap_err();
        assert!(error.contains("100,001 characters"), "{error}");
    }

    #[test]
    fn prompts_come_from_the_named_sample() {
        let set: SampleSet = serde_json::from_str(
            r#"{"training_length": 4, "samples": [
                {"id": "a-1", "title": "A", "source": "a#1", "text": "first", "tokens": 1},
                {"id": "b-2", "title": "B", "source": "b#2", "text": "second", "tokens": 1}]}"#,
        )
        .unwrap();
        let sample = |id: &str| PromptSource::Sample(id.into());
        assert_eq!(resolve_prompt(&sample(""), &set).unwrap(), "first");
        assert_eq!(resolve_prompt(&sample("b-2"), &set).unwrap(), "second");
        let missing = resolve_prompt(&sample("c"), &set).unwrap_err();
        assert!(missing.contains("a-1, b-2"), "{missing}");
        let own = PromptSource::Text("mine".into());
        assert_eq!(resolve_prompt(&own, &set).unwrap(), "mine");
    }
}
