//! Frequency explorer (SVG): for a scale factor `s`, how much PI, NTK-aware scaling and
//! YaRN (the reference `yarn` and the continuous-ramp `yarn-ramp`) shrink each rotary
//! pair's frequency relative to RoPE (log scale), with the band of pairs that never
//! complete a cycle within the training length `L` highlighted, and a table of the phase
//! a chosen pair reaches at distance `L` and `8L` under each scheme.
//!
//! Every number comes from `engine::position` (the formulas the model runs with), so
//! the figure cannot drift from the engine.

use std::f64::consts::TAU;

use engine::position::{PositionScheme, YARN_ALPHA, YARN_BETA};
use leptos::prelude::*;
use web_sys::MouseEvent;

use crate::export::save_svg_as_png;
use crate::views::chart_math::pointer_x;
use crate::views::ExportButtons;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 280.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 26.0;
const BOTTOM: f64 = 42.0;

/// Range of the scale factor the explorer offers.
pub const SCALE_RANGE: (f64, f64) = (1.0, 64.0);

/// The schemes compared, RoPE first (the reference), with their names and CSS ids.
pub const SCHEMES: [(&str, &str, PositionScheme); 5] = [
    ("RoPE", "rope", PositionScheme::Rope),
    ("PI", "pi", PositionScheme::Pi),
    ("NTK", "ntk", PositionScheme::Ntk),
    (
        "YaRN",
        "yarn",
        PositionScheme::Yarn {
            alpha: YARN_ALPHA,
            beta: YARN_BETA,
        },
    ),
    (
        "YaRN (ramp)",
        "yarn-ramp",
        PositionScheme::YarnRamp {
            alpha: YARN_ALPHA,
            beta: YARN_BETA,
        },
    ),
];

/// One rotary pair under every scheme of [`SCHEMES`].
#[derive(Debug, Clone, PartialEq)]
pub struct PairFrequencies {
    /// Pair index `d` (dimensions `d` and `d + D/2`).
    pub pair: usize,
    /// Angular frequency (radians per token) per scheme, in [`SCHEMES`] order.
    pub frequency: [f64; SCHEMES.len()],
    /// RoPE's wavelength `2 pi / theta_d`, in tokens.
    pub wavelength: f64,
    /// Whether the wavelength exceeds `L`: the pair never completes a cycle in training.
    pub no_full_cycle: bool,
}

impl PairFrequencies {
    /// Frequency of scheme `i` over RoPE's.
    pub fn factor(&self, i: usize) -> f64 {
        self.frequency[i] / self.frequency[0]
    }

    /// Phase (radians) that scheme `i` reaches at a distance of `tokens`.
    pub fn phase(&self, i: usize, tokens: f64) -> f64 {
        self.frequency[i] * tokens
    }

    /// Whether scheme `i`'s phase at `tokens` is one RoPE produced in training (any
    /// phase, for pairs that complete a cycle within `L`; else at most `theta_d L`).
    pub fn phase_seen_in_training(&self, i: usize, tokens: f64, training_length: f64) -> bool {
        !self.no_full_cycle
            || self.phase(i, tokens) <= self.phase(0, training_length) * (1.0 + 1e-9)
    }
}

/// Every pair's frequencies for a head of width `head_dim`, RoPE base `base`, training
/// length `training_length` and scale `s`; an explanation when the inputs make no sense.
pub fn pair_frequencies(
    head_dim: usize,
    base: f64,
    training_length: usize,
    s: f64,
) -> Result<Vec<PairFrequencies>, String> {
    if head_dim < 4 || !head_dim.is_multiple_of(2) {
        return Err(format!(
            "head width must be even and at least 4, got {head_dim}"
        ));
    }
    if !(base.is_finite() && base > 1.0) {
        return Err(format!("RoPE base must be a number above 1, got {base}"));
    }
    if training_length == 0 {
        return Err("the training length L must be at least 1".into());
    }
    if !(s.is_finite() && (SCALE_RANGE.0..=SCALE_RANGE.1).contains(&s)) {
        return Err(format!("scale factor s must be between 1 and 64, got {s}"));
    }
    let per_scheme = SCHEMES.map(|(_, _, scheme)| {
        scheme
            .frequencies(head_dim, base, training_length, s)
            .unwrap_or_default()
    });
    Ok((0..head_dim / 2)
        .map(|pair| {
            let frequency = std::array::from_fn(|i| per_scheme[i][pair]);
            let wavelength = TAU / frequency[0];
            PairFrequencies {
                pair,
                frequency,
                wavelength,
                no_full_cycle: wavelength > training_length as f64,
            }
        })
        .collect())
}

