//! The studio page: choose a prompt (a held-out sample or your own text) and its length,
//! the model/scheme series to compare, then run it whole or grow it token by token, and
//! read the views: perplexity against position, token surprise, attention maps, and the
//! published needle, frequency and training figures. All of that state lives in the URL.
//! Models run on WebGPU when the browser has an adapter, else on the CPU; the backend box
//! switches, and a GPU failure moves the page to the CPU with a notice.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::backend_line::BackendLine;
use crate::controls::{PromptControls, RunButtons, SeriesEditor};
use crate::cpu_worker::CpuWorker;
use crate::embed_code::EmbedCode;
use crate::format::thousands;
use crate::manifest::Manifest;
use crate::open_model::OpenModel;
use crate::page_engine::{page_gpu, page_manifest, page_samples};
use crate::panels::SHIPPED_ROTARY_SHAPE;
use crate::pause::next_frame;
use crate::run_controller::{RunController, RunInputs};
use crate::runs::known_series;
use crate::samples::{resolve_prompt, SampleSet};
use crate::tabs::{ViewPanel, ViewTabs};
use crate::url_state::{PromptSource, StudioState, MAX_URL_PROMPT_CHARS};
use crate::views::needle_live::NeedleLiveState;
use crate::views::{ErrorLine, Notice};

/// The page URL's query for `state` (the prompt text is left out when too long to share).
fn write_url(state: &StudioState) {
    let (query, _) = state.to_query();
    let Some(window) = web_sys::window() else {
        return;
    };
    if window.location().search().ok().as_deref() == Some(query.as_str()) {
        return;
    }
    if let Ok(history) = window.history() {
        let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&query));
    }
}

/// The state the page opened with, and what was wrong in its URL.
fn initial_state() -> (StudioState, Vec<String>) {
    let search = web_sys::window()
        .and_then(|w| w.location().search().ok())
        .unwrap_or_default();
    StudioState::from_query(&search)
}

/// The whole studio page: its state (all of it in the URL), the run controller, and the
/// header, controls, tabs and view panel over them.
#[component]
pub fn App() -> impl IntoView {
    let (initial, url_problems) = initial_state();
    let view_shown = RwSignal::new(initial.view);
    let series = RwSignal::new(initial.series.clone());
    let source = RwSignal::new(initial.prompt.clone());
    let length = RwSignal::new(initial.length);
    let backend = RwSignal::new(initial.backend);
    let url_problems = RwSignal::new(url_problems);

    let manifest = RwSignal::new(None::<Manifest>);
    let samples = RwSignal::new(None::<SampleSet>);
    // The page's error line (the run controller reports there too).
    let error = RwSignal::new(None::<String>);
    let grow_step = RwSignal::new(16usize);
    // The head the full attention map shows: (layer, head), and its colour scale.
    let picked = RwSignal::new((0usize, 0usize));
    // Log colours first: attention weights span decades, and on a linear scale most of a
    // map is one dark colour.
    let log_colours = RwSignal::new(true);
    let embed_open = RwSignal::new(false);
    // The live needle runner's lengths and results outlive its tab.
    let needles = NeedleLiveState::new(&initial.needle);

    spawn_local(async move {
        match page_manifest().await {
            Ok(m) => {
                // A link's unknown models are left out before they become series (a
                // local model stays: the page asks for its files).
                let (kept, unknown) = known_series(&m, &series.get_untracked());
                if !unknown.is_empty() {
                    series.set(kept);
                    url_problems.update(|p| p.extend(unknown));
                }
                manifest.set(Some((*m).clone()));
            }
            Err(e) => error.set(Some(format!("Cannot list the models: {e}"))),
        }
    });
    spawn_local(async move {
        match page_samples().await {
            Ok(set) => samples.set(Some((*set).clone())),
            Err(e) => error.set(Some(format!("Cannot load the prompt samples: {e}"))),
        }
    });
    let prompt = PromptState::new(source, samples);

    // What the URL holds (and what "Copy embed code" embeds).
    let state = Memo::new(move |_| StudioState {
        view: view_shown.get(),
        series: series.get(),
        prompt: source.get(),
        length: length.get(),
        backend: backend.get(),
        needle: needles.settings(),
    });
    // Keep the URL in step with the state.
    Effect::new(move |_| state.with(write_url));

    let run = RunController::new(
        RunInputs {
            manifest,
            series,
            length,
            prompt_text: prompt.text.into(),
            grow_step,
            gpu: LocalResource::new(page_gpu),
            backend,
            gpu_failure: RwSignal::new(None),
            error,
            visible: Signal::stored(true),
        },
        SHIPPED_ROTARY_SHAPE,
    );
    let RunController {
        series_problems,
        cap_notes,
        counts,
        summary,
        focus,
        shown_run,
        ..
    } = run;

    // The first run, once the models and the samples are listed (the prompt may be a
    // sample); later changes of series, sample or length run again.
    // (Typing in the prompt box does not run: Run or Ctrl+Enter does.)
    Effect::new(move |_| {
        let needs_samples = prompt.sample_choice.get().is_some();
        let ready =
            manifest.with(Option::is_some) && (!needs_samples || samples.with(Option::is_some));
        series.track();
        length.track();
        if ready {
            run.series_changed();
        }
    });

    // The studio mounts in three tasks (the header; the controls; the view panel), each
    // with the effects it starts: mounting it all at once held the main thread for
    // 80-115 ms, and the page should never block for 100.
    let stage = RwSignal::new(0u8);
    spawn_local(async move {
        next_frame().await;
        stage.set(1);
        next_frame().await;
        stage.set(2);
    });
    let controls_shown = Memo::new(move |_| stage.get() >= 1);
    let panel_shown = Memo::new(move |_| stage.get() >= 2);

    view! {
        <div class="drope">
        <main class="studio">
            <header>
                <h1>"DroPE Studio"</h1>
                <p class="tagline">
                    "Language models trained with rotary position embeddings (RoPE) fall apart on prompts longer than the length L they were trained on. "
                    "DroPE drops RoPE after pretraining and recalibrates briefly at the same length: the model then reads far past L. See it here, on real models running in your browser."
                </p>
                <BackendLine run=run />
                <Notice testid="url-problems" text=Signal::derive(move || url_problems.with(|p| (!p.is_empty()).then(|| format!(
                    "Some of this link's settings were not understood and were left at their defaults: {}.", p.join("; ")))))
                />
            </header>

            // Side by side on a wide screen (the chart in view on the first screen), one
            // above the other on a narrow one.
            <div class="studio-body">
            {move || controls_shown.get().then(|| view! {
                <section class="controls">
                    <PromptControls source=source samples=samples prompt_text=prompt.text length=length
                        counts=counts unknown_sample=prompt.unknown_sample sample_choice=prompt.sample_choice on_run=move || run.run_whole() />
                    <Notice testid="link-notice" text=Signal::derive(move || source.with(PromptSource::too_long_for_url).then(|| format!(
                        "This prompt is over {} characters, too long for the page's link: the address bar keeps the other settings, but a reload or a shared link opens the first sample.",
                        thousands(MAX_URL_PROMPT_CHARS as u64))))
                    />
                    <SeriesEditor series=series manifest=manifest problems=series_problems />
                    <OpenModel manifest=manifest series=series />
                    <RunButtons run=run manifest=manifest grow_step=grow_step />
                    <Notice testid="cap-notice" text=Signal::derive(move || cap_notes.with(|n| (!n.is_empty()).then(|| n.join(" "))))
                    />
                    <ErrorLine testid="error" text=error />
                    <p class="run-summary" data-testid="run-summary" data-run=move || shown_run.get()
                        data-backend=move || focus.with(|r| r.as_ref().map(|r| r.backend.name()))
                        data-cpu=move || { summary.track(); CpuWorker::shared_placement() }>
                        {move || summary.get()}
                    </p>
                </section>
            })}

            <div class="studio-main">
            <ViewTabs view_shown=view_shown embed_open=embed_open />
            {move || embed_open.get().then(|| view! { <EmbedCode state=state /> })}

            {move || panel_shown.get().then(|| view! {
                <ViewPanel run=run view_shown=view_shown picked=picked log_colours=log_colours
                    haystack=prompt.haystack needles=needles />
            })}
            </div>
            </div>
        </main>
        </div>
    }
}

