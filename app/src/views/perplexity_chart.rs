//! Perplexity against position for several model/scheme series at once (SVG): each
//! series' per-token NLL smoothed over an adjustable window, the training length `L`
//! and its multiples 2L, 4L, 8L marked, the region past `L` shaded, a legend whose
//! entries hide and show their line, an optional log position axis, a hover readout of
//! every series at the pointed position, and a table of perplexity per window (the
//! windows of docs/RESULTS.md).

use std::collections::HashSet;

use leptos::prelude::*;
use web_sys::MouseEvent;

use crate::export::{csv_field, save_svg_as_png};
use crate::format::quoted;
use crate::views::chart_math::{moving_average, nice_step, pointer_x};
use crate::views::ExportButtons;

const WIDTH: f32 = 760.0;
const HEIGHT: f32 = 300.0;
const LEFT: f32 = 52.0;
const RIGHT: f32 = 16.0;
const TOP: f32 = 22.0;
const BOTTOM: f32 = 40.0;

/// A series' key, colour and smoothed NLL per position.
type SmoothedLine = (String, &'static str, Vec<Option<f32>>);

/// One line of the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartSeries {
    /// Stable key (the series' URL form, `rope:yarn:dyn`), kept by the legend toggles.
    pub key: String,
    /// Legend text.
    pub label: String,
    /// Line colour: the series' own ([`crate::series_look`]), the same on every view.
    pub colour: &'static str,
    /// NLL per position in nats (`None`: no value, e.g. the first token).
    pub nll: Vec<Option<f32>>,
}

/// The position windows of the results report: `0-L`, `L-2L`, `2L-4L`, `4L-8L`.
pub fn report_windows(l: usize) -> [(String, usize, usize); 4] {
    [
        ("0-L".to_string(), 0, l),
        ("L-2L".to_string(), l, 2 * l),
        ("2L-4L".to_string(), 2 * l, 4 * l),
        ("4L-8L".to_string(), 4 * l, 8 * l),
    ]
}

/// Mean NLL of `nll[from..to]` over the values present, and how many there were.
pub fn window_mean(nll: &[Option<f32>], from: usize, to: usize) -> Option<(f32, usize)> {
    let values: Vec<f32> = nll
        .get(from.min(nll.len())..to.min(nll.len()))?
        .iter()
        .flatten()
        .copied()
        .collect();
    (!values.is_empty()).then(|| {
        (
            values.iter().sum::<f32>() / values.len() as f32,
            values.len(),
        )
    })
}

/// Maps positions (linear or log) and NLLs to SVG coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesScale {
    /// Largest position on the x axis.
    pub x_max: f32,
    /// Top of the y axis, in nats.
    pub y_max: f32,
    /// Log position axis (`ln(1 + position)`), which gives the first tokens room.
    pub log_x: bool,
}

impl SeriesScale {
    fn warp(&self, position: f32) -> f32 {
        if self.log_x {
            (1.0 + position.max(0.0)).ln()
        } else {
            position
        }
    }

    /// SVG x of a position.
    pub fn x(&self, position: f32) -> f32 {
        LEFT + self.warp(position) / self.warp(self.x_max).max(f32::MIN_POSITIVE)
            * (WIDTH - LEFT - RIGHT)
    }

    /// The position under SVG x (the inverse of [`SeriesScale::x`]), clamped to the axis.
    pub fn position_at(&self, x: f32) -> f32 {
        let fraction = ((x - LEFT) / (WIDTH - LEFT - RIGHT)).clamp(0.0, 1.0);
        let warped = fraction * self.warp(self.x_max);
        if self.log_x {
            warped.exp() - 1.0
        } else {
            warped
        }
    }

    /// SVG y of an NLL (clamped to the axis).
    pub fn y(&self, nll: f32) -> f32 {
        TOP + (1.0 - nll.clamp(0.0, self.y_max) / self.y_max) * (HEIGHT - TOP - BOTTOM)
    }
}