/// Every pair as CSV: wavelength, whether it cycles within L, and per scheme the
/// frequency, its factor over RoPE's and the phases at L and 8L (radians); columns are
/// named by the scheme's id (`yarn-ramp_frequency`).
pub fn pairs_csv(pairs: &[PairFrequencies], training_length: usize) -> String {
    let mut out = String::from("pair,wavelength_tokens,no_full_cycle_within_L");
    for (_, n, _) in SCHEMES {
        out += &format!(",{n}_frequency,{n}_factor,{n}_phase_at_L,{n}_phase_at_8L");
    }
    out.push('\n');
    let l = training_length as f64;
    for p in pairs {
        out += &format!("{},{},{}", p.pair, p.wavelength, p.no_full_cycle);
        for i in 0..SCHEMES.len() {
            out += &format!(
                ",{},{},{},{}",
                p.frequency[i],
                p.factor(i),
                p.phase(i, l),
                p.phase(i, 8.0 * l)
            );
        }
        out.push('\n');
    }
    out
}

/// The same as JSON, with the inputs that produced it.
pub fn pairs_json(
    pairs: &[PairFrequencies],
    head_dim: usize,
    base: f64,
    training_length: usize,
    s: f64,
) -> String {
    let rows: Vec<serde_json::Value> = pairs
        .iter()
        .map(|p| {
            serde_json::json!({
                "pair": p.pair,
                "wavelength_tokens": p.wavelength,
                "no_full_cycle_within_L": p.no_full_cycle,
                "frequency": SCHEMES.iter().enumerate().map(|(i, (_, id, _))| (id.to_string(), serde_json::json!(p.frequency[i]))).collect::<serde_json::Map<_, _>>(),
            })
        })
        .collect();
    serde_json::json!({
        "head_dim": head_dim, "base": base, "training_length": training_length, "scale": s,
        "pairs": rows,
    })
    .to_string()
}

/// Parses a typed scale factor, clamped to [`SCALE_RANGE`]; `None` if not a number.
pub fn parse_scale(text: &str) -> Option<f64> {
    let s: f64 = text.trim().parse().ok()?;
    s.is_finite().then(|| s.clamp(SCALE_RANGE.0, SCALE_RANGE.1))
}

/// Chart geometry: pairs on x, `log2(factor)` on y from about `-octaves` to 0.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Frame {
    pairs: usize,
    octaves: f64,
}

impl Frame {
    fn new(pairs: usize, s: f64) -> Frame {
        Frame {
            pairs: pairs.max(1),
            octaves: s.log2().ceil().max(1.0),
        }
    }
    fn px(&self, pair: f64) -> f64 {
        let slot = (WIDTH - LEFT - RIGHT) / self.pairs as f64;
        LEFT + (pair + 0.5) * slot
    }
    fn py(&self, factor: f64) -> f64 {
        // A little room below 1/2^octaves and above 1, so no curve sits on an axis.
        let t = (factor.log2() + self.octaves + 0.3) / (self.octaves + 0.45);
        TOP + (1.0 - t.clamp(0.0, 1.0)) * (HEIGHT - TOP - BOTTOM)
    }
    fn pair_at(&self, svg_x: f64) -> usize {
        let slot = (WIDTH - LEFT - RIGHT) / self.pairs as f64;
        (((svg_x - LEFT) / slot).floor().max(0.0) as usize).min(self.pairs - 1)
    }
}

