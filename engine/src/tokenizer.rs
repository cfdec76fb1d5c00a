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

impl TextTokenizer {
    /// Parses a `tokenizer.json` held in memory.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        // The tokenizers crate panics on some JSON errors inside its decoder block (a
        // syntax error, an escape that is no code point: found by
        // `engine/tests/fuzz.rs`), which in a browser would take the page down. So the
        // JSON is parsed whole here first (`IgnoredAny` would skip checking escapes).
        serde_json::from_slice::<serde_json::Value>(bytes).map_err(|e| {
            EngineError::Tokenizer(format!("cannot read tokenizer.json (not JSON: {e})"))
        })?;
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
