//! Synthetic key-value retrieval documents ("needle in a haystack"): prose with one or
//! more "The magic number for <key> is <7 digits>." sentences at chosen depths, then a
//! question whose answer is one of the numbers. A share of training sequences are such
//! documents (never longer than L), so the needle test at 2x..8x L measures length
//! generalisation of a skill the model did learn, as in the paper's protocol.
//! Shared by the trainer (training data, the evaluation's needle grid) and the studio's
//! live needle runner.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::init::SplitMix64;
use crate::TextTokenizer;

const ADJECTIVES: &[&str] = &[
    "amber",
    "silent",
    "crimson",
    "gentle",
    "hollow",
    "northern",
    "silver",
    "bitter",
    "golden",
    "restless",
    "ancient",
    "quiet",
    "scarlet",
    "wandering",
    "frozen",
    "distant",
    "bright",
    "hidden",
    "iron",
    "velvet",
    "copper",
    "lonely",
    "emerald",
    "swift",
    "pale",
];
const NOUNS: &[&str] = &[
    "harbour", "falcon", "lantern", "orchard", "river", "meadow", "tower", "compass", "willow",
    "engine", "garden", "anchor", "mirror", "valley", "comet", "island", "forest", "bridge",
    "candle", "mountain", "violin", "shadow", "kettle", "glacier", "window",
];

/// Digits of every answer (numbers are drawn from 1000000..=9999999).
pub const ANSWER_DIGITS: usize = 7;

/// How close a generated answer came to the number asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerScore {
    /// The generated number is exactly the answer.
    pub exact: bool,
    /// Answer digits generated correctly in the right place (0..=`ANSWER_DIGITS`).
    pub digits_right: usize,
}

/// Counts of needle trials: what a cell of the needle grid and a training probe (a
/// train log's `needles`) add up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeedleTally {
    /// Trials run.
    pub trials: usize,
    /// Answers that were exactly the 7-digit number.
    pub correct: usize,
    /// Answer digits right in the right place, over all trials (7 per trial at most;
    /// absent from the first train logs).
    #[serde(default)]
    pub digits_correct: usize,
}

impl NeedleTally {
    /// Adds one trial.
    pub fn record(&mut self, score: AnswerScore) {
        self.trials += 1;
        self.correct += usize::from(score.exact);
        self.digits_correct += score.digits_right;
    }

    /// Adds another tally's trials.
    pub fn add(&mut self, other: NeedleTally) {
        self.trials += other.trials;
        self.correct += other.correct;
        self.digits_correct += other.digits_correct;
    }

    /// Exact-match accuracy (0 without trials).
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.trials.max(1) as f64
    }

    /// Fraction of answer digits right in the right place (0 without trials).
    pub fn digit_accuracy(&self) -> f64 {
        self.digits_correct as f64 / (ANSWER_DIGITS * self.trials).max(1) as f64
    }

    /// 95% Wilson interval of the exact-match accuracy.
    pub fn wilson(&self) -> (f64, f64) {
        wilson_interval(self.correct, self.trials, Z_95)
    }
}

/// Normal quantile of a two-sided 95% interval.
pub const Z_95: f64 = 1.959_964;

