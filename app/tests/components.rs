//! Component tests: each view mounted alone with small synthetic data, asserting on the
//! DOM it produces. Run in headless Chromium:
//! `cargo test --target wasm32-unknown-unknown -p app`.
#![cfg(target_arch = "wasm32")]

use app::analysis::{AttentionMap, Guess, TokenStat};
use app::views::{AttentionHeatmap, HeatScale, NllChart, TokenStrip};
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use web_sys::{CanvasRenderingContext2d, Element, HtmlCanvasElement, HtmlElement};

wasm_bindgen_test_configure!(run_in_browser);

/// A fresh `<div>` in the body to mount one component into.
fn container() -> HtmlElement {
    let document = web_sys::window().unwrap().document().unwrap();
    let div: HtmlElement = document.create_element("div").unwrap().unchecked_into();
    document.body().unwrap().append_child(&div).unwrap();
    div
}

/// Lets effects and reactive updates run.
async fn settle() {
    for _ in 0..5 {
        leptos::task::tick().await;
    }
}

fn all(root: &HtmlElement, selector: &str) -> Vec<Element> {
    let list = root.query_selector_all(selector).unwrap();
    (0..list.length())
        .map(|i| list.item(i).unwrap().unchecked_into())
        .collect()
}

/// `n` tokens with byte-level oddities (emoji, right-to-left text, a newline, an empty
/// piece); the first has no NLL, like the engine's.
fn tokens(n: usize) -> Vec<TokenStat> {
    let texts = [
        "The",
        " cat",
        " \u{1F600}",
        " \u{5E9}\u{5DC}\u{5D5}\u{5DD}",
        "\n",
        "",
        " sat",
    ];
    (0..n)
        .map(|i| TokenStat {
            position: i,
            id: i as u32,
            text: texts[i % texts.len()].to_string(),
            nll: (i > 0).then_some((i % 7) as f32 * 1.3),
            rank: (i > 0).then_some((i % 3) as u32),
            expected: if i > 0 {
                vec![
                    Guess {
                        text: " dog".into(),
                        probability: 0.4,
                    },
                    Guess {
                        text: "\u{1F600}".into(),
                        probability: 0.1,
                    },
                ]
            } else {
                vec![]
            },
        })
        .collect()
}

