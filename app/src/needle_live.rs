//! The live needle runner's trials: a retrieval document built from held-out prose
//! (`engine::needles`, the same documents `cargo xtask results` scores), answered
//! greedily by one of the studio's loaded models, with the attention the answer
//! position pays to the needle's tokens recorded per head.

use std::rc::Rc;
use std::sync::Arc;

use engine::init::SplitMix64;
use engine::needles::{NeedleMaker, ANSWER_DIGITS};
use engine::{Capture, ScaleFactor, SchemeSpec, Session, SessionOptions};

use crate::error::AppError;
use crate::model_store::LoadedModel;

/// A model and scheme the runner tests (one per studio series).
#[derive(Clone)]
pub struct NeedleSubject {
    /// Legend text of the series.
    pub label: String,
    /// The series' scheme; its scale is fixed per trial length (see [`trial_scheme`]).
    pub scheme: SchemeSpec,
    /// The loaded model.
    pub model: Rc<LoadedModel>,
}

/// One answered trial.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialOutcome {
    /// Prompt length as a multiple of the training length L.
    pub multiple: usize,
    /// Where the needle sat in the haystack (0 = start, 1 = end).
    pub depth: f64,
    /// Prompt tokens, including the needle and the question.
    pub prompt_tokens: usize,
    /// The number asked for.
    pub expected: String,
    /// What the model wrote after "... is".
    pub generated: String,
    /// Exact match of the number.
    pub exact: bool,
    /// Digits right and in place (0..=7).
    pub digits_right: usize,
    /// The needle sentence as text.
    pub needle_text: String,
    /// Attention mass on the needle's tokens from the answer position (the last
    /// prompt token), per head: `layer * heads + head`.
    pub needle_mass: Vec<f32>,
    /// Heads per layer (to index `needle_mass`).
    pub heads: usize,
}

impl TrialOutcome {
    /// The head that looked at the needle most: (layer, head, mass).
    pub fn strongest_head(&self) -> Option<(usize, usize, f32)> {
        self.needle_mass
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, &mass)| (i / self.heads.max(1), i % self.heads.max(1), mass))
    }
}

/// The scheme a trial of `multiple` x L runs under: the series' own with its scale
/// factor fixed at the multiple, since the whole prompt and answer run at one length
/// (the evaluation's protocol; a dynamic scale would give the same s here anyway).
pub fn trial_scheme(scheme: &SchemeSpec, multiple: usize) -> SchemeSpec {
    SchemeSpec {
        scale: ScaleFactor::Fixed(multiple.max(1) as f64),
        ..*scheme
    }
}

/// The haystack's token ids: the sample's text through the model's tokenizer.
pub fn haystack_ids(model: &LoadedModel, text: &str) -> Result<Vec<u32>, AppError> {
    Ok(model.tokenizer.encode(text)?.iter().map(|p| p.id).collect())
}

