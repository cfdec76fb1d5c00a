//! The probes under the training story (SVG): per model, its loss on the second copy of
//! a repeated random sequence over training (low = it copies from its context, the work
//! of induction heads), within the training length and at 4L, against the uniform guess
//! `ln V`; and per layer its strongest previous-token head (the other half of an
//! induction circuit, which RoPE makes easy to form) at the drop and at the end.
//!
//! Under them, the needle accuracy of each snapshot saved during training (`trainer
//! probe`: exact retrieval of a 7-digit number at `L`, the same documents from the
//! validation split every time), with 95% Wilson intervals: when retrieval appears, what
//! the drop destroys and what recalibration restores. Logs without needle probes get a
//! one-line note instead of that chart.
//!
//! It reads the `probes` of each `train-log.json` and shares the loss chart's x axis
//! (steps or tokens, zoom, drop marker). Logs without probes draw nothing.

use leptos::prelude::*;

use crate::analysis::uniform_nll;
use crate::colormap::VIRIDIS;
use crate::probes::{
    copying_onset, drop_effect, has_needle_probes, has_probes, head_snapshots, needle_documents,
    needle_drop, needle_series, second_copy_series, strongest_previous_token_heads, CopyPoint,
    NeedlePoint, ProbeLength, PROBE_LENGTHS,
};
use crate::published::{ModelTrainLog, TrainHistory};
use crate::views::chart_math::nice_step;
use crate::views::training_story::{
    drop_point, model_label, short_count, StoryAxis, StoryFrame, WIDTH,
};

const HEIGHT: f64 = 220.0;
/// Height of the needle chart's viewBox.
const NEEDLE_HEIGHT: f64 = 180.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 42.0;

/// The sentences under the chart: when each model starts copying, and what a drop did.
pub fn probe_summary(logs: &[ModelTrainLog]) -> Vec<String> {
    logs.iter()
        .filter_map(|m| {
            let name = model_label(&m.model);
            if let Some(e) = drop_effect(&m.log) {
                let mut text = format!(
                    "{name} at step {}: second copy {:.2} nats with RoPE, {:.2} right after \
                     RoPE is removed",
                    e.step, e.with_rope, e.dropped
                );
                if let Some((step, nll)) = e.recalibrated {
                    text += &format!(", {nll:.2} after recalibrating to step {step}");
                }
                return Some(text + ".");
            }
            let last = m
                .log
                .probes
                .iter()
                .rev()
                .find(|r| r.induction.is_some())?
                .step;
            Some(match copying_onset(&m.log) {
                Some(step) => format!("{name} copies from step {step} on."),
                None => format!("{name} does not copy by step {last}."),
            })
        })
        .collect()
}

/// A share in [0, 1] as a whole percentage.
fn percent(share: f64) -> String {
    format!("{:.0}%", 100.0 * share)
}

/// The sentences under the needle chart: per model, where its needle accuracy starts and
/// ends; for a drop, before and right after it too.
pub fn needle_summary(logs: &[ModelTrainLog]) -> Vec<String> {
    logs.iter()
        .filter_map(|m| {
            let points = needle_series(&m.log);
            let (first, last) = (points.first()?, points.last()?);
            let name = model_label(&m.model);
            let mut text = match needle_drop(&m.log) {
                Some((with_rope, dropped)) => format!(
                    "{name} at step {}: {} of the needles with RoPE, {} right after RoPE is \
                     removed",
                    with_rope.step,
                    percent(with_rope.share),
                    percent(dropped.share)
                ),
                None => format!("{name}: {} at step {}", percent(first.share), first.step),
            };
            if last.step > first.step && needle_drop(&m.log).is_none_or(|(d, _)| last.step > d.step)
            {
                text += &format!(", {} at step {}", percent(last.share), last.step);
            }
            Some(text + ".")
        })
        .collect()
}

/// Maps (axis value, share) to SVG coordinates for the needle chart: the loss chart's x,
/// 0-100% on y.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NeedleFrame {
    /// The loss chart's frame, for its x range and x mapping.
    pub story: StoryFrame,
}

impl NeedleFrame {
    /// SVG y of a share in [0, 1].
    pub fn py(&self, share: f64) -> f64 {
        TOP + (1.0 - share.clamp(0.0, 1.0)) * (NEEDLE_HEIGHT - TOP - BOTTOM)
    }