/// The frequency explorer: `svg[data-testid="frequency-chart"]` with one
/// `path[data-testid="scale-curve"]` (and `data-scheme`) per scaling scheme, the band
/// `rect[data-testid="no-cycle-band"]`, the chosen pair `[data-testid="selected-pair"]`,
/// and `table[data-testid="phase-table"]`; the scale is set in
/// `input[data-testid="scale-input"]` (or the `scale-slider` range input).
#[component]
pub fn FrequencyExplorer(
    /// Width of one attention head `D`.
    #[prop(into)]
    head_dim: Signal<usize>,
    /// RoPE base `b` (`rope_theta`).
    #[prop(into)]
    base: Signal<f64>,
    /// Training length `L`.
    #[prop(into)]
    training_length: Signal<usize>,
    /// Scale factor `s` (a local signal starting at 4 when not given).
    #[prop(optional)]
    scale: Option<RwSignal<f64>>,
    /// The pair whose phases the table shows (a local signal when not given).
    #[prop(optional)]
    pair: Option<RwSignal<usize>>,
) -> impl IntoView {
    let scale = scale.unwrap_or_else(|| RwSignal::new(4.0));
    let pair = pair.unwrap_or_else(|| RwSignal::new(0));
    let pairs = Memo::new(move |_| {
        pair_frequencies(
            head_dim.get(),
            base.get(),
            training_length.get(),
            scale.get(),
        )
    });
    let svg_ref = NodeRef::<leptos::svg::Svg>::new();
    let on_move = move |ev: MouseEvent| {
        let Some(svg_x) = pointer_x(&ev, svg_ref, WIDTH) else {
            return;
        };
        let count = pairs.with_untracked(|p| p.as_ref().map_or(0, Vec::len));
        if count > 0 {
            pair.set(Frame::new(count, scale.get_untracked()).pair_at(svg_x));
        }
    };

    let plot = move || {
        let (s, l) = (scale.get(), training_length.get());
        let rows = match pairs.get() {
            Ok(rows) => rows,
            Err(reason) => {
                return view! { <text class="chart-error" x=LEFT y=TOP + 20.0>{reason}</text> }
                    .into_any()
            }
        };
        let frame = Frame::new(rows.len(), s);
        let (x0, x1) = (LEFT, WIDTH - RIGHT);
        let (y0, y1) = (HEIGHT - BOTTOM, TOP);
        let band = rows.iter().position(|r| r.no_full_cycle).map(|first| {
            let x = frame.px(first as f64 - 0.5);
            let pairs_in = rows.len() - first;
            view! {
                <rect data-testid="no-cycle-band" class="no-cycle-band" x=x y=y1
                    width=(x1 - x).max(0.0) height=y0 - y1>
                    <title>{format!("{pairs_in} pairs with wavelength > L = {l}: they never complete a cycle in training")}</title>
                </rect>
                <text class="band-label" x=x1 - 4.0 y=y1 + 14.0 text-anchor="end">"never a full cycle within L"</text>
            }
        });
        let ticks = (0..=frame.octaves as usize)
            .map(|k| {
                let y = frame.py(2f64.powi(-(k as i32)));
                let label = if k == 0 {
                    "1".to_string()
                } else {
                    format!("1/{}", 1u64 << k)
                };
                view! {
                    <line class="grid" x1=x0 x2=x1 y1=y y2=y></line>
                    <text class="tick" x=x0 - 6.0 y=y + 4.0 text-anchor="end">{label}</text>
                }
            })
            .collect_view();
        let label_every = rows.len().div_ceil(16).max(1);
        let x_ticks = rows
            .iter()
            .filter(|r| r.pair % label_every == 0)
            .map(|r| {
                let x = frame.px(r.pair as f64);
                view! { <text class="tick" x=x y=y0 + 16.0 text-anchor="middle">{r.pair}</text> }
            })
            .collect_view();
        let inverse_s = frame.py(1.0 / s);
        let curves = scheme_curves(&rows, &frame);
        let chosen = pair.get().min(rows.len() - 1);
        let xc = frame.px(chosen as f64);
        view! {
            {band}
            {ticks}
            {x_ticks}
            <line class="inverse-s" x1=x0 x2=x1 y1=inverse_s y2=inverse_s></line>
            <text class="inverse-s-label" x=x0 + 4.0 y=inverse_s - 4.0>{format!("1/s = 1/{s}")}</text>
            <line class="axis" x1=x0 x2=x1 y1=y0 y2=y0></line>
            <line class="axis" x1=x0 x2=x0 y1=y0 y2=y1></line>
            <line data-testid="selected-pair" class="selected-pair" x1=xc x2=xc y1=y0 y2=y1></line>
            {curves}
            <text class="axis-label" x=(x0 + x1) / 2.0 y=HEIGHT - 4.0 text-anchor="middle">
                "rotary pair d (high frequency \u{2192} low frequency)"
            </text>
            <text class="axis-label" x=12.0 y=(y0 + y1) / 2.0 text-anchor="middle"
                transform=format!("rotate(-90 12 {})", (y0 + y1) / 2.0)>"frequency / RoPE's"</text>
        }
        .into_any()
    };

    let pair_count = move || pairs.with(|p| p.as_ref().map_or(0, Vec::len));

    view! {
        <figure class="frequency-explorer">
            <div class="explorer-controls">
                <ExplorerInputs scale=scale pair=pair pair_count=Signal::derive(pair_count) />
                <span class="explorer-facts">
                    {move || format!("D = {}, base {}, L = {}", head_dim.get(), base.get(), training_length.get())}
                </span>
                <ExportButtons stem="drope-frequencies"
                    png=Callback::new(move |()| {
                        let svg = svg_ref.get_untracked().ok_or("the chart is not drawn")?;
                        save_svg_as_png(&svg, "drope-frequencies.png", include_str!("../style.css"))
                    })
                    csv=Callback::new(move |()| pairs.with_untracked(|p| {
                        p.as_ref().map(|p| pairs_csv(p, training_length.get_untracked())).unwrap_or_default()
                    }))
                    json=Callback::new(move |()| pairs.with_untracked(|p| {
                        p.as_ref().map(|p| pairs_json(p, head_dim.get_untracked(), base.get_untracked(),
                            training_length.get_untracked(), scale.get_untracked())).unwrap_or_default()
                    }))
                />
            </div>
            <div class="chart-scroll">
            <svg node_ref=svg_ref data-testid="frequency-chart" class="frequency-chart"
                viewBox=format!("0 0 {WIDTH} {HEIGHT}") role="img"
                aria-label="Frequency scaling factor of PI, NTK, YaRN and YaRN (ramp) per rotary pair"
                on:mousemove=on_move>
                {plot}
            </svg>
            </div>
            <ul class="explorer-legend">
                {SCHEMES[1..].iter().map(|(name, id, _)| view! {
                    <li class=format!("scheme scheme-{id}")><span class="swatch"></span>{*name}</li>
                }).collect_view()}
            </ul>
            <PhaseTable pairs=pairs pair=pair training_length=training_length />
            <figcaption class="chart-summary">
                "PI divides every frequency by s; NTK keeps the highest and divides the lowest by s; \
                 YaRN keeps pairs with more than 32 turns within L and interpolates those with fewer \
                 than 1, ramping linearly over the whole pairs between (as its reference code \
                 does); YaRN (ramp) ramps continuously in the number of turns instead. Pairs in \
                 the shaded band never complete a cycle in training, so any scaling \
                 that keeps their phases in the trained range must shrink them by about 1/s."
            </figcaption>
        </figure>
    }
}

