//! The training story (SVG): loss curves of RoPE, NoPE and DroPE from their
//! `train-log.json`, the step where DroPE drops RoPE marked, and an optional zoom onto
//! the steps around it, where the recalibration spike and its recovery show.
//!
//! Training loss is smoothed per segment (before and after a drop separately, so the
//! average does not blur the spike away); validation losses are points.

use leptos::prelude::*;
use web_sys::MouseEvent;

use crate::export::{csv_field, save_svg_as_png};
use crate::published::{ModelTrainLog, TrainHistory, TrainPoint};
use crate::views::chart_math::{moving_average, nice_step, pointer_x};
use crate::views::probe_story::ProbeStory;
use crate::views::ExportButtons;

/// Width of the chart's viewBox; the probe chart below shares it (and the x margins,
/// through [`StoryFrame::px`]) so the two x axes line up.
pub const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 26.0;
const BOTTOM: f64 = 42.0;

/// What the x axis of the training story counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoryAxis {
    /// Optimizer steps.
    #[default]
    Steps,
    /// Tokens seen (steps x batch x length).
    Tokens,
}

impl StoryAxis {
    /// `step` of `log` in this axis' unit.
    pub fn value(self, log: &TrainHistory, step: f64) -> f64 {
        match self {
            StoryAxis::Steps => step,
            StoryAxis::Tokens => log.tokens_at(step),
        }
    }

    /// The axis title.
    pub fn title(self) -> &'static str {
        match self {
            StoryAxis::Steps => "training step",
            StoryAxis::Tokens => "tokens seen",
        }
    }
}

/// A model id's display name (`drope` -> `DroPE`); unknown ids are shown as they are.
pub fn model_label(id: &str) -> String {
    match id {
        "rope" => "RoPE",
        "nope" => "NoPE",
        "drope" => "DroPE",
        other => other,
    }
    .to_string()
}

/// `1234567` as `1.23M`: compact counts for axis ticks.
pub fn short_count(n: f64) -> String {
    let (value, suffix) = match n.abs() {
        a if a >= 1e9 => (n / 1e9, "B"),
        a if a >= 1e6 => (n / 1e6, "M"),
        a if a >= 1e3 => (n / 1e3, "k"),
        _ => return format!("{n}"),
    };
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{suffix}")
}

/// The first drop step among the logs, with the model that dropped.
pub fn drop_point(logs: &[ModelTrainLog]) -> Option<(&ModelTrainLog, f64)> {
    logs.iter()
        .find_map(|m| m.log.drop_step.map(|step| (m, step)))
}

/// The steps shown: the whole run, or (zoomed) as many steps before the drop as the
/// recalibration after it took (at least a tenth of the run).
pub fn step_range(logs: &[ModelTrainLog], zoom: bool) -> (f64, f64) {
    let last = logs
        .iter()
        .flat_map(|m| {
            let train = m.log.train.last().map(|p| p.step);
            let validation = m.log.validation.last().map(|p| p.step);
            train.into_iter().chain(validation)
        })
        .fold(1.0f64, f64::max);
    match drop_point(logs) {
        Some((_, drop)) if zoom => {
            let span = (last - drop).max(last / 10.0).max(1.0);
            (
                (drop - span).max(0.0),
                (drop + span).min(last).max(drop + 1.0),
            )
        }
        _ => (0.0, last),
    }
}

/// Maps (axis value, loss) to SVG coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoryFrame {
    /// Axis values shown, left and right end.
    pub x: (f64, f64),
    /// Losses shown, bottom and top (rounded to ticks).
    pub y: (f64, f64),
}

