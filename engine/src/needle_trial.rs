//! One needle trial run through a [`Session`]: the document's prompt, then the answer
//! generated greedily a token at a time. The studio's live needle test and the published
//! needle grid (`trainer eval`) both run this, so a live number and a published one come
//! from one path.

use std::sync::Arc;

use crate::backend::{Backend, Capture};
use crate::error::{EngineError, Result};
use crate::needles::NeedleDocument;
use crate::position::{ScaleFactor, SchemeSpec};
use crate::session::{Session, SessionOptions};

/// The scheme a trial of `multiple` x L runs under: `scheme` with its scale factor fixed
/// at the multiple, since the whole prompt and answer run at one length (the paper's
/// protocol; a dynamic scale would give the same `s` here anyway). Schemes that do not
/// scale (plain RoPE, no positions without beta) are unchanged by it.
pub fn trial_scheme(scheme: &SchemeSpec, multiple: usize) -> SchemeSpec {
    SchemeSpec {
        scale: ScaleFactor::Fixed(multiple.max(1) as f64),
        ..*scheme
    }
}

/// What a model did with one document.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRun {
    /// The answer tokens generated greedily (as many as the document's answer has, or
    /// fewer if the model predicted nothing).
    pub generated: Vec<u32>,
    /// Attention mass on the needle's tokens from the last prompt position (where the
    /// answer's first token is predicted), per head: `layer * heads + head`.
    pub needle_mass: Vec<f32>,
}

/// Runs `doc` (already carrying the model's first token, see
/// [`NeedleDocument::with_bos`]) through `backend` under `scheme` and answers greedily.
pub async fn run_trial<B: Backend>(
    backend: Arc<B>,
    scheme: SchemeSpec,
    doc: &NeedleDocument,
) -> Result<TrialRun> {
    let training_length = backend.config().training_length();
    let mut options = SessionOptions::new(scheme, training_length);
    options.max_tokens = doc.prompt.len() + doc.answer.len() + 1;
    options.top_k = 1;
    options.capture = Capture {
        heads: Vec::new(),
        span: Some(doc.needle.clone()),
    };
    let mut session = Session::new(backend, options)?;
    let trace = session.extend(&doc.prompt).await?;
    let last = trace
        .positions
        .last()
        .ok_or_else(|| EngineError::Input("the needle prompt is empty".into()))?;
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
    Ok(TrialRun {
        generated,
        needle_mass,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trials_fix_the_scale_at_their_length() {
        let dynamic: SchemeSpec = "yarn:dyn".parse().unwrap();
        assert_eq!(trial_scheme(&dynamic, 4).to_string(), "yarn:4");
        let drope: SchemeSpec = "none:dyn+beta".parse().unwrap();
        assert_eq!(trial_scheme(&drope, 2).to_string(), "none:2+beta");
        assert_eq!(trial_scheme(&drope, 1).to_string(), "none+beta");
        let heads: SchemeSpec = "none+beta=heads".parse().unwrap();
        assert_eq!(trial_scheme(&heads, 8).to_string(), "none:8+beta=heads");
        let rope: SchemeSpec = "rope".parse().unwrap();
        assert_eq!(trial_scheme(&rope, 8).position, rope.position);
    }
}
