//! The studio's tabs (one per view, and the embed-code toggle) and the panel of the view
//! shown.

use leptos::prelude::*;

use crate::panels::{FrequencyPanel, NeedlePanel, TrainingPanel};
use crate::run_controller::{RunController, RunInputs};
use crate::run_panels::{AttentionPanel, PerplexityPanel, TokenPanel};
use crate::url_state::View;
use crate::views::needle_live::NeedleLiveState;

/// The tabs, one per view, and the embed-code toggle.
#[component]
pub fn ViewTabs(
    /// The view shown.
    view_shown: RwSignal<View>,
    /// Whether the embed code is shown.
    embed_open: RwSignal<bool>,
) -> impl IntoView {
    view! {
        <nav class="tabs" role="tablist" aria-label="Views">
            {View::ALL.iter().map(|&v| view! {
                <button role="tab" type="button" data-testid="tab" data-view=v.key()
                    aria-selected=move || (view_shown.get() == v).to_string()
                    on:click=move |_| view_shown.set(v)>
                    {v.title()}
                </button>
            }).collect_view()}
            <button type="button" class="embed-toggle" data-testid="embed-code-toggle"
                aria-expanded=move || embed_open.get().to_string()
                on:click=move |_| embed_open.update(|open| *open = !*open)
                title="Put this view, with these settings, in your own page">
                "Copy embed code"
            </button>
        </nav>
    }
}

/// The panel of the view shown.
#[component]
pub fn ViewPanel(
    /// The page's run.
    run: RunController,
    /// The view shown.
    view_shown: RwSignal<View>,
    /// The head the attention maps show.
    picked: RwSignal<(usize, usize)>,
    /// Log colours in the attention maps.
    log_colours: RwSignal<bool>,
    /// Held-out prose for the live needle test.
    haystack: Memo<Option<String>>,
    /// The live needle runner's state, kept across tabs.
    needles: NeedleLiveState,
) -> impl IntoView {
    let RunController {
        focus,
        needle_subjects,
        rotary_shape,
        inputs: RunInputs { manifest, .. },
        ..
    } = run;
    view! {
        <section class="panel" role="tabpanel" data-testid="view-panel" data-view=move || view_shown.get().key()>
            {move || match view_shown.get() {
                View::Perplexity => view! { <PerplexityPanel run=run /> }.into_any(),
                View::Tokens => view! {
                    <p class="view-note">{move || focus.with(|r| r.as_ref().map(|r| format!("Tokens of the focus series ({} under {}), coloured by surprise.", r.backend, r.scheme)))}</p>
                    <TokenPanel run=run />
                }.into_any(),
                View::Attention => view! { <AttentionPanel run=run picked=picked log_colours=log_colours /> }.into_any(),
                View::Needle => view! { <NeedlePanel subjects=needle_subjects haystack=haystack live=needles /> }.into_any(),
                View::Frequencies => view! { <FrequencyPanel shape=rotary_shape /> }.into_any(),
                View::Training => view! { <TrainingPanel manifest=manifest /> }.into_any(),
            }}
        </section>
    }
}
