//! Token streams of the three splits and the training batches drawn from them.

use std::path::Path;

use candle_core::{Device, Tensor};
use engine::init::SplitMix64;
use engine::TextTokenizer;

use crate::bpe::END_OF_TEXT;
use crate::corpus::{self, Split};
use crate::needles::NeedleMaker;

/// Each split as one stream of token ids, documents separated by end-of-text.
pub struct TokenStreams {
    /// Training stream.
    pub train: Vec<u32>,
    /// Validation stream.
    pub validation: Vec<u32>,
    /// Test stream (reported numbers only).
    pub test: Vec<u32>,
    /// The end-of-text id.
    pub end_of_text: u32,
}

impl TokenStreams {
    /// Tokenises every document of `corpus_dir`.
    pub fn load(corpus_dir: &Path, tokenizer: &TextTokenizer) -> Result<Self, String> {
        let end_of_text = tokenizer
            .token_id(END_OF_TEXT)
            .ok_or_else(|| format!("the tokenizer has no {END_OF_TEXT} token"))?;
        let mut streams = TokenStreams {
            train: Vec::new(),
            validation: Vec::new(),
            test: Vec::new(),
            end_of_text,
        };
        for doc in corpus::load(corpus_dir)? {
            let ids = tokenizer
                .encode(&doc.text)
                .map_err(|e| format!("{}: {e}", doc.id))?;
            let stream = match doc.split {
                Split::Train => &mut streams.train,
                Split::Validation => &mut streams.validation,
                Split::Test => &mut streams.test,
            };
            stream.extend(ids.iter().map(|p| p.id));
            stream.push(end_of_text);
        }
        Ok(streams)
    }
}

/// Draws training batches: random windows of the training stream, and with probability
/// `needle_fraction` a retrieval document of the same length instead.
pub struct BatchSampler<'a> {
    /// The training stream.
    pub stream: &'a [u32],
    /// Retrieval document builder.
    pub needles: &'a NeedleMaker<'a>,
    /// Share of sequences that are retrieval documents.
    pub needle_fraction: f64,
    /// Sequences per batch.
    pub batch: usize,
    /// Tokens per sequence (the training length L).
    pub length: usize,
    /// Base seed; batch `t` depends only on (seed, t), so runs resume exactly.
    pub seed: u64,
}

impl BatchSampler<'_> {
    /// The window of `len` tokens starting at a random offset.
    fn window(&self, rng: &mut SplitMix64, len: usize) -> Result<&[u32], String> {
        let room = self
            .stream
            .len()
            .checked_sub(len)
            .filter(|&r| r > 0)
            .ok_or("training stream too short")?;
        let start = (rng.next_u64() % room as u64) as usize;
        Ok(&self.stream[start..start + len])
    }

    /// One sequence of `length + 1` tokens (inputs and shifted targets).
    fn sequence(&self, rng: &mut SplitMix64) -> Result<Vec<u32>, String> {
        let want = self.length + 1;
        if rng.next_f64() >= self.needle_fraction {
            return Ok(self.window(rng, want)?.to_vec());
        }
        // A needle is ~16 tokens and the question ~20: short windows get fewer needles.
        let most = (self.length.saturating_sub(48) / 16).clamp(1, 3);
        let count = 1 + (rng.next_u64() % most as u64) as usize;
        let depths: Vec<f64> = (0..count).map(|_| rng.next_f64()).collect();
        let asked = (rng.next_u64() % count as u64) as usize;
        // 7 digits, a space and a full stop follow the prompt: leave room for them.
        let hay = self.window(rng, want)?;
        let Ok(doc) = self.needles.make(hay, want - 9, &depths, asked, rng) else {
            // Too short for even one needle and its question: plain prose instead.
            return Ok(hay.to_vec());
        };
        let mut full = doc.full(&self.needles.full_stop);
        if full.len() < want {
            // Tokenisation made the answer shorter than planned: lead with more prose.
            let mut padded = hay[..want - full.len()].to_vec();
            padded.append(&mut full);
            full = padded;
        }
        Ok(full[full.len() - want..].to_vec())
    }

    /// Inputs and targets of batch `step`, each `[batch, length]`.
    pub fn batch(&self, step: usize, device: &Device) -> Result<(Tensor, Tensor), String> {
        let mut rng = SplitMix64::for_stream(self.seed, step as u64);
        let mut inputs = Vec::with_capacity(self.batch * self.length);
        let mut targets = Vec::with_capacity(self.batch * self.length);
        for _ in 0..self.batch {
            let seq = self.sequence(&mut rng)?;
            inputs.extend_from_slice(&seq[..self.length]);
            targets.extend_from_slice(&seq[1..]);
        }
        let shape = (self.batch, self.length);
        let tensor = |v: Vec<u32>| Tensor::from_vec(v, shape, device).map_err(|e| e.to_string());
        Ok((tensor(inputs)?, tensor(targets)?))
    }
}

/// Non-overlapping validation windows of `length + 1` tokens, at most `count` of them.
pub fn eval_windows(stream: &[u32], length: usize, count: usize) -> Vec<&[u32]> {
    stream.chunks_exact(length + 1).take(count).collect()
}
