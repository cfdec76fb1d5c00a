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

/// Share of repeat sequences by training step: `early` before `switch`, `late` from it on.
///
/// Copying from the context (induction heads) forms in an abrupt phase change whose
/// timing depends on how often the data rewards it; sequences that repeat a span make
/// that reward dense, so the circuits form in a few million tokens instead of tens of
/// millions (docs/TRAINING.md). Once they exist, fewer repeats leave more room for prose.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RepeatSchedule {
    /// Share of sequences that repeat a span, before `switch`.
    pub early: f64,
    /// Share from step `switch` on.
    pub late: f64,
    /// The step at which the share drops from `early` to `late`.
    pub switch: usize,
}

impl RepeatSchedule {
    /// No repeat sequences at all.
    pub const NONE: RepeatSchedule = RepeatSchedule {
        early: 0.0,
        late: 0.0,
        switch: 0,
    };

    /// The share at training step `step`.
    pub fn at(&self, step: usize) -> f64 {
        if step < self.switch {
            self.early
        } else {
            self.late
        }
    }
}

/// Puts `bos` (when a run trains with one) in place of the sequence's first token, so
/// training batches, validation windows and probes all start the same way.
pub fn start_with(sequence: &mut [u32], bos: Option<u32>) {
    if let (Some(bos), Some(first)) = (bos, sequence.first_mut()) {
        *first = bos;
    }
}

/// The token a run puts first in its sequences, from which step on. Starting it mid-run
/// (`--bos-from`) lets a RoPE model pretrain without it and a DroPE run recalibrate with
/// it on exactly the same data (docs/TRAINING.md).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FirstToken {
    /// The token (end-of-text).
    pub token: u32,
    /// The first step whose sequences start with it.
    pub from: usize,
}

impl FirstToken {
    /// The token sequences start with at `step`, if any yet.
    pub fn at(first: Option<FirstToken>, step: usize) -> Option<u32> {
        first.filter(|f| step >= f.from).map(|f| f.token)
    }
}

/// Shortest and longest repeated span, in tokens.
pub const REPEAT_SPAN: (usize, usize) = (8, 40);

/// Draws training batches: random windows of the training stream; with probability
/// `needle_fraction` a retrieval document of the same length instead; and with the
/// repeat schedule's probability a span repeated to fill the window (half of them random
/// tokens, which can only be predicted by copying, half prose, so copying carries over
/// to text).
pub struct BatchSampler<'a> {
    /// The training stream.
    pub stream: &'a [u32],
    /// Retrieval document builder.
    pub needles: &'a NeedleMaker<'a>,
    /// Share of sequences that are retrieval documents.
    pub needle_fraction: f64,
    /// Share of sequences that repeat a span, by step.
    pub repeats: RepeatSchedule,
    /// Vocabulary size (random spans draw ids below it).
    pub vocab: usize,
    /// A token put first in every sequence (in place of its first token) from a given
    /// step on, or `None`.
    pub bos: Option<FirstToken>,
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

    /// A span of random tokens or of prose, repeated to fill `want` tokens.
    fn repeated_span(&self, rng: &mut SplitMix64, want: usize) -> Result<Vec<u32>, String> {
        let (shortest, longest) = REPEAT_SPAN;
        let longest = longest.min(want / 2).max(shortest.min(want / 2)).max(1);
        let shortest = shortest.min(longest);
        let len = shortest + (rng.next_u64() % (longest - shortest + 1) as u64) as usize;
        let span: Vec<u32> = if rng.next_u64().is_multiple_of(2) {
            (0..len)
                .map(|_| (rng.next_u64() % self.vocab as u64) as u32)
                .collect()
        } else {
            self.window(rng, len)?.to_vec()
        };
        Ok(span.iter().copied().cycle().take(want).collect())
    }

    /// One sequence of `length + 1` tokens (inputs and shifted targets) at `step`.
    fn sequence(&self, rng: &mut SplitMix64, step: usize) -> Result<Vec<u32>, String> {
        let want = self.length + 1;
        let draw = rng.next_f64();
        let repeat_share = self.repeats.at(step);
        if draw < repeat_share {
            return self.repeated_span(rng, want);
        }
        if draw >= repeat_share + self.needle_fraction {
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
            let mut seq = self.sequence(&mut rng, step)?;
            start_with(&mut seq, FirstToken::at(self.bos, step));
            inputs.extend_from_slice(&seq[..self.length]);
            targets.extend_from_slice(&seq[1..]);
        }
        let shape = (self.batch, self.length);
        let tensor = |v: Vec<u32>| Tensor::from_vec(v, shape, device).map_err(|e| e.to_string());
        Ok((tensor(inputs)?, tensor(targets)?))
    }
}

