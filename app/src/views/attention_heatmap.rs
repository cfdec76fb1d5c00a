//! One head's `T x T` attention map on a canvas: one pixel per (query, key) pair,
//! scaled up without smoothing by CSS; row = query, column = key; the upper triangle
//! (keys in the future, masked) is left transparent. Hover reads out the token pair.
//! Zoom (wheel, buttons, `+`/`-` keys) and pan (drag, arrow keys) move the canvas with a
//! CSS transform inside a clipping frame, so zooming never redraws the pixels.

use leptos::html::{Canvas, Div};
use leptos::prelude::*;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{
    AddEventListenerOptions, CanvasRenderingContext2d, HtmlCanvasElement, KeyboardEvent,
    MouseEvent, WheelEvent,
};

use crate::analysis::AttentionMap;
use crate::colormap::VIRIDIS;
use crate::error::js_message;
use crate::export::{csv_field, save_canvas_as_png};
use crate::format::quoted;
use crate::views::{ColourLegend, ExportButtons};

type WheelListener = Closure<dyn FnMut(WheelEvent)>;

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
    // Always inlined: it runs once per cell in the heatmap's loop.
    #[inline(always)]
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

/// Colours of the map, precomputed: a 2048 x 2048 map has two million cells, and
/// interpolating the colour map for each would take most of the 100 ms budget.
const LUT_SIZE: usize = 1024;

/// RGBA pixels of `map` (row-major, `T * T * 4` bytes): viridis below and on the
/// diagonal, transparent above it.
pub fn heatmap_pixels(map: &AttentionMap, scale: HeatScale) -> Vec<u8> {
    let lut: Vec<[u8; 4]> = (0..LUT_SIZE)
        .map(|i| {
            let c = VIRIDIS.at(i as f32 / (LUT_SIZE - 1) as f32);
            [c.0, c.1, c.2, 255]
        })
        .collect();
    let n = map.len;
    let mut pixels = vec![0u8; n * n * 4];
    // One loop per scale, so the scale's test is not made in every cell.
    match scale {
        HeatScale::Linear => fill(map, &lut, &mut pixels, HeatScale::Linear),
        HeatScale::Log => fill(map, &lut, &mut pixels, HeatScale::Log),
    }
    pixels
}

#[inline(always)]
fn fill(map: &AttentionMap, lut: &[[u8; 4]], pixels: &mut [u8], scale: HeatScale) {
    let top = (LUT_SIZE - 1) as f32;
    let n = map.len.max(1);
    for (q, (row, out)) in map
        .weights
        .chunks_exact(n)
        .zip(pixels.chunks_exact_mut(4 * n))
        .enumerate()
    {
        for (weight, pixel) in row[..=q].iter().zip(out.chunks_exact_mut(4)) {
            // `unit` is in [0, 1], so adding a half and truncating rounds to nearest,
            // without `f32::round`'s call.
            let index = (scale.unit(*weight) * top + 0.5) as usize;
            pixel.copy_from_slice(&lut[index.min(LUT_SIZE - 1)]);
        }
    }
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

/// The map as CSV in long form, one row per (query, key) the query can see:
/// `query,key,query_token,key_token,weight`.
pub fn map_csv(map: &AttentionMap, labels: &[String]) -> String {
    let label = |i: usize| csv_field(labels.get(i).map_or("", String::as_str));
    let mut out = String::from("query,key,query_token,key_token,weight\n");
    for q in 0..map.len {
        for k in 0..=q {
            out += &format!("{q},{k},{},{},{}\n", label(q), label(k), map.weight(q, k));
        }
    }
    out
}

/// The map as JSON: the tokens and each query's row of weights (keys `0..=query`).
pub fn map_json(map: &AttentionMap, labels: &[String]) -> String {
    let rows: Vec<&[f32]> = (0..map.len)
        .map(|q| &map.weights[q * map.len..q * map.len + q + 1])
        .collect();
    serde_json::json!({ "tokens": labels.get(..map.len).unwrap_or(labels), "rows": rows })
        .to_string()
}

/// Zoom and pan of the map inside its frame: the canvas is scaled by `zoom` and
/// shifted by `(x, y)` (CSS pixels of the frame, both <= 0), so the frame always shows
/// part of the map and never empty space beside it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZoomView {
    /// Magnification, 1 = the whole map fills the frame.
    pub zoom: f64,
    /// Shift of the map's left edge, frame pixels.
    pub x: f64,
    /// Shift of the map's top edge, frame pixels.
    pub y: f64,
}

