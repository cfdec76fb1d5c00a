//! Prompts as a model sees them: a model trained with a beginning-of-sequence token
//! gets it first in every prompt (the studio's runs and the live needle runner), shown
//! as a token of its own; a model without one sees the text alone. Small random models
//! with the shipped tokenizer, on the CPU worker.
#![cfg(target_arch = "wasm32")]

use std::rc::Rc;

use app::analysis::{analyse, prepare_prompt};
use app::model_store::LoadedModel;
use app::needle_live::{run_trial, NeedleSubject};
use engine::init::SplitMix64;
use engine::{SchemeSpec, TextTokenizer};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

mod support;
use support::{random_model, TOKENIZER};

wasm_bindgen_test_configure!(run_in_browser);

const PROSE: &str = "The river ran slowly past the old mill, and the miller sang of harvests \
                     long gone while the wheel turned under the grey sky. ";

fn end_of_text() -> u32 {
    TextTokenizer::from_json(TOKENIZER)
        .unwrap()
        .token_id("<|endoftext|>")
        .unwrap()
}

/// A random model of L = 32, with `bos` as its beginning-of-sequence token.
async fn model(bos: Option<u32>) -> Rc<LoadedModel> {
    let bos_field = bos.map_or(String::new(), |id| format!(r#""bos_token_id": {id},"#));
    let model = random_model(
        &format!(
            r#"{{{bos_field} "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 48, "vocab_size": 4096,
            "max_position_embeddings": 32, "tie_word_embeddings": true}}"#
        ),
        5,
    )
    .await;
    assert_eq!(model.config().bos_token_id, bos);
    model
}

#[wasm_bindgen_test]
async fn a_model_trained_with_a_first_token_sees_it_first() {
    let bos = end_of_text();
    let (with, without) = (model(Some(bos)).await, model(None).await);
    let text = "Once upon a time";
    let plain = prepare_prompt(&without, text, None).unwrap();
    let marked = prepare_prompt(&with, text, None).unwrap();
    assert_eq!(marked.ids[0], bos);
    assert_eq!(&marked.ids[1..], &plain.ids[..]);
    assert_eq!(marked.texts[0], "<|endoftext|>");
    assert_eq!(marked.texts[1..].concat(), text);
    assert_eq!(marked.full_len, plain.full_len + 1);

    // The token counts towards the length asked for and the cap of 8L = 256.
    let two = prepare_prompt(&with, text, Some(2)).unwrap();
    assert_eq!(two.ids, marked.ids[..2]);
    let long = PROSE.repeat(40);
    let capped = prepare_prompt(&with, &long, None).unwrap();
    assert_eq!((capped.ids.len(), capped.ids[0]), (256, bos));
    // A length over the cap runs to the cap and says so.
    let over = prepare_prompt(&with, &long, Some(257)).unwrap();
    assert_eq!(over.ids, capped.ids);
    let note = over.capped.expect("a note on the cap");
    assert!(note.contains("257 tokens is over the cap of 256"), "{note}");
    assert_eq!(capped.capped, None);

    // The run scores every prompt token, the first one too (from the marker).
    let run = analyse(&with, text, SchemeSpec::NONE).await.unwrap();
    assert_eq!(run.tokens.len(), marked.ids.len());
    assert_eq!(run.tokens[0].id, bos);
    assert_eq!(run.tokens[0].nll, None);
    assert!(run.tokens[1..].iter().all(|t| t.nll.is_some()));
    let run = analyse(&without, text, SchemeSpec::NONE).await.unwrap();
    assert_eq!(run.tokens.len(), plain.ids.len());
    assert_eq!(run.tokens[0].nll, None);
}

#[wasm_bindgen_test]
async fn a_needle_trial_puts_the_first_token_before_the_document() {
    let bos = end_of_text();
    let haystack: Vec<u32> = TextTokenizer::from_json(TOKENIZER)
        .unwrap()
        .encode(&PROSE.repeat(20))
        .unwrap()
        .iter()
        .map(|p| p.id)
        .collect();
    for (first, extra) in [(Some(bos), 1), (None, 0)] {
        let subject = NeedleSubject {
            label: "Tiny \u{b7} rope".into(),
            scheme: "rope".parse().unwrap(),
            model: model(first).await,
        };
        let outcome = run_trial(&subject, &haystack, 2, 0.5, &mut SplitMix64::new(4))
            .await
            .unwrap();
        // 2 x L = 64 tokens, less the 7 answer digits and their space, plus the marker.
        assert_eq!(outcome.prompt_tokens, 64 - 8 + extra);
        assert!(
            outcome.needle_text.starts_with(" The magic number for "),
            "the needle's span moved with the marker: {:?}",
            outcome.needle_text
        );
    }
}
