//! The live needle runner's trials: a retrieval document built from held-out prose
//! (`engine::needles`, the same documents `cargo xtask results` scores), answered
//! greedily by one of the studio's loaded models, with the attention the answer
//! position pays to the needle's tokens recorded per head.

use std::rc::Rc;
use std::sync::Arc;

use engine::init::SplitMix64;
use engine::needle_trial::{trial_scheme, TrialRun};
use engine::needles::{NeedleMaker, ANSWER_DIGITS};
use engine::SchemeSpec;

use crate::error::AppError;
use crate::model_store::LoadedModel;

/// A model and scheme the runner tests (one per studio series).
#[derive(Clone)]
pub struct NeedleSubject {
    /// Legend text of the series.
    pub label: String,
    /// The series' scheme; its scale is fixed per trial length
    /// ([`engine::needle_trial::trial_scheme`]).
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

    let TrialRun {
        generated,
        needle_mass,
    } = engine::needle_trial::run_trial(
        Arc::clone(&model.backend),
        trial_scheme(&subject.scheme, multiple),
        &doc,
    )
    .await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
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
