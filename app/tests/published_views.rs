//! Component tests of the views that draw published data (training story, frequency
//! explorer, needle results): each mounted alone with small synthetic data, asserting on
//! the DOM it produces. Run in headless Chromium:
//! `cargo test --target wasm32-unknown-unknown -p app --test published_views`.
#![cfg(target_arch = "wasm32")]

use app::colormap::VIRIDIS;
use app::published::{
    parse_needle_grid, InductionScore, ModelTrainLog, NeedleTally, ProbeRow, TrainHistory,
    TrainPoint, ValidationPoint,
};
use app::views::{FrequencyExplorer, NeedleResults, StoryAxis, TrainingStory};
use js_sys::{Array, Function, Object, Reflect};
use leptos::prelude::*;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use web_sys::{Element, HtmlElement};

wasm_bindgen_test_configure!(run_in_browser);

mod support;
use support::{all, container, settle};

fn one(root: &HtmlElement, selector: &str) -> Element {
    root.query_selector(selector)
        .unwrap()
        .unwrap_or_else(|| panic!("nothing matches {selector}"))
}

fn text(root: &HtmlElement, selector: &str) -> String {
    one(root, selector).text_content().unwrap_or_default()
}

/// Dispatches a bubbling DOM event of class `class` (`Event`, `MouseEvent`) with extra
/// init fields, as a browser would.
fn fire(target: &Element, class: &str, kind: &str, fields: &[(&str, JsValue)]) {
    let init = Object::new();
    Reflect::set(&init, &"bubbles".into(), &true.into()).unwrap();
    for (name, value) in fields {
        Reflect::set(&init, &(*name).into(), value).unwrap();
    }
    let constructor: Function = Reflect::get(&js_sys::global(), &class.into())
        .unwrap()
        .unchecked_into();
    let event = Reflect::construct(&constructor, &Array::of2(&kind.into(), &init)).unwrap();
    target.dispatch_event(event.unchecked_ref()).unwrap();
}

/// Types `value` into an input and fires `change`.
fn enter(input: &Element, value: &str) {
    Reflect::set(input, &"value".into(), &value.into()).unwrap();
    fire(input, "Event", "change", &[]);
}

/// A log of 20 steps (10..=200) with validation every 40; `loss(step)` gives the loss.
fn log(positions: &str, drop_step: Option<f64>, loss: impl Fn(f64) -> f64) -> TrainHistory {
    TrainHistory {
        positions: positions.into(),
        drop_step,
        batch: 4,
        length: 64,
        train: (1..=20)
            .map(|i| TrainPoint {
                step: i as f64 * 10.0,
                loss: loss(i as f64 * 10.0),
                learning_rate: 1e-3,
            })
            .collect(),
        validation: (1..=5)
            .map(|i| ValidationPoint {
                step: i as f64 * 40.0,
                loss: loss(i as f64 * 40.0) + 0.1,
            })
            .collect(),
        tokens_per_second: None,
        probes: Vec::new(),
    }
}

fn three_logs() -> Vec<ModelTrainLog> {
    let rope = |step: f64| 8.0 - step / 50.0;
    vec![
        ModelTrainLog {
            model: "rope".into(),
            log: log("rope", None, rope),
        },
        ModelTrainLog {
            model: "nope".into(),
            log: log("none", None, |step| 8.5 - step / 60.0),
        },
        // Dropped at 150: a spike of 1 nat that decays.
        ModelTrainLog {
            model: "drope".into(),
            log: log("none", Some(150.0), move |step| {
                rope(step)
                    + if step > 150.0 {
                        (200.0 - step) / 50.0
                    } else {
                        0.0
                    }
            }),
        },
    ]
}

/// A training story mounted on `logs`, with the signals a test drives.
struct MountedStory {
    root: HtmlElement,
    logs: RwSignal<Vec<ModelTrainLog>>,
    zoom: RwSignal<bool>,
    axis: RwSignal<StoryAxis>,
    _mounted: leptos::mount::UnmountHandle<leptos::tachys::view::any_view::AnyViewState>,
}

