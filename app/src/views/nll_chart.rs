//! Per-token NLL against position (SVG): one point per token, a moving average, the
//! training length `L` marked (and 2L, 4L, 8L when in range), the region past `L`
//! shaded, and `ln V` (a uniform guess) as a reference line.

use leptos::prelude::*;

use crate::analysis::{mean_nll, TokenStat};
use crate::views::token_tooltip;

const WIDTH: f32 = 760.0;
const HEIGHT: f32 = 280.0;
const LEFT: f32 = 52.0;
const RIGHT: f32 = 16.0;
const TOP: f32 = 22.0;
const BOTTOM: f32 = 40.0;

/// A "nice" tick step (1, 2 or 5 times a power of ten) giving about `ticks` ticks over `range`.
pub fn nice_step(range: f32, ticks: usize) -> f32 {
    let raw = (range / ticks.max(1) as f32).max(f32::MIN_POSITIVE);
    let magnitude = 10f32.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&step| step >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// Maps positions and NLLs to SVG coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChartScale {
    /// Largest position on the x axis (always past `L`, so the marker shows).
    pub x_max: f32,
    /// Top of the y axis, in nats.
    pub y_max: f32,
}

impl ChartScale {
    /// Axes for `count` tokens, training length `l` and NLLs up to `highest`.
    pub fn new(count: usize, l: usize, highest: f32) -> ChartScale {
        let x_max = count.saturating_sub(1).max(l + l / 8).max(1) as f32;
        let highest = if highest.is_finite() {
            highest.max(1.0)
        } else {
            1.0
        };
        let step = nice_step(highest, 5);
        ChartScale {
            x_max,
            y_max: (highest * 1.02 / step).ceil() * step,
        }
    }

    /// SVG x of a position.
    pub fn x(&self, position: f32) -> f32 {
        LEFT + position / self.x_max * (WIDTH - LEFT - RIGHT)
    }

    /// SVG y of an NLL (clamped to the axis).
    pub fn y(&self, nll: f32) -> f32 {
        TOP + (1.0 - nll.clamp(0.0, self.y_max) / self.y_max) * (HEIGHT - TOP - BOTTOM)
    }
}

/// Centered moving average over `window` tokens, skipping missing values.
pub fn moving_average(values: &[Option<f32>], window: usize) -> Vec<Option<f32>> {
    let half = window / 2;
    (0..values.len())
        .map(|i| {
            let neighbourhood = &values[i.saturating_sub(half)..(i + half + 1).min(values.len())];
            let present: Vec<f32> = neighbourhood.iter().flatten().copied().collect();
            (!present.is_empty()).then(|| present.iter().sum::<f32>() / present.len() as f32)
        })
        .collect()
}