/// Non-overlapping windows of `tokens` tokens of `stream`, at most `count` of them, each
/// starting with `bos` when the model was trained with one: measured on inputs that start
/// like its training sequences.
pub fn eval_windows(
    stream: &[u32],
    tokens: usize,
    count: usize,
    bos: Option<u32>,
) -> Vec<Vec<u32>> {
    stream
        .chunks_exact(tokens)
        .take(count)
        .map(|window| {
            let mut window = window.to_vec();
            start_with(&mut window, bos);
            window
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluation_windows_start_like_training_sequences() {
        let stream: Vec<u32> = (1..=12).collect();
        assert_eq!(
            eval_windows(&stream, 5, 9, Some(0)),
            vec![vec![0, 2, 3, 4, 5], vec![0, 7, 8, 9, 10]]
        );
        assert_eq!(eval_windows(&stream, 5, 1, None), vec![vec![1, 2, 3, 4, 5]]);
    }

    #[test]
    fn the_repeat_share_switches_at_its_step() {
        let schedule = RepeatSchedule {
            early: 0.5,
            late: 0.2,
            switch: 10,
        };
        assert_eq!(schedule.at(0), 0.5);
        assert_eq!(schedule.at(9), 0.5);
        assert_eq!(schedule.at(10), 0.2);
        assert_eq!(RepeatSchedule::NONE.at(0), 0.0);
    }

    #[test]
    fn repeat_sequences_are_periodic_and_batches_reproducible() {
        let tokenizer =
            TextTokenizer::from_json(include_bytes!("../../public/models/tokenizer.json")).unwrap();
        let needles = NeedleMaker::new(&tokenizer).unwrap();
        let stream: Vec<u32> = (0..5000u32).map(|i| (i * 7919) % 4096).collect();
        let sampler = |early: f64| BatchSampler {
            stream: &stream,
            needles: &needles,
            needle_fraction: 0.0,
            repeats: RepeatSchedule {
                early,
                late: 0.0,
                switch: 5,
            },
            vocab: 4096,
            bos: None,
            batch: 16,
            length: 64,
            seed: 9,
        };
        let all = sampler(1.0);
        let (inputs, targets) = all.batch(0, &Device::Cpu).unwrap();
        let inputs = inputs.to_vec2::<u32>().unwrap();
        let targets = targets.to_vec2::<u32>().unwrap();
        for (row, next) in inputs.iter().zip(&targets) {
            // Some period p in the span range makes the whole row repeat itself.
            let period = (REPEAT_SPAN.0..=REPEAT_SPAN.1)
                .find(|&p| (p..row.len()).all(|t| row[t] == row[t - p]))
                .expect("a repeat sequence repeats its span");
            assert!(period <= 32, "a span is at most half the window");
            assert_eq!(&row[1..], &next[..next.len() - 1]);
        }
        // After the switch the share is 0: prose windows, which are not periodic here.
        let (late, _) = all.batch(5, &Device::Cpu).unwrap();
        for row in late.to_vec2::<u32>().unwrap() {
            assert!(stream.windows(row.len()).any(|w| w == row.as_slice()));
        }
        let again = all
            .batch(0, &Device::Cpu)
            .unwrap()
            .0
            .to_vec2::<u32>()
            .unwrap();
        assert_eq!(again, inputs);
    }

    #[test]
    fn the_first_token_starts_sequences_from_its_step_on() {
        let tokenizer =
            TextTokenizer::from_json(include_bytes!("../../public/models/tokenizer.json")).unwrap();
        let needles = NeedleMaker::new(&tokenizer).unwrap();
        let stream: Vec<u32> = (0..5000u32).map(|i| (i * 7919) % 4096).collect();
        // A token outside the vocabulary, so no window or random span can start with it.
        let marker = 4096;
        let sampler = BatchSampler {
            stream: &stream,
            needles: &needles,
            needle_fraction: 0.2,
            repeats: RepeatSchedule {
                early: 0.5,
                late: 0.5,
                switch: 0,
            },
            vocab: 4096,
            bos: Some(FirstToken {
                token: marker,
                from: 3,
            }),
            batch: 16,
            length: 64,
            seed: 9,
        };
        let firsts = |step: usize| -> Vec<u32> {
            let (inputs, _) = sampler.batch(step, &Device::Cpu).unwrap();
            inputs
                .to_vec2::<u32>()
                .unwrap()
                .iter()
                .map(|r| r[0])
                .collect()
        };
        assert!(firsts(2).iter().all(|&t| t != marker));
        assert!(firsts(3).iter().all(|&t| t == marker));
        assert!(firsts(40).iter().all(|&t| t == marker));
        assert_eq!(FirstToken::at(None, 7), None);
    }
}