async fn mount_story(logs: Vec<ModelTrainLog>) -> MountedStory {
    let root = container();
    let logs = RwSignal::new(logs);
    let zoom = RwSignal::new(false);
    let axis = RwSignal::new(StoryAxis::Steps);
    let _mounted = leptos::mount::mount_to(root.clone(), move || {
        view! { <TrainingStory logs=logs zoom=zoom axis=axis /> }.into_any()
    });
    settle().await;
    MountedStory {
        root,
        logs,
        zoom,
        axis,
        _mounted,
    }
}

#[wasm_bindgen_test]
async fn training_story_draws_each_curve_and_marks_the_drop() {
    let MountedStory {
        root,
        logs,
        zoom,
        axis,
        _mounted,
    } = mount_story(three_logs()).await;

    let curves = all(
        &root,
        r#"svg[data-testid="training-story"] path[data-testid="train-curve"]"#,
    );
    let models: Vec<String> = curves
        .iter()
        .map(|c| c.get_attribute("data-model").unwrap())
        .collect();
    // DroPE (with a drop) is drawn first, under the RoPE run it shares up to the drop.
    assert_eq!(models, ["drope", "rope", "nope"]);
    let path = |i: usize| curves[i].get_attribute("d").unwrap();
    // DroPE's smoothing restarts at the drop (two sub-paths): the spike is not averaged away.
    assert_eq!(path(0).matches('M').count(), 2, "{}", path(0));
    assert_eq!(path(1).matches('M').count(), 1, "{}", path(1));
    assert_eq!(
        all(&root, r#"circle[data-testid="validation-point"]"#).len(),
        15
    );
    let marker = one(
        &root,
        r#"svg[data-testid="training-story"] [data-testid="drop-marker"]"#,
    );
    assert!(text(&root, ".drop-label").contains("DroPE drops RoPE (step 150)"));
    assert_eq!(all(&root, ".story-legend li").len(), 3);
    assert!(text(&root, ".story-legend").contains("final validation loss"));
    assert!(text(&root, r#"[data-testid="paper-drop-point"]"#).contains("21.73"));

    // Zoomed: steps 100..200 only, as many before the drop as after it; the drop moves
    // from 3/4 of the plot (x = 56 + 0.75 * 688) to its middle.
    let x_of = |m: &Element| m.get_attribute("x1").unwrap().parse::<f64>().unwrap();
    assert!((x_of(&marker) - 572.0).abs() < 0.5, "{}", x_of(&marker));
    zoom.set(true);
    settle().await;
    assert_eq!(
        all(&root, r#"circle[data-testid="validation-point"]"#).len(),
        9
    );
    let zoomed = one(&root, r#"[data-testid="drop-marker"]"#);
    assert!((x_of(&zoomed) - 400.0).abs() < 0.5, "{}", x_of(&zoomed));

    // Hover: a readout per model with step, loss and perplexity, and a guide line.
    let svg = one(&root, r#"svg[data-testid="training-story"]"#);
    let rect = svg.get_bounding_client_rect();
    assert!(rect.width() > 0.0);
    fire(
        &svg,
        "MouseEvent",
        "mousemove",
        &[("clientX", (rect.left() + rect.width() * 0.9).into())],
    );
    settle().await;
    let readout = text(&root, r#"[data-testid="training-readout"]"#);
    for model in ["RoPE step", "NoPE step", "DroPE step"] {
        assert!(readout.contains(model), "{readout}");
    }
    assert!(readout.contains("perplexity"), "{readout}");
    assert_eq!(all(&root, ".hover-guide").len(), 1);
    fire(&svg, "MouseEvent", "mouseleave", &[]);
    settle().await;
    assert!(text(&root, r#"[data-testid="training-readout"]"#).starts_with("Hover"));

    // Tokens on the x axis: 4 x 64 tokens per step.
    axis.set(StoryAxis::Tokens);
    settle().await;
    assert!(text(&root, ".story-chart").contains("tokens seen"));
    assert!(all(&root, ".story-chart .tick")
        .iter()
        .any(|t| t.text_content().unwrap().ends_with('k')));

    // Without a drop, no marker and no zoom.
    logs.set(three_logs().into_iter().take(2).collect());
    settle().await;
    assert!(all(&root, r#"[data-testid="drop-marker"]"#).is_empty());
    assert_eq!(all(&root, r#"path[data-testid="train-curve"]"#).len(), 2);
    let checkbox = one(&root, r#"input[data-testid="zoom-drop"]"#);
    assert_eq!(
        Reflect::get(&checkbox, &"disabled".into()).unwrap(),
        JsValue::TRUE
    );
}

/// Probe rows at `(step, second-copy NLL within L)`; at 4L the NLL is 1 nat higher;
/// two layers of two heads, head 1 the previous-token head.
fn probes(rows: &[(f64, f64)]) -> Vec<ProbeRow> {
    let score = |tokens, second| InductionScore {
        tokens,
        first: 8.4,
        second,
    };
    rows.iter()
        .map(|&(step, second)| ProbeRow {
            step: step as usize,
            induction: Some(score(100, second)),
            induction_4l: Some(score(256, second + 1.0)),
            previous_token: vec![vec![0.1, 0.7], vec![0.2, 0.3]],
            needles: None,
        })
        .collect()
}

/// The three logs with probes for RoPE and DroPE (none for NoPE): DroPE copies like
/// RoPE until the drop at 150, loses it there (two rows at 150), and recovers.
fn three_logs_with_probes() -> Vec<ModelTrainLog> {
    let mut logs = three_logs();
    logs[0].log.probes = probes(&[(40.0, 8.2), (80.0, 4.0), (120.0, 2.0), (200.0, 1.5)]);
    logs[2].log.probes = probes(&[
        (40.0, 8.2),
        (80.0, 4.0),
        (120.0, 2.0),
        (150.0, 1.8),
        (150.0, 7.9),
        (200.0, 2.4),
    ]);
    logs
}

#[wasm_bindgen_test]
async fn probe_story_draws_copying_under_the_loss_chart() {
    let MountedStory {
        root,
        logs,
        zoom,
        axis,
        _mounted,
    } = mount_story(three_logs_with_probes()).await;

    let curves = all(
        &root,
        r#"svg[data-testid="probe-story"] path[data-testid="second-copy"]"#,
    );
    let drawn: Vec<(String, String)> = curves
        .iter()
        .map(|c| {
            let attr = |name| c.get_attribute(name).unwrap();
            (attr("data-model"), attr("data-length"))
        })
        .collect();
    let pair = |m: &str, l: &str| (m.to_string(), l.to_string());
    assert_eq!(
        drawn,
        [
            pair("drope", "within"),
            pair("drope", "4l"),
            pair("rope", "within"),
            pair("rope", "4l")
        ],
        "NoPE has no probes: no curve"
    );
    // DroPE's two rows at the drop are one vertical segment: the same x twice.
    let d = curves[0].get_attribute("d").unwrap();
    let xs: Vec<&str> = d
        .split_whitespace()
        .map(|p| p[1..].split(',').next().unwrap())
        .collect();
    assert_eq!(xs.len(), 6, "{d}");
    assert_eq!(xs[3], xs[4], "{d}");
    assert_eq!(all(&root, r#"[data-testid="uniform-line"]"#).len(), 1);

    // The drop marker sits where the loss chart's does: the x axes line up.
    let x_of = |selector: &str| one(&root, selector).get_attribute("x1").unwrap();
    let markers = || {
        (
            x_of(r#"svg[data-testid="training-story"] [data-testid="drop-marker"]"#),
            x_of(r#"[data-testid="probe-drop-marker"]"#),
        )
    };
    let (story, probe) = markers();
    assert_eq!(story, probe);
    zoom.set(true);
    settle().await;
    let (story_zoomed, probe_zoomed) = markers();
    assert_eq!(story_zoomed, probe_zoomed);
    assert_ne!(story_zoomed, story);

    let legend: Vec<String> = all(&root, ".probe-story .story-legend li[data-model]")
        .iter()
        .map(|li| li.get_attribute("data-model").unwrap())
        .collect();
    assert_eq!(legend, ["rope", "drope"]);

    let summary = text(&root, r#"[data-testid="probe-summary"]"#);
    assert!(
        summary.contains("RoPE copies from step 80 on."),
        "{summary}"
    );
    assert!(
        summary.contains("DroPE at step 150: second copy 1.80 nats with RoPE, 7.90 right after"),
        "{summary}"
    );
    assert!(text(&root, ".probe-story figcaption").contains("lower = the model copies"));
    // No needle probes in these logs: a note, no empty chart.
    assert!(all(&root, r#"svg[data-testid="needle-story"]"#).is_empty());
    assert!(text(&root, r#"[data-testid="needle-note"]"#).contains("trainer probe"));

    // Previous-token heads: DroPE with RoPE, just dropped and at the end; RoPE at the end.
    let rows: Vec<String> = all(&root, r#"[data-testid="previous-token-heads"] tbody tr"#)
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r.get_attribute("data-model").unwrap(),
                r.get_attribute("data-when").unwrap()
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            "rope/end",
            "drope/with-rope",
            "drope/just-dropped",
            "drope/end"
        ]
    );
    let cells = all(&root, r#"[data-testid="previous-token-cell"]"#);
    assert_eq!(cells.len(), 4 * 2, "one per row and layer");
    assert_eq!(cells[0].text_content().unwrap(), "0.70 h1");

    axis.set(StoryAxis::Tokens);
    settle().await;
    assert!(text(&root, r#"svg[data-testid="probe-story"]"#).contains("tokens seen"));

    // Logs without probes (the committed ones): no probe chart at all.
    logs.set(three_logs());
    settle().await;
    assert!(all(&root, ".probe-story").is_empty());
    assert_eq!(all(&root, r#"path[data-testid="train-curve"]"#).len(), 3);
}

#[wasm_bindgen_test]
async fn probe_story_draws_needle_accuracy_over_training() {
    // RoPE's snapshots find more and more needles; DroPE repeats RoPE's up to the drop at
    // 150, loses them there (RoPE's snapshot, then just dropped) and recovers some.
    let mut logs = three_logs_with_probes();
    for (m, found) in [(0, &[0, 6, 18, 22][..]), (2, &[0, 6, 18, 20, 1, 16][..])] {
        for (row, &correct) in logs[m].log.probes.iter_mut().zip(found) {
            row.needles = Some(NeedleTally {
                trials: 24,
                correct,
                digits_correct: 7 * correct,
            });
        }
    }
    let MountedStory {
        root,
        zoom,
        _mounted,
        ..
    } = mount_story(logs).await;

    let curves = all(
        &root,
        r#"svg[data-testid="needle-story"] path[data-testid="needle-accuracy"]"#,
    );
    let models: Vec<String> = curves
        .iter()
        .map(|c| c.get_attribute("data-model").unwrap())
        .collect();
    assert_eq!(models, ["drope", "rope"], "NoPE has no needle probes");
    let d = curves[0].get_attribute("d").unwrap();
    let points: Vec<(f64, f64)> = d
        .split_whitespace()
        .map(|p| {
            let (x, y) = p[1..].split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect();
    assert_eq!(points.len(), 6, "{d}");
    assert_eq!(points[3].0, points[4].0, "the drop is a vertical step: {d}");
    assert!(
        points[4].1 > points[3].1,
        "just dropped is lower on the page: {d}"
    );
    assert_eq!(
        all(&root, ".needle-story line.needle-interval").len(),
        6 + 4,
        "an interval per point"
    );
    assert!(all(&root, r#"[data-testid="needle-note"]"#).is_empty());

    // The drop marker sits where the loss chart's does, zoomed or not.
    let x_of = |selector: &str| one(&root, selector).get_attribute("x1").unwrap();
    let markers = || {
        (
            x_of(r#"svg[data-testid="training-story"] [data-testid="drop-marker"]"#),
            x_of(r#"[data-testid="needle-drop-marker"]"#),
        )
    };
    let (story, needle) = markers();
    assert_eq!(story, needle);
    zoom.set(true);
    settle().await;
    let (story, needle) = markers();
    assert_eq!(story, needle);

    let summary = text(&root, r#"[data-testid="needle-summary"]"#);
    assert!(
        summary.contains(
            "DroPE at step 150: 83% of the needles with RoPE, 4% right after RoPE is removed, \
             67% at step 200."
        ),
        "{summary}"
    );
    assert!(
        summary.contains("RoPE: 0% at step 40, 92% at step 200."),
        "{summary}"
    );
    let caption = text(&root, ".needle-story figcaption");
    assert!(
        caption.contains("the same 24 documents from the validation split")
            && caption.contains("L = 64 tokens"),
        "{caption}"
    );
}

fn cx_of_pair(root: &HtmlElement, scheme: &str, pair: usize) -> f64 {
    let dots = all(root, &format!(".scheme-{scheme} circle.dot"));
    dots[pair].get_attribute("cx").unwrap().parse().unwrap()
}

#[wasm_bindgen_test]
async fn frequency_explorer_plots_factors_band_and_phases() {
    let root = container();
    let head_dim = RwSignal::new(8usize);
    let length = RwSignal::new(1024usize);
    let scale = RwSignal::new(2.0f64);
    let pair = RwSignal::new(3usize);
    let _mounted = leptos::mount::mount_to(root.clone(), move || {
        view! {
            <FrequencyExplorer head_dim=head_dim base=10_000.0f64 training_length=length
                scale=scale pair=pair />
        }
    });
    settle().await;

    let curves = all(
        &root,
        r#"svg[data-testid="frequency-chart"] path[data-testid="scale-curve"]"#,
    );
    let schemes: Vec<String> = curves
        .iter()
        .map(|c| c.get_attribute("data-scheme").unwrap())
        .collect();
    assert_eq!(schemes, ["pi", "ntk", "yarn", "yarn-ramp"]);
    assert_eq!(all(&root, ".scheme-pi circle.dot").len(), 4);

    // D = 8, b = 10000: wavelengths 6.3, 63, 628, 6283 tokens; only pair 3 exceeds L = 1024.
    let band = one(&root, r#"rect[data-testid="no-cycle-band"]"#);
    let band_x: f64 = band.get_attribute("x").unwrap().parse().unwrap();
    assert!(cx_of_pair(&root, "pi", 2) < band_x && band_x < cx_of_pair(&root, "pi", 3));
    length.set(100);
    settle().await;
    let band_x: f64 = one(&root, r#"rect[data-testid="no-cycle-band"]"#)
        .get_attribute("x")
        .unwrap()
        .parse()
        .unwrap();
    assert!(cx_of_pair(&root, "pi", 1) < band_x && band_x < cx_of_pair(&root, "pi", 2));
    length.set(1024);
    settle().await;

    // Pair 3 under s = 2: PI and NTK halve it, the phase at L is 1024 * 0.001 rad.
    let table = r#"table[data-testid="phase-table"]"#;
    assert!(text(&root, &format!("{table} caption")).contains("never completes a cycle"));
    let row = |scheme: &str| text(&root, &format!(r#"{table} tr[data-scheme="{scheme}"]"#));
    assert!(
        row("rope").contains("1.024 rad (0.163 cycles)"),
        "{}",
        row("rope")
    );
    assert!(row("pi").contains("0.5000"), "{}", row("pi"));
    assert!(
        row("pi").ends_with("no"),
        "s = 2 cannot cover 8L: {}",
        row("pi")
    );
    assert!(row("rope").ends_with("no"));

    // s = 8 typed in: PI's phase at 8L is RoPE's at L, so it stays in the trained range.
    enter(&one(&root, r#"input[data-testid="scale-input"]"#), "8");
    settle().await;
    assert_eq!(scale.get_untracked(), 8.0);
    assert!(row("pi").ends_with("yes"), "{}", row("pi"));
    assert!(text(&root, ".inverse-s-label").contains("1/8"));
    enter(&one(&root, r#"input[data-testid="scale-input"]"#), "1000");
    settle().await;
    assert_eq!(scale.get_untracked(), 64.0, "clamped to the range");

    // Hovering the left edge selects pair 0, which completes many cycles within L.
    let svg = one(&root, r#"svg[data-testid="frequency-chart"]"#);
    let rect = svg.get_bounding_client_rect();
    fire(
        &svg,
        "MouseEvent",
        "mousemove",
        &[("clientX", (rect.left() + 1.0).into())],
    );
    settle().await;
    assert_eq!(pair.get_untracked(), 0);
    assert!(text(&root, &format!("{table} caption")).contains("completes a cycle within L"));
    assert!(row("pi").ends_with("yes"));

    // A head width the formulas cannot take is explained, not drawn.
    head_dim.set(3);
    settle().await;
    assert!(all(&root, r#"path[data-testid="scale-curve"]"#).is_empty());
    assert!(text(&root, ".chart-error").contains("even"));
    assert!(all(&root, table).is_empty());
}

const NIAH: &str = r#"{"depths": [0.1, 0.9], "multiples": [1, 2, 4, 8], "seed": 7,
  "confidence": 0.95, "target_half_width": 0.05, "min_trials": 10, "max_trials": 40,
  "cells": [
    {"model": "rope", "scheme": "yarn", "length_multiple": 1, "depth": 0.1, "trials": 5, "correct": 5},
    {"model": "rope", "scheme": "yarn", "length_multiple": 1, "depth": 0.9, "trials": 5, "correct": 3},
    {"model": "drope", "scheme": "none", "length_multiple": 2, "depth": 0.1, "trials": 5, "correct": 4}],
  "lengths": [
    {"model": "rope", "scheme": "yarn", "length_multiple": 1, "trials": 10, "correct": 8,
     "digits_correct": 63, "accuracy": 0.8, "wilson_low": 0.49, "wilson_high": 0.943,
     "digit_accuracy": 0.9},
    {"model": "drope", "scheme": "none", "length_multiple": 2, "trials": 5, "correct": 4,
     "accuracy": 0.8, "wilson_low": 0.376, "wilson_high": 0.964}]}"#;

#[wasm_bindgen_test]
async fn needle_results_colour_cells_break_down_depths_and_show_the_paper() {
    let root = container();
    let grid = RwSignal::new(parse_needle_grid("niah.json", NIAH.as_bytes()).unwrap());
    let _mounted = leptos::mount::mount_to(root.clone(), move || {
        view! { <NeedleResults grid=grid /> }
    });
    settle().await;

    let rows = all(
        &root,
        r#"table[data-testid="needle-table"] tr[data-testid="needle-row"]"#,
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get_attribute("data-scheme").unwrap(), "yarn");
    let cells = all(
        &root,
        r#"tr[data-scheme="yarn"] td[data-testid="needle-cell"]"#,
    );
    assert_eq!(cells.len(), 4, "one per length multiple");
    let first = cells[0].text_content().unwrap();
    assert!(
        first.contains("80%") && first.contains("[49, 94]") && first.contains("n = 10"),
        "{first}"
    );
    let style = cells[0].get_attribute("style").unwrap();
    assert!(style.contains(&VIRIDIS.at(0.8).hex()), "{style}");
    assert!(cells[0]
        .get_attribute("title")
        .unwrap()
        .contains("90% of the answer digits"));
    assert!(cells[1].class_name().contains("missing"));
    assert!(text(&root, ".needle-results .chart-summary").contains("Wilson"));

    // The per-depth breakdown of the first row, and closing it again.
    assert!(all(&root, r#"[data-testid="depth-table"]"#).is_empty());
    let toggle: HtmlElement = rows[0]
        .query_selector("button")
        .unwrap()
        .unwrap()
        .unchecked_into();
    toggle.click();
    settle().await;
    let depth_rows = all(&root, r#"table[data-testid="depth-table"] tbody tr"#);
    assert_eq!(depth_rows.len(), 2);
    let depth_cells = all(&root, r#"td[data-testid="depth-cell"]"#);
    assert_eq!(depth_cells.len(), 8);
    assert!(depth_cells[0].text_content().unwrap().contains("100%"));
    assert!(depth_cells[4].text_content().unwrap().contains("60%"));
    toggle.click();
    settle().await;
    assert!(all(&root, r#"[data-testid="depth-table"]"#).is_empty());

    // The paper's numbers, in their own labelled table.
    let paper = r#"table[data-testid="paper-needle"]"#;
    assert!(text(&root, &format!("{paper} caption")).contains("The paper's, SmolLM-360M, L = 2048"));
    assert_eq!(all(&root, &format!("{paper} tbody tr")).len(), 4);
    assert!(text(&root, paper).contains("74.92%"));

    // An old file (counts only): accuracy, n and the interval of those counts (1 of 4:
    // [5, 70]).
    let old = r#"{"cells": [{"model": "nope", "scheme": "none", "length_multiple": 1,
        "depth": 0.5, "trials": 4, "correct": 1}]}"#;
    grid.set(parse_needle_grid("niah.json", old.as_bytes()).unwrap());
    settle().await;
    let cells = all(&root, r#"td[data-testid="needle-cell"]"#);
    let first = cells[0].text_content().unwrap();
    assert!(
        first.contains("25%") && first.contains("n = 4") && first.contains("[5, 70]"),
        "{first}"
    );
    assert!(text(&root, ".needle-results .chart-summary").contains("predates the trial budget"));
}
