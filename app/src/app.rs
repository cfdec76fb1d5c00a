//! The studio page: choose a prompt (a held-out sample or your own text) and its length,
//! the model/scheme series to compare, then run it whole or grow it token by token, and
//! read the views: perplexity against position, token surprise, attention maps, and the
//! published needle, frequency and training figures. All of that state lives in the URL.
//! Models run on WebGPU when the browser has an adapter, else on the CPU; the backend box
//! switches, and a GPU failure moves the page to the CPU with a notice.

use engine::DeviceKind;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::analysis::{head_in_shape, uniform_nll};
use crate::controls::{PromptControls, RunButtons, SeriesEditor};
use crate::cpu_worker::CpuWorker;
use crate::embed_code::EmbedCode;
use crate::format::thousands;
use crate::head_profile::{pooled_map, profile};
use crate::manifest::Manifest;
use crate::model_store::GpuStatus;
use crate::page_engine::{page_gpu, page_manifest, page_samples};
use crate::panels::{FrequencyPanel, NeedlePanel, TrainingPanel, SHIPPED_ROTARY_SHAPE};
use crate::pause::next_frame;
use crate::run_controller::{Activity, RunController, RunInputs};
use crate::samples::{resolve_prompt, SampleSet};
use crate::url_state::{PromptSource, StudioState, View, MAX_URL_PROMPT_CHARS};
use crate::views::{AttentionHeatmap, HeadGrid, HeatScale, PerplexityChart, TokenStrip};

/// Cells per side of a head's thumbnail in the head grid.
const THUMBNAIL_CELLS: usize = 48;

/// The backend line: "WebGPU · <adapter>" when models run on the GPU, else "CPU" and why
/// (`gpu` is `None` while the page is still opening the WebGPU device; `failure` is a
/// WebGPU error that moved the page to the CPU).
pub fn backend_label(on_gpu: bool, gpu: Option<&GpuStatus>, failure: Option<&str>) -> String {
    if let (true, Some(GpuStatus::Ready { adapter, .. })) = (on_gpu, gpu) {
        return format!("WebGPU \u{b7} {adapter}");
    }
    let why = match (gpu, failure) {
        (_, Some(reason)) => format!("WebGPU failed: {reason}"),
        (Some(GpuStatus::Failed(reason)), None) => format!("WebGPU failed: {reason}"),
        (Some(GpuStatus::NoAdapter), None) => "no WebGPU adapter in this browser".to_string(),
        (Some(GpuStatus::Ready { .. }), None) => "chosen; WebGPU is available".to_string(),
        (None, None) => "looking for WebGPU\u{2026}".to_string(),
    };
    format!("CPU ({why})")
}

/// The notice shown when WebGPU failed and the page moved to the CPU.
pub fn fallback_notice(reason: &str) -> String {
    format!(
        "WebGPU failed ({reason}), so the studio now runs on the CPU path. \
         Choose WebGPU under Backend to try the GPU again."
    )
}

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