    /// Whether an axis value is inside the x range.
    pub fn contains(&self, value: f64) -> bool {
        (self.story.x.0..=self.story.x.1).contains(&value)
    }
}

/// The vertical line at the step where a log drops RoPE, when it lies in `story`'s x
/// range; both charts draw it from `y0` to `y1`.
fn drop_marker(
    logs: &[ModelTrainLog],
    axis: StoryAxis,
    story: &StoryFrame,
    (y0, y1): (f64, f64),
    testid: &'static str,
) -> Option<impl IntoView> {
    let (m, step) = drop_point(logs)?;
    let value = axis.value(&m.log, step);
    if !(story.x.0..=story.x.1).contains(&value) {
        return None;
    }
    let x = story.px(value);
    let label = format!("{} drops RoPE (step {step})", model_label(&m.model));
    Some(view! {
        <line data-testid=testid class="drop-marker" x1=x x2=x y1=y0 y2=y1>
            <title>{label}</title>
        </line>
    })
}

/// The logs' indices in drawing order: as in the loss chart, logs with a drop first, so
/// their curves lie underneath the RoPE run they repeat.
fn drawing_order(logs: &[ModelTrainLog]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..logs.len()).collect();
    order.sort_by_key(|&i| logs[i].log.drop_step.is_none());
    order
}

/// `(axis value, point)` of `log`'s needle probes inside the frame.
fn shown_needles(
    log: &TrainHistory,
    axis: StoryAxis,
    frame: &NeedleFrame,
) -> Vec<(f64, NeedlePoint)> {
    needle_series(log)
        .into_iter()
        .map(|p| (axis.value(log, p.step), p))
        .filter(|(x, _)| frame.contains(*x))
        .collect()
}

/// SVG path through `(axis value, point)`s of the needle chart, in order.
pub fn needle_path(points: &[(f64, NeedlePoint)], frame: &NeedleFrame) -> String {
    polyline(
        points
            .iter()
            .map(|(x, p)| (frame.story.px(*x), frame.py(p.share))),
    )
}

/// One SVG path through SVG points, in order (both probe charts draw unbroken lines).
fn polyline(points: impl Iterator<Item = (f64, f64)>) -> String {
    let mut path = String::new();
    for (x, y) in points {
        let command = if path.is_empty() { 'M' } else { 'L' };
        path += &format!("{command}{x:.1},{y:.1} ");
    }
    path
}

/// Maps (axis value, NLL) to SVG coordinates: the loss chart's x, its own y.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeFrame {
    /// The loss chart's frame, for its x range and x mapping.
    pub story: StoryFrame,
    /// NLLs shown, bottom and top (rounded to ticks; `uniform` always inside).
    pub y: (f64, f64),
}

impl ProbeFrame {
    /// The frame for `logs` on `axis`, zoomed or not, with the uniform NLL `uniform`.
    pub fn new(logs: &[ModelTrainLog], axis: StoryAxis, zoom: bool, uniform: f64) -> ProbeFrame {
        let story = StoryFrame::new(logs, axis, zoom);
        let shown = |x: f64| (story.x.0..=story.x.1).contains(&x);
        let mut y = (uniform, uniform);
        for m in logs {
            for length in PROBE_LENGTHS {
                for p in second_copy_series(&m.log, length) {
                    if shown(axis.value(&m.log, p.step)) {
                        y = (y.0.min(p.second), y.1.max(p.second));
                    }
                }
            }
        }
        let step = nice_step((y.1 - y.0).max(1.0) as f32, 4) as f64;
        let low = (y.0 / step).floor() * step;
        let high = ((y.1 / step).ceil() * step).max(low + step);
        ProbeFrame {
            story,
            y: (low, high),
        }
    }

    /// SVG x of an axis value (the loss chart's).
    pub fn px(&self, value: f64) -> f64 {
        self.story.px(value)
    }

    /// SVG y of an NLL.
    pub fn py(&self, nll: f64) -> f64 {
        TOP + (1.0 - (nll - self.y.0) / (self.y.1 - self.y.0)) * (HEIGHT - TOP - BOTTOM)
    }

    /// Whether an axis value is inside the x range.
    pub fn contains(&self, value: f64) -> bool {
        (self.story.x.0..=self.story.x.1).contains(&value)
    }
}

