//! The live needle runner mounted alone with a small random model (the shipped
//! tokenizer, L = 64): it runs every planned trial, fills the grid, shows the last
//! trial's answer and the attention on the needle, and refuses bad settings clearly.
#![cfg(target_arch = "wasm32")]

use app::needle_live::NeedleSubject;
use app::views::NeedleLive;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use web_sys::{HtmlElement, HtmlInputElement};

wasm_bindgen_test_configure!(run_in_browser);

mod support;
use support::{all, container, random_model, settle};

const PROSE: &str = "The river ran slowly past the old mill, and the miller sang of harvests \
                     long gone while the wheel turned under the grey sky. ";

async fn subject() -> NeedleSubject {
    let config_json = r#"{"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "intermediate_size": 48, "vocab_size": 4096,
        "max_position_embeddings": 64, "tie_word_embeddings": true}"#;
    NeedleSubject {
        label: "Tiny \u{b7} rope".into(),
        scheme: "rope".parse().unwrap(),
        model: random_model(config_json, 3).await,
    }
}

fn click(root: &HtmlElement, selector: &str) {
    root.query_selector(selector)
        .unwrap()
        .unwrap_or_else(|| panic!("no {selector}"))
        .unchecked_into::<HtmlElement>()
        .click();
}

fn text(root: &HtmlElement, selector: &str) -> String {
    root.query_selector(selector)
        .unwrap()
        .map(|e| e.text_content().unwrap_or_default())
        .unwrap_or_default()
}

/// Waits (up to about 20 s) until the progress line reads `want`.
async fn wait_for_progress(root: &HtmlElement, want: &str) {
    for _ in 0..400 {
        if text(root, r#"[data-testid="needle-progress"]"#) == want {
            return;
        }
        app::pause::pause(50).await;
    }
    panic!(
        "progress stayed at {:?} (wanted {want:?}); errors: {:?}",
        text(root, r#"[data-testid="needle-progress"]"#),
        text(root, r#"[role="alert"]"#)
    );
}

#[wasm_bindgen_test]
async fn runs_a_small_grid_and_explains_the_last_trial() {
    let root = container();
    let subjects = RwSignal::new_local(vec![subject().await]);
    let haystack = RwSignal::new(Some(PROSE.repeat(20)));
    let _mounted = leptos::mount::mount_to(root.clone(), move || {
        view! { <NeedleLive subjects=subjects haystack=haystack /> }
    });
    settle().await;

    // Lengths 1x and 2x (untick 4x), one trial per depth: 2 lengths x 3 depths.
    let boxes = all(&root, r#"input[data-testid="needle-length"]"#);
    assert_eq!(boxes.len(), 4);
    boxes[2].unchecked_ref::<HtmlElement>().click();
    settle().await;
    click(&root, r#"[data-testid="needle-run"]"#);
    settle().await;
    assert!(
        root.query_selector(r#"[data-testid="needle-stop"]"#)
            .unwrap()
            .is_some(),
        "Run turns into Stop while trials run"
    );
    wait_for_progress(&root, "6 of 6 trials").await;
    settle().await;

    let cells = all(&root, r#"[data-testid="needle-live-cell"]"#);
    assert_eq!(cells.len(), 2, "one row, two lengths");
    for cell in &cells {
        let shown = cell.text_content().unwrap_or_default();
        assert!(shown.ends_with("/ 3"), "three trials per length: {shown}");
    }
    let last = text(&root, r#"[data-testid="needle-last"]"#);
    assert!(last.contains("at 2x L (a 120-token prompt)"), "{last}");
    assert!(last.contains("The magic number for"), "{last}");
    let verdict = text(&root, r#"[data-testid="needle-verdict"]"#);
    assert!(
        verdict == "right" || verdict.starts_with("wrong ("),
        "{verdict}"
    );
    // One bar per layer, each a share of attention.
    let values = all(&root, r#"[data-testid="needle-mass"] li .value"#);
    assert_eq!(values.len(), 2);
    for value in values {
        let value = value.text_content().unwrap_or_default();
        let percent: f64 = value
            .strip_suffix('%')
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no percentage in {value:?}"));
        assert!((0.0..=100.0).contains(&percent), "{value}");
    }
    assert!(root
        .query_selector(r#"[data-testid="needle-run"]"#)
        .unwrap()
        .is_some());
}

#[wasm_bindgen_test]
async fn bad_settings_get_a_message_and_run_nothing() {
    let root = container();
    let subjects = RwSignal::new_local(Vec::<NeedleSubject>::new());
    let haystack = RwSignal::new(Some(PROSE.repeat(20)));
    let _mounted = leptos::mount::mount_to(root.clone(), move || {
        view! { <NeedleLive subjects=subjects haystack=haystack /> }
    });
    settle().await;

    click(&root, r#"[data-testid="needle-run"]"#);
    settle().await;
    assert!(text(&root, r#"[role="alert"]"#).contains("No model has loaded yet"));

    subjects.set(vec![subject().await]);
    let trials: HtmlInputElement = root
        .query_selector(r#"input[data-testid="needle-trials"]"#)
        .unwrap()
        .unwrap()
        .unchecked_into();
    trials.set_value("50");
    trials
        .dispatch_event(&web_sys::Event::new("input").unwrap())
        .unwrap();
    settle().await;
    click(&root, r#"[data-testid="needle-run"]"#);
    settle().await;
    assert!(text(&root, r#"[role="alert"]"#).contains("from 1 to 20"));
    assert!(all(&root, r#"[data-testid="needle-live-cell"]"#).is_empty());

    // A haystack shorter than the document: the trial's error is shown, not a panic.
    trials.set_value("1");
    trials
        .dispatch_event(&web_sys::Event::new("input").unwrap())
        .unwrap();
    haystack.set(Some("Too short.".into()));
    settle().await;
    click(&root, r#"[data-testid="needle-run"]"#);
    for _ in 0..100 {
        if text(&root, r#"[role="alert"]"#).contains("needs more") {
            break;
        }
        app::pause::pause(20).await;
    }
    assert!(
        text(&root, r#"[role="alert"]"#).contains("needs more"),
        "{}",
        text(&root, r#"[role="alert"]"#)
    );
}