/// The whole studio page.
#[component]
pub fn App() -> impl IntoView {
    let (initial, url_problems) = initial_state();
    let view_shown = RwSignal::new(initial.view);
    let series = RwSignal::new(initial.series.clone());
    let source = RwSignal::new(initial.prompt.clone());
    let length = RwSignal::new(initial.length);
    let url_problems = RwSignal::new(url_problems);

    let manifest = RwSignal::new(None::<Manifest>);
    let samples = RwSignal::new(None::<SampleSet>);
    // The page's error line (the run controller reports there too).
    let error = RwSignal::new(None::<String>);
    let grow_step = RwSignal::new(16usize);
    // The head the full attention map shows: (layer, head).
    let picked = RwSignal::new((0usize, 0usize));
    let log_colours = RwSignal::new(false);
    let embed_open = RwSignal::new(false);

    let haystack = Memo::new(move |_| {
        samples.with(|set| {
            set.as_ref()
                .and_then(|s| s.samples.first())
                .map(|s| s.text.clone())
        })
    });

    let gpu = LocalResource::new(page_gpu);
    let use_gpu = RwSignal::new(true);
    let gpu_failure = RwSignal::new(None::<String>);

    spawn_local(async move {
        match page_manifest().await {
            Ok(m) => manifest.set(Some((*m).clone())),
            Err(e) => error.set(Some(format!("Cannot list the models: {e}"))),
        }
    });
    spawn_local(async move {
        match page_samples().await {
            Ok(set) => samples.set(Some((*set).clone())),
            Err(e) => error.set(Some(format!("Cannot load the prompt samples: {e}"))),
        }
    });

    // The prompt text: the chosen sample's (the first when none is named yet) or the
    // user's own.
    let prompt_text = Memo::new(move |_| match source.get() {
        PromptSource::Text(text) => text,
        sample => samples.with(|set| {
            set.as_ref()
                .and_then(|set| resolve_prompt(&sample, set).ok())
                .unwrap_or_default()
        }),
    });
    let unknown_sample = Memo::new(move |_| match source.get() {
        PromptSource::Sample(id) if id.is_empty() => None,
        sample @ PromptSource::Sample(_) => samples.with(|set| {
            set.as_ref()
                .and_then(|set| resolve_prompt(&sample, set).err())
        }),
        PromptSource::Text(_) => None,
    });

    // What the URL holds (and what "Copy embed code" embeds).
    let state = Memo::new(move |_| StudioState {
        view: view_shown.get(),
        series: series.get(),
        prompt: source.get(),
        length: length.get(),
    });
    // Keep the URL in step with the state.
    Effect::new(move |_| state.with(write_url));

    let run = RunController::new(
        RunInputs {
            manifest,
            series,
            length,
            prompt_text,
            grow_step,
            gpu,
            use_gpu,
            gpu_failure,
            error,
        },
        SHIPPED_ROTARY_SHAPE,
    );
    let RunController {
        series_problems,
        activity,
        chart,
        focus,
        compared,
        token_texts,
        counts,
        summary,
        rotary_shape,
        needle_subjects,
        shown_run,
        ..
    } = run;
    let run_whole = move || run.run_whole();

    // The first run, once the models and the samples are listed (the prompt may be a
    // sample); later changes of series, sample or length run again.
    // (Typing in the prompt box does not run: Run or Ctrl+Enter does.)
    let sample_choice = Memo::new(move |_| match source.get() {
        PromptSource::Sample(id) => Some(id),
        PromptSource::Text(_) => None,
    });
    Effect::new(move |_| {
        let needs_samples = sample_choice.get().is_some();
        let ready =
            manifest.with(Option::is_some) && (!needs_samples || samples.with(Option::is_some));
        series.track();
        length.track();
        if ready {
            run_whole();
        }
    });

    let choose_backend = move |want_gpu: bool| run.choose_backend(want_gpu);

    let busy = move || matches!(activity.get(), Activity::Loading | Activity::Running);
    let has_gpu = move || gpu.with(|s| matches!(s, Some(GpuStatus::Ready { .. })));
    // The backend of the run shown, else the page's choice.
    let shows_gpu = move || {
        focus.with(|f| match f {
            Some(run) => run.backend == DeviceKind::WebGpu,
            None => use_gpu.get() && has_gpu(),
        })
    };
    let backend = move || {
        let on_gpu = shows_gpu();
        gpu.with(|status| {
            gpu_failure.with(|f| backend_label(on_gpu, status.as_ref(), f.as_deref()))
        })
    };

    let training_length =
        Signal::derive(move || focus.with(|r| r.as_ref().map_or(128, |r| r.training_length)));
    let uniform = Signal::derive(move || {
        focus.with(|r| uniform_nll(r.as_ref().map_or(4096, |r| r.vocab_size)))
    });
    let tokens = Signal::derive(move || {
        focus.with(|r| r.as_ref().map(|r| r.tokens.clone()).unwrap_or_default())
    });
    let attention = Signal::derive(move || {
        focus.with(|r| {
            let (layer, head) = picked.get();
            r.as_ref()?.attention_map(layer, head)
        })
    });
    let compared_attention = Signal::derive(move || {
        compared.with(|c| {
            let (layer, head) = picked.get();
            c.as_ref()?.1.attention_map(layer, head)
        })
    });
    let heat_scale = Signal::derive(move || {
        if log_colours.get() {
            HeatScale::Log
        } else {
            HeatScale::Linear
        }
    });
    let shape =
        Signal::derive(move || focus.with(|r| r.as_ref().map_or((0, 0), |r| (r.layers, r.heads))));
    // A focus with fewer layers or heads than the picked head's: back to 0 there.
    Effect::new(move |_| {
        if let Some((fixed, _)) = head_in_shape(picked.get_untracked(), shape.get()) {
            picked.set(fixed);
        }
    });
    let axis_length = Signal::derive(move || counts.get().1);
    // Every head of the focus run (computed when the attention tab reads them).
    let head_profiles = Memo::new(move |_| {
        focus.with(|r| {
            r.as_ref().map_or_else(Vec::new, |r| {
                r.attention
                    .iter()
                    .enumerate()
                    .map(|(i, rows)| profile(i / r.heads.max(1), i % r.heads.max(1), rows))
                    .collect()
            })
        })
    });
    let head_thumbnails = Memo::new(move |_| {
        focus.with(|r| {
            r.as_ref().map_or_else(Vec::new, |r| {
                r.attention
                    .iter()
                    .map(|rows| pooled_map(rows, THUMBNAIL_CELLS))
                    .collect()
            })
        })
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
                <p class="backend-line">
                    <label title="Where the models run: WebGPU (this browser's GPU) or the CPU path (the reference). Switching re-runs the prompt.">
                        "Backend "
                        <select
                            data-testid="backend-select"
                            on:change=move |ev| choose_backend(event_target_value(&ev) == "webgpu")
                            prop:disabled=busy
                        >
                            <option value="webgpu" prop:selected=shows_gpu prop:disabled=move || !has_gpu()>"WebGPU"</option>
                            <option value="cpu" prop:selected=move || !shows_gpu()>"CPU"</option>
                        </select>
                    </label>
                    " "
                    <span data-testid="backend">{backend}</span>
                    " "
                    {move || manifest.get().map(|m| view! { <span class="model-sizes">{model_sizes(&m)}</span> })}
                </p>
                {move || gpu_failure.get().map(|reason| view! {
                    <p class="notice" data-testid="backend-notice" role="status">{fallback_notice(&reason)}</p>
                })}
                {move || {
                    let problems = url_problems.get();
                    (!problems.is_empty()).then(|| view! {
                        <p class="notice" data-testid="url-problems" role="status">
                            {format!("Some of this link's settings were not understood and were left at their defaults: {}.", problems.join("; "))}
                        </p>
                    })
                }}
            </header>

            {move || controls_shown.get().then(|| view! {
                <section class="controls">
                    <PromptControls source=source samples=samples prompt_text=prompt_text length=length
                        counts=counts unknown_sample=unknown_sample sample_choice=sample_choice on_run=run_whole />
                    {move || source.with(PromptSource::too_long_for_url).then(|| view! {
                        <p class="notice" role="status" data-testid="link-notice">
                            {format!("This prompt is over {} characters, too long for the page's link: the address bar keeps the other settings, but a reload or a shared link opens the first sample.", thousands(MAX_URL_PROMPT_CHARS as u64))}
                        </p>
                    })}
                    <SeriesEditor series=series manifest=manifest problems=series_problems />
                    <RunButtons run=run manifest=manifest grow_step=grow_step />
                    {move || error.get().map(|e| view! { <p class="error" data-testid="error" role="alert">{e}</p> })}
                    <p class="run-summary" data-testid="run-summary" data-run=move || shown_run.get()
                        data-backend=move || focus.with(|r| r.as_ref().map(|r| r.backend.name()))
                        data-cpu=move || { summary.track(); CpuWorker::shared_placement() }>
                        {move || summary.get()}
                    </p>
                </section>
            })}

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
            {move || embed_open.get().then(|| view! {
                <EmbedCode state=state />
            })}

            {move || panel_shown.get().then(|| view! {
                <section class="panel" role="tabpanel" data-testid="view-panel" data-view=move || view_shown.get().key()>
                    {move || match view_shown.get() {
                        View::Perplexity => view! {
                            <PerplexityChart series=chart token_texts=token_texts training_length=training_length
                                uniform_nll=uniform axis_length=axis_length />
                        }.into_any(),
                        View::Tokens => view! {
                            <p class="view-note">{move || focus.with(|r| r.as_ref().map(|r| format!("Tokens of the focus series ({} under {}), coloured by surprise.", r.backend, r.scheme)))}</p>
                            <TokenStrip tokens=tokens nll_max=uniform training_length=training_length />
                        }.into_any(),
                        View::Attention => view! {
                            <div class="row">
                                <label>"Layer "
                                    <select data-testid="layer-select" on:change=move |ev| picked.update(|p| p.0 = event_target_value(&ev).parse().unwrap_or(0))>
                                        {move || (0..shape.get().0).map(|i| view! { <option value=i selected=move || picked.get().0 == i>{i}</option> }).collect_view()}
                                    </select>
                                </label>
                                <label>"Head "
                                    <select data-testid="head-select" on:change=move |ev| picked.update(|p| p.1 = event_target_value(&ev).parse().unwrap_or(0))>
                                        {move || (0..shape.get().1).map(|i| view! { <option value=i selected=move || picked.get().1 == i>{i}</option> }).collect_view()}
                                    </select>
                                </label>
                                <label>
                                    <input type="checkbox" prop:checked=move || log_colours.get()
                                        on:change=move |ev| log_colours.set(event_target_checked(&ev)) />
                                    " log colour scale"
                                </label>
                            </div>
                            <div class="attention-pair" data-testid="attention-pair">
                                <figure>
                                    <figcaption>{move || chart.with(|c| c.first().map(|s| s.label.clone()))}</figcaption>
                                    <AttentionHeatmap map=attention labels=token_texts scale=heat_scale />
                                </figure>
                                {move || compared.with(Option::is_some).then(|| view! {
                                    <figure>
                                        <figcaption>{move || compared.with(|c| c.as_ref().map(|(label, _)| label.clone()))}</figcaption>
                                        <AttentionHeatmap map=compared_attention labels=token_texts scale=heat_scale />
                                    </figure>
                                })}
                            </div>
                            <h3 class="sub-heading">"Every head"</h3>
                            <HeadGrid profiles=head_profiles thumbnails=head_thumbnails
                                heads=Signal::derive(move || shape.get().1) selected=picked scale=heat_scale />
                        }.into_any(),
                        View::Needle => view! {
                            <NeedlePanel subjects=needle_subjects haystack=haystack />
                        }
                        .into_any(),
                        View::Frequencies => view! { <FrequencyPanel shape=rotary_shape /> }.into_any(),
                        View::Training => view! { <TrainingPanel manifest=manifest /> }.into_any(),
                    }}
                </section>
            })}
        </main>
        </div>
    }
}

/// "RoPE 10.2 MB · DroPE 10.2 MB ..." from the manifest.
fn model_sizes(manifest: &Manifest) -> String {
    manifest
        .models
        .iter()
        .filter(|m| m.trained)
        .map(|m| format!("{} {}", m.label, crate::format::megabytes(m.total_bytes())))
        .collect::<Vec<_>>()
        .join(" \u{b7} ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_label_says_why_the_cpu_runs() {
        let label = |gpu: Option<GpuStatus>, failure: Option<&str>| {
            backend_label(false, gpu.as_ref(), failure)
        };
        assert_eq!(
            label(Some(GpuStatus::NoAdapter), None),
            "CPU (no WebGPU adapter in this browser)"
        );
        assert_eq!(
            label(Some(GpuStatus::Failed("device refused".into())), None),
            "CPU (WebGPU failed: device refused)"
        );
        assert_eq!(
            label(Some(GpuStatus::NoAdapter), Some("device lost")),
            "CPU (WebGPU failed: device lost)"
        );
        assert!(label(None, None).starts_with("CPU (looking for WebGPU"));
        assert!(fallback_notice("device lost").contains("WebGPU failed (device lost)"));
    }
}
