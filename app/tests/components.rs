//! Component tests: each view mounted alone with small synthetic data, asserting on the
//! DOM it produces. Run in headless Chromium:
//! `cargo test --target wasm32-unknown-unknown -p app`.
#![cfg(target_arch = "wasm32")]

use app::analysis::{AttentionMap, Guess, TokenStat};
use app::head_profile::{pooled_map, profile};
use app::views::{AttentionHeatmap, ChartSeries, HeadGrid, HeatScale, PerplexityChart, TokenStrip};
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use web_sys::{CanvasRenderingContext2d, Element, HtmlCanvasElement, HtmlElement};

wasm_bindgen_test_configure!(run_in_browser);

mod support;
use support::{all, container, settle};

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
    // Colours arrive as custom properties (the CSP refuses style attributes set as text).
    assert!(style.contains("--token-background: #"), "{style}");
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

fn series(key: &str, values: &[f32]) -> ChartSeries {
    ChartSeries {
        key: key.to_string(),
        label: format!("{key} label"),
        // The series' own colour (series_look): here one per first letter.
        colour: if key.starts_with('d') {
            "#009E73"
        } else {
            "#0072B2"
        },
        nll: std::iter::once(None)
            .chain(values.iter().map(|&v| Some(v)))
            .collect(),
    }
}