/// The prompt as the page derives it from its source and the samples.
#[derive(Clone, Copy)]
struct PromptState {
    /// The prompt text: the chosen sample's (the first when none is named yet) or the
    /// user's own.
    text: Memo<String>,
    /// Why the sample the URL names cannot be shown, if it cannot.
    unknown_sample: Memo<Option<String>>,
    /// The chosen sample's id; `None` for the user's own text.
    sample_choice: Memo<Option<String>>,
    /// Held-out prose for the live needle test's haystacks (the first sample).
    haystack: Memo<Option<String>>,
}

impl PromptState {
    fn new(source: RwSignal<PromptSource>, samples: RwSignal<Option<SampleSet>>) -> Self {
        PromptState {
            text: Memo::new(move |_| match source.get() {
                PromptSource::Text(text) => text,
                // An unknown sample shows the first one (and says so).
                sample => samples.with(|set| {
                    set.as_ref()
                        .and_then(|set| {
                            resolve_prompt(&sample, set)
                                .or_else(|_| {
                                    resolve_prompt(&PromptSource::Sample(String::new()), set)
                                })
                                .ok()
                        })
                        .unwrap_or_default()
                }),
            }),
            unknown_sample: Memo::new(move |_| match source.get() {
                PromptSource::Sample(id) if id.is_empty() => None,
                sample @ PromptSource::Sample(_) => samples.with(|set| {
                    set.as_ref()
                        .and_then(|set| resolve_prompt(&sample, set).err())
                        .map(|e| format!("{e}: the first sample is shown instead."))
                }),
                PromptSource::Text(_) => None,
            }),
            sample_choice: Memo::new(move |_| match source.get() {
                PromptSource::Sample(id) => Some(id),
                PromptSource::Text(_) => None,
            }),
            haystack: Memo::new(move |_| {
                samples.with(|set| {
                    set.as_ref()
                        .and_then(|s| s.samples.first())
                        .map(|s| s.text.clone())
                })
            }),
        }
    }
}