/// `(axis value, point)` of `log`'s second-copy losses at `length` inside the frame.
fn shown_points(
    log: &TrainHistory,
    length: ProbeLength,
    axis: StoryAxis,
    frame: &ProbeFrame,
) -> Vec<(f64, CopyPoint)> {
    second_copy_series(log, length)
        .into_iter()
        .map(|p| (axis.value(log, p.step), p))
        .filter(|(x, _)| frame.contains(*x))
        .collect()
}

/// SVG path through `(axis value, point)`s, in order.
pub fn copy_path(points: &[(f64, CopyPoint)], frame: &ProbeFrame) -> String {
    polyline(
        points
            .iter()
            .map(|(x, p)| (frame.px(*x), frame.py(p.second))),
    )
}

/// Multiples of a nice step inside `[low, high]`.
fn ticks(low: f64, high: f64, count: usize, at_least: f64) -> Vec<f64> {
    let step = (nice_step((high - low) as f32, count) as f64).max(at_least);
    let first = (low / step - 1e-9).ceil();
    (0..4 * count.max(1))
        .map(|i| (first + i as f64) * step)
        .take_while(|v| *v <= high + step * 1e-9)
        .collect()
}

/// The probe chart `svg[data-testid="probe-story"]`: per model a
/// `path[data-testid="second-copy"]` per probe length (`data-model`, `data-length` =
/// `within` or `4l`), the uniform guess `[data-testid="uniform-line"]`, the drop
/// `[data-testid="probe-drop-marker"]`; the sentences in `[data-testid="probe-summary"]`
/// and the table `[data-testid="previous-token-heads"]`; the needle chart
/// `svg[data-testid="needle-story"]` (per model a `path[data-testid="needle-accuracy"]`,
/// the drop `[data-testid="needle-drop-marker"]`, sentences in
/// `[data-testid="needle-summary"]`), or `[data-testid="needle-note"]` when no log has
/// needle probes. Nothing when no log has probes of either kind.
#[component]
pub fn ProbeStory(
    /// The logs, in the training story's order (so the colours match).
    #[prop(into)]
    logs: Signal<Vec<ModelTrainLog>>,
    /// Steps or tokens on the x axis, as in the loss chart.
    #[prop(into)]
    axis: Signal<StoryAxis>,
    /// Zoom onto the steps around the drop, as in the loss chart.
    #[prop(into)]
    zoom: Signal<bool>,
    /// Vocabulary size: a uniform guess costs `ln V` nats (4096, the shipped tokenizer).
    #[prop(default = 4096)]
    vocab_size: usize,
) -> impl IntoView {
    view! {
        <Show when=move || logs.with(|l| has_probes(l) || has_needle_probes(l))>
            <figure class="probe-story">
                <Show when=move || logs.with(|l| has_probes(l))>
                    <CopyingChart logs=logs axis=axis zoom=zoom vocab_size=vocab_size />
                </Show>
                <NeedleStory logs=logs axis=axis zoom=zoom />
                <PreviousTokenHeads logs=logs />
            </figure>
        </Show>
    }
}

