//! The studio page: choose a prompt (a held-out sample or your own text) and its length,
//! the model/scheme series to compare, then run it whole or grow it token by token, and
//! read the views: perplexity against position, token surprise, attention maps, and the
//! published needle, frequency and training figures. All of that state lives in the URL.
//! Models run on WebGPU when the browser has an adapter, else on the CPU; the backend box
//! switches, and a GPU failure moves the page to the CPU with a notice.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use engine::gpu::GpuContext;
use engine::{DeviceKind, EngineError};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::analysis::{head_in_shape, uniform_nll, RunResult};
use crate::controls::{PromptControls, SeriesEditor};
use crate::cpu_worker::CpuWorker;
use crate::embed_code::EmbedCode;
use crate::error::AppError;
use crate::format::{bytes_of, percent, quoted, thousands};
use crate::head_profile::{pooled_map, profile};
use crate::manifest::Manifest;
use crate::model_store::{DownloadProgress, GpuStatus};
use crate::needle_live::NeedleSubject;
use crate::page_engine::{page_gpu, page_manifest, page_model, page_samples};
use crate::panels::{FrequencyPanel, NeedlePanel, TrainingPanel, SHIPPED_ROTARY_SHAPE};
use crate::pause::{next_frame, pause};
use crate::runs::{resolve_series, Comparison, ResolvedSeries};
use crate::samples::{check_prompt_size, resolve_prompt, SampleSet};
use crate::url_state::{PromptSource, StudioState, View, MAX_URL_PROMPT_CHARS};
use crate::views::{
    AttentionHeatmap, ChartSeries, HeadGrid, HeatScale, PerplexityChart, TokenStrip,
};

/// Cells per side of a head's thumbnail in the head grid.
const THUMBNAIL_CELLS: usize = 48;

/// Tokens added per step when growing.
const GROW_STEPS: &[usize] = &[1, 4, 16, 64];

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

/// What the page is doing with the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Nothing running.
    Idle,
    /// Downloading or loading models.
    Loading,
    /// Running the whole prompt.
    Running,
    /// Growing the prompt, step after step.
    Growing,
    /// A grow paused part way (Step and Play continue it).
    Paused,
}