/// The SVG path of a smoothed series.
fn line_path(values: &[Option<f32>], scale: &SeriesScale) -> String {
    let mut path = String::new();
    let mut pen_down = false;
    for (position, value) in values.iter().enumerate() {
        match value {
            Some(v) => {
                let command = if pen_down { 'L' } else { 'M' };
                path += &format!(
                    "{command}{:.1},{:.1} ",
                    scale.x(position as f32),
                    scale.y(*v)
                );
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    path
}

/// The chart's data as CSV: one row per position with its token and, per series, the
/// raw NLL and the smoothed value (empty where there is none).
pub fn chart_csv(series: &[ChartSeries], texts: &[String], window: usize) -> String {
    let mut header = vec!["position".to_string(), "token".to_string()];
    for s in series {
        header.push(csv_field(&format!("{} NLL", s.label)));
        header.push(csv_field(&format!(
            "{} smoothed ({window} tokens)",
            s.label
        )));
    }
    let smoothed: Vec<Vec<Option<f32>>> = series
        .iter()
        .map(|s| moving_average(&s.nll, window))
        .collect();
    let rows = series.iter().map(|s| s.nll.len()).max().unwrap_or(0);
    let cell = |v: Option<f32>| v.map(|v| format!("{v:.5}")).unwrap_or_default();
    let mut out = header.join(",") + "\n";
    for position in 0..rows {
        let mut row = vec![
            position.to_string(),
            csv_field(texts.get(position).map_or("", String::as_str)),
        ];
        for (s, smooth) in series.iter().zip(&smoothed) {
            row.push(cell(s.nll.get(position).copied().flatten()));
            row.push(cell(smooth.get(position).copied().flatten()));
        }
        out += &(row.join(",") + "\n");
    }
    out
}

/// The chart's data as JSON: the training length, the tokens and each series' NLLs.
pub fn chart_json(series: &[ChartSeries], texts: &[String], training_length: usize) -> String {
    let series: Vec<serde_json::Value> = series
        .iter()
        .map(|s| serde_json::json!({"series": s.key, "label": s.label, "nll": s.nll}))
        .collect();
    serde_json::json!({
        "training_length": training_length,
        "unit": "nats",
        "tokens": texts,
        "series": series,
    })
    .to_string()
}

/// The comparison chart: `svg[data-testid="perplexity-chart"]`, one
/// `path[data-testid="series-line"]` per shown series (`data-series` = its key,
/// `data-last-position` = the last position it has a value for), legend buttons
/// `[data-testid="legend-item"]` (`aria-pressed` = shown) and a readout
/// `[data-testid="chart-readout"]` while the pointer is over the plot.
#[component]
pub fn PerplexityChart(
    /// The series, in legend order.
    #[prop(into)]
    series: Signal<Vec<ChartSeries>>,
    /// The text of each position's token (hover readout).
    #[prop(into)]
    token_texts: Signal<Vec<String>>,
    /// The training length `L`.
    #[prop(into)]
    training_length: Signal<usize>,
    /// `ln V`, the NLL of a uniform guess (reference line).
    #[prop(into)]
    uniform_nll: Signal<f32>,
    /// The x axis extent in tokens (the whole prompt, so the axis stays put while the
    /// prompt grows); the data's own length when smaller than it.
    #[prop(into)]
    axis_length: Signal<usize>,
) -> impl IntoView {
    let window = RwSignal::new(33usize);
    let log_x = RwSignal::new(false);
    let hidden = RwSignal::new(HashSet::<String>::new());
    let hover = RwSignal::new(None::<usize>);
    let svg_ref = NodeRef::<leptos::svg::Svg>::new();

    let smoothed = Memo::new(move |_| {
        let w = window.get();
        series.with(|all| {
            all.iter()
                .map(|s| (s.key.clone(), s.colour, moving_average(&s.nll, w)))
                .collect::<Vec<_>>()
        })
    });
    let scale = Memo::new(move |_| {
        let l = training_length.get();
        let longest = series.with(|all| all.iter().map(|s| s.nll.len()).max().unwrap_or(0));
        let x_max = axis_length
            .get()
            .max(longest)
            .saturating_sub(1)
            .max(l + l / 8)
            .max(1);
        let highest = smoothed.with(|all| {
            all.iter()
                .flat_map(|(_, _, v)| v.iter().flatten().copied())
                .fold(uniform_nll.get(), f32::max)
        });
        let step = nice_step(highest.max(1.0), 5);
        SeriesScale {
            x_max: x_max as f32,
            y_max: (highest.max(1.0) * 1.02 / step).ceil() * step,
            log_x: log_x.get(),
        }
    });

    let lines = move || {
        let scale = scale.get();
        let hidden = hidden.get();
        smoothed.with(|all| {
            all.iter()
                .filter(|(key, _, _)| !hidden.contains(key))
                .map(|(key, colour, values)| {
                    let last = values.iter().rposition(Option::is_some);
                    view! {
                        <path
                            data-testid="series-line"
                            data-series=key.clone()
                            data-last-position=last.map(|p| p.to_string()).unwrap_or_default()
                            class="series-line"
                            stroke=*colour
                            d=line_path(values, &scale)
                        ></path>
                    }
                })
                .collect_view()
        })
    };

    let on_move = move |ev: MouseEvent| {
        let Some(x) = pointer_x(&ev, svg_ref, WIDTH as f64) else {
            return;
        };
        let longest = series.with(|all| all.iter().map(|s| s.nll.len()).max().unwrap_or(0));
        let position = scale.get_untracked().position_at(x as f32).round() as usize;
        hover.set((longest > 0).then(|| position.min(longest - 1)));
    };

    // Keyboard: with the chart focused, the arrow keys move the readout one token (with
    // Shift, a tenth of the prompt), Home and End jump to the ends, Escape hides it.
    let on_key = move |ev: web_sys::KeyboardEvent| {
        let longest = series.with(|all| all.iter().map(|s| s.nll.len()).max().unwrap_or(0));
        if let Some(next) =
            readout_after_key(&ev.key(), ev.shift_key(), hover.get_untracked(), longest)
        {
            ev.prevent_default();
            hover.set(next);
        }
    };

    let cursor = move || {
        let position = hover.get()?;
        let scale = scale.get();
        let x = scale.x(position as f32);
        Some(view! {
            <line class="hover-rule" x1=x x2=x y1=scale.y(scale.y_max) y2=scale.y(0.0)></line>
        })
    };
    view! {
        <figure class="perplexity-chart-view">
            <div class="chart-controls row">
                <label title="Tokens averaged around each position (odd numbers centre the window)">
                    "Smoothing "
                    <input
                        type="range"
                        min="1"
                        max="257"
                        step="2"
                        data-testid="smoothing"
                        prop:value=move || window.get().to_string()
                        on:input=move |ev| window.set(event_target_value(&ev).parse().unwrap_or(33))
                    />
                    {move || format!(" {} tokens", window.get())}
                </label>
                <label>
                    <input
                        type="checkbox"
                        data-testid="log-x"
                        prop:checked=move || log_x.get()
                        on:change=move |ev| log_x.set(event_target_checked(&ev))
                    />
                    " log position axis"
                </label>
                <ExportButtons stem="drope-perplexity"
                    png=Callback::new(move |()| {
                        let svg = svg_ref.get_untracked().ok_or("the chart is not drawn")?;
                        save_svg_as_png(&svg, "drope-perplexity.png", include_str!("../style.css"))
                    })
                    csv=Callback::new(move |()| series.with_untracked(|s| token_texts.with_untracked(|t| chart_csv(s, t, window.get_untracked()))))
                    json=Callback::new(move |()| series.with_untracked(|s| token_texts.with_untracked(|t| chart_json(s, t, training_length.get_untracked()))))
                />
            </div>
            <SeriesLegend series=series hidden=hidden />
            <div class="chart-frame">
                <svg
                    node_ref=svg_ref
                    data-testid="perplexity-chart"
                    class="nll-chart perplexity-chart"
                    viewBox=format!("0 0 {WIDTH} {HEIGHT}")
                    role="img"
                    aria-label="Smoothed negative log-likelihood against token position, one line per model and scheme; arrow keys move the readout"
                    tabindex="0"
                    on:mousemove=on_move
                    // A tap on a phone: the readout at the tapped position.
                    on:click=on_move
                    on:mouseleave=move |_| hover.set(None)
                    on:keydown=on_key
                >
                    <ChartAxes scale=scale training_length=training_length uniform_nll=uniform_nll />
                    {lines}
                    {cursor}
                </svg>
                <ChartReadout series=series smoothed=smoothed hidden=hidden hover=hover
                    token_texts=token_texts training_length=training_length />
            </div>
            <WindowTable series=series training_length=training_length />
        </figure>
    }
}

/// The axes, grid, the training length and its multiples, the region past L and the
/// uniform-guess line.
#[component]
fn ChartAxes(
    scale: Memo<SeriesScale>,
    training_length: Signal<usize>,
    uniform_nll: Signal<f32>,
) -> impl IntoView {
    move || {
        let (scale, l, uniform) = (scale.get(), training_length.get(), uniform_nll.get());
        let (x0, x1) = (scale.x(0.0), scale.x(scale.x_max));
        let (y0, y1) = (scale.y(0.0), scale.y(scale.y_max));
        let y_step = nice_step(scale.y_max, 5);
        let y_axis = (0..=(scale.y_max / y_step).round() as usize)
                .map(|i| {
                    let v = i as f32 * y_step;
                    let y = scale.y(v);
                    view! {
                        <line class="grid" x1=x0 x2=x1 y1=y y2=y></line>
                        <text class="tick" x=x0 - 6.0 y=y + 4.0 text-anchor="end">{format!("{v}")}</text>
                    }
                })
                .collect_view();
        let x_ticks: Vec<f32> = if scale.log_x {
            [1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0]
                .into_iter()
                .filter(|&p| p <= scale.x_max)
                .collect()
        } else {
            let step = nice_step(scale.x_max, 8).max(1.0);
            (0..=(scale.x_max / step).floor() as usize)
                .map(|i| i as f32 * step)
                .collect()
        };
        let x_axis = x_ticks
            .into_iter()
            .map(|p| {
                let x = scale.x(p);
                view! {
                    <line class="axis-tick" x1=x x2=x y1=y0 y2=y0 + 4.0></line>
                    <text class="tick" x=x y=y0 + 16.0 text-anchor="middle">{format!("{p}")}</text>
                }
            })
            .collect_view();
        let multiples = [1usize, 2, 4, 8]
                .into_iter()
                // The last position is 8L - 1 for a prompt of 8L tokens: mark 8L there too.
                .filter(|m| ((m * l) as f32) <= scale.x_max + 1.0)
                .map(|m| {
                    let x = scale.x((m * l) as f32).min(scale.x(scale.x_max));
                    let (class, label) = if m == 1 {
                        ("l-marker", format!("L = {l}"))
                    } else {
                        ("l-multiple", format!("{m}L"))
                    };
                    view! {
                        <line data-testid="length-marker" data-multiple=m class=class x1=x x2=x y1=y0 y2=y1>
                            <title>{format!("{m} x the training length L = {l}: {} tokens", m * l)}</title>
                        </line>
                        <text class="marker-label" x=x y=TOP - 6.0 text-anchor="middle">{label}</text>
                    }
                })
                .collect_view();
        let xl = scale.x(l as f32).min(x1);
        let uy = scale.y(uniform);
        view! {
            <rect class="beyond-l" x=xl y=y1 width=(x1 - xl).max(0.0) height=y0 - y1></rect>
            {y_axis}
            {x_axis}
            <line class="axis" x1=x0 x2=x1 y1=y0 y2=y0></line>
            <line class="axis" x1=x0 x2=x0 y1=y0 y2=y1></line>
            <line class="uniform" x1=x0 x2=x1 y1=uy y2=uy></line>
            <text class="uniform-label" x=x1 - 4.0 y=uy - 4.0 text-anchor="end">
                {format!("uniform guess: ln V = {uniform:.2}")}
            </text>
            {multiples}
            <text class="axis-label" x=(x0 + x1) / 2.0 y=HEIGHT - 4.0 text-anchor="middle">
                {if scale.log_x { "token position (log scale)" } else { "token position" }}
            </text>
            <text class="axis-label" x=12.0 y=(y0 + y1) / 2.0 text-anchor="middle"
                transform=format!("rotate(-90 12 {})", (y0 + y1) / 2.0)>"NLL (nats), smoothed"</text>
        }
    }
}

/// What the key `key` (with Shift or not) does to the readout at `at` over a chart of
/// `longest` positions: `Some(new position or none)`, or `None` when the key is not the
/// chart's. The arrows move one token (with Shift, a tenth of the prompt), Home and End
/// jump to the ends, Escape hides the readout.
pub fn readout_after_key(
    key: &str,
    shift: bool,
    at: Option<usize>,
    longest: usize,
) -> Option<Option<usize>> {
    if longest == 0 {
        return None;
    }
    let step = if shift { (longest / 10).max(1) } else { 1 };
    Some(match key {
        "ArrowRight" => Some(at.map_or(0, |p| (p + step).min(longest - 1))),
        "ArrowLeft" => Some(at.map_or(0, |p| p.saturating_sub(step))),
        "Home" => Some(0),
        "End" => Some(longest - 1),
        "Escape" => None,
        _ => return None,
    })
}

/// The readout of every shown series at the hovered position.
#[component]
fn ChartReadout(
    series: Signal<Vec<ChartSeries>>,
    smoothed: Memo<Vec<SmoothedLine>>,
    hidden: RwSignal<HashSet<String>>,
    hover: RwSignal<Option<usize>>,
    token_texts: Signal<Vec<String>>,
    training_length: Signal<usize>,
) -> impl IntoView {
    move || {
        let position = hover.get()?;
        let text = token_texts
            .with(|t| t.get(position).cloned())
            .unwrap_or_default();
        let hidden = hidden.get();
        let entries = series.with(|all| {
            smoothed.with(|values| {
                all.iter()
                    .zip(values)
                    .filter(|(s, _)| !hidden.contains(&s.key))
                    .map(|(s, (_, _, smooth))| {
                        let raw = s.nll.get(position).copied().flatten();
                        let value = match (raw, smooth.get(position).copied().flatten()) {
                            (Some(raw), Some(smooth)) => format!(
                                "{raw:.2} nats (smoothed {smooth:.2}, perplexity {:.1})",
                                smooth.exp()
                            ),
                            _ => "no value".to_string(),
                        };
                        view! {
                            <li>
                                <span class="swatch" style:background=s.colour></span>
                                {format!("{}: {value}", s.label)}
                            </li>
                        }
                    })
                    .collect_view()
            })
        });
        let l = training_length.get().max(1);
        Some(view! {
            <div class="chart-readout" data-testid="chart-readout" role="status">
                <strong>{format!("#{position} {} ({:.2} L)", quoted(&text), position as f32 / l as f32)}</strong>
                <ul>{entries}</ul>
            </div>
        })
    }
}

/// The legend: one button per series, which hides or shows its line.
#[component]
fn SeriesLegend(
    series: Signal<Vec<ChartSeries>>,
    hidden: RwSignal<HashSet<String>>,
) -> impl IntoView {
    let legend = move || {
        series
            .get()
            .into_iter()
            .map(|s| {
                let key = s.key.clone();
                let shown = {
                    let key = key.clone();
                    move || !hidden.with(|h| h.contains(&key))
                };
                view! {
                    <button
                        type="button"
                        class="legend-item"
                        data-testid="legend-item"
                        data-series=key.clone()
                        aria-pressed=move || shown().to_string()
                        title="Show or hide this line"
                        on:click=move |_| hidden.update(|h| {
                            if !h.remove(&key) {
                                h.insert(key.clone());
                            }
                        })
                    >
                        <span class="swatch" style:background=s.colour></span>
                        {s.label}
                    </button>
                }
            })
            .collect_view()
    };
    view! {
        <div class="series-legend" role="group" aria-label="Series (click to hide or show)">{legend}</div>
    }
}

/// Perplexity per report window (0-L, L-2L, 2L-4L, 4L-8L) for each series of this prompt.
#[component]
fn WindowTable(series: Signal<Vec<ChartSeries>>, training_length: Signal<usize>) -> impl IntoView {
    move || {
        let l = training_length.get();
        let rows = series.get();
        if rows.iter().all(|s| s.nll.is_empty()) {
            return None;
        }
        let windows = report_windows(l);
        let head = windows
            .iter()
            .map(|(name, _, _)| view! { <th>{name.clone()}</th> })
            .collect_view();
        let body = rows
                .into_iter()
                .map(|s| {
                    let inside = window_mean(&s.nll, 0, l).map(|(m, _)| m);
                    let cells = windows
                        .iter()
                        .map(|(_, from, to)| match window_mean(&s.nll, *from, *to) {
                            Some((mean, n)) => {
                                // Past L, also as a multiple of the series' own 0-L.
                                let ratio = inside.filter(|_| *from > 0).map(|i| (mean - i).exp());
                                view! {
                                    <td title=format!("mean NLL {mean:.3} nats over {n} tokens")
                                        data-ratio=ratio.map(|r| format!("{r:.3}"))>
                                        {format!("{:.1}", mean.exp())}
                                        {ratio.map(|r| view! { <span class="ratio">{format!(" \u{d7}{r:.2}")}</span> })}
                                    </td>
                                }
                                .into_any()
                            }
                            None => view! { <td class="empty">"\u{2013}"</td> }.into_any(),
                        })
                        .collect_view();
                    view! { <tr data-testid="window-row" data-series=s.key.clone()><th scope="row">{s.label}</th>{cells}</tr> }
                })
                .collect_view();
        Some(view! {
            <table class="window-table" data-testid="window-table">
                <caption>"Perplexity per position window (this prompt; exp of the mean NLL); past L, \u{d7} its own 0-L"</caption>
                <thead><tr><th scope="col">"series"</th>{head}</tr></thead>
                <tbody>{body}</tbody>
            </table>
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_move_the_readout_within_the_chart() {
        let key = |k: &str, shift, at| readout_after_key(k, shift, at, 100);
        assert_eq!(key("ArrowRight", false, None), Some(Some(0)));
        assert_eq!(key("ArrowRight", false, Some(5)), Some(Some(6)));
        assert_eq!(key("ArrowRight", true, Some(95)), Some(Some(99)));
        assert_eq!(key("ArrowLeft", true, Some(5)), Some(Some(0)));
        assert_eq!(key("End", false, None), Some(Some(99)));
        assert_eq!(key("Home", false, Some(40)), Some(Some(0)));
        assert_eq!(key("Escape", false, Some(40)), Some(None));
        assert_eq!(key("a", false, Some(40)), None);
        assert_eq!(readout_after_key("ArrowRight", false, None, 0), None);
    }

    #[test]
    fn log_axis_inverts() {
        let scale = SeriesScale {
            x_max: 2047.0,
            y_max: 10.0,
            log_x: true,
        };
        for p in [0.0, 1.0, 255.0, 2047.0] {
            assert!((scale.position_at(scale.x(p)) - p).abs() < 0.05 * p.max(1.0));
        }
        assert_eq!(scale.x(0.0), LEFT);
        assert!((scale.x(2047.0) - (WIDTH - RIGHT)).abs() < 1e-3);
    }

    #[test]
    fn window_means_skip_gaps_and_clip() {
        let nll = [None, Some(1.0), Some(3.0), Some(5.0)];
        assert_eq!(window_mean(&nll, 0, 2), Some((1.0, 1)));
        assert_eq!(window_mean(&nll, 2, 100), Some((4.0, 2)));
        assert_eq!(window_mean(&nll, 10, 20), None);
        assert_eq!(report_windows(256)[3], ("4L-8L".to_string(), 1024, 2048));
    }

    #[test]
    fn csv_has_a_row_per_position_and_two_columns_per_series() {
        let series = vec![
            ChartSeries {
                key: "rope".into(),
                label: "RoPE, plain".into(),
                colour: "#0072B2",
                nll: vec![None, Some(2.0), Some(4.0)],
            },
            ChartSeries {
                key: "drope".into(),
                label: "DroPE".into(),
                colour: "#009E73",
                nll: vec![None, Some(1.0)],
            },
        ];
        let texts = vec!["The".to_string(), " \"cat\"".to_string(), ",".to_string()];
        let csv = chart_csv(&series, &texts, 1);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], "position,token,\"RoPE, plain NLL\",\"RoPE, plain smoothed (1 tokens)\",DroPE NLL,DroPE smoothed (1 tokens)");
        assert_eq!(lines[1], "0,The,,,,");
        assert_eq!(
            lines[2],
            "1,\" \"\"cat\"\"\",2.00000,2.00000,1.00000,1.00000"
        );
        assert_eq!(lines[3], "2,\",\",4.00000,4.00000,,");
        let json: serde_json::Value =
            serde_json::from_str(&chart_json(&series, &texts, 256)).unwrap();
        assert_eq!(json["series"][1]["nll"][1], 1.0);
        assert!(json["series"][0]["nll"][0].is_null());
    }

    #[test]
    fn gaps_lift_the_pen() {
        let scale = SeriesScale {
            x_max: 4.0,
            y_max: 10.0,
            log_x: false,
        };
        let path = line_path(&[Some(1.0), None, Some(2.0), Some(3.0)], &scale);
        assert_eq!(path.matches('M').count(), 2);
        assert_eq!(path.matches('L').count(), 1);
    }
}