/// The second copy's loss over training, per model, within L and at 4L, with its legend
/// and the sentences on when copying starts and what the drop did.
#[component]
fn CopyingChart(
    logs: Signal<Vec<ModelTrainLog>>,
    axis: Signal<StoryAxis>,
    zoom: Signal<bool>,
    vocab_size: usize,
) -> impl IntoView {
    let uniform = uniform_nll(vocab_size) as f64;
    let plot = move || {
        let (logs, axis) = (logs.get(), axis.get());
        let frame = ProbeFrame::new(&logs, axis, zoom.get(), uniform);
        let (x0, x1) = (frame.px(frame.story.x.0), frame.px(frame.story.x.1));
        let (y0, y1) = (frame.py(frame.y.0), frame.py(frame.y.1));
        let y_ticks = ticks(frame.y.0, frame.y.1, 4, 0.0)
            .into_iter()
            .map(|v| {
                let y = frame.py(v);
                view! {
                    <line class="grid" x1=x0 x2=x1 y1=y y2=y></line>
                    <text class="tick" x=x0 - 6.0 y=y + 4.0 text-anchor="end">{format!("{v:.1}")}</text>
                }
            })
            .collect_view();
        let x_ticks = ticks(frame.story.x.0, frame.story.x.1, 7, 1.0)
            .into_iter()
            .map(|v| {
                let x = frame.px(v);
                view! {
                    <line class="axis-tick" x1=x x2=x y1=y0 y2=y0 + 4.0></line>
                    <text class="tick" x=x y=y0 + 16.0 text-anchor="middle">{short_count(v)}</text>
                }
            })
            .collect_view();
        let uniform_line = {
            let y = frame.py(uniform);
            let label = format!("uniform guess: ln {vocab_size} = {uniform:.2}");
            view! {
                <line data-testid="uniform-line" class="uniform" x1=x0 x2=x1 y1=y y2=y>
                    <title>{label.clone()}</title>
                </line>
                <text class="uniform-label" x=x1 - 4.0 y=y - 4.0 text-anchor="end">{label}</text>
            }
        };
        let drop = drop_marker(&logs, axis, &frame.story, (y0, y1), "probe-drop-marker");
        let curves = copy_curves(&logs, axis, &frame);
        view! {
            {y_ticks}
            {x_ticks}
            <line class="axis" x1=x0 x2=x1 y1=y0 y2=y0></line>
            <line class="axis" x1=x0 x2=x0 y1=y0 y2=y1></line>
            {uniform_line}
            {drop}
            {curves}
            <text class="axis-label" x=(x0 + x1) / 2.0 y=HEIGHT - 4.0 text-anchor="middle">{axis.title()}</text>
            <text class="axis-label" x=12.0 y=(y0 + y1) / 2.0 text-anchor="middle"
                transform=format!("rotate(-90 12 {})", (y0 + y1) / 2.0)>"second copy (nats)"</text>
        }
    };
    let legend = move || {
        logs.with(|logs| {
            let tokens = |length: ProbeLength| {
                logs.iter()
                    .flat_map(|m| m.log.probes.iter())
                    .find_map(|r| length.score(r))
                    .map_or(String::new(), |s| format!(" ({} tokens)", s.tokens))
            };
            // Only the models with probes (the colours stay the loss chart's).
            let models = model_items(logs, |m| has_probes(std::slice::from_ref(m)));
            view! {
                {models}
                <li><span class="swatch probe-within"></span>"solid: within L" {tokens(ProbeLength::WithinL)}</li>
                <li><span class="swatch probe-4l"></span>"dashed: at 4L" {tokens(ProbeLength::FourL)}</li>
            }
        })
    };
    let summary = move || logs.with(|l| probe_summary(l)).join(" ");
    let aria = move || {
        format!(
            "Loss on the second copy of a repeated random sequence for each model, against {}",
            axis.get().title()
        )
    };
    view! {
        <div class="chart-scroll">
        <svg data-testid="probe-story" class="story-chart"
            viewBox=format!("0 0 {WIDTH} {HEIGHT}") role="img" aria-label=aria>
            {plot}
        </svg>
        </div>
        <ul class="story-legend">{legend}</ul>
        <figcaption class="chart-summary">
            "Copying from context. Each model reads a sequence of random tokens twice \
             in a row; the lines show its loss on the second copy. The first copy \
             cannot be predicted (about ln V, the dotted line), so lower = the model \
             copies from its context, the work of induction heads. Solid: within the \
             training length L; dashed: at 4L, where RoPE meets rotations it never saw. "
            <span data-testid="probe-summary">{summary}</span>
        </figcaption>
    }
}

/// Each model's second-copy lines (within L solid, at 4L dashed) with a dot per probe.
fn copy_curves(logs: &[ModelTrainLog], axis: StoryAxis, frame: &ProbeFrame) -> impl IntoView {
    drawing_order(logs)
        .into_iter()
        .map(|i| {
            let m = &logs[i];
            let lines = PROBE_LENGTHS
                .map(|length| {
                    let points = shown_points(&m.log, length, axis, frame);
                    let path = copy_path(&points, frame);
                    let class = format!("probe-point probe-{}", length.key());
                    let dots = points
                        .iter()
                        .map(|(x, p)| {
                            let first = p
                                .first
                                .map(|f| format!(", first copy {f:.2}"))
                                .unwrap_or_default();
                            let tip = format!(
                                "{} step {}, {} ({} tokens): second copy {:.2} nats{first}",
                                model_label(&m.model),
                                p.step,
                                length.name(),
                                p.tokens,
                                p.second
                            );
                            view! {
                                <circle class=class.clone() cx=frame.px(*x)
                                    cy=frame.py(p.second) r="2.6">
                                    <title>{tip}</title>
                                </circle>
                            }
                        })
                        .collect_view();
                    (!path.is_empty()).then(|| {
                        view! {
                            <path data-testid="second-copy" data-model=m.model.clone()
                                data-length=length.key()
                                class=format!("probe-line probe-{}", length.key()) d=path></path>
                            {dots}
                        }
                    })
                })
                .into_iter()
                .collect_view();
            view! { <g class=format!("series series-{}", i % 6)>{lines}</g> }
        })
        .collect_view()
}

