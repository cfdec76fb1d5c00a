//! Small helpers shared by the studio's SVG charts: tick steps, smoothing, and where the
//! pointer is in the chart's own coordinates.

use leptos::prelude::*;

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

/// The pointer's x in the user units of the SVG behind `svg` (a viewBox `view_width`
/// wide), or `None` while that SVG is not mounted or not laid out. The SVG comes from a
/// node ref, not from the event: leptos delegates mouse events, so an event's current
/// target is not the chart.
pub fn pointer_x(
    ev: &web_sys::MouseEvent,
    svg: NodeRef<leptos::svg::Svg>,
    view_width: f64,
) -> Option<f64> {
    let rect = svg.get_untracked()?.get_bounding_client_rect();
    (rect.width() > 0.0).then(|| (ev.client_x() as f64 - rect.left()) / rect.width() * view_width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(10.0, 5), 2.0);
        assert_eq!(nice_step(7.3, 5), 2.0);
        assert_eq!(nice_step(512.0, 8), 100.0);
        assert_eq!(nice_step(0.9, 5), 0.2);
    }

    #[test]
    fn moving_average_skips_gaps() {
        let avg = moving_average(&[None, Some(2.0), Some(4.0), Some(6.0)], 3);
        assert_eq!(avg, vec![Some(2.0), Some(3.0), Some(4.0), Some(5.0)]);
        assert_eq!(moving_average(&[None], 3), vec![None]);
    }
}