/// How a run goes through the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// All tokens in one pass per series.
    Whole,
    /// A few tokens per step, redrawing after each.
    Grow,
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
    let error = RwSignal::new(None::<String>);
    let series_problems = RwSignal::new(Vec::<String>::new());
    let progress = RwSignal::new(None::<(String, DownloadProgress)>);
    let activity = RwSignal::new(Activity::Idle);
    // A step is running (Pause takes effect when it ends: its tokens still arrive).
    let stepping = RwSignal::new(false);
    let chart = RwSignal::new(Vec::<ChartSeries>::new());
    let focus = RwSignal::new(None::<Arc<RunResult>>);
    // The second series (label, result), whose attention shows beside the focus'.
    let compared = RwSignal::new(None::<(String, Arc<RunResult>)>);
    let token_texts = RwSignal::new(Vec::<String>::new());
    // Tokens run so far / in the prompt (after the length and the cap), and before cuts.
    let counts = RwSignal::new((0usize, 0usize, 0usize));
    let summary = RwSignal::new(None::<String>);
    // The focus model's (head_dim, rope_theta, L), for the frequency explorer; the
    // shipped models' shape until a model has run.
    let rotary_shape = RwSignal::new(SHIPPED_ROTARY_SHAPE);
    let grow_step = RwSignal::new(16usize);
    // The head the full attention map shows: (layer, head).
    let picked = RwSignal::new((0usize, 0usize));
    let log_colours = RwSignal::new(false);
    let embed_open = RwSignal::new(false);

    // The comparison being grown (models come from the page's engine).
    let comparison = StoredValue::new_local(None::<Rc<RefCell<Option<Comparison>>>>);
    // Bumped by every new run; a run whose number is no longer current stops.
    let generation = StoredValue::new(0u64);
    // The run shown (its generation), for tests and for telling runs apart.
    let shown_run = RwSignal::new(0u64);
    // Set when WebGPU failed mid-run: the run starts again (on the CPU).
    let restart = RwSignal::new(None::<Mode>);

    // The series' loaded models, for the live needle runner.
    let needle_subjects = RwSignal::new_local(Vec::<NeedleSubject>::new());
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

    let wanted_context = move || -> Option<Rc<GpuContext>> {
        if use_gpu.get_untracked() {
            gpu.get_untracked().and_then(|status| status.context())
        } else {
            None
        }
    };
    let fall_back_to_cpu = move |reason: String| {
        use_gpu.set(false);
        gpu_failure.set(Some(reason));
    };

    // Every series' model, downloaded if needed, on the wanted device.
    let load_models = move |resolved: Vec<ResolvedSeries>, run_id: u64| async move {
        gpu.await;
        let mut out = Vec::new();
        for series in resolved {
            if generation.get_value() != run_id {
                return Ok(None);
            }
            let label = series.entry.label.clone();
            let (loaded, failure) = page_model(&series.entry, wanted_context(), |p| {
                progress.set(Some((label.clone(), p)));
            })
            .await;
            progress.set(None);
            if let Some(reason) = failure {
                fall_back_to_cpu(reason);
            }
            let model = loaded.map_err(|e| {
                AppError::Input(format!("Could not load {}: {e}", series.entry.label))
            })?;
            out.push((series, model));
        }
        Ok::<_, AppError>(Some(out))
    };

    // Shows what the comparison has so far.
    let publish = move |c: &Comparison| {
        shown_run.set(generation.get_value());
        if let Some(shape) = c.focus_rotary_shape() {
            rotary_shape.set(shape);
        }
        chart.set(c.chart_series());
        focus.set(c.focus());
        compared.set(c.compared());
        token_texts.set(c.token_texts());
        counts.set((c.done(), c.total(), c.full_len()));
        summary.set(focus.with_untracked(|f| {
            let r = f.as_ref()?;
            Some(format!(
                "{} of {} tokens, {} series, {} ms on {}. The focus model's guesses for the next token: {}",
                c.done(),
                c.total(),
                chart.with_untracked(Vec::len),
                c.elapsed_ms().round(),
                match (r.backend, CpuWorker::shared_placement().unwrap_or("page")) {
                    (DeviceKind::Cpu, "worker") => "the CPU (in a Web Worker)",
                    (DeviceKind::Cpu, _) => "the CPU (on the page's thread)",
                    (DeviceKind::WebGpu, _) => "WebGPU",
                },
                r.next
                    .iter()
                    .map(|g| format!("{} ({})", quoted(&g.text), percent(g.probability)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }));
    };

    // Runs the current comparison forward until it is done (whole) or paused (grow).
    let drive = move |run_id: u64, mode: Mode| async move {
        let Some(cell) = comparison.get_value() else {
            return;
        };
        loop {
            if generation.get_value() != run_id {
                return;
            }
            let Some(mut c) = cell.borrow_mut().take() else {
                return;
            };
            if c.finished() || (mode == Mode::Grow && activity.get_untracked() != Activity::Growing)
            {
                if c.finished() {
                    activity.set(Activity::Idle);
                }
                *cell.borrow_mut() = Some(c);
                return;
            }
            let upto = match mode {
                Mode::Whole => c.total(),
                Mode::Grow => c.done() + grow_step.get_untracked(),
            };
            stepping.set(true);
            let outcome = c.advance(upto).await;
            if generation.get_value() != run_id {
                stepping.set(false);
                return;
            }
            if let Err(e) = outcome {
                stepping.set(false);
                activity.set(Activity::Idle);
                match e {
                    // Also when the page already moved to the CPU: a model that loaded
                    // onto the GPU before a later one found the device lost fails here.
                    AppError::Engine(EngineError::Gpu(reason)) => {
                        // Start again on the CPU (the pool moves each model on demand).
                        fall_back_to_cpu(reason);
                        restart.set(Some(mode));
                    }
                    e => error.set(Some(e.to_string())),
                }
                return;
            }
            publish(&c);
            stepping.set(false);
            *cell.borrow_mut() = Some(c);
            // Let the browser paint (and take clicks) between steps.
            pause(if mode == Mode::Grow { 15 } else { 0 }).await;
        }
    };

    // Starts a new comparison of the current series over the current prompt.
    let start = move |mode: Mode| {
        let run_id = generation.get_value() + 1;
        generation.set_value(run_id);
        error.set(None);
        let Some(m) = manifest.get_untracked() else {
            return;
        };
        let text = prompt_text.get_untracked();
        if let Err(e) = check_prompt_size(&text) {
            error.set(Some(e));
            return;
        }
        let (resolved, problems) = resolve_series(&m, &series.get_untracked());
        series_problems.set(problems);
        if resolved.is_empty() {
            error.set(Some("No series to run: add a model below.".into()));
            return;
        }
        activity.set(Activity::Loading);
        spawn_local(async move {
            let models = match load_models(resolved, run_id).await {
                Ok(Some(models)) => models,
                Ok(None) => return,
                Err(e) => {
                    activity.set(Activity::Idle);
                    error.set(Some(e.to_string()));
                    return;
                }
            };
            if generation.get_value() != run_id {
                return;
            }
            let subjects = models
                .iter()
                .map(|(series, model)| {
                    let scheme = series.scheme_for(model);
                    NeedleSubject {
                        label: series.label(&scheme),
                        scheme,
                        model: Rc::clone(model),
                    }
                })
                .collect();
            needle_subjects.set(subjects);
            match Comparison::start(&models, &text, length.get_untracked()) {
                Ok(c) => {
                    publish(&c);
                    comparison.set_value(Some(Rc::new(RefCell::new(Some(c)))));
                }
                Err(e) => {
                    activity.set(Activity::Idle);
                    chart.set(Vec::new());
                    focus.set(None);
                    error.set(Some(e.to_string()));
                    return;
                }
            }
            activity.set(match mode {
                Mode::Whole => Activity::Running,
                Mode::Grow => Activity::Growing,
            });
            // Tokenizing the prompt took tens of milliseconds: the first forward pass
            // (recording it, compiling the kernels) gets a task of its own.
            pause(0).await;
            drive(run_id, mode).await;
        });
    };

    // A run that WebGPU failed starts again (on the CPU) from here.
    Effect::new(move |_| {
        if let Some(mode) = restart.get() {
            restart.set(None);
            start(mode);
        }
    });

    let run_whole = move || start(Mode::Whole);
    let play = move || match activity.get_untracked() {
        Activity::Paused => {
            activity.set(Activity::Growing);
            spawn_local(drive(generation.get_value(), Mode::Grow));
        }
        Activity::Growing => activity.set(Activity::Paused),
        _ => start(Mode::Grow),
    };
    let step = move || {
        if activity.get_untracked() == Activity::Paused {
            activity.set(Activity::Growing);
            let run_id = generation.get_value();
            spawn_local(async move {
                // One step: drive once, then pause again.
                let Some(cell) = comparison.get_value() else {
                    return;
                };
                let taken = cell.borrow_mut().take();
                if let Some(mut c) = taken {
                    let upto = c.done() + grow_step.get_untracked();
                    let outcome = c.advance(upto).await;
                    if generation.get_value() == run_id {
                        match outcome {
                            Ok(()) => publish(&c),
                            Err(e) => error.set(Some(e.to_string())),
                        }
                        activity.set(if c.finished() {
                            Activity::Idle
                        } else {
                            Activity::Paused
                        });
                        *cell.borrow_mut() = Some(c);
                    }
                }
            });
        }
    };

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

    let choose_backend = move |want_gpu: bool| {
        use_gpu.set(want_gpu);
        if want_gpu {
            gpu_failure.set(None);
        }
        run_whole();
    };

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

    let status = move || {
        if let Some((label, p)) = progress.get() {
            return view! {
                <span class="status loading" data-testid="download-progress">
                    <progress max=p.total.max(1) value=p.received></progress>
                    {format!(" Downloading {label}: {}", bytes_of(p.received, p.total))}
                </span>
            }
            .into_any();
        }
        let (done, total, full) = counts.get();
        let text = match activity.get() {
            Activity::Loading => "Loading models\u{2026}".to_string(),
            Activity::Running => "Running\u{2026}".to_string(),
            Activity::Growing => format!("Growing: {done} of {total} tokens"),
            Activity::Paused => format!("Paused at {done} of {total} tokens"),
            Activity::Idle if total > 0 => {
                let cut = if full > total {
                    format!(" (the first {total} of {full})")
                } else {
                    String::new()
                };
                format!("{done} tokens run{cut}")
            }
            Activity::Idle => String::new(),
        };
        view! {
            <span class="status" data-testid="run-status" data-activity=format!("{:?}", activity.get())
                data-busy=move || stepping.get().to_string()
                data-done=done data-total=total>
                {text}
            </span>
        }
        .into_any()
    };

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
                    <div class="row">
                        <button data-testid="run" class="primary" on:click=move |_| run_whole()
                            prop:disabled=move || busy() || manifest.with(Option::is_none)
                            title="Run the whole prompt through every series (Ctrl+Enter in the prompt box)">
                            {move || if activity.get() == Activity::Running { "Running\u{2026}" } else { "Run" }}
                        </button>
                        <button data-testid="grow" on:click=move |_| play()
                            prop:disabled=move || matches!(activity.get(), Activity::Loading | Activity::Running) || manifest.with(Option::is_none)
                            title="Feed the prompt in a few tokens at a time and watch every view update">
                            {move || match activity.get() { Activity::Growing => "Pause", Activity::Paused => "Play", _ => "Grow" }}
                        </button>
                        <button data-testid="step" on:click=move |_| step()
                            prop:disabled=move || activity.get() != Activity::Paused title="One growth step">
                            "Step"
                        </button>
                        <label title="Tokens added per growth step. Dynamic schemes (:dyn) recompute the cache whenever s changes, so larger steps grow them faster.">
                            "tokens per step "
                            <select data-testid="grow-step" on:change=move |ev| grow_step.set(event_target_value(&ev).parse().unwrap_or(16))>
                                {GROW_STEPS.iter().map(|&n| view! { <option value=n selected=move || grow_step.get() == n>{n}</option> }).collect_view()}
                            </select>
                        </label>
                        {status}
                    </div>
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