/// A legend entry per model that `keep` accepts, in the loss chart's colour.
fn model_items(logs: &[ModelTrainLog], keep: impl Fn(&ModelTrainLog) -> bool) -> impl IntoView {
    logs.iter()
        .enumerate()
        .filter(|(_, m)| keep(m))
        .map(|(i, m)| {
            view! {
                <li class=format!("series series-{}", i % 6) data-model=m.model.clone()>
                    <span class="swatch"></span>
                    <b>{model_label(&m.model)}</b>
                </li>
            }
        })
        .collect_view()
}

/// Needle accuracy of the snapshots saved during training, or a note when the logs hold
/// none.
#[component]
fn NeedleStory(
    logs: Signal<Vec<ModelTrainLog>>,
    axis: Signal<StoryAxis>,
    zoom: Signal<bool>,
) -> impl IntoView {
    move || {
        let (logs, axis) = (logs.get(), axis.get());
        if !has_needle_probes(&logs) {
            return view! {
                <p class="needle-note" data-testid="needle-note">
                    "Needle accuracy over training was not measured for these runs \
                     (`trainer probe` measures it on the snapshots saved during training)."
                </p>
            }
            .into_any();
        }
        let frame = NeedleFrame {
            story: StoryFrame::new(&logs, axis, zoom.get()),
        };
        let (x0, x1) = (
            frame.story.px(frame.story.x.0),
            frame.story.px(frame.story.x.1),
        );
        let (y0, y1) = (frame.py(0.0), frame.py(1.0));
        let y_ticks = [0.0, 0.25, 0.5, 0.75, 1.0]
            .into_iter()
            .map(|v| {
                let y = frame.py(v);
                view! {
                    <line class="grid" x1=x0 x2=x1 y1=y y2=y></line>
                    <text class="tick" x=x0 - 6.0 y=y + 4.0 text-anchor="end">{percent(v)}</text>
                }
            })
            .collect_view();
        let x_ticks = ticks(frame.story.x.0, frame.story.x.1, 7, 1.0)
            .into_iter()
            .map(|v| {
                let x = frame.story.px(v);
                view! {
                    <line class="axis-tick" x1=x x2=x y1=y0 y2=y0 + 4.0></line>
                    <text class="tick" x=x y=y0 + 16.0 text-anchor="middle">{short_count(v)}</text>
                }
            })
            .collect_view();
        let drop = drop_marker(&logs, axis, &frame.story, (y0, y1), "needle-drop-marker");
        let curves = needle_curves(&logs, axis, &frame);
        let models = model_items(&logs, |m| !needle_series(&m.log).is_empty());
        let documents = needle_documents(&logs).unwrap_or(0);
        let length = logs
            .iter()
            .find(|m| !needle_series(&m.log).is_empty())
            .map_or(0, |m| m.log.length);
        let aria = format!(
            "Needle accuracy at L of each model's training snapshots, against {}",
            axis.title()
        );
        view! {
            <figure class="needle-story">
                <div class="chart-scroll">
                <svg data-testid="needle-story" class="story-chart"
                    viewBox=format!("0 0 {WIDTH} {NEEDLE_HEIGHT}") role="img" aria-label=aria>
                    {y_ticks}
                    {x_ticks}
                    <line class="axis" x1=x0 x2=x1 y1=y0 y2=y0></line>
                    <line class="axis" x1=x0 x2=x0 y1=y0 y2=y1></line>
                    {drop}
                    {curves}
                    <text class="axis-label" x=(x0 + x1) / 2.0 y=NEEDLE_HEIGHT - 4.0
                        text-anchor="middle">{axis.title()}</text>
                    <text class="axis-label" x=12.0 y=(y0 + y1) / 2.0 text-anchor="middle"
                        transform=format!("rotate(-90 12 {})", (y0 + y1) / 2.0)>"needles found"</text>
                </svg>
                </div>
                <ul class="story-legend">
                    {models}
                    <li><span class="swatch needle-bar"></span>"bars: 95% interval"</li>
                </ul>
                <figcaption class="chart-summary">
                    {format!(
                        "Needle retrieval over training. Every snapshot saved during training \
                         reads the same {documents} documents from the validation split: \
                         L = {length} tokens of prose with one sentence \u{201c}The magic number \
                         for <key> is <7 digits>.\u{201d} at a depth spread from start to end, \
                         then the question for that number. The lines show the share answered \
                         exactly (all 7 digits, greedy decoding), the bars the 95% Wilson \
                         intervals. "
                    )}
                    <span data-testid="needle-summary">
                        {needle_summary(&logs).join(" ")}
                    </span>
                </figcaption>
            </figure>
        }
        .into_any()
    }
}