/// Each scaling scheme's factor per pair, as a line with a dot per pair.
fn scheme_curves(rows: &[PairFrequencies], frame: &Frame) -> impl IntoView {
    (1..SCHEMES.len())
        .map(|i| {
            let (name, id, _) = SCHEMES[i];
            let d = rows
                .iter()
                .enumerate()
                .map(|(k, r)| {
                    let c = if k == 0 { 'M' } else { 'L' };
                    format!("{c}{:.1},{:.1}", frame.px(r.pair as f64), frame.py(r.factor(i)))
                })
                .collect::<Vec<_>>()
                .join(" ");
            let dots = rows
                .iter()
                .map(|r| {
                    let tip = format!("{name}, pair {}: x{:.4} of RoPE's frequency", r.pair, r.factor(i));
                    view! {
                        <circle class="dot" cx=frame.px(r.pair as f64) cy=frame.py(r.factor(i)) r="2.6">
                            <title>{tip}</title>
                        </circle>
                    }
                })
                .collect_view();
            view! {
                <g class=format!("scheme scheme-{id}")>
                    <path data-testid="scale-curve" data-scheme=id class="curve" d=d></path>
                    {dots}
                </g>
            }
        })
        .collect_view()
}

/// The scale factor (a slider and a number) and the pair the table shows.
#[component]
fn ExplorerInputs(
    scale: RwSignal<f64>,
    pair: RwSignal<usize>,
    pair_count: Signal<usize>,
) -> impl IntoView {
    view! {
        <label>
            "scale s "
            <input type="range" data-testid="scale-slider" min="1" max="64" step="1"
                prop:value=move || scale.get().to_string()
                on:input=move |ev| {
                    if let Some(s) = parse_scale(&event_target_value(&ev)) { scale.set(s) }
                } />
            <input type="number" class="scale-number" data-testid="scale-input" min="1" max="64" step="any"
                prop:value=move || scale.get().to_string()
                on:change=move |ev| {
                    if let Some(s) = parse_scale(&event_target_value(&ev)) { scale.set(s) }
                } />
        </label>
        <label>
            "pair "
            <input type="number" data-testid="pair-input" min="0"
                max=move || pair_count.get().saturating_sub(1).to_string()
                prop:value=move || pair.get().to_string()
                on:change=move |ev| {
                    if let Ok(d) = event_target_value(&ev).trim().parse::<usize>() {
                        pair.set(d.min(pair_count.get().saturating_sub(1)))
                    }
                } />
        </label>
    }
}

