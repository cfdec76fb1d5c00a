//! A horizontal colour bar with end labels.

use leptos::prelude::*;

use crate::colormap::Colormap;

/// A colour legend: `low` label, the gradient of `colormap`, `high` label.
#[component]
pub fn ColourLegend(
    /// The colour map shown.
    colormap: Colormap,
    /// What the colour encodes.
    #[prop(into)]
    title: Signal<String>,
    /// Label at the left end.
    #[prop(into)]
    low: Signal<String>,
    /// Label at the right end.
    #[prop(into)]
    high: Signal<String>,
) -> impl IntoView {
    view! {
        <div class="legend">
            <span class="legend-title">{title}</span>
            <span class="legend-end">{low}</span>
            <span class="legend-bar" style:background=colormap.css_gradient()></span>
            <span class="legend-end">{high}</span>
        </div>
    }
}