/// Each model's needle accuracy line, with a dot and an interval bar per snapshot.
fn needle_curves(logs: &[ModelTrainLog], axis: StoryAxis, frame: &NeedleFrame) -> impl IntoView {
    drawing_order(logs)
        .into_iter()
        .filter_map(|i| {
            let m = &logs[i];
            let points = shown_needles(&m.log, axis, frame);
            let path = needle_path(&points, frame);
            let marks = points
                .iter()
                .map(|(x, p)| {
                    let x = frame.story.px(*x);
                    let tip = format!(
                        "{} step {}: {}/{} needles exact ({}, 95% interval {}-{}), {} of \
                         the digits",
                        model_label(&m.model),
                        p.step,
                        p.correct,
                        p.trials,
                        percent(p.share),
                        percent(p.interval.0),
                        percent(p.interval.1),
                        percent(p.digit_share)
                    );
                    view! {
                        <line class="needle-interval" x1=x x2=x y1=frame.py(p.interval.0)
                            y2=frame.py(p.interval.1)></line>
                        <circle class="needle-point" cx=x cy=frame.py(p.share) r="2.6">
                            <title>{tip}</title>
                        </circle>
                    }
                })
                .collect_view();
            (!path.is_empty()).then(|| {
                view! {
                    <g class=format!("series series-{}", i % 6)>
                        <path data-testid="needle-accuracy" data-model=m.model.clone()
                            class="needle-line" d=path></path>
                        {marks}
                    </g>
                }
            })
        })
        .collect_view()
}