impl StoryFrame {
    /// The frame for `logs` on `axis`, zoomed or not.
    pub fn new(logs: &[ModelTrainLog], axis: StoryAxis, zoom: bool) -> StoryFrame {
        let (first, last) = step_range(logs, zoom);
        let mut x = (f64::INFINITY, f64::NEG_INFINITY);
        let mut y = (f64::INFINITY, f64::NEG_INFINITY);
        for m in logs {
            x = (
                x.0.min(axis.value(&m.log, first)),
                x.1.max(axis.value(&m.log, last)),
            );
            let train = m.log.train.iter().map(|p| (p.step, p.loss));
            let validation = m.log.validation.iter().map(|p| (p.step, p.loss));
            for (_, loss) in train
                .chain(validation)
                .filter(|(s, _)| (first..=last).contains(s))
            {
                y = (y.0.min(loss), y.1.max(loss));
            }
        }
        if !x.0.is_finite() || !x.1.is_finite() || x.1 <= x.0 {
            x = (first, last.max(first + 1.0));
        }
        if !y.0.is_finite() || !y.1.is_finite() {
            y = (0.0, 1.0);
        }
        let step = nice_step((y.1 - y.0).max(1e-3) as f32, 5) as f64;
        let low = (y.0 / step).floor() * step;
        let high = ((y.1 / step).ceil() * step).max(low + step);
        StoryFrame { x, y: (low, high) }
    }

    /// SVG x of an axis value.
    pub fn px(&self, value: f64) -> f64 {
        LEFT + (value - self.x.0) / (self.x.1 - self.x.0) * (WIDTH - LEFT - RIGHT)
    }

    /// SVG y of a loss.
    pub fn py(&self, loss: f64) -> f64 {
        TOP + (1.0 - (loss - self.y.0) / (self.y.1 - self.y.0)) * (HEIGHT - TOP - BOTTOM)
    }

    /// The axis value under SVG x (clamped to the frame).
    pub fn value_at(&self, svg_x: f64) -> f64 {
        let t = ((svg_x - LEFT) / (WIDTH - LEFT - RIGHT)).clamp(0.0, 1.0);
        self.x.0 + t * (self.x.1 - self.x.0)
    }

    fn contains(&self, value: f64) -> bool {
        (self.x.0..=self.x.1).contains(&value)
    }
}

/// SVG path of a model's smoothed training loss, one sub-path per segment (split at its
/// drop step).
fn smoothed_path(m: &ModelTrainLog, frame: &StoryFrame, axis: StoryAxis, window: usize) -> String {
    let drop = m.log.drop_step.unwrap_or(f64::INFINITY);
    let (before, after): (Vec<&TrainPoint>, Vec<&TrainPoint>) =
        m.log.train.iter().partition(|p| p.step <= drop);
    let mut path = String::new();
    for segment in [before, after] {
        let losses: Vec<Option<f32>> = segment.iter().map(|p| Some(p.loss as f32)).collect();
        let mut command = 'M';
        for (p, loss) in segment.iter().zip(moving_average(&losses, window)) {
            let value = axis.value(&m.log, p.step);
            if let (Some(loss), true) = (loss, frame.contains(value)) {
                path += &format!(
                    "{command}{:.1},{:.1} ",
                    frame.px(value),
                    frame.py(loss as f64)
                );
                command = 'L';
            }
        }
    }
    path
}

/// The hover text: per model, the logged step nearest `value`, its loss and perplexity.
pub fn readout(logs: &[ModelTrainLog], axis: StoryAxis, value: f64) -> Vec<String> {
    logs.iter()
        .filter_map(|m| {
            let distance = |step: f64| (axis.value(&m.log, step) - value).abs();
            let p = m
                .log
                .train
                .iter()
                .min_by(|a, b| distance(a.step).total_cmp(&distance(b.step)))?;
            let mut line = format!(
                "{} step {} ({} tokens): train loss {:.3}, perplexity {:.1}",
                model_label(&m.model),
                p.step,
                short_count(m.log.tokens_at(p.step)),
                p.loss,
                p.loss.exp()
            );
            if let Some(v) = m.log.validation.iter().find(|v| v.step == p.step) {
                line += &format!("; validation {:.3} ({:.1})", v.loss, v.loss.exp());
            }
            Some(line)
        })
        .collect()
}