/// The chosen pair's frequency, factor and phases at L and 8L under every scheme, and
/// whether RoPE produced that phase within L in training.
#[component]
fn PhaseTable(
    pairs: Memo<Result<Vec<PairFrequencies>, String>>,
    pair: RwSignal<usize>,
    training_length: Signal<usize>,
) -> impl IntoView {
    let selected = move || {
        pairs.with(|p| {
            p.as_ref()
                .ok()
                .and_then(|p| p.get(pair.get().min(p.len().saturating_sub(1))).cloned())
        })
    };
    move || {
        let l = training_length.get() as f64;
        selected().map(|p| {
            let rows = SCHEMES
                .iter()
                .enumerate()
                .map(|(i, (name, id, _))| {
                    let cell = |tokens: f64| {
                        let phase = p.phase(i, tokens);
                        format!("{phase:.3} rad ({:.3} cycles)", phase / TAU)
                    };
                    let seen = if p.phase_seen_in_training(i, 8.0 * l, l) { "yes" } else { "no" };
                    view! {
                        <tr data-scheme=*id>
                            <th scope="row">{*name}</th>
                            <td>{format!("{:.4e}", p.frequency[i])}</td>
                            <td>{format!("{:.4}", p.factor(i))}</td>
                            <td>{cell(l)}</td>
                            <td>{cell(8.0 * l)}</td>
                            <td class=format!("seen-{seen}")>{seen}</td>
                        </tr>
                    }
                })
                .collect_view();
            let cycle = if p.no_full_cycle {
                "never completes a cycle within L"
            } else {
                "completes a cycle within L"
            };
            view! {
                <div class="table-scroll">
                <table data-testid="phase-table" class="phase-table">
                    <caption>
                        {format!("Pair {}: RoPE wavelength {:.1} tokens, {cycle}.", p.pair, p.wavelength)}
                    </caption>
                    <thead><tr>
                        <th>"scheme"</th><th>"rad / token"</th><th>"\u{00D7} RoPE"</th>
                        <th>"phase at L"</th><th>"phase at 8L"</th>
                        <th title="Is the phase at 8L one that RoPE produced within L in training?">"seen in training at 8L?"</th>
                    </tr></thead>
                    <tbody>{rows}</tbody>
                </table>
                </div>
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_follow_the_engine() {
        // D = 8, base 10000, L = 1024: theta = 1, 0.1, 0.01, 0.001 (position.rs tests).
        let rows = pair_frequencies(8, 10_000.0, 1024, 2.0).unwrap();
        assert_eq!(rows.len(), 4);
        assert!((rows[3].factor(1) - 0.5).abs() < 1e-12, "PI halves");
        assert!(
            (rows[0].factor(2) - 1.0).abs() < 1e-12,
            "NTK keeps the highest"
        );
        assert!(
            (rows[3].factor(2) - 0.5).abs() < 1e-12,
            "NTK halves the lowest"
        );
        assert!(
            (rows[0].factor(3) - 1.0).abs() < 1e-12,
            "YaRN keeps fast pairs"
        );
        // L = 1024: d(32) = 0.71, d(1) = 2.21, so low = 0, high = 3: YaRN halves pair 3
        // and keeps 2/3 of pair 2's frequency; the continuous ramp halves pair 3
        // (r = 0.16 < 1) and nearly halves pair 2 (r = 1.63, g = 0.02).
        assert!(
            (rows[3].factor(3) - 0.5).abs() < 1e-12,
            "YaRN halves the slowest"
        );
        assert!((rows[3].factor(4) - 0.5).abs() < 1e-12, "so does the ramp");
        assert!((rows[2].factor(3) - (2.0 / 3.0 / 2.0 + 1.0 / 3.0)).abs() < 1e-12);
        // Wavelength 2 pi / 0.001 = 6283 > 1024; 2 pi / 0.01 = 628 < 1024.
        assert_eq!(
            rows.iter().map(|r| r.no_full_cycle).collect::<Vec<_>>(),
            [false, false, false, true]
        );
        // PI at s = 2 reaches at 8L what RoPE reaches at 4L: beyond training.
        assert!(!rows[3].phase_seen_in_training(1, 8.0 * 1024.0, 1024.0));
        assert!(rows[3].phase_seen_in_training(1, 2.0 * 1024.0, 1024.0));
        assert!(pair_frequencies(3, 10_000.0, 1024, 2.0).is_err());
        assert!(pair_frequencies(8, 10_000.0, 1024, 65.0).is_err());
        assert_eq!(parse_scale(" 100 "), Some(64.0));
        assert_eq!(parse_scale("0.2"), Some(1.0));
        assert_eq!(parse_scale("NaN"), None);
    }
}
