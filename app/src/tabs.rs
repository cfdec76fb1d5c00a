//! The studio's tabs (one per view, and the embed-code toggle) and the panel of the view
//! shown.

use leptos::prelude::*;
use wasm_bindgen::JsCast;

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
    // The tab pattern of WAI-ARIA: arrows (and Home, End) move between tabs, which
    // show their view at once; Tab leaves the list (only the selected tab is in the
    // tab order).
    let on_key = move |event: web_sys::KeyboardEvent| {
        let Some(next) = tab_after_key(view_shown.get_untracked(), &event.key()) else {
            return;
        };
        event.prevent_default();
        view_shown.set(next);
        let selector = format!("button[role=\"tab\"][data-view=\"{}\"]", next.key());
        if let Some(Ok(Some(tab))) = web_sys::window()
            .and_then(|w| w.document())
            .map(|d| d.query_selector(&selector))
        {
            if let Ok(tab) = tab.dyn_into::<web_sys::HtmlElement>() {
                let _ = tab.focus();
            }
        }
    };
    view! {
        <nav class="tabs" role="tablist" aria-label="Views" on:keydown=on_key>
            {View::ALL.iter().map(|&v| view! {
                <button role="tab" type="button" data-testid="tab" data-view=v.key()
                    aria-selected=move || (view_shown.get() == v).to_string()
                    tabindex=move || if view_shown.get() == v { "0" } else { "-1" }
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

/// The tab a key moves to from `current`: the next or previous one (wrapping), the first
/// or the last; `None` for any other key.
pub fn tab_after_key(current: View, key: &str) -> Option<View> {
    let all = View::ALL;
    let at = all.iter().position(|&v| v == current)?;
    let n = all.len();
    match key {
        "ArrowRight" => Some(all[(at + 1) % n]),
        "ArrowLeft" => Some(all[(at + n - 1) % n]),
        "Home" => Some(all[0]),
        "End" => Some(all[n - 1]),
        _ => None,
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
        chart,
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
                    <p class="view-note">{move || focus.with(|r| r.as_ref().map(|r| format!("Tokens of the focus series ({}: {} under {}, on {}), coloured by surprise.",
                        chart.with(|c| c.first().map(|s| s.label.clone()).unwrap_or_default()), r.model, r.scheme, r.backend)))}</p>
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrows_move_between_tabs_and_wrap() {
        let (first, last) = (View::ALL[0], View::ALL[View::ALL.len() - 1]);
        assert_eq!(tab_after_key(first, "ArrowRight"), Some(View::ALL[1]));
        assert_eq!(tab_after_key(first, "ArrowLeft"), Some(last));
        assert_eq!(tab_after_key(last, "ArrowRight"), Some(first));
        assert_eq!(tab_after_key(View::ALL[2], "Home"), Some(first));
        assert_eq!(tab_after_key(View::ALL[2], "End"), Some(last));
        assert_eq!(tab_after_key(first, "Enter"), None);
    }
}