/// The training story: `svg[data-testid="training-story"]` with one
/// `path[data-testid="train-curve"]` (and `data-model`) per log, validation losses as
/// `circle[data-testid="validation-point"]`, the drop as `[data-testid="drop-marker"]`,
/// and the hover text in `[data-testid="training-readout"]`.
/// The curves as CSV: one row per logged point, `model,kind,step,tokens,loss`
/// (`kind` = train or validation; tokens = step x batch x length).
pub fn story_csv(logs: &[ModelTrainLog]) -> String {
    let mut out = String::from("model,kind,step,tokens,loss\n");
    for m in logs {
        let per_step = (m.log.batch * m.log.length) as f64;
        let points = m.log.train.iter().map(|p| ("train", p.step, p.loss)).chain(
            m.log
                .validation
                .iter()
                .map(|p| ("validation", p.step, p.loss)),
        );
        for (kind, step, loss) in points {
            out += &format!(
                "{},{kind},{step},{},{loss}\n",
                csv_field(&m.model),
                step * per_step
            );
        }
    }
    out
}

/// The curves as JSON: per model its drop step, batch shape and both curves.
pub fn story_json(logs: &[ModelTrainLog]) -> String {
    let models: Vec<serde_json::Value> = logs
        .iter()
        .map(|m| {
            serde_json::json!({
                "model": m.model,
                "positions": m.log.positions,
                "drop_step": m.log.drop_step,
                "batch": m.log.batch,
                "length": m.log.length,
                "train": m.log.train.iter().map(|p| [p.step, p.loss, p.learning_rate]).collect::<Vec<_>>(),
                "validation": m.log.validation.iter().map(|p| [p.step, p.loss]).collect::<Vec<_>>(),
                "probes": m.log.probes,
            })
        })
        .collect();
    serde_json::json!({ "train_columns": ["step", "loss", "learning_rate"], "validation_columns": ["step", "loss"], "models": models }).to_string()
}