/// The strongest previous-token head per layer of each model, at the drop and at the end.
#[component]
fn PreviousTokenHeads(logs: Signal<Vec<ModelTrainLog>>) -> impl IntoView {
    move || {
        logs.with(|logs| {
            let rows: Vec<_> = logs
                .iter()
                .flat_map(|m| {
                    head_snapshots(&m.log)
                        .into_iter()
                        .map(move |(when, row)| (m, when, strongest_previous_token_heads(row)))
                })
                .collect();
            let layers = rows.iter().map(|(_, _, l)| l.len()).max()?;
            let header = (0..layers)
                .map(|l| view! { <th scope="col">{format!("layer {l}")}</th> })
                .collect_view();
            let body = rows
                .into_iter()
                .map(|(m, when, strongest)| {
                    let cells = (0..layers)
                        .map(|layer| match strongest.get(layer).copied().flatten() {
                            Some((head, share)) => {
                                let colour = VIRIDIS.at(share as f32);
                                let tip = format!(
                                    "layer {layer}: head {head} puts {share:.2} of its attention \
                                     on the previous token"
                                );
                                view! {
                                    <td data-testid="previous-token-cell" title=tip
                                        style:background=colour.hex()
                                        style:color=colour.text_colour().hex()>
                                        {format!("{share:.2}")}
                                        <small>{format!(" h{head}")}</small>
                                    </td>
                                }
                                .into_any()
                            }
                            None => view! { <td>"\u{2013}"</td> }.into_any(),
                        })
                        .collect_view();
                    view! {
                        <tr data-model=m.model.clone() data-when=when.key()>
                            <th scope="row">{model_label(&m.model)}</th>
                            <td class="when">{when.label()}</td>
                            {cells}
                        </tr>
                    }
                })
                .collect_view();
            Some(view! {
                <table class="probe-heads" data-testid="previous-token-heads">
                    <caption>
                        "Strongest previous-token head per layer: the share of its attention \
                         a head puts on the token just before (colour: 0 dark, 1 light). \
                         Induction heads build on such heads."
                    </caption>
                    <thead>
                        <tr><th scope="col">"model"</th><th scope="col">"measured"</th>{header}</tr>
                    </thead>
                    <tbody>{body}</tbody>
                </table>
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::tests::{drope, drope_with_needles};

    #[test]
    fn frame_path_and_summary() {
        let logs = [ModelTrainLog {
            model: "drope".into(),
            log: drope(),
        }];
        let uniform = 4096f64.ln();
        let frame = ProbeFrame::new(&logs, StoryAxis::Steps, false, uniform);
        assert!(frame.y.0 <= 1.5 && frame.y.1 >= 9.0, "{:?}", frame.y);
        let within = shown_points(&logs[0].log, ProbeLength::WithinL, StoryAxis::Steps, &frame);
        let path = copy_path(&within, &frame);
        assert_eq!(path.matches('M').count(), 1, "{path}");
        assert_eq!(path.matches('L').count(), 4, "{path}");
        // On the tokens axis: step x batch x length.
        let frame = ProbeFrame::new(&logs, StoryAxis::Tokens, false, uniform);
        let at_4l = shown_points(&logs[0].log, ProbeLength::FourL, StoryAxis::Tokens, &frame);
        assert_eq!(at_4l.len(), 4);
        assert_eq!(at_4l[0].0, 10.0 * 16.0);
        assert_eq!(
            probe_summary(&logs),
            [
                "DroPE at step 30: second copy 1.50 nats with RoPE, 8.00 right after RoPE is \
              removed, 2.00 after recalibrating to step 40."
            ]
        );
    }

    #[test]
    fn needle_path_and_summary() {
        let logs = [ModelTrainLog {
            model: "drope".into(),
            log: drope_with_needles(),
        }];
        let frame = NeedleFrame {
            story: StoryFrame::new(&logs, StoryAxis::Steps, false),
        };
        assert_eq!(
            (frame.py(0.0), frame.py(1.0)),
            (NEEDLE_HEIGHT - BOTTOM, TOP)
        );
        let points = shown_needles(&logs[0].log, StoryAxis::Steps, &frame);
        assert_eq!(points.len(), 5);
        assert_eq!(
            points[2].0, points[3].0,
            "the drop's two points: a vertical step"
        );
        let path = needle_path(&points, &frame);
        assert_eq!(path.matches('M').count(), 1, "{path}");
        assert_eq!(path.matches('L').count(), 4, "{path}");
        assert_eq!(
            needle_summary(&logs),
            [
                "DroPE at step 30: 83% of the needles with RoPE, 4% right after RoPE is \
              removed, 67% at step 40."
            ]
        );
        // Zoomed onto the drop, the points before it are left out.
        let zoomed = NeedleFrame {
            story: StoryFrame::new(&logs, StoryAxis::Steps, true),
        };
        assert!(shown_needles(&logs[0].log, StoryAxis::Steps, &zoomed).len() < 5);

        let mut rope = drope_with_needles();
        rope.drop_step = None;
        let logs = [
            ModelTrainLog {
                model: "rope".into(),
                log: rope,
            },
            ModelTrainLog {
                model: "nope".into(),
                log: drope(),
            },
        ];
        assert_eq!(
            needle_summary(&logs),
            ["RoPE: 0% at step 10, 67% at step 40."],
            "no sentence for a log without needle probes"
        );
    }

    #[test]
    fn ticks_are_multiples_of_a_nice_step() {
        assert_eq!(ticks(0.0, 10.0, 4, 0.0), [0.0, 5.0, 10.0]);
        assert_eq!(
            ticks(15.0, 40.0, 5, 1.0),
            [15.0, 20.0, 25.0, 30.0, 35.0, 40.0]
        );
        assert_eq!(ticks(0.0, 3.0, 7, 1.0), [0.0, 1.0, 2.0, 3.0]);
    }
}
