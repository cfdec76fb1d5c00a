//! The views of a run, shared by the studio's tabs and the embeds: each draws what a
//! [`RunController`] publishes, so a figure in a blog post and the same figure in the
//! studio come from one piece of code.

use leptos::prelude::*;
use leptos::task::spawn_local;

use std::sync::Arc;

use crate::analysis::{head_in_shape, RunResult};
use crate::finding::finding;
use crate::head_profile::{informative_head, pooled_map, profile, HeadProfile};
use crate::pause::pause;
use crate::run_controller::RunController;
use crate::views::attention_heatmap::ZoomView;
use crate::views::{AttentionHeatmap, HeadGrid, HeatScale, PerplexityChart, TokenStrip};

/// Cells per side of a head's thumbnail in the head grid.
const THUMBNAIL_CELLS: usize = 48;

/// Perplexity against position, one line per series.
#[component]
pub fn PerplexityPanel(
    /// The run drawn.
    run: RunController,
) -> impl IntoView {
    let RunController {
        chart,
        token_texts,
        counts,
        ..
    } = run;
    let training_length = run.training_length();
    // What the run shows, in one sentence from its own numbers.
    let sentence = move || {
        chart.with(|c| finding(c, training_length.get())).map(|f| {
            view! { <p class="finding" data-testid="finding">{f.sentence()}</p> }
        })
    };
    view! {
        {sentence}
        <PerplexityChart series=chart token_texts=token_texts training_length=training_length
            uniform_nll=run.uniform_nll() axis_length=Signal::derive(move || counts.get().1) />
    }
}

/// The focus series' tokens coloured by surprise.
#[component]
pub fn TokenPanel(
    /// The run drawn.
    run: RunController,
) -> impl IntoView {
    let focus = run.focus;
    let tokens = Signal::derive(move || {
        focus.with(|r| r.as_ref().map(|r| r.tokens.clone()).unwrap_or_default())
    });
    view! {
        <TokenStrip tokens=tokens nll_max=run.uniform_nll() training_length=run.training_length() />
    }
}

/// Keeps `picked` inside the focus model's shape: a head the model lacks goes back to 0
/// there, and `report` hears why.
pub fn keep_head_in_shape(
    run: RunController,
    picked: RwSignal<(usize, usize)>,
    report: impl Fn(String) + 'static,
) {
    let shape = run.head_shape();
    Effect::new(move |_| {
        if let Some((fixed, why)) = head_in_shape(picked.get_untracked(), shape.get()) {
            picked.set(fixed);
            report(why);
        }
    });
}

/// Attention weights read per task by [`per_focus_head`]: a few milliseconds of work, so
/// that no task holds the page near 100 ms however many heads a model has.
const WEIGHTS_PER_TASK: usize = 1 << 20;

/// What [`per_focus_head`] computes for one head: from the run, the head's index
/// (`layer * heads + head`) and its causal rows.
pub type HeadFn<T> = fn(&RunResult, usize, &[Arc<[f32]>]) -> T;

/// `of(result, index, rows)` for every head of the `focus` run, computed in tasks of
/// [`WEIGHTS_PER_TASK`] weights and published whole when done (a newer run stops an
/// older computation); only where a view reads it. The computation also stops when the
/// view that asked for it is gone (a tab closed between two tasks): its values are
/// disposed then, and reading one would panic.
pub fn per_focus_head<T: Send + Sync + 'static>(
    focus: RwSignal<Option<Arc<RunResult>>>,
    of: HeadFn<T>,
) -> Signal<Vec<T>> {
    let out = RwSignal::new(Vec::new());
    let generation = StoredValue::new(0u64);
    Effect::new(move |_| {
        let id = generation.get_value() + 1;
        generation.set_value(id);
        let Some(result) = focus.get() else {
            out.set(Vec::new());
            return;
        };
        spawn_local(async move {
            let mut done = Vec::with_capacity(result.attention.len());
            // Full at the start, so the first head also waits for a task of its own: the
            // task that renders the view and this work together passed the 100 ms a
            // main-thread task may take at 1024 tokens.
            let mut weights = WEIGHTS_PER_TASK;
            for (i, rows) in result.attention.iter().enumerate() {
                if weights >= WEIGHTS_PER_TASK {
                    weights = 0;
                    pause(0).await;
                    if generation.try_get_value() != Some(id) {
                        return;
                    }
                }
                done.push(of(&result, i, rows));
                weights += rows.iter().map(|r| r.len()).sum::<usize>();
            }
            if generation.try_get_value() == Some(id) {
                out.set(done);
            }
        });
    });
    out.into()
}

/// Every head's profile in the focus run, with its mass past L ([`per_focus_head`]).
pub fn focus_profiles(run: RunController) -> Signal<Vec<HeadProfile>> {
    per_focus_head(run.focus, |r, i, rows| {
        let heads = r.heads.max(1);
        profile(i / heads, i % heads, rows).with_far_mass(rows, r.training_length)
    })
}