#[wasm_bindgen_test]
async fn perplexity_chart_draws_a_line_per_series_and_marks_multiples_of_l() {
    let root = container();
    let data = RwSignal::new(vec![
        series("rope", &[3.0; 39]),
        series("drope:none:dyn+beta", &[2.0; 19]),
    ]);
    let texts: Vec<String> = (0..40).map(|i| format!("t{i}")).collect();
    let _mounted = leptos::mount::mount_to(root.clone(), move || {
        view! {
            <PerplexityChart series=data token_texts=texts training_length=8usize
                uniform_nll=5.5f32 axis_length=40usize />
        }
    });
    settle().await;

    let lines = all(&root, r#"path[data-testid="series-line"]"#);
    assert_eq!(lines.len(), 2);
    let last = |e: &Element| e.get_attribute("data-last-position").unwrap();
    assert_eq!(last(&lines[0]), "39");
    assert_eq!(last(&lines[1]), "19");
    assert_eq!(
        lines[1].get_attribute("data-series").unwrap(),
        "drope:none:dyn+beta"
    );
    // Each line in its series' colour, not one picked by its place in the list.
    let strokes: Vec<String> = lines
        .iter()
        .map(|l| l.get_attribute("stroke").unwrap())
        .collect();
    assert_eq!(strokes, ["#0072B2", "#009E73"]);
    // L = 8 and 2L, 4L inside a 40-token axis; 8L = 64 is past it.
    let multiples: Vec<String> = all(&root, r#"[data-testid="length-marker"]"#)
        .iter()
        .map(|m| m.get_attribute("data-multiple").unwrap())
        .collect();
    assert_eq!(multiples, ["1", "2", "4"]);
    // The window table: rope's perplexity is e^3 in every window it reaches.
    let rows = all(&root, r#"[data-testid="window-row"]"#);
    assert_eq!(rows.len(), 2);
    let cells = rows[0].query_selector_all("td").unwrap();
    assert_eq!(
        cells.item(0).unwrap().text_content().unwrap(),
        format!("{:.1}", 3f32.exp())
    );
    // Past L, each window also as a multiple of the series' own 0-L (here flat: 1).
    let ratio = cells.item(1).unwrap().dyn_into::<Element>().unwrap();
    assert_eq!(ratio.get_attribute("data-ratio").as_deref(), Some("1.000"));
    // drope stops at 19 < 4L = 32: its 4L-8L cell is empty.
    let cells = rows[1].query_selector_all("td").unwrap();
    assert_eq!(cells.item(3).unwrap().text_content().unwrap(), "\u{2013}");

    // The keyboard moves the readout: End = the last position, Left one back, Escape hides it.
    let chart = root
        .query_selector(r#"svg[data-testid="perplexity-chart"]"#)
        .unwrap()
        .unwrap();
    assert_eq!(chart.get_attribute("tabindex").as_deref(), Some("0"));
    let key = |name: &str| {
        let init = web_sys::KeyboardEventInit::new();
        init.set_key(name);
        init.set_bubbles(true);
        let event =
            web_sys::KeyboardEvent::new_with_keyboard_event_init_dict("keydown", &init).unwrap();
        chart.dispatch_event(&event).unwrap();
    };
    let readout = || {
        root.query_selector(r#"[data-testid="chart-readout"]"#)
            .unwrap()
            .map(|r| r.text_content().unwrap_or_default())
    };
    key("End");
    settle().await;
    assert!(readout().unwrap().contains("t39"), "{:?}", readout());
    key("ArrowLeft");
    settle().await;
    assert!(readout().unwrap().contains("t38"), "{:?}", readout());
    key("Escape");
    settle().await;
    assert_eq!(readout(), None);

    // A legend button hides its line and says so.
    let legend = all(&root, r#"[data-testid="legend-item"]"#);
    assert_eq!(legend.len(), 2);
    legend[0].unchecked_ref::<HtmlElement>().click();
    settle().await;
    let lines = all(&root, r#"path[data-testid="series-line"]"#);
    assert_eq!(lines.len(), 1);
    assert_eq!(
        lines[0].get_attribute("data-series").unwrap(),
        "drope:none:dyn+beta"
    );
    assert_eq!(legend[0].get_attribute("aria-pressed").unwrap(), "false");

    // New data (a growing prompt) redraws.
    data.set(vec![series("rope", &[1.0; 9])]);
    settle().await;
    let lines = all(&root, r#"path[data-testid="series-line"]"#);
    assert_eq!(lines.len(), 0, "rope stays hidden by its legend toggle");
}

#[wasm_bindgen_test]
async fn perplexity_chart_with_no_data_still_marks_l() {
    let root = container();
    let (no_series, no_texts) = (Vec::<ChartSeries>::new(), Vec::<String>::new());
    let _mounted = leptos::mount::mount_to(root.clone(), move || {
        view! {
            <PerplexityChart series=no_series.clone() token_texts=no_texts.clone()
                training_length=64usize uniform_nll=5.5f32 axis_length=0usize />
        }
    });
    settle().await;
    assert_eq!(all(&root, r#"path[data-testid="series-line"]"#).len(), 0);
    assert_eq!(all(&root, r#"[data-testid="length-marker"]"#).len(), 1);
    assert_eq!(all(&root, r#"[data-testid="window-table"]"#).len(), 0);
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

#[wasm_bindgen_test]
async fn head_grid_labels_heads_selects_and_sorts() {
    use std::sync::Arc;
    // Head 0 of each layer looks at the previous token; head 1 spreads evenly.
    let t = 32;
    let local: Vec<Arc<[f32]>> = (0..t)
        .map(|q| {
            let mut w = vec![0.0; q + 1];
            w[q.saturating_sub(1)] = 1.0;
            Arc::from(w)
        })
        .collect();
    let uniform: Vec<Arc<[f32]>> = (0..t)
        .map(|q| Arc::from(vec![1.0 / (q + 1) as f32; q + 1]))
        .collect();
    let heads = [&local, &uniform, &local, &uniform];
    let profiles: Vec<_> = heads
        .iter()
        .enumerate()
        .map(|(i, rows)| profile(i / 2, i % 2, rows))
        .collect();
    let thumbs: Vec<_> = heads.iter().map(|rows| pooled_map(rows, 8)).collect();
    let selected = RwSignal::new((0usize, 0usize));
    let root = container();
    let _mounted = leptos::mount::mount_to(root.clone(), move || {
        view! {
            <HeadGrid profiles=profiles.clone() thumbnails=thumbs.clone() heads=2usize
                selected=selected scale=HeatScale::Linear />
        }
    });
    settle().await;

    let cells = all(&root, r#"[data-testid="head-cell"]"#);
    assert_eq!(cells.len(), 4);
    let kinds: Vec<String> = cells
        .iter()
        .map(|c| c.get_attribute("data-kind").unwrap())
        .collect();
    assert_eq!(kinds, ["local", "content", "local", "content"]);
    // Each thumbnail is drawn at the pooled size.
    let canvas: HtmlCanvasElement = cells[3]
        .query_selector("canvas")
        .unwrap()
        .unwrap()
        .unchecked_into();
    assert_eq!((canvas.width(), canvas.height()), (8, 8));
    assert_eq!(cells[0].get_attribute("aria-pressed").unwrap(), "true");
    cells[3].unchecked_ref::<HtmlElement>().click();
    settle().await;
    assert_eq!(selected.get_untracked(), (1, 1));
    assert_eq!(cells[3].get_attribute("aria-pressed").unwrap(), "true");

    // Sorting by mean distance puts the spread heads (distance ~ q/2) first.
    let first_row = || {
        all(&root, r#"[data-testid="head-row"]"#)[0]
            .text_content()
            .unwrap()
    };
    assert!(first_row().starts_with("00"), "{}", first_row());
    let sorts = all(&root, r#"[data-testid="head-sort"]"#);
    sorts[2].unchecked_ref::<HtmlElement>().click();
    settle().await;
    assert!(first_row().contains("spread"), "{}", first_row());
}

/// A focus run whose `heads` heads each hold `n` causal rows of uniform attention.
fn run_with_attention(heads: usize, n: usize) -> std::sync::Arc<app::analysis::RunResult> {
    let rows: Vec<std::sync::Arc<[f32]>> = (0..n)
        .map(|q| vec![1.0 / (q + 1) as f32; q + 1].into())
        .collect();
    std::sync::Arc::new(app::analysis::RunResult {
        model: "tiny".into(),
        scheme: "rope".parse().unwrap(),
        training_length: 128,
        vocab_size: 4096,
        layers: 1,
        heads,
        tokens: tokens(n),
        next: Vec::new(),
        attention: vec![rows; heads],
        attention_rows: n,
        elapsed_ms: 0.0,
        backend: engine::DeviceKind::Cpu,
    })
}

/// Heads measured by [`count_head`], and whether anything panicked (a panic in a task
/// traps in a browser callback, which fails no test by itself).
static HEADS_DONE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static PANICKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn count_head(_: &app::analysis::RunResult, i: usize, _: &[std::sync::Arc<[f32]>]) -> usize {
    HEADS_DONE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    i
}

/// Per-head values are computed a few heads per task and published whole; a view closed
/// between two tasks (a tab switched while 1024 tokens' heads are measured, found by the
/// studio e2e's random actions) leaves the computation without a panic.
#[wasm_bindgen_test]
async fn per_head_values_publish_and_stop_quietly_when_the_view_is_gone() {
    use app::pause::pause;
    use app::run_panels::per_focus_head;
    use std::sync::atomic::Ordering::SeqCst;
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICKED.store(true, SeqCst);
        previous(info);
    }));
    // The focus belongs to the page (the run controller), the computation to the view.
    let focus = RwSignal::new(None);
    let published = RwSignal::new(0usize);
    let mounted = leptos::mount::mount_to(container(), move || {
        let values = per_focus_head(focus, count_head);
        Effect::new(move |_| published.set(values.with(Vec::len)));
    });
    // Eight heads of 1024 rows: about 4M weights, so several tasks with pauses between.
    focus.set(Some(run_with_attention(8, 1024)));
    for _ in 0..200 {
        settle().await;
        if published.get_untracked() == 8 {
            break;
        }
        pause(5).await;
    }
    assert_eq!(
        published.get_untracked(),
        8,
        "every head's value is published"
    );

    // A new run starts a new computation; the view goes while it waits between tasks
    // (each turn of the event loop here lets it run one task at most).
    HEADS_DONE.store(0, SeqCst);
    focus.set(Some(run_with_attention(8, 1024)));
    for _ in 0..200 {
        pause(0).await;
        if HEADS_DONE.load(SeqCst) > 0 {
            break;
        }
    }
    let done = HEADS_DONE.load(SeqCst);
    assert!(
        (1..8).contains(&done),
        "{done} heads measured before the view went"
    );
    drop(mounted);
    // The computation resumes after its pause and must find its view gone, quietly.
    pause(50).await;
    assert!(
        !PANICKED.load(SeqCst),
        "the computation panicked after its view was gone"
    );
}