/// Wilson score interval `(low, high)` of a binomial proportion, `successes` out of
/// `trials`, at normal quantile `z`. Unlike the normal approximation it stays inside
/// [0, 1] and is not degenerate at 0% or 100%, which is where weak or strong models sit.
/// No trials: `(0, 1)`.
pub fn wilson_interval(successes: usize, trials: usize, z: f64) -> (f64, f64) {
    if trials == 0 {
        return (0.0, 1.0);
    }
    let n = trials as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Scores `generated` text against the `expected` digits. The generated number is the run
/// of digits after an optional leading space (the answer follows "... is"), so a model
/// that writes the right digits in a different tokenization, or a full stop after them,
/// still counts.
pub fn score_answer(expected: &str, generated: &str) -> AnswerScore {
    let body = generated.strip_prefix(' ').unwrap_or(generated);
    let number = &body[..body
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(body.len())];
    AnswerScore {
        exact: number == expected,
        digits_right: expected
            .bytes()
            .zip(number.bytes())
            .filter(|(a, b)| a == b)
            .count(),
    }
}

/// A retrieval document, as token ids.
#[derive(Debug, Clone)]
pub struct NeedleDocument {
    /// Haystack, needles and question, ending right before the answer.
    pub prompt: Vec<u32>,
    /// The answer's tokens (a space and seven digits).
    pub answer: Vec<u32>,
    /// Token span of the needle the question asks about.
    pub needle: Range<usize>,
    /// The answer as text.
    pub answer_text: String,
}

impl NeedleDocument {
    /// Prompt followed by the answer and a full stop: what training sees.
    pub fn full(&self, full_stop: &[u32]) -> Vec<u32> {
        let mut all = self.prompt.clone();
        all.extend_from_slice(&self.answer);
        all.extend_from_slice(full_stop);
        all
    }

    /// The document as a model that starts every sequence with `bos` must see it: the
    /// token first, the needle's span moved with it. Unchanged without one.
    pub fn with_bos(mut self, bos: Option<u32>) -> NeedleDocument {
        if let Some(bos) = bos {
            self.prompt.insert(0, bos);
            self.needle = self.needle.start + 1..self.needle.end + 1;
        }
        self
    }
}

/// Builds retrieval documents with one tokenizer.
pub struct NeedleMaker<'t> {
    tokenizer: &'t TextTokenizer,
    /// Tokens of ".", appended after the answer in training documents.
    pub full_stop: Vec<u32>,
}

fn encode(tokenizer: &TextTokenizer, text: &str) -> Result<Vec<u32>, String> {
    Ok(tokenizer
        .encode(text)
        .map_err(|e| e.to_string())?
        .iter()
        .map(|p| p.id)
        .collect())
}

impl<'t> NeedleMaker<'t> {
    /// A maker for `tokenizer`.
    pub fn new(tokenizer: &'t TextTokenizer) -> Result<Self, String> {
        Ok(NeedleMaker {
            tokenizer,
            full_stop: encode(tokenizer, ".")?,
        })
    }

    /// Scores the `generated` tokens as the answer to `doc` (see [`score_answer`]).
    pub fn score(&self, doc: &NeedleDocument, generated: &[u32]) -> Result<AnswerScore, String> {
        let text = self
            .tokenizer
            .decode(generated)
            .map_err(|e| e.to_string())?;
        Ok(score_answer(&doc.answer_text, &text))
    }