/// Builds one document of `multiple` x L tokens with the needle at `depth` from a
/// window of `haystack` chosen by `rng`, and has the subject answer it greedily.
pub async fn run_trial(
    subject: &NeedleSubject,
    haystack: &[u32],
    multiple: usize,
    depth: f64,
    rng: &mut SplitMix64,
) -> Result<TrialOutcome, AppError> {
    let model = &subject.model;
    let config = model.config();
    let total = multiple * model.training_length();
    if haystack.len() <= total {
        return Err(AppError::Input(format!(
            "the sample has {} tokens; a needle test of {total} tokens needs more",
            haystack.len()
        )));
    }
    let maker = NeedleMaker::new(&model.tokenizer).map_err(AppError::Input)?;
    let start = (rng.next_u64() % (haystack.len() - total) as u64) as usize;
    // Room for the answer within `total`, as in the evaluation.
    let doc = maker
        .make(
            &haystack[start..start + total],
            total.checked_sub(ANSWER_DIGITS + 1).ok_or_else(|| {
                AppError::Input(format!(
                    "a needle test of {total} tokens leaves no room for the question and its \
                     {ANSWER_DIGITS}-digit answer"
                ))
            })?,
            &[depth],
            0,
            rng,
        )
        .map_err(AppError::Input)?
        .with_bos(config.bos_token_id);

    let mut options = SessionOptions::new(
        trial_scheme(&subject.scheme, multiple),
        model.training_length(),
    );
    options.max_tokens = doc.prompt.len() + ANSWER_DIGITS + 1;
    options.top_k = 1;
    options.capture = Capture {
        heads: Vec::new(),
        span: Some(doc.needle.clone()),
    };
    let mut session = Session::new(Arc::clone(&model.backend), options)?;
    let trace = session.extend(&doc.prompt).await?;
    let last = trace
        .positions
        .last()
        .ok_or_else(|| AppError::Input("the needle prompt is empty".into()))?;
    let needle_mass = last.heads.iter().map(|h| h.span_mass).collect();
    let mut next = last.predictions.first().map(|p| p.token);
    let mut generated = Vec::new();
    while let Some(token) = next.filter(|_| generated.len() < doc.answer.len()) {
        generated.push(token);
        if generated.len() == doc.answer.len() {
            break;
        }
        let step = session.extend(&[token]).await?;
        next = step
            .positions
            .last()
            .and_then(|p| p.predictions.first())
            .map(|p| p.token);
    }
    let score = maker.score(&doc, &generated).map_err(AppError::Input)?;
    Ok(TrialOutcome {
        multiple,
        depth,
        prompt_tokens: doc.prompt.len(),
        expected: doc.answer_text.clone(),
        generated: model.tokenizer.decode(&generated)?,
        exact: score.exact,
        digits_right: score.digits_right,
        needle_text: model.tokenizer.decode(&doc.prompt[doc.needle.clone()])?,
        needle_mass,
        heads: config.num_attention_heads,
    })
}

/// Correct answers and trials of one grid cell (one subject at one length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    /// Exact matches.
    pub correct: usize,
    /// Trials run.
    pub trials: usize,
}

impl Tally {
    /// Adds one outcome.
    pub fn record(&mut self, exact: bool) {
        self.trials += 1;
        self.correct += exact as usize;
    }

    /// Exact-match accuracy, `None` before any trial.
    pub fn accuracy(&self) -> Option<f64> {
        (self.trials > 0).then(|| self.correct as f64 / self.trials as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn trials_fix_the_scale_at_their_length() {
        let dynamic: SchemeSpec = "yarn:dyn".parse().unwrap();
        assert_eq!(trial_scheme(&dynamic, 4).to_string(), "yarn:4");
        let drope: SchemeSpec = "none:dyn+beta".parse().unwrap();
        assert_eq!(trial_scheme(&drope, 2).scale, ScaleFactor::Fixed(2.0));
        assert_eq!(trial_scheme(&drope, 2).logit_scale, drope.logit_scale);
        let rope: SchemeSpec = "rope".parse().unwrap();
        assert_eq!(trial_scheme(&rope, 8).position, rope.position);
    }

    #[wasm_bindgen_test]
    fn tallies_count_exact_answers() {
        let mut tally = Tally::default();
        assert_eq!(tally.accuracy(), None);
        tally.record(true);
        tally.record(false);
        tally.record(true);
        assert_eq!(
            tally,
            Tally {
                correct: 2,
                trials: 3
            }
        );
        assert!((tally.accuracy().unwrap() - 2.0 / 3.0).abs() < 1e-12);
    }

    #[wasm_bindgen_test]
    fn the_strongest_head_is_found_by_mass() {
        let outcome = TrialOutcome {
            multiple: 1,
            depth: 0.5,
            prompt_tokens: 10,
            expected: "1234567".into(),
            generated: " 1234567".into(),
            exact: true,
            digits_right: 7,
            needle_text: String::new(),
            needle_mass: vec![0.1, 0.2, 0.05, 0.7, 0.3, 0.0],
            heads: 3,
        };
        assert_eq!(outcome.strongest_head(), Some((1, 0, 0.7)));
    }
}