#[component]
pub fn TrainingStory(
    /// The logs to draw, in legend order (e.g. RoPE, NoPE, DroPE).
    #[prop(into)]
    logs: Signal<Vec<ModelTrainLog>>,
    /// Zoom onto the steps around the drop (a local signal when not given).
    #[prop(optional)]
    zoom: Option<RwSignal<bool>>,
    /// Steps or tokens on the x axis (a local signal when not given).
    #[prop(optional)]
    axis: Option<RwSignal<StoryAxis>>,
    /// Width of the training-loss moving average, in logged points.
    #[prop(default = 5)]
    smoothing: usize,
) -> impl IntoView {
    let zoom = zoom.unwrap_or_else(|| RwSignal::new(false));
    let axis = axis.unwrap_or_else(|| RwSignal::new(StoryAxis::Steps));
    let hover = RwSignal::new(None::<f64>);
    let frame = Memo::new(move |_| logs.with(|l| StoryFrame::new(l, axis.get(), zoom.get())));
    let has_drop = move || logs.with(|l| drop_point(l).is_some());

    let svg_ref = NodeRef::<leptos::svg::Svg>::new();
    let on_move = move |ev: MouseEvent| {
        let Some(svg_x) = pointer_x(&ev, svg_ref, WIDTH) else {
            return;
        };
        hover.set(Some(frame.get_untracked().value_at(svg_x)));
    };

    let plot = move || {
        let (logs, frame, axis) = (logs.get(), frame.get(), axis.get());
        let (x0, x1) = (frame.px(frame.x.0), frame.px(frame.x.1));
        let (y0, y1) = (frame.py(frame.y.0), frame.py(frame.y.1));
        let y_step = nice_step((frame.y.1 - frame.y.0) as f32, 5) as f64;
        let y_ticks = (0..=((frame.y.1 - frame.y.0) / y_step).round() as usize)
            .map(|i| frame.y.0 + i as f64 * y_step)
            .map(|v| {
                let y = frame.py(v);
                view! {
                    <line class="grid" x1=x0 x2=x1 y1=y y2=y></line>
                    <text class="tick" x=x0 - 6.0 y=y + 4.0 text-anchor="end">{format!("{v:.1}")}</text>
                }
            })
            .collect_view();
        let x_step = nice_step((frame.x.1 - frame.x.0) as f32, 7).max(1.0) as f64;
        let x_ticks = (0..=((frame.x.1 - frame.x.0) / x_step).floor() as usize + 1)
            .map(|i| (frame.x.0 / x_step).ceil() * x_step + i as f64 * x_step)
            .filter(|v| frame.contains(*v))
            .map(|v| {
                let x = frame.px(v);
                view! {
                    <line class="axis-tick" x1=x x2=x y1=y0 y2=y0 + 4.0></line>
                    <text class="tick" x=x y=y0 + 16.0 text-anchor="middle">{short_count(v)}</text>
                }
            })
            .collect_view();
        let drop = drop_point(&logs).map(|(m, step)| {
            let x = frame.px(axis.value(&m.log, step));
            let label = format!("{} drops RoPE (step {step})", model_label(&m.model));
            frame.contains(axis.value(&m.log, step)).then(|| {
                view! {
                    <line data-testid="drop-marker" class="drop-marker" x1=x x2=x y1=y0 y2=y1>
                        <title>{label.clone()}</title>
                    </line>
                    <text class="drop-label" x=x - 4.0 y=TOP - 8.0 text-anchor="end">{label}</text>
                }
            })
        });
        let curves = loss_curves(&logs, &frame, axis, smoothing);
        let guide = hover.get().filter(|v| frame.contains(*v)).map(|v| {
            let x = frame.px(v);
            view! { <line class="hover-guide" x1=x x2=x y1=y0 y2=y1></line> }
        });
        view! {
            {y_ticks}
            {x_ticks}
            <line class="axis" x1=x0 x2=x1 y1=y0 y2=y0></line>
            <line class="axis" x1=x0 x2=x0 y1=y0 y2=y1></line>
            {drop}
            {curves}
            {guide}
            <text class="axis-label" x=(x0 + x1) / 2.0 y=HEIGHT - 4.0 text-anchor="middle">{axis.title()}</text>
            <text class="axis-label" x=12.0 y=(y0 + y1) / 2.0 text-anchor="middle"
                transform=format!("rotate(-90 12 {})", (y0 + y1) / 2.0)>"loss (nats)"</text>
        }
    };

    let readout_lines = move || {
        let lines = hover
            .get()
            .map(|v| logs.with(|l| readout(l, axis.get(), v)))
            .unwrap_or_default();
        if lines.is_empty() {
            "Hover over the chart for the loss and perplexity at a step.".to_string()
        } else {
            lines.join("\n")
        }
    };
    let drop_summary = move || logs.with(|l| drop_sentence(l));
    let paper = engine::paper::DROP_POINT_PERPLEXITY
        .map(|(setting, ppl)| format!("{setting} {ppl:.2}"))
        .join("; ");

    view! {
        <figure class="training-story">
            <div class="story-controls">
                <label>
                    <input type="checkbox" data-testid="zoom-drop"
                        prop:checked=move || zoom.get()
                        prop:disabled=move || !has_drop()
                        on:change=move |ev| zoom.set(event_target_checked(&ev)) />
                    " zoom to the drop"
                </label>
                <label>
                    "x axis "
                    <select data-testid="story-axis"
                        on:change=move |ev| axis.set(if event_target_value(&ev) == "tokens" {
                            StoryAxis::Tokens
                        } else {
                            StoryAxis::Steps
                        })>
                        <option value="steps" prop:selected=move || axis.get() == StoryAxis::Steps>"steps"</option>
                        <option value="tokens" prop:selected=move || axis.get() == StoryAxis::Tokens>"tokens"</option>
                    </select>
                </label>
                <ExportButtons stem="drope-training"
                    png=Callback::new(move |()| {
                        let svg = svg_ref.get_untracked().ok_or("the chart is not drawn")?;
                        save_svg_as_png(&svg, "drope-training.png", include_str!("../style.css"))
                    })
                    csv=Callback::new(move |()| logs.with_untracked(|l| story_csv(l)))
                    json=Callback::new(move |()| logs.with_untracked(|l| story_json(l)))
                />
            </div>
            <div class="chart-scroll">
            <svg node_ref=svg_ref data-testid="training-story" class="story-chart"
                viewBox=format!("0 0 {WIDTH} {HEIGHT}") role="img"
                aria-label="Training loss of each model against training steps"
                on:mousemove=on_move on:mouseleave=move |_| hover.set(None)>
                {plot}
            </svg>
            </div>
            <StoryLegend logs=logs />
            <pre class="story-readout" data-testid="training-readout">{readout_lines}</pre>
            <figcaption class="chart-summary">
                "Line: training loss (moving average over " {smoothing} " logged steps); dots: validation loss. "
                {drop_summary}
                <p class="paper-note" data-testid="paper-drop-point">
                    "The paper's drop-point ablation (500M model from scratch, validation perplexity): "
                    {paper} "."
                </p>
            </figcaption>
        </figure>
        <ProbeStory logs=logs axis=axis zoom=zoom />
    }
}