    /// A document of exactly `total` prompt tokens (plus the answer) with `needles` needles;
    /// the question asks about the one at `depths[asked]` (depth 0 = start, 1 = end of the
    /// haystack). `haystack` supplies prose and must be at least `total` tokens long.
    pub fn make(
        &self,
        haystack: &[u32],
        total: usize,
        depths: &[f64],
        asked: usize,
        rng: &mut SplitMix64,
    ) -> Result<NeedleDocument, String> {
        let mut keys: Vec<String> = Vec::new();
        while keys.len() < depths.len() {
            let key = format!(
                "{}-{}",
                ADJECTIVES[(rng.next_u64() % ADJECTIVES.len() as u64) as usize],
                NOUNS[(rng.next_u64() % NOUNS.len() as u64) as usize]
            );
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        let numbers: Vec<String> = depths
            .iter()
            .map(|_| format!("{}", 1_000_000 + rng.next_u64() % 9_000_000))
            .collect();
        let needles: Vec<Vec<u32>> = keys
            .iter()
            .zip(&numbers)
            .map(|(k, n)| {
                encode(
                    self.tokenizer,
                    &format!(" The magic number for {k} is {n}."),
                )
            })
            .collect::<Result<_, _>>()?;
        let key = &keys[asked];
        let question = encode(
            self.tokenizer,
            &format!(" What is the magic number for {key}? The magic number for {key} is"),
        )?;
        let answer = encode(self.tokenizer, &format!(" {}", numbers[asked]))?;
        let fixed: usize = needles.iter().map(Vec::len).sum::<usize>() + question.len();
        let hay_len = total.checked_sub(fixed).filter(|&n| n > 0).ok_or_else(|| {
            format!("a needle document needs more than {fixed} tokens, got {total}")
        })?;
        if haystack.len() < hay_len {
            return Err(format!(
                "haystack of {} tokens is shorter than {hay_len}",
                haystack.len()
            ));
        }
        let hay = &haystack[..hay_len];
        // Needles go in order of depth so their cut points are increasing.
        let mut order: Vec<usize> = (0..depths.len()).collect();
        order.sort_by(|&a, &b| depths[a].total_cmp(&depths[b]));
        let mut prompt = Vec::with_capacity(total);
        let mut cursor = 0;
        let mut needle_span = 0..0;
        for &i in &order {
            let cut =
                ((depths[i].clamp(0.0, 1.0) * hay_len as f64) as usize).clamp(cursor, hay_len);
            prompt.extend_from_slice(&hay[cursor..cut]);
            cursor = cut;
            let start = prompt.len();
            prompt.extend_from_slice(&needles[i]);
            if i == asked {
                needle_span = start..prompt.len();
            }
        }
        prompt.extend_from_slice(&hay[cursor..]);
        prompt.extend_from_slice(&question);
        Ok(NeedleDocument {
            prompt,
            answer,
            needle: needle_span,
            answer_text: numbers[asked].clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> TextTokenizer {
        TextTokenizer::from_json(include_bytes!("../../public/models/tokenizer.json")).unwrap()
    }

    fn close(a: (f64, f64), b: (f64, f64)) -> bool {
        (a.0 - b.0).abs() < 5e-4 && (a.1 - b.1).abs() < 5e-4
    }

    #[test]
    fn wilson_interval_matches_hand_computed_values() {
        // centre 0.5, half-width 1.96 / 1.0384 * sqrt(0.0025 + 0.000096) = 0.0962.
        assert!(close(wilson_interval(50, 100, Z_95), (0.4038, 0.5962)));
        // 0 successes: [0, z^2 / (n + z^2)] = [0, 3.8415 / 78.8415].
        assert!(close(wilson_interval(0, 75, Z_95), (0.0, 0.0487)));
        assert!(close(wilson_interval(75, 75, Z_95), (0.9513, 1.0)));
        // centre 0.99207 / 1.38415 = 0.7167, half-width 1.4160 * 0.16001 = 0.2266.
        assert!(close(wilson_interval(8, 10, Z_95), (0.4902, 0.9433)));
        assert_eq!(wilson_interval(0, 0, Z_95), (0.0, 1.0));
    }

    #[test]
    fn tallies_count_trials_and_digits() {
        let score = |exact, digits_right| AnswerScore {
            exact,
            digits_right,
        };
        let mut a = NeedleTally::default();
        a.record(score(true, 7));
        a.record(score(false, 3));
        let mut b = NeedleTally::default();
        b.record(score(false, 4));
        a.add(b);
        assert_eq!((a.trials, a.correct, a.digits_correct), (3, 1, 14));
        assert!((a.accuracy() - 1.0 / 3.0).abs() < 1e-12);
        assert!((a.digit_accuracy() - 14.0 / 21.0).abs() < 1e-12);
        assert_eq!(a.wilson(), wilson_interval(1, 3, Z_95));
        assert_eq!(NeedleTally::default().accuracy(), 0.0);
    }

    #[test]
    fn needle_documents_have_the_asked_length_and_a_findable_answer() {
        let tok = tokenizer();
        let maker = NeedleMaker::new(&tok).unwrap();
        let prose = encode(
            &tok,
            &"The river ran slowly past the old mill, and the miller sang. ".repeat(60),
        )
        .unwrap();
        let mut rng = SplitMix64::new(3);
        for (depths, asked) in [
            (vec![0.0], 0),
            (vec![0.5], 0),
            (vec![1.0], 0),
            (vec![0.9, 0.1, 0.4], 1),
        ] {
            let doc = maker.make(&prose, 300, &depths, asked, &mut rng).unwrap();
            assert_eq!(doc.prompt.len(), 300);
            assert_eq!(doc.answer_text.len(), 7);
            assert_eq!(
                tok.decode(&doc.answer).unwrap(),
                format!(" {}", doc.answer_text)
            );
            let needle = tok.decode(&doc.prompt[doc.needle.clone()]).unwrap();
            assert!(needle.starts_with(" The magic number for "), "{needle}");
            assert!(
                needle.ends_with(&format!(" is {}.", doc.answer_text)),
                "{needle}"
            );
            let text = tok.decode(&doc.prompt).unwrap();
            assert!(
                text.contains(" What is the magic number for ") && text.ends_with(" is"),
                "{text}"
            );
            // The needle sits at the requested depth (within the needles placed before it).
            let depth = doc.needle.start as f64 / 300.0;
            assert!(
                (depth - depths[asked]).abs() < 0.35,
                "depth {depth} vs {}",
                depths[asked]
            );
        }
        assert!(
            maker.make(&prose, 20, &[0.5], 0, &mut rng).is_err(),
            "too short for the needle and question"
        );
    }

    #[test]
    fn a_beginning_of_sequence_token_goes_first_and_moves_the_needle() {
        let tok = tokenizer();
        let maker = NeedleMaker::new(&tok).unwrap();
        let prose = encode(
            &tok,
            &"Rain fell on the roofs of the town all night. ".repeat(40),
        )
        .unwrap();
        let doc = maker
            .make(&prose, 200, &[0.5], 0, &mut SplitMix64::new(9))
            .unwrap();
        let needle_text = tok.decode(&doc.prompt[doc.needle.clone()]).unwrap();
        let moved = doc.clone().with_bos(Some(7));
        assert_eq!(moved.prompt.len(), 201);
        assert_eq!(moved.prompt[0], 7);
        assert_eq!(&moved.prompt[1..], &doc.prompt[..]);
        assert_eq!(
            tok.decode(&moved.prompt[moved.needle.clone()]).unwrap(),
            needle_text
        );
        assert_eq!(moved.answer, doc.answer);
        let same = doc.clone().with_bos(None);
        assert_eq!((same.prompt, same.needle), (doc.prompt, doc.needle));
    }

    #[test]
    fn answers_score_exact_match_and_digits_in_place() {
        let score = |generated| score_answer("1234567", generated);
        let exact = AnswerScore {
            exact: true,
            digits_right: 7,
        };
        assert_eq!(score(" 1234567"), exact);
        assert_eq!(score("1234567"), exact, "no leading space");
        assert_eq!(score(" 1234567."), exact, "a full stop after the number");
        let partial = |digits_right| AnswerScore {
            exact: false,
            digits_right,
        };
        assert_eq!(score(" 1234000"), partial(4));
        assert_eq!(score(" 9234561"), partial(5), "digits count in place");
        assert_eq!(
            score(" 2345671"),
            partial(0),
            "shifted digits are not in place"
        );
        assert_eq!(score(" 12345678"), partial(7), "a longer number is wrong");
        assert_eq!(score(" 123"), partial(3), "a shorter number is wrong");
        assert_eq!(
            score(" the 1234567"),
            partial(0),
            "the number must come first"
        );
        assert_eq!(score(""), partial(0));
    }

    #[test]
    fn the_answer_tokens_of_a_document_score_as_exact() {
        let tok = tokenizer();
        let maker = NeedleMaker::new(&tok).unwrap();
        let prose: Vec<u32> = encode(&tok, &"A quiet day by the sea. ".repeat(40)).unwrap();
        let doc = maker
            .make(&prose, 200, &[0.5], 0, &mut SplitMix64::new(5))
            .unwrap();
        let score = maker.score(&doc, &doc.answer).unwrap();
        assert!(score.exact && score.digits_right == ANSWER_DIGITS);
    }
}