/// Shows the head that reads furthest past L ([`informative_head`]) rather than head 0,
/// often a blank triangle, as each run lands; a head picked since (by the visitor, or
/// a link other than 0, 0) stays.
pub fn open_at_informative_head(
    profiles: Signal<Vec<HeadProfile>>,
    picked: RwSignal<(usize, usize)>,
) {
    let chosen_here = StoredValue::new(None::<(usize, usize)>);
    Effect::new(move |_| {
        let best = profiles.with(|p| informative_head(p));
        let current = picked.get_untracked();
        let untouched = chosen_here
            .get_value()
            .map_or(current == (0, 0), |c| c == current);
        if let (Some(best), true) = (best, untouched) {
            chosen_here.set_value(Some(best));
            picked.set(best);
        }
    });
}

/// The layer and head pickers of the attention maps.
#[component]
pub fn HeadPickers(
    /// The run whose focus model gives the choices.
    run: RunController,
    /// The chosen `(layer, head)`.
    picked: RwSignal<(usize, usize)>,
    /// The `data-testid`s of the layer and the head select.
    testids: (&'static str, &'static str),
) -> impl IntoView {
    let shape = run.head_shape();
    let picker = move |name: &'static str,
                       testid: &'static str,
                       which: fn(&mut (usize, usize)) -> &mut usize,
                       count: fn((usize, usize)) -> usize| {
        view! {
            <label>{name} " "
                <select data-testid=testid
                    on:change=move |ev| picked.update(|p| *which(p) = event_target_value(&ev).parse().unwrap_or(0))>
                    {move || (0..count(shape.get())).map(|i| view! {
                        <option value=i selected=move || { let mut p = picked.get(); *which(&mut p) == i }>{i}</option>
                    }).collect_view()}
                </select>
            </label>
        }
    };
    view! {
        {picker("Layer", testids.0, |p| &mut p.0, |s| s.0)}
        {picker("Head", testids.1, |p| &mut p.1, |s| s.1)}
    }
}

/// The picked head's attention map for the focus series and, beside it, for the second
/// series (when there is one).
#[component]
pub fn AttentionPair(
    /// The run drawn.
    run: RunController,
    /// The head shown: `(layer, head)`.
    #[prop(into)]
    picked: Signal<(usize, usize)>,
    /// Linear or log colours.
    #[prop(into)]
    scale: Signal<HeatScale>,
) -> impl IntoView {
    let RunController {
        focus,
        compared,
        chart,
        token_texts,
        ..
    } = run;
    // Memos: a map is a dense T x T copy of the head's rows (4 MB at 1024 tokens), built
    // once per head and result rather than at every read (the heatmap, its L mark, its
    // zoom and its readout each read it).
    let focus_map = Memo::new(move |_| {
        let (layer, head) = picked.get();
        focus.with(|r| r.as_ref()?.attention_map(layer, head))
    });
    let compared_map = Memo::new(move |_| {
        let (layer, head) = picked.get();
        compared.with(|c| c.as_ref()?.1.attention_map(layer, head))
    });
    // One zoom for both maps: the same region of the same prompt, side by side.
    let linked = RwSignal::new(ZoomView::default());
    let training_length = run.training_length();
    view! {
        <div class="attention-pair" data-testid="attention-pair">
            <figure>
                <figcaption data-testid="attention-caption">{move || chart.with(|c| c.first().map(|s| s.label.clone()))}</figcaption>
                <AttentionHeatmap map=focus_map labels=token_texts scale=scale linked_view=linked
                    training_length=training_length />
            </figure>
            {move || compared.with(Option::is_some).then(|| view! {
                <figure>
                    <figcaption data-testid="attention-caption">{move || compared.with(|c| c.as_ref().map(|(label, _)| label.clone()))}</figcaption>
                    <AttentionHeatmap map=compared_map labels=token_texts scale=scale linked_view=linked
                        training_length=training_length />
                </figure>
            })}
        </div>
    }
}

/// The studio's attention tab: the pickers and a colour-scale switch, the pair of maps,
/// and every head of the focus run as a grid of thumbnails.
#[component]
pub fn AttentionPanel(
    /// The run drawn.
    run: RunController,
    /// The head shown: `(layer, head)` (the grid's clicks set it too).
    picked: RwSignal<(usize, usize)>,
    /// Log rather than linear colours (kept by the page across tabs).
    log_colours: RwSignal<bool>,
) -> impl IntoView {
    let scale = Signal::derive(move || {
        if log_colours.get() {
            HeatScale::Log
        } else {
            HeatScale::Linear
        }
    });
    keep_head_in_shape(run, picked, |_| ());
    let profiles = focus_profiles(run);
    open_at_informative_head(profiles, picked);
    let thumbnails = per_focus_head(run.focus, |_, _, rows| pooled_map(rows, THUMBNAIL_CELLS));
    let shape = run.head_shape();
    view! {
        <div class="row">
            <HeadPickers run=run picked=picked testids=("layer-select", "head-select") />
            <label>
                <input type="checkbox" data-testid="log-colours" prop:checked=move || log_colours.get()
                    on:change=move |ev| log_colours.set(event_target_checked(&ev)) />
                " log colour scale"
            </label>
        </div>
        {move || run.focus.with(|r| r.as_ref()?.attention_note()).map(|note| view! {
            <p class="hint" data-testid="attention-rows-note">{note}</p>
        })}
        <AttentionPair run=run picked=picked scale=scale />
        <h3 class="sub-heading">"Every head"</h3>
        <HeadGrid profiles=profiles thumbnails=thumbnails
            heads=Signal::derive(move || shape.get().1) selected=picked scale=scale />
    }
}