/// Each model's smoothed training loss and its validation points; logs with a drop go
/// underneath (up to the drop they repeat the RoPE run, which should stay visible there).
fn loss_curves(
    logs: &[ModelTrainLog],
    frame: &StoryFrame,
    axis: StoryAxis,
    smoothing: usize,
) -> impl IntoView {
    // Logs with a drop go underneath: up to the drop they repeat the RoPE run, which
    // should stay visible there.
    let mut order: Vec<usize> = (0..logs.len()).collect();
    order.sort_by_key(|&i| logs[i].log.drop_step.is_none());
    order
        .into_iter()
        .map(|i| (i, &logs[i]))
        .map(|(i, m)| {
            let series = format!("series series-{}", i % 6);
            let points = m
                .log
                .validation
                .iter()
                .filter(|v| frame.contains(axis.value(&m.log, v.step)))
                .map(|v| {
                    let tip = format!(
                        "{} step {}: validation loss {:.3}, perplexity {:.1}",
                        model_label(&m.model),
                        v.step,
                        v.loss,
                        v.loss.exp()
                    );
                    view! {
                        <circle data-testid="validation-point" data-model=m.model.clone()
                            class="validation" cx=frame.px(axis.value(&m.log, v.step))
                            cy=frame.py(v.loss) r="3.2">
                            <title>{tip}</title>
                        </circle>
                    }
                })
                .collect_view();
            view! {
                <g class=series>
                    <path data-testid="train-curve" data-model=m.model.clone() class="train"
                        d=smoothed_path(m, frame, axis, smoothing)></path>
                    {points}
                </g>
            }
        })
        .collect_view()
}

/// One entry per model with its final validation loss.
#[component]
fn StoryLegend(logs: Signal<Vec<ModelTrainLog>>) -> impl IntoView {
    let items = move || {
        logs.get()
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let last = m.log.validation.last().map(|v| {
                    format!(
                        ": final validation loss {:.2} (perplexity {:.1})",
                        v.loss,
                        v.loss.exp()
                    )
                });
                view! {
                    <li class=format!("series series-{}", i % 6) data-model=m.model.clone()>
                        <span class="swatch"></span>
                        <b>{model_label(&m.model)}</b>
                        {last}
                    </li>
                }
            })
            .collect_view()
    };
    view! { <ul class="story-legend">{items}</ul> }
}

/// The sentence on the drop: whose run it is up to where, and how long recalibration ran.
pub fn drop_sentence(logs: &[ModelTrainLog]) -> Option<String> {
    drop_point(logs).map(|(m, step)| {
        let last = m.log.train.last().map_or(step, |p| p.step);
        format!(
            "{} is RoPE's run up to step {step}; RoPE is then removed from every \
             layer and training continues at the same length for {} steps ({} tokens, \
             {:.1}% of the run): the loss jumps, then recovers.",
            model_label(&m.model),
            last - step,
            short_count(m.log.tokens_at(last - step)),
            100.0 * (last - step) / last.max(1.0)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_short() {
        assert_eq!(short_count(640.0), "640");
        assert_eq!(short_count(2_621_440.0), "2.62M");
        assert_eq!(short_count(1_500.0), "1.5k");
        assert_eq!(short_count(2e9), "2B");
        assert_eq!(model_label("drope"), "DroPE");
        assert_eq!(model_label("mine"), "mine");
    }
}
