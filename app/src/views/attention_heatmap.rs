//! One head's `T x T` attention map on a canvas: one pixel per (query, key) pair,
//! scaled up without smoothing by CSS; row = query, column = key; the upper triangle
//! (keys in the future, masked) is left transparent. Hover reads out the token pair.

use leptos::html::Canvas;
use leptos::prelude::*;
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, MouseEvent};

use crate::analysis::AttentionMap;
use crate::colormap::VIRIDIS;
use crate::error::js_message;
use crate::format::quoted;
use crate::views::ColourLegend;

/// How attention weights map to colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeatScale {
    /// Weight 0..1 linearly.
    #[default]
    Linear,
    /// `log10` of the weight over [`HeatScale::LOG_DECADES`] decades below 1: shows the
    /// small weights a long row spreads over many keys.
    Log,
}

impl HeatScale {
    /// Decades shown by the log scale (weights below `10^-4` get the lowest colour).
    pub const LOG_DECADES: f32 = 4.0;

    /// Position of `weight` on the colour map, in `[0, 1]`.
    pub fn unit(self, weight: f32) -> f32 {
        match self {
            HeatScale::Linear => weight.clamp(0.0, 1.0),
            HeatScale::Log if weight > 0.0 => {
                (weight.log10() / Self::LOG_DECADES + 1.0).clamp(0.0, 1.0)
            }
            HeatScale::Log => 0.0,
        }
    }

    fn low_label(self) -> String {
        match self {
            HeatScale::Linear => "0".into(),
            HeatScale::Log => format!("\u{2264}1e-{}", Self::LOG_DECADES),
        }
    }
}

/// RGBA pixels of `map` (row-major, `T * T * 4` bytes): viridis below and on the
/// diagonal, transparent above it.
pub fn heatmap_pixels(map: &AttentionMap, scale: HeatScale) -> Vec<u8> {
    let n = map.len;
    let mut pixels = vec![0u8; n * n * 4];
    for q in 0..n {
        for k in 0..=q {
            let colour = VIRIDIS.at(scale.unit(map.weights[q * n + k]));
            let i = (q * n + k) * 4;
            pixels[i..i + 4].copy_from_slice(&[colour.0, colour.1, colour.2, 255]);
        }
    }
    pixels
}

/// Draws `map` on `canvas`, one pixel per cell (the canvas takes the map's size).
pub fn draw(
    canvas: &HtmlCanvasElement,
    map: &AttentionMap,
    scale: HeatScale,
) -> Result<(), String> {
    let n = map.len as u32;
    canvas.set_width(n);
    canvas.set_height(n);
    if n == 0 {
        return Ok(());
    }
    let context: CanvasRenderingContext2d = canvas
        .get_context("2d")
        .map_err(|e| js_message(&e))?
        .ok_or("the browser gave no 2D canvas context")?
        .dyn_into()
        .map_err(|_| "the 2D context has an unexpected type")?;
    let pixels = heatmap_pixels(map, scale);
    let image = web_sys::ImageData::new_with_u8_clamped_array_and_sh(Clamped(&pixels), n, n)
        .map_err(|e| js_message(&e))?;
    context
        .put_image_data(&image, 0.0, 0.0)
        .map_err(|e| js_message(&e))
}

/// `canvas[data-testid="attention-heatmap"]` showing `map`, with a colour legend and a
/// hover readout naming the query and key tokens (from `labels`, one per token).
#[component]
pub fn AttentionHeatmap(
    /// The map to draw; `None` leaves the canvas empty.
    #[prop(into)]
    map: Signal<Option<AttentionMap>>,
    /// Token texts, for the hover readout.
    #[prop(into)]
    labels: Signal<Vec<String>>,
    /// Linear or log colour scale.
    #[prop(into)]
    scale: Signal<HeatScale>,
) -> impl IntoView {
    let canvas_ref = NodeRef::<Canvas>::new();
    let draw_error = RwSignal::new(None::<String>);
    let hovered = RwSignal::new(None::<(usize, usize)>);

    // Redraw when the map, the scale or the canvas itself changes.
    Effect::new(move |_| {
        let Some(canvas) = canvas_ref.get() else {
            return;
        };
        let empty = AttentionMap {
            len: 0,
            weights: Vec::new().into(),
        };
        let outcome = map.with(|m| draw(&canvas, m.as_ref().unwrap_or(&empty), scale.get()));
        draw_error.set(
            outcome
                .err()
                .map(|e| format!("Could not draw the attention map: {e}")),
        );
    });

    let on_move = move |event: MouseEvent| {
        let (Some(canvas), Some(n)) = (
            canvas_ref.get_untracked(),
            map.with_untracked(|m| m.as_ref().map(|m| m.len)),
        ) else {
            return;
        };
        let rect = canvas.get_bounding_client_rect();
        if n == 0 || rect.width() <= 0.0 || rect.height() <= 0.0 {
            return;
        }
        let cell = |offset: f64, extent: f64| {
            ((offset / extent * n as f64).floor().max(0.0) as usize).min(n - 1)
        };
        let key = cell(event.client_x() as f64 - rect.left(), rect.width());
        let query = cell(event.client_y() as f64 - rect.top(), rect.height());
        hovered.set(Some((query, key)));
    };

    let readout = move || {
        let Some((q, k)) = hovered.get() else {
            return "Row = query token, column = key token; the upper triangle is masked \
                    (a token cannot attend to later ones). Hover to read a weight."
                .to_string();
        };
        let label = |i: usize| labels.with(|l| l.get(i).map(|t| quoted(t)).unwrap_or_default());
        if k > q {
            return format!(
                "query #{q} {} cannot see key #{k} {} (future)",
                label(q),
                label(k)
            );
        }
        let weight = map.with(|m| m.as_ref().map_or(0.0, |m| m.weight(q, k)));
        format!(
            "query #{q} {} \u{2192} key #{k} {}: weight {weight:.4}",
            label(q),
            label(k)
        )
    };

    view! {
        <div class="heatmap-view">
            <ColourLegend
                colormap=VIRIDIS
                title="attention weight"
                low=Signal::derive(move || scale.get().low_label())
                high="1"
            />
            <canvas
                node_ref=canvas_ref
                data-testid="attention-heatmap"
                class="heatmap"
                on:mousemove=on_move
                on:mouseleave=move |_| hovered.set(None)
            ></canvas>
            <p class="heat-readout">{readout}</p>
            {move || draw_error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn pixels_fill_the_lower_triangle_only() {
        let rows: Vec<Vec<f32>> = vec![vec![1.0], vec![0.5, 0.5]];
        let map = AttentionMap::from_rows(rows.iter().map(|r| &r[..]));
        let px = heatmap_pixels(&map, HeatScale::Linear);
        assert_eq!(px.len(), 16);
        assert_eq!(&px[0..4], &[0xfd, 0xe7, 0x25, 255]); // (0,0) weight 1: top of viridis
        assert_eq!(&px[4..8], &[0, 0, 0, 0]); // (0,1) masked
        assert_eq!(px[11], 255);
        assert_eq!(&px[8..12], &px[12..16]);
    }

    #[wasm_bindgen_test]
    fn log_scale_spreads_small_weights() {
        assert_eq!(HeatScale::Log.unit(1.0), 1.0);
        assert!((HeatScale::Log.unit(0.01) - 0.5).abs() < 1e-6);
        assert_eq!(HeatScale::Log.unit(1e-9), 0.0);
        assert_eq!(HeatScale::Log.unit(0.0), 0.0);
        assert_eq!(HeatScale::Linear.unit(0.25), 0.25);
    }
}