/// The NLL chart: `svg[data-testid="nll-chart"]` with one `circle[data-testid="nll-point"]`
/// per token and a `[data-testid="L-marker"]` line at `L`.
#[component]
pub fn NllChart(
    /// The prompt's tokens.
    #[prop(into)]
    tokens: Signal<Vec<TokenStat>>,
    /// The training length `L`.
    #[prop(into)]
    training_length: Signal<usize>,
    /// `ln V`, the NLL of a uniform guess.
    #[prop(into)]
    uniform_nll: Signal<f32>,
    /// Width of the moving average, in tokens.
    #[prop(default = 9)]
    window: usize,
) -> impl IntoView {
    let plot = move || {
        let (tokens, l, uniform) = (tokens.get(), training_length.get(), uniform_nll.get());
        // The first token has no NLL (nothing precedes it). It is still plotted, at ln V,
        // the NLL of a uniform guess, drawn hollow and explained in its tooltip: so the
        // chart has exactly one point per token, like the token strip.
        let plotted = |t: &TokenStat| t.nll.unwrap_or(uniform);
        let highest = tokens.iter().map(plotted).fold(uniform, f32::max);
        let scale = ChartScale::new(tokens.len(), l, highest);
        let (x0, x1) = (scale.x(0.0), scale.x(scale.x_max));
        let (y0, y1) = (scale.y(0.0), scale.y(scale.y_max));

        let y_step = nice_step(scale.y_max, 5);
        let y_ticks = (0..=(scale.y_max / y_step).round() as usize).map(|i| i as f32 * y_step);
        let y_axis = y_ticks
            .map(|v| {
                let y = scale.y(v);
                view! {
                    <line class="grid" x1=x0 x2=x1 y1=y y2=y></line>
                    <text class="tick" x=x0 - 6.0 y=y + 4.0 text-anchor="end">{format!("{v}")}</text>
                }
            })
            .collect_view();
        let x_step = nice_step(scale.x_max, 8).max(1.0);
        let x_ticks = (0..=(scale.x_max / x_step).floor() as usize).map(|i| i as f32 * x_step);
        let x_axis = x_ticks
            .map(|p| {
                let x = scale.x(p);
                view! {
                    <line class="axis-tick" x1=x x2=x y1=y0 y2=y0 + 4.0></line>
                    <text class="tick" x=x y=y0 + 16.0 text-anchor="middle">{format!("{p}")}</text>
                }
            })
            .collect_view();

        let multiples = [2usize, 4, 8]
            .into_iter()
            .filter(|m| ((m * l) as f32) <= scale.x_max)
            .map(|m| {
                let x = scale.x((m * l) as f32);
                view! {
                    <line class="l-multiple" x1=x x2=x y1=y0 y2=y1></line>
                    <text class="marker-label" x=x y=TOP - 6.0 text-anchor="middle">{format!("{m}L")}</text>
                }
            })
            .collect_view();
        let xl = scale.x(l as f32);

        let smoothed = moving_average(&tokens.iter().map(|t| t.nll).collect::<Vec<_>>(), window);
        let mut path = String::new();
        for (t, value) in tokens.iter().zip(&smoothed) {
            if let Some(v) = value {
                let command = if path.is_empty() { 'M' } else { 'L' };
                path += &format!(
                    "{command}{:.1},{:.1} ",
                    scale.x(t.position as f32),
                    scale.y(*v)
                );
            }
        }

        let points = tokens
            .iter()
            .map(|t| {
                let class = match (t.nll, t.position >= l) {
                    (None, _) => "point no-nll",
                    (Some(_), false) => "point",
                    (Some(_), true) => "point beyond",
                };
                view! {
                    <circle
                        data-testid="nll-point"
                        class=class
                        cx=scale.x(t.position as f32)
                        cy=scale.y(plotted(t))
                        r="2.6"
                    >
                        <title>{token_tooltip(t)}</title>
                    </circle>
                }
            })
            .collect_view();
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
            <line data-testid="L-marker" class="l-marker" x1=xl x2=xl y1=y0 y2=y1>
                <title>{format!("training length L = {l}")}</title>
            </line>
            <text class="marker-label l" x=xl y=TOP - 6.0 text-anchor="middle">{format!("L = {l}")}</text>
            <path class="smoothed" d=path></path>
            {points}
            <text class="axis-label" x=(x0 + x1) / 2.0 y=HEIGHT - 4.0 text-anchor="middle">"token position"</text>
            <text class="axis-label" x=12.0 y=(y0 + y1) / 2.0 text-anchor="middle"
                transform=format!("rotate(-90 12 {})", (y0 + y1) / 2.0)>"NLL (nats)"</text>
        }
    };
    let summary = move || {
        let (tokens, l) = (tokens.get(), training_length.get());
        let part = |name: &str, range| match mean_nll(&tokens, range) {
            Some((mean, n)) => format!(
                "{name}: mean NLL {mean:.2} nats, perplexity {:.1} ({n} tokens)",
                mean.exp()
            ),
            None => format!("{name}: no tokens"),
        };
        (!tokens.is_empty()).then(|| {
            format!(
                "{}. {}. Line: moving average over {window} tokens.",
                part("before L", 0..l),
                part("from L on", l..usize::MAX)
            )
        })
    };
    view! {
        <figure class="nll-chart-view">
            <svg
                data-testid="nll-chart"
                class="nll-chart"
                viewBox=format!("0 0 {WIDTH} {HEIGHT}")
                role="img"
                aria-label="Negative log-likelihood of each token against its position"
            >
                {plot}
            </svg>
            <figcaption class="chart-summary">{summary}</figcaption>
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn nice_steps() {
        assert_eq!(nice_step(10.0, 5), 2.0);
        assert_eq!(nice_step(7.3, 5), 2.0);
        assert_eq!(nice_step(512.0, 8), 100.0);
        assert_eq!(nice_step(0.9, 5), 0.2);
    }

    #[wasm_bindgen_test]
    fn scale_keeps_l_in_view_and_rounds_the_top() {
        let s = ChartScale::new(10, 64, 8.3);
        assert!(s.x_max >= 64.0);
        assert_eq!(s.y_max, 10.0);
        assert_eq!(s.y(0.0), HEIGHT - BOTTOM);
        assert_eq!(s.y(99.0), TOP);
        assert_eq!(s.x(0.0), LEFT);
        assert_eq!(ChartScale::new(500, 64, 3.0).x_max, 499.0);
    }

    #[wasm_bindgen_test]
    fn moving_average_skips_gaps() {
        let avg = moving_average(&[None, Some(2.0), Some(4.0), Some(6.0)], 3);
        assert_eq!(avg, vec![Some(2.0), Some(3.0), Some(4.0), Some(5.0)]);
        assert_eq!(moving_average(&[None], 3), vec![None]);
    }
}
