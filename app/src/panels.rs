//! The tabs that show published data: each fetches what its view draws (once, when the
//! tab first opens) and shows the view, or what went wrong. The views themselves take
//! their data as props, so they also mount alone.

use leptos::prelude::*;

use crate::manifest::Manifest;
use crate::needle_live::NeedleSubject;
use crate::published::{fetch_needle_grid, fetch_train_log};
use crate::views::needle_live::NeedleLiveState;
use crate::views::{FrequencyExplorer, NeedleLive, NeedleResults, TrainingStory};

/// The live needle runner on the studio's series, and the needle grid from
/// `results/niah.json` with the paper's numbers beside it.
#[component]
pub fn NeedlePanel(
    /// The studio's series with their loaded models.
    #[prop(into)]
    subjects: Signal<Vec<NeedleSubject>, LocalStorage>,
    /// Held-out prose for the haystacks.
    #[prop(into)]
    haystack: Signal<Option<String>>,
    /// The live runner's lengths, trials and results, kept by the page across tabs.
    live: NeedleLiveState,
) -> impl IntoView {
    let grid =
        LocalResource::new(|| async { fetch_needle_grid().await.map_err(|e| e.to_string()) });
    view! {
        <NeedleLive subjects=subjects haystack=haystack state=live />
        <h3>"Precomputed"</h3>
        <p class="view-note">
            "Needle in a haystack, precomputed by " <code>"cargo xtask results"</code>
            " on held-out text: a 7-digit number hidden at several depths, asked for at the end; exact match, greedy."
        </p>
        {move || match grid.get() {
            None => view! { <p class="placeholder">"Loading the needle results\u{2026}"</p> }.into_any(),
            Some(Err(e)) => view! { <p class="error" role="alert">{e}</p> }.into_any(),
            Some(Ok(grid)) => view! { <NeedleResults grid=Signal::stored(grid) /> }.into_any(),
        }}
    }
}

/// Loss curves of every trained model in the manifest.
#[component]
pub fn TrainingPanel(
    /// The models' list (the trained ones are drawn).
    #[prop(into)]
    manifest: Signal<Option<Manifest>>,
) -> impl IntoView {
    let logs = LocalResource::new(move || {
        let ids: Vec<String> = manifest.with(|m| {
            m.as_ref()
                .map(|m| {
                    m.models
                        .iter()
                        .filter(|e| e.trained)
                        .map(|e| e.id.clone())
                        .collect()
                })
                .unwrap_or_default()
        });
        async move {
            let mut logs = Vec::new();
            for id in ids {
                logs.push(fetch_train_log(&id).await.map_err(|e| e.to_string())?);
            }
            Ok::<_, String>(logs)
        }
    });
    view! {
        {move || match logs.get() {
            None => view! { <p class="placeholder">"Loading the training logs\u{2026}"</p> }.into_any(),
            Some(Err(e)) => view! { <p class="error" role="alert">{e}</p> }.into_any(),
            Some(Ok(logs)) if logs.is_empty() => view! { <p class="placeholder">"No trained models listed."</p> }.into_any(),
            Some(Ok(logs)) => view! { <TrainingStory logs=Signal::stored(logs) /> }.into_any(),
        }}
    }
}

/// `(head_dim, rope_theta, L)` of the shipped models: the frequency explorer's shape
/// before a model has run.
pub const SHIPPED_ROTARY_SHAPE: (usize, f64, usize) = (32, 10_000.0, 128);

/// The frequency explorer for the focus model's rotary shape.
#[component]
pub fn FrequencyPanel(
    /// `(head_dim, rope_theta, L)` of the focus model.
    #[prop(into)]
    shape: Signal<(usize, f64, usize)>,
) -> impl IntoView {
    view! {
        <FrequencyExplorer
            head_dim=Signal::derive(move || shape.get().0)
            base=Signal::derive(move || shape.get().1)
            training_length=Signal::derive(move || shape.get().2)
        />
    }
}