#[wasm_bindgen_test]
async fn token_strip_has_one_span_per_token_with_hover_details() {
    let root = container();
    let data = RwSignal::new(tokens(12));
    let _mounted = leptos::mount::mount_to(root.clone(), move || {
        view! { <TokenStrip tokens=data nll_max=8.0f32 training_length=8usize /> }
    });
    settle().await;

    let spans = all(&root, r#"span[data-testid="token"]"#);
    assert_eq!(spans.len(), 12);
    assert!(spans[0].class_name().contains("no-nll"));
    let first = spans[0].get_attribute("title").unwrap();
    assert!(first.contains("no NLL"), "{first}");
    let third = spans[3].get_attribute("title").unwrap();
    assert!(third.contains("NLL 3.90 nats"), "{third}");
    assert!(third.contains("rank 1"), "{third}");
    assert!(third.contains("\" dog\"  40%"), "{third}");
    let style = spans[3].get_attribute("style").unwrap();
    assert!(style.contains("background"), "{style}");
    // A piece without text of its own (part of a character) is still there to hover.
    assert!(spans[5].class_name().contains("partial"));
    assert!(spans[5]
        .get_attribute("title")
        .unwrap()
        .contains("first bytes"));
    assert_eq!(spans[4].text_content().unwrap(), "\u{21B5}\n");
    // One divider before position L = 8.
    assert_eq!(all(&root, ".l-divider").len(), 1);

    data.set(tokens(3));
    settle().await;
    assert_eq!(all(&root, r#"span[data-testid="token"]"#).len(), 3);
    assert_eq!(all(&root, ".l-divider").len(), 0);
}

#[wasm_bindgen_test]
async fn nll_chart_plots_one_point_per_token_and_marks_l() {
    let root = container();
    let data = RwSignal::new(tokens(12));
    let _mounted = leptos::mount::mount_to(root.clone(), move || {
        view! { <NllChart tokens=data training_length=8usize uniform_nll=5.5f32 /> }
    });
    settle().await;

    let points = r#"svg[data-testid="nll-chart"] circle[data-testid="nll-point"]"#;
    assert_eq!(all(&root, points).len(), 12);
    let markers = all(
        &root,
        r#"svg[data-testid="nll-chart"] [data-testid="L-marker"]"#,
    );
    assert_eq!(markers.len(), 1);
    // The marker sits between positions 7 and 8's points... exactly at 8's.
    let cx = |e: &Element| e.get_attribute("cx").unwrap().parse::<f32>().unwrap();
    let circles = all(&root, points);
    let marker_x: f32 = markers[0].get_attribute("x1").unwrap().parse().unwrap();
    assert!((marker_x - cx(&circles[8])).abs() < 1e-3);
    // The first token (no NLL) is drawn at ln V, the same height as a token with NLL 5.5.
    assert!(circles[0]
        .get_attribute("class")
        .unwrap()
        .contains("no-nll"));
    assert!(circles[0].text_content().unwrap().contains("no NLL"));

    // Past 2L the chart adds a 2L marker; the point count follows the data.
    data.set(tokens(40));
    settle().await;
    assert_eq!(all(&root, points).len(), 40);
    assert_eq!(all(&root, r#"[data-testid="L-marker"]"#).len(), 1);
    assert_eq!(all(&root, ".l-multiple").len(), 2); // 2L = 16 and 4L = 32
    let summary = all(&root, ".chart-summary")[0].text_content().unwrap();
    assert!(summary.contains("before L"), "{summary}");
}

#[wasm_bindgen_test]
async fn nll_chart_keeps_l_marker_with_no_tokens() {
    let root = container();
    let empty: Vec<TokenStat> = Vec::new();
    let _mounted = leptos::mount::mount_to(root.clone(), move || {
        view! { <NllChart tokens=empty training_length=64usize uniform_nll=5.5f32 /> }
    });
    settle().await;
    assert_eq!(all(&root, r#"circle[data-testid="nll-point"]"#).len(), 0);
    assert_eq!(all(&root, r#"[data-testid="L-marker"]"#).len(), 1);
}

fn canvas_pixels(canvas: &HtmlCanvasElement) -> Vec<u8> {
    let context: CanvasRenderingContext2d =
        canvas.get_context("2d").unwrap().unwrap().unchecked_into();
    context
        .get_image_data(0.0, 0.0, canvas.width() as f64, canvas.height() as f64)
        .unwrap()
        .data()
        .0
}

#[wasm_bindgen_test]
async fn heatmap_draws_the_lower_triangle() {
    let root = container();
    let n = 5;
    // Row q spreads its weight evenly over keys 0..=q.
    let rows: Vec<Vec<f32>> = (0..n).map(|q| vec![1.0 / (q + 1) as f32; q + 1]).collect();
    let map = AttentionMap::from_rows(rows.iter().map(|r| &r[..]));
    let shown = RwSignal::new(Some(map));
    let scale = RwSignal::new(HeatScale::Linear);
    let labels: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
    let _mounted = leptos::mount::mount_to(root.clone(), move || {
        view! { <AttentionHeatmap map=shown labels=labels.clone() scale=scale /> }
    });
    settle().await;

    let canvas: HtmlCanvasElement = root
        .query_selector(r#"canvas[data-testid="attention-heatmap"]"#)
        .unwrap()
        .expect("the heatmap canvas")
        .unchecked_into();
    assert_eq!((canvas.width(), canvas.height()), (5, 5));
    let pixels = canvas_pixels(&canvas);
    let alpha = |q: usize, k: usize| pixels[(q * n + k) * 4 + 3];
    let opaque = (0..n * n).filter(|i| pixels[i * 4 + 3] != 0).count();
    assert_eq!(opaque, n * (n + 1) / 2);
    assert_eq!(alpha(0, 4), 0);
    assert_eq!(alpha(4, 0), 255);
    // Weight 1 (query 0 on itself) is viridis' yellow end.
    assert_eq!(&pixels[0..3], &[0xfd, 0xe7, 0x25]);
    let linear_last_row = pixels[(4 * n) * 4..(4 * n + 1) * 4].to_vec();

    scale.set(HeatScale::Log);
    settle().await;
    let log_last_row = canvas_pixels(&canvas)[(4 * n) * 4..(4 * n + 1) * 4].to_vec();
    assert_ne!(linear_last_row, log_last_row, "the log scale must redraw");

    shown.set(None);
    settle().await;
    assert_eq!(canvas.width(), 0);
}
