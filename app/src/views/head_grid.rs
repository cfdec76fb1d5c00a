//! Every head of the focused run at a glance: a layer x head grid of pooled attention
//! thumbnails, each labelled by the rule in [`crate::head_profile`]; clicking one picks
//! the head the full map shows. Below, the heads' statistics in a table sortable by any
//! column.

use leptos::html::Canvas;
use leptos::prelude::*;

use crate::analysis::AttentionMap;
use crate::head_profile::{HeadKind, HeadProfile, KIND_THRESHOLD, LOCAL_SPAN, MIN_QUERY};
use crate::views::attention_heatmap::draw;
use crate::views::HeatScale;

/// The table's sort column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadSort {
    /// Layer, then head.
    Position,
    /// Mean entropy, lowest first.
    Entropy,
    /// Mean attended distance, longest first.
    Distance,
    /// Mass on the nearest tokens, highest first.
    Local,
    /// Mass on the first token, highest first.
    Sink,
    /// Mass more than L back, highest first.
    Far,
}

/// `profiles` ordered by `sort`.
pub fn sorted(mut profiles: Vec<HeadProfile>, sort: HeadSort) -> Vec<HeadProfile> {
    let key = |p: &HeadProfile| match sort {
        HeadSort::Position => (p.layer * 1000 + p.head) as f32,
        HeadSort::Entropy => p.entropy,
        HeadSort::Distance => -p.mean_distance,
        HeadSort::Local => -p.local_mass,
        HeadSort::Sink => -p.sink_mass,
        HeadSort::Far => -p.far_mass.unwrap_or(0.0),
    };
    profiles.sort_by(|a, b| key(a).total_cmp(&key(b)));
    profiles
}

/// One thumbnail: a canvas drawn from its pooled map.
#[component]
fn Thumbnail(map: AttentionMap, scale: Signal<HeatScale>) -> impl IntoView {
    let canvas_ref = NodeRef::<Canvas>::new();
    Effect::new(move |_| {
        if let Some(canvas) = canvas_ref.get() {
            let _ = draw(&canvas, &map, scale.get());
        }
    });
    view! { <canvas node_ref=canvas_ref class="head-thumb" aria-hidden="true"></canvas> }
}

/// The grid `[data-testid="head-grid"]` of `[data-testid="head-cell"]` buttons
/// (`data-layer`, `data-head`, `data-kind`, `aria-pressed` = selected) and the table
/// `[data-testid="head-table"]` with sort buttons `[data-testid="head-sort"]`.
#[component]
pub fn HeadGrid(
    /// Every head's profile, layer-major.
    #[prop(into)]
    profiles: Signal<Vec<HeadProfile>>,
    /// Every head's pooled map, same order.
    #[prop(into)]
    thumbnails: Signal<Vec<AttentionMap>>,
    /// Heads per layer (the grid's columns).
    #[prop(into)]
    heads: Signal<usize>,
    /// The chosen `(layer, head)`; clicking a cell sets it.
    selected: RwSignal<(usize, usize)>,
    /// Colour scale of the thumbnails.
    #[prop(into)]
    scale: Signal<HeatScale>,
) -> impl IntoView {
    let sort = RwSignal::new(HeadSort::Position);
    let cells = move || {
        let thumbs = thumbnails.get();
        profiles
            .get()
            .into_iter()
            .zip(thumbs)
            .map(|(p, map)| {
                let (layer, head) = (p.layer, p.head);
                let kind = match p.kind {
                    HeadKind::Sink => "sink",
                    HeadKind::Local => "local",
                    HeadKind::Content => "content",
                };
                let far = p.far_mass.map(|m| format!(", {:.1}% more than L back", 100.0 * m)).unwrap_or_default();
                let title = format!(
                    "layer {layer}, head {head}: {}\nentropy {:.2} nats ({:.0}% of uniform), mean distance {:.1} tokens,\n{:.0}% on the {LOCAL_SPAN} nearest tokens, {:.0}% on the first{far}",
                    p.kind.name(),
                    p.entropy,
                    100.0 * p.relative_entropy,
                    p.mean_distance,
                    100.0 * p.local_mass,
                    100.0 * p.sink_mass
                );
                view! {
                    <button type="button" class=format!("head-cell kind-{kind}") data-testid="head-cell"
                        data-layer=layer data-head=head data-kind=kind title=title
                        data-far-mass=p.far_mass.map(|m| m.to_string())
                        aria-pressed=move || (selected.get() == (layer, head)).to_string()
                        on:click=move |_| selected.set((layer, head))>
                        <Thumbnail map=map scale=scale />
                        <span class="head-name">{format!("L{layer} H{head}")}</span>
                        <span class="head-kind">{p.kind.name()}</span>
                    </button>
                }
            })
            .collect_view()
    };
    let sort_button = move |column: HeadSort, label: &'static str| {
        view! {
            <button type="button" class="head-sort" data-testid="head-sort"
                aria-pressed=move || (sort.get() == column).to_string()
                on:click=move |_| sort.set(column)>{label}</button>
        }
    };
    let rows = move || {
        sorted(profiles.get(), sort.get())
            .into_iter()
            .map(|p| {
                let (layer, head) = (p.layer, p.head);
                view! {
                    <tr data-testid="head-row" class:selected=move || selected.get() == (layer, head)
                        on:click=move |_| selected.set((layer, head))>
                        <td>{layer}</td>
                        <td>{head}</td>
                        <td>{format!("{:.2}", p.entropy)}</td>
                        <td>{format!("{:.1}", p.mean_distance)}</td>
                        <td>{format!("{:.0}%", 100.0 * p.local_mass)}</td>
                        <td>{format!("{:.0}%", 100.0 * p.sink_mass)}</td>
                        <td>{p.far_mass.map_or_else(|| "-".to_string(), |m| format!("{:.1}%", 100.0 * m))}</td>
                        <td class="kind">{p.kind.name()}</td>
                    </tr>
                }
            })
            .collect_view()
    };
    view! {
        <div class="head-grid-view">
            <div class="head-grid" data-testid="head-grid"
                style:grid-template-columns=move || format!("repeat({}, minmax(0, 1fr))", heads.get().max(1))>
                {cells}
            </div>
            <p class="view-note">
                {format!(
                    "Labels: sink when on average at least {:.0}% of a query's attention goes to the first token; \
                     local / positional when at least {:.0}% goes to the {LOCAL_SPAN} nearest tokens (itself and the two before); \
                     else spread / content. Averages over queries from position {MIN_QUERY} on; thumbnails pool positions into blocks. \
                     Mass past L: the attention a query puts on keys more than L tokens back, the first token left out; \
                     the head with the most is shown first.",
                    100.0 * KIND_THRESHOLD, 100.0 * KIND_THRESHOLD
                )}
            </p>
            <table class="head-table" data-testid="head-table">
                <thead>
                    <tr>
                        <th>{sort_button(HeadSort::Position, "layer")}</th>
                        <th>"head"</th>
                        <th>{sort_button(HeadSort::Entropy, "entropy (nats)")}</th>
                        <th>{sort_button(HeadSort::Distance, "mean distance")}</th>
                        <th>{sort_button(HeadSort::Local, "local mass")}</th>
                        <th>{sort_button(HeadSort::Sink, "first-token mass")}</th>
                        <th>{sort_button(HeadSort::Far, "mass past L")}</th>
                        <th>"label"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
}