impl Default for ZoomView {
    fn default() -> Self {
        ZoomView {
            zoom: 1.0,
            x: 0.0,
            y: 0.0,
        }
    }
}

impl ZoomView {
    /// Most magnification for a map of `n` cells: about 8 cells across the frame.
    pub fn max_zoom(n: usize) -> f64 {
        (n as f64 / 8.0).max(1.0)
    }

    /// This view with the shift kept inside the map (frame of `size` pixels).
    fn clamped(self, size: f64) -> ZoomView {
        let low = size * (1.0 - self.zoom);
        ZoomView {
            x: self.x.clamp(low.min(0.0), 0.0),
            y: self.y.clamp(low.min(0.0), 0.0),
            ..self
        }
    }

    /// Zoomed by `factor` keeping the map point under `(px, py)` (frame pixels) still.
    pub fn zoomed(self, factor: f64, px: f64, py: f64, size: f64, n: usize) -> ZoomView {
        let zoom = (self.zoom * factor).clamp(1.0, Self::max_zoom(n));
        let ratio = zoom / self.zoom;
        ZoomView {
            zoom,
            x: px - (px - self.x) * ratio,
            y: py - (py - self.y) * ratio,
        }
        .clamped(size)
    }

    /// Shifted by `(dx, dy)` frame pixels.
    pub fn panned(self, dx: f64, dy: f64, size: f64) -> ZoomView {
        ZoomView {
            x: self.x + dx,
            y: self.y + dy,
            ..self
        }
        .clamped(size)
    }

    /// The cells shown, as (first, last) indices along each axis of an `n`-cell map
    /// in a frame of `size` pixels: (keys, queries).
    pub fn visible(self, size: f64, n: usize) -> ((usize, usize), (usize, usize)) {
        let span = |shift: f64| {
            let cell = size * self.zoom / n as f64;
            let first = ((-shift / cell).floor().max(0.0) as usize).min(n.saturating_sub(1));
            let last = (((size - shift) / cell).ceil() as usize).clamp(first + 1, n) - 1;
            (first, last)
        };
        (span(self.x), span(self.y))
    }

    fn transform(self) -> String {
        format!(
            "translate({:.2}px, {:.2}px) scale({:.4})",
            self.x, self.y, self.zoom
        )
    }
}

