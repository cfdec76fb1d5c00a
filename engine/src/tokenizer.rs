//! The studio's tokenizer: a `tokenizer.json` (Hugging Face `tokenizers`) loaded from
//! bytes, with each token's text for display.

use crate::error::{EngineError, Result};

/// One token of an encoded prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenPiece {
    /// Vocabulary id.
    pub id: u32,
    /// The part of the prompt this token covers (may be empty for special tokens).
    pub text: String,
}

/// A tokenizer loaded from `tokenizer.json`.
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
}

/// Checks a BPE model's merges the way the tokenizers crate will use them, because it
/// panics instead of failing on some (found by `engine/tests/fuzz.rs`): it joins each
/// merge's two parts into a buffer as long as the longest vocabulary token, so a merge
/// whose join is longer overruns it, and it cuts the continuing-subword prefix off the
/// second part by bytes. So every join must itself be a token of the vocabulary (the
/// crate requires that anyway, after the join), and the cut must fall on a character.
fn check_bpe_merges(json: &serde_json::Value) -> std::result::Result<(), String> {
    // Whatever its `type` says: without one, the crate tries each model in turn.
    let model = &json["model"];
    let Some(vocab) = model["vocab"].as_object() else {
        return Ok(());
    };
    let prefix = model["continuing_subword_prefix"].as_str().unwrap_or("");
    let Some(merges) = model["merges"].as_array() else {
        return Ok(());
    };
    for merge in merges {
        let (a, b) = match merge {
            serde_json::Value::String(pair) => match pair.split_once(' ') {
                Some(parts) => parts,
                None => continue,
            },
            serde_json::Value::Array(parts) => match (parts.first(), parts.get(1)) {
                (Some(a), Some(b)) => match (a.as_str(), b.as_str()) {
                    (Some(a), Some(b)) => (a, b),
                    _ => continue,
                },
                _ => continue,
            },
            _ => continue,
        };
        let rest = b
            .get(prefix.len()..)
            .ok_or_else(|| format!("the merge `{a} {b}` is shorter than its subword prefix"))?;
        let joined = format!("{a}{rest}");
        if vocab.contains_key(a) && vocab.contains_key(b) && !vocab.contains_key(&joined) {
            return Err(format!(
                "the merge `{a} {b}` makes `{joined}`, which is not in the vocabulary"
            ));
        }
    }
    Ok(())
}

impl TextTokenizer {
    /// Parses a `tokenizer.json` held in memory.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        // The tokenizers crate panics on some JSON errors inside its decoder block (a
        // syntax error, an escape that is no code point: found by
        // `engine/tests/fuzz.rs`), which in a browser would take the page down. So the
        // JSON is parsed whole here first (`IgnoredAny` would skip checking escapes).
        let json = serde_json::from_slice::<serde_json::Value>(bytes).map_err(|e| {
            EngineError::Tokenizer(format!("cannot read tokenizer.json (not JSON: {e})"))
        })?;
        check_bpe_merges(&json)
            .map_err(|e| EngineError::Tokenizer(format!("cannot read tokenizer.json ({e})")))?;
        let inner = tokenizers::Tokenizer::from_bytes(bytes)
            .map_err(|e| EngineError::Tokenizer(format!("cannot read tokenizer.json ({e})")))?;
        Ok(TextTokenizer { inner })
    }

    /// Number of ids the tokenizer can produce (including added tokens).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Encodes text without adding special tokens, keeping each token's source text.
    pub fn encode(&self, text: &str) -> Result<Vec<TokenPiece>> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| EngineError::Tokenizer(format!("cannot encode the prompt ({e})")))?;
        Ok(encoding
            .get_ids()
            .iter()
            .zip(encoding.get_offsets())
            .map(|(&id, &(start, end))| TokenPiece {
                id,
                text: text.get(start..end).unwrap_or_default().to_string(),
            })
            .collect())
    }

    /// The display form of one id (decoded on its own; byte-level pieces of a multi-byte
    /// character decode to a replacement character).
    pub fn token_text(&self, id: u32) -> String {
        self.inner
            .decode(&[id], false)
            .unwrap_or_else(|_| format!("<{id}>"))
    }

    /// Decodes ids back to text.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| EngineError::Tokenizer(e.to_string()))
    }

    /// The id of a special token such as `<|endoftext|>`, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}