/// `canvas[data-testid="attention-heatmap"]` showing `map`, with a colour legend, zoom
/// and pan, and a hover readout naming the query and key tokens (from `labels`, one per
/// token).
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
    /// The zoom and pan, when shared with another map (a pair zooms together).
    #[prop(optional)]
    linked_view: Option<RwSignal<ZoomView>>,
    /// The training length L: a line at query L and key L marks where the model's
    /// training ends (none when the map is not longer than L).
    #[prop(optional, into)]
    training_length: Option<Signal<usize>>,
) -> impl IntoView {
    let canvas_ref = NodeRef::<Canvas>::new();
    let frame_ref = NodeRef::<Div>::new();
    let draw_error = RwSignal::new(None::<String>);
    let hovered = RwSignal::new(None::<(usize, usize)>);
    let view_state = linked_view.unwrap_or_else(|| RwSignal::new(ZoomView::default()));
    // Where L falls, as a share of the map's side.
    let l_mark = move || {
        let l = training_length?.get();
        let n = map.with(|m| m.as_ref().map_or(0, |m| m.len));
        (l > 0 && l < n).then(|| (l, 100.0 * l as f64 / n as f64))
    };
    // Pointer position and view when a drag started.
    let dragging = StoredValue::new(None::<(f64, f64, ZoomView)>);
    let cells = move || map.with_untracked(|m| m.as_ref().map_or(0, |m| m.len));
    // The frame's inside (its border excluded): the canvas fills exactly this.
    let frame_size = move || {
        frame_ref
            .get_untracked()
            .map_or(0.0, |f| f.client_width() as f64)
    };

    redraw_on_change(canvas_ref, map, scale, draw_error, view_state);

    let zoom_by = move |factor: f64, at: Option<(f64, f64)>| {
        let size = frame_size();
        if size <= 0.0 {
            return;
        }
        let (px, py) = at.unwrap_or((size / 2.0, size / 2.0));
        view_state.update(|v| *v = v.zoomed(factor, px, py, size, cells()));
    };
    let frame_point = move |x: f64, y: f64| -> Option<(f64, f64)> {
        let frame = frame_ref.get_untracked()?;
        let rect = frame.get_bounding_client_rect();
        Some((
            x - rect.left() - frame.client_left() as f64,
            y - rect.top() - frame.client_top() as f64,
        ))
    };
    let on_wheel = move |event: WheelEvent| {
        event.prevent_default();
        let factor = if event.delta_y() < 0.0 { 1.25 } else { 0.8 };
        zoom_by(
            factor,
            frame_point(event.client_x() as f64, event.client_y() as f64),
        );
    };
    listen_to_wheel(frame_ref, on_wheel);
    let on_down = move |event: MouseEvent| {
        if event.button() == 0 {
            dragging.set_value(Some((
                event.client_x() as f64,
                event.client_y() as f64,
                view_state.get_untracked(),
            )));
        }
    };
    let on_keydown = move |event: KeyboardEvent| {
        let Some(action) = ViewKey::of(&event.key()) else {
            return;
        };
        let size = frame_size();
        match action {
            ViewKey::Zoom(factor) => zoom_by(factor, None),
            ViewKey::Whole => view_state.set(ZoomView::default()),
            // A tenth of the frame per press.
            ViewKey::Pan(dx, dy) => {
                view_state.update(|v| *v = v.panned(dx * size / 10.0, dy * size / 10.0, size))
            }
        }
        event.prevent_default();
    };

    let on_move = move |event: MouseEvent| {
        if let Some((x0, y0, start)) = dragging.get_value() {
            if event.buttons() & 1 == 1 {
                let (dx, dy) = (event.client_x() as f64 - x0, event.client_y() as f64 - y0);
                view_state.set(start.panned(dx, dy, frame_size()));
            } else {
                dragging.set_value(None);
            }
        }
        let (Some(canvas), n) = (canvas_ref.get_untracked(), cells()) else {
            return;
        };
        // The canvas' box includes the zoom transform, so this maps through it.
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

    let zoom_note = move || {
        let v = view_state.get();
        let n = map.with(|m| m.as_ref().map_or(0, |m| m.len));
        if n == 0 || v.zoom <= 1.0 {
            return "whole map".to_string();
        }
        let ((k0, k1), (q0, q1)) = v.visible(frame_size(), n);
        format!(
            "{:.1}x: keys {k0}\u{2013}{k1}, queries {q0}\u{2013}{q1}",
            v.zoom
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
            <ZoomControls view_state=view_state zoom_by=Callback::new(move |factor| zoom_by(factor, None))
                note=Signal::derive(zoom_note) />
            <ExportButtons stem="drope-attention"
                png=Callback::new(move |()| {
                    let canvas = canvas_ref.get_untracked().ok_or("the map is not drawn")?;
                    save_canvas_as_png(&canvas, "drope-attention.png")
                })
                csv=Callback::new(move |()| map.with_untracked(|m| {
                    labels.with_untracked(|l| m.as_ref().map(|m| map_csv(m, l)).unwrap_or_default())
                }))
                json=Callback::new(move |()| map.with_untracked(|m| {
                    labels.with_untracked(|l| m.as_ref().map(|m| map_json(m, l)).unwrap_or_default())
                })) />
            <div
                node_ref=frame_ref
                class="heatmap-frame"
                tabindex="0"
                aria-label="attention map: +/- to zoom, arrow keys to pan, 0 for the whole map"
                on:mousedown=on_down
                on:mouseup=move |_| dragging.set_value(None)
                on:keydown=on_keydown
            >
                <canvas
                    node_ref=canvas_ref
                    data-testid="attention-heatmap"
                    class="heatmap"
                    style:transform=move || view_state.get().transform()
                    on:mousemove=on_move
                    on:mouseleave=move |_| {
                        hovered.set(None);
                        dragging.set_value(None);
                    }
                ></canvas>
                // Placed through the view's offset and zoom rather than transformed with
                // the canvas, so that the line stays one pixel wide at any zoom.
                {move || l_mark().map(|(l, share)| {
                    let v = view_state.get();
                    view! {
                        <div class="heatmap-marks" data-testid="attention-l-line" data-position=l
                            title=format!("L = {l}: the model's training length")>
                            <div class="l-line key" style:left=format!("calc({:.2}px + {:.4}%)", v.x, share * v.zoom)></div>
                            <div class="l-line query" style:top=format!("calc({:.2}px + {:.4}%)", v.y, share * v.zoom)></div>
                        </div>
                    }
                })}
            </div>
            <HeatReadout map=map labels=labels hovered=hovered />
            {move || draw_error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </div>
    }
}

/// Draws the map whenever it, the scale or the canvas changes; a map of another size
/// (another prompt length) starts unzoomed, another head of the same keeps the view.
fn redraw_on_change(
    canvas_ref: NodeRef<Canvas>,
    map: Signal<Option<AttentionMap>>,
    scale: Signal<HeatScale>,
    draw_error: RwSignal<Option<String>>,
    view_state: RwSignal<ZoomView>,
) {
    Effect::new(move |previous_len: Option<usize>| {
        let Some(canvas) = canvas_ref.get() else {
            return 0;
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
        let len = map.with_untracked(|m| m.as_ref().map_or(0, |m| m.len));
        if previous_len.is_some_and(|p| p != len) {
            view_state.set(ZoomView::default());
        }
        len
    });
}

/// What a key does to the map's view (with the frame focused).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ViewKey {
    /// Zoom about the centre by this factor (`+`, `-`).
    Zoom(f64),
    /// Back to the whole map (`0`).
    Whole,
    /// Pan by these tenths of the frame (the arrow keys).
    Pan(f64, f64),
}

impl ViewKey {
    /// The action of `key`, if it has one.
    pub fn of(key: &str) -> Option<Self> {
        Some(match key {
            "+" | "=" => ViewKey::Zoom(2.0),
            "-" | "_" => ViewKey::Zoom(0.5),
            "0" => ViewKey::Whole,
            "ArrowLeft" => ViewKey::Pan(1.0, 0.0),
            "ArrowRight" => ViewKey::Pan(-1.0, 0.0),
            "ArrowUp" => ViewKey::Pan(0.0, 1.0),
            "ArrowDown" => ViewKey::Pan(0.0, -1.0),
            _ => return None,
        })
    }
}

/// Calls `on_wheel` for wheel events over the frame.
fn listen_to_wheel(frame_ref: NodeRef<Div>, on_wheel: impl Fn(WheelEvent) + Copy + 'static) {
    // Wheel zoom needs a non-passive listener on the frame itself (leptos delegates
    // events to the document, where browsers make wheel listeners passive, so the page
    // would scroll instead). The listener is removed (and its closure freed) when the
    // frame changes and when the view goes.
    let wheel = StoredValue::new_local(None::<(web_sys::HtmlDivElement, WheelListener)>);
    let remove_wheel = move || {
        if let Some((frame, handler)) = wheel.try_update_value(Option::take).flatten() {
            let _ = frame
                .remove_event_listener_with_callback("wheel", handler.as_ref().unchecked_ref());
        }
    };
    Effect::new(move |_| {
        let Some(frame) = frame_ref.get() else {
            return;
        };
        remove_wheel();
        let handler = WheelListener::new(on_wheel);
        let options = AddEventListenerOptions::new();
        options.set_passive(false);
        let _ = frame.add_event_listener_with_callback_and_add_event_listener_options(
            "wheel",
            handler.as_ref().unchecked_ref(),
            &options,
        );
        wheel.set_value(Some((frame, handler)));
    });
    on_cleanup(remove_wheel);
}

/// The zoom buttons and what the view shows.
#[component]
fn ZoomControls(
    view_state: RwSignal<ZoomView>,
    zoom_by: Callback<f64>,
    note: Signal<String>,
) -> impl IntoView {
    view! {
    <div class="zoom-controls" role="group" aria-label="zoom the attention map">
        <button type="button" data-testid="zoom-in" title="zoom in (+)"
            on:click=move |_| zoom_by.run(2.0)>"+"</button>
        <button type="button" data-testid="zoom-out" title="zoom out (-)"
            on:click=move |_| zoom_by.run(0.5)>"\u{2212}"</button>
        <button type="button" data-testid="zoom-reset" title="whole map (0)"
            on:click=move |_| view_state.set(ZoomView::default())>"whole map"</button>
        <span class="zoom-note" data-testid="zoom-note">{note}</span>
    </div>
    }
}

/// The weight under the pointer, or how to read the map.
#[component]
fn HeatReadout(
    map: Signal<Option<AttentionMap>>,
    labels: Signal<Vec<String>>,
    hovered: RwSignal<Option<(usize, usize)>>,
) -> impl IntoView {
    let readout = move || {
        let Some((q, k)) = hovered.get() else {
            return "Row = query token, column = key token; the upper triangle is masked \
                    (a token cannot attend to later ones). Hover to read a weight; wheel, \
                    drag or +/- and arrow keys to zoom and pan."
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
    view! { <p class="heat-readout">{readout}</p> }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_zoom_pan_and_reset() {
        assert_eq!(ViewKey::of("+"), Some(ViewKey::Zoom(2.0)));
        assert_eq!(ViewKey::of("_"), Some(ViewKey::Zoom(0.5)));
        assert_eq!(ViewKey::of("0"), Some(ViewKey::Whole));
        // ArrowLeft looks further left: the content moves right.
        assert_eq!(ViewKey::of("ArrowLeft"), Some(ViewKey::Pan(1.0, 0.0)));
        assert_eq!(ViewKey::of("ArrowDown"), Some(ViewKey::Pan(0.0, -1.0)));
        assert_eq!(ViewKey::of("x"), None);
    }

    #[test]
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

    #[test]
    fn zoom_keeps_the_pointed_cell_and_the_map_in_the_frame() {
        let size = 400.0;
        let v = ZoomView::default().zoomed(4.0, 100.0, 300.0, size, 256);
        assert_eq!(v.zoom, 4.0);
        // The map point under (100, 300) stays there: (p - shift) / zoom is unchanged.
        assert!(((100.0 - v.x) / v.zoom - 100.0).abs() < 1e-9);
        assert!(((300.0 - v.y) / v.zoom - 300.0).abs() < 1e-9);
        // A quarter of each axis shows: 64 of 256 cells.
        let ((k0, k1), (q0, q1)) = v.visible(size, 256);
        assert_eq!(k1 - k0 + 1, 64, "keys {k0}..{k1}");
        assert_eq!(q1 - q0 + 1, 64, "queries {q0}..{q1}");
        assert_eq!(k0, 48);
        // Panning stops at the map's edges; zoom is capped at about 8 cells across.
        let far = v.panned(1e6, -1e6, size);
        assert_eq!((far.x, far.y), (0.0, size * (1.0 - 4.0)));
        assert_eq!(v.zoomed(1e6, 0.0, 0.0, size, 256).zoom, 32.0);
        assert_eq!(v.zoomed(1e-6, 0.0, 0.0, size, 256), ZoomView::default());
        assert_eq!(ZoomView::max_zoom(4), 1.0);
    }

    #[test]
    fn log_scale_spreads_small_weights() {
        assert_eq!(HeatScale::Log.unit(1.0), 1.0);
        assert!((HeatScale::Log.unit(0.01) - 0.5).abs() < 1e-6);
        assert_eq!(HeatScale::Log.unit(1e-9), 0.0);
        assert_eq!(HeatScale::Log.unit(0.0), 0.0);
        assert_eq!(HeatScale::Linear.unit(0.25), 0.25);
    }
}
