//! The studio page: pick a model (downloaded with a progress bar), type a prompt, run
//! it, and read per-token surprise, NLL against position, and one head's attention.
//! Models run on WebGPU when the browser has an adapter, else on the CPU; the backend
//! box switches the current model between them, and a GPU failure moves it to the CPU.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use engine::gpu::GpuContext;
use engine::{EngineError, TrainedPositions};
use js_sys::Promise;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use web_sys::KeyboardEvent;

use crate::analysis::{analyse, uniform_nll, RunResult};
use crate::error::AppError;
use crate::format::{bytes_of, percent, quoted, thousands};
use crate::manifest::{fetch_manifest, Manifest, ModelEntry};
use crate::model_store::{download_model, open_gpu, DownloadProgress, GpuStatus, LoadedModel};
use crate::views::{AttentionHeatmap, HeatScale, NllChart, TokenStrip};

/// The prompt the page opens with: plain English prose of about 150 tokens, so a model
/// with `L = 64` is run well past its training length.
pub const DEFAULT_PROMPT: &str = "The lighthouse keeper climbed the narrow stairs every \
evening at dusk. She carried a small lamp, a notebook, and a cup of tea that was always cold \
by midnight. From the top of the tower she could see the whole harbour: the fishing boats tied \
in rows, the old stone bridge, and the hills beyond the town where the sheep slept under the \
trees. Each night she wrote down the weather, the ships that passed, and anything strange she \
noticed. Most nights nothing happened at all. But one winter night a light appeared far out at \
sea, blinking in a pattern she did not know. She watched it for an hour and wrote every flash \
in her notebook. In the morning she walked down to the harbour to ask the old fishermen what \
it could mean, and one of them began to laugh.";

/// Position schemes offered in the scheme box (any text `SchemeSpec` parses is accepted).
const SCHEME_PRESETS: &[(&str, &str)] = &[
    ("rope", "RoPE as trained"),
    ("pi:dyn", "position interpolation, s = max(1, T/L)"),
    ("ntk:dyn", "NTK-aware scaling, dynamic s"),
    ("yarn:dyn", "YaRN, dynamic s"),
    ("none", "no positions (DroPE / NoPE)"),
    ("none:dyn+beta", "DroPE with its fitted logit scale"),
];

/// The backend line: "WebGPU · <adapter>" when the model runs on the GPU, else "CPU"
/// and why (`gpu` is `None` while the page is still opening the WebGPU device;
/// `failure` is a WebGPU error that moved the page to the CPU).
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

/// Builds a model with `load` on the GPU of `context`, or on the CPU when `context` is
/// `None` or the GPU refuses the model; in that case the GPU's reason comes back too.
fn load_on(
    context: Option<Rc<GpuContext>>,
    load: impl Fn(Option<Rc<GpuContext>>) -> Result<LoadedModel, AppError>,
) -> (Result<Rc<LoadedModel>, AppError>, Option<String>) {
    let on_gpu = context.is_some();
    match load(context) {
        Err(AppError::Engine(EngineError::Gpu(reason))) if on_gpu => {
            (load(None).map(Rc::new), Some(reason))
        }
        outcome => (outcome.map(Rc::new), None),
    }
}

/// Resolves after `ms` milliseconds, letting the browser paint meanwhile.
async fn pause(ms: i32) {
    let promise = Promise::new(&mut |resolve, _| {
        let scheduled = web_sys::window().and_then(|w| {
            w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
                .ok()
        });
        if scheduled.is_none() {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = JsFuture::from(promise).await;
}

fn model_facts(model: &LoadedModel) -> String {
    let config = model.config();
    let positions = match config.position_embedding {
        TrainedPositions::Rope => "trained with RoPE",
        TrainedPositions::None => "no positional embedding",
    };
    format!(
        "L = {} tokens \u{b7} {} parameters \u{b7} {} layers \u{d7} {} heads \u{b7} vocabulary {} \u{b7} {positions}",
        config.training_length(),
        thousands(config.parameter_count() as u64),
        config.num_hidden_layers,
        config.num_attention_heads,
        thousands(config.vocab_size as u64),
    )
}

/// The whole studio page.
#[component]
pub fn App() -> impl IntoView {
    let manifest = RwSignal::new(None::<Manifest>);
    let selected_id = RwSignal::new(None::<String>);
    // Local (non-Send) storage: a model may hold wgpu handles, which are not `Send`
    // in a browser.
    let loaded = RwSignal::new_local(None::<Rc<LoadedModel>>);
    let progress = RwSignal::new(None::<DownloadProgress>);
    let error = RwSignal::new(None::<String>);
    let prompt = RwSignal::new(DEFAULT_PROMPT.to_string());
    let scheme = RwSignal::new(String::from("rope"));
    let result = RwSignal::new(None::<Arc<RunResult>>);
    let running = RwSignal::new(false);
    // Set by `run`; the run loop runs again while it is set, so a request made while
    // a run is in progress (new model, new backend, new scheme) is not lost.
    let rerun = StoredValue::new(false);
    let layer = RwSignal::new(0usize);
    let head = RwSignal::new(0usize);
    let log_scale = RwSignal::new(false);
    // Models already downloaded this visit (on the device they last ran on), so
    // switching back is instant.
    let cache = StoredValue::new_local(HashMap::<String, Rc<LoadedModel>>::new());
    // The WebGPU device, opened once; `None` while that is in progress.
    let gpu = LocalResource::new(open_gpu);
    // Whether models should run on WebGPU (when there is a device): the backend box.
    let use_gpu = RwSignal::new(true);
    // Why WebGPU was abandoned for the CPU, shown until the user picks WebGPU again.
    let gpu_failure = RwSignal::new(None::<String>);

    let selected_entry = Memo::new(move |_| {
        let id = selected_id.get()?;
        manifest.with(|m| m.as_ref()?.model(&id).cloned())
    });

    spawn_local(async move {
        match fetch_manifest().await {
            Ok(m) => {
                let first = m.models.first().map(|e| e.id.clone());
                manifest.set(Some(m));
                selected_id.set(first);
            }
            Err(e) => error.set(Some(format!("Cannot list the models: {e}"))),
        }
    });

    // The GPU device models should go to now (`None`: the CPU).
    let wanted_context = move || {
        if use_gpu.get_untracked() {
            gpu.get_untracked().and_then(|status| status.context())
        } else {
            None
        }
    };
    // WebGPU failed: the page stays on the CPU until the user picks WebGPU again.
    let fall_back_to_cpu = move |reason: String| {
        use_gpu.set(false);
        gpu_failure.set(Some(reason));
    };
    let is_current = move |model: &Rc<LoadedModel>| {
        loaded.with_untracked(|m| m.as_ref().is_some_and(|m| Rc::ptr_eq(m, model)))
    };
    // Makes `model` the page's model, and remembers it for this visit.
    let show = move |model: Rc<LoadedModel>| {
        cache.update_value(|c| {
            c.insert(model.entry.id.clone(), Rc::clone(&model));
        });
        loaded.set(Some(model));
    };
    // `model` on the device the page wants: itself, or re-created from its bytes.
    let on_wanted_device = move |model: Rc<LoadedModel>| {
        let context = wanted_context();
        if model.on_gpu() == context.is_some() {
            return Ok(model);
        }
        let (outcome, failure) = load_on(context, |c| model.on_device(c));
        if let Some(reason) = failure {
            fall_back_to_cpu(reason);
        }
        outcome
    };

    let run = move || {
        rerun.set_value(true);
        if running.get_untracked() || loaded.with_untracked(Option::is_none) {
            return;
        }
        running.set(true);
        spawn_local(async move {
            while rerun.get_value() {
                rerun.set_value(false);
                // Let the browser paint the "running" state first: the CPU backend's
                // forward pass does not yield until it is done.
                pause(20).await;
                let Some(mut model) = loaded.get_untracked() else {
                    break;
                };
                let (text, scheme) = (prompt.get_untracked(), scheme.get_untracked());
                let mut outcome = analyse(&model, &text, &scheme).await;
                // Drop the result if another model or backend was chosen meanwhile
                // (that choice asked for a new run).
                if !is_current(&model) {
                    continue;
                }
                if let Err(AppError::Engine(EngineError::Gpu(reason))) = &outcome {
                    // The GPU failed mid-run: move this model to the CPU and run again.
                    let reason = reason.clone();
                    match model.on_device(None) {
                        Ok(on_cpu) => {
                            fall_back_to_cpu(reason);
                            model = Rc::new(on_cpu);
                            show(Rc::clone(&model));
                            outcome = analyse(&model, &text, &scheme).await;
                        }
                        Err(e) => outcome = Err(e),
                    }
                }
                match outcome {
                    Ok(r) => {
                        error.set(None);
                        result.set(Some(Arc::new(r)));
                    }
                    Err(e) => {
                        error.set(Some(e.to_string()));
                        result.set(None);
                    }
                }
            }
            running.set(false);
        });
    };

    // The backend box: move the current model to the chosen device and run again.
    let choose_backend = move |want_gpu: bool| {
        use_gpu.set(want_gpu);
        if want_gpu {
            gpu_failure.set(None);
        }
        let Some(model) = loaded.get_untracked() else {
            return;
        };
        match on_wanted_device(Rc::clone(&model)) {
            Ok(moved) if Rc::ptr_eq(&moved, &model) => {}
            Ok(moved) => {
                show(moved);
                run();
            }
            Err(e) => error.set(Some(e.to_string())),
        }
    };

    // Load the selected model (from the cache or the network) onto the wanted device.
    Effect::new(move |_| {
        let Some(entry) = selected_entry.get() else {
            return;
        };
        loaded.set(None);
        result.set(None);
        error.set(None);
        if let Some(model) = cache.with_value(|c| c.get(&entry.id).cloned()) {
            match on_wanted_device(model) {
                Ok(model) => show(model),
                Err(e) => error.set(Some(format!("Could not load {}: {e}", entry.label))),
            }
            return;
        }
        let is_selected = move |entry: &ModelEntry| {
            selected_id.with_untracked(|id| id.as_deref() == Some(entry.id.as_str()))
        };
        progress.set(Some(DownloadProgress {
            received: 0,
            total: entry.total_bytes(),
        }));
        spawn_local(async move {
            let downloaded = download_model(&entry, |p| {
                if is_selected(&entry) {
                    progress.set(Some(p));
                }
            })
            .await;
            // Models go onto the GPU, so wait until the page knows whether it has one
            // (long settled by the time a download ends).
            gpu.await;
            let outcome = downloaded.and_then(|download| {
                let (outcome, failure) = load_on(wanted_context(), |c| download.load(c));
                if let Some(reason) = failure {
                    fall_back_to_cpu(reason);
                }
                outcome
            });
            if !is_selected(&entry) {
                // The user picked another model meanwhile: keep this one for later.
                if let Ok(model) = outcome {
                    cache.update_value(|c| {
                        c.insert(entry.id.clone(), model);
                    });
                }
                return;
            }
            progress.set(None);
            match outcome {
                Ok(model) => show(model),
                Err(e) => error.set(Some(format!("Could not load {}: {e}", entry.label))),
            }
        });
    });

    // A newly selected model (not the same model on another device): use its own
    // scheme, keep the head in range, and run the prompt.
    let loaded_id = Memo::new(move |_| loaded.with(|m| m.as_ref().map(|m| m.entry.id.clone())));
    Effect::new(move |_| {
        if loaded_id.get().is_none() {
            return;
        }
        let Some(model) = loaded.get_untracked() else {
            return;
        };
        let config = model.config();
        scheme.set(model.default_scheme().to_string());
        if layer.get_untracked() >= config.num_hidden_layers {
            layer.set(0);
        }
        if head.get_untracked() >= config.num_attention_heads {
            head.set(0);
        }
        run();
    });

    let prompt_tokens = Memo::new(move |_| {
        let text = prompt.get();
        loaded.with(|m| {
            m.as_ref()
                .and_then(|m| m.tokenizer.encode(&text).ok().map(|p| p.len()))
        })
    });
    let prompt_hint = move || {
        let (model, n) = (loaded.get()?, prompt_tokens.get()?);
        let (l, cap) = (model.training_length(), model.max_tokens());
        let over = n > cap;
        let text = format!(
            "{n} tokens = {:.1} L (L = {l}; at most {cap}){}",
            n as f32 / l.max(1) as f32,
            if over {
                ": too long, shorten the prompt"
            } else {
                ""
            }
        );
        Some(view! { <span class="hint" class:over=over>{text}</span> })
    };

    let model_options = move || {
        manifest.with(|m| {
            m.as_ref()
                .map(|m| m.models.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|e| {
                    let selected = selected_id.with(|id| id.as_deref() == Some(e.id.as_str()));
                    let label = if e.trained || e.label.to_lowercase().contains("untrained") {
                        e.label.clone()
                    } else {
                        format!("{} \u{2014} untrained", e.label)
                    };
                    view! { <option value=e.id.clone() selected=selected>{label}</option> }
                })
                .collect_view()
        })
    };

    let status = move || {
        if let Some(model) = loaded.get() {
            let label = model.entry.label.clone();
            return view! { <span class="status ready" data-testid="model-ready">{label} " ready"</span> }
                .into_any();
        }
        match (progress.get(), selected_entry.get()) {
            (Some(p), Some(entry)) => view! {
                <span class="status loading">
                    <progress max=p.total.max(1) value=p.received></progress>
                    {format!(" Downloading {}: {}", entry.label, bytes_of(p.received, p.total))}
                </span>
            }
            .into_any(),
            _ if manifest.with(Option::is_none) && error.with(Option::is_none) => {
                view! { <span class="status loading">"Reading the list of models\u{2026}"</span> }
                    .into_any()
            }
            _ => ().into_any(),
        }
    };

    let has_gpu = move || gpu.with(|s| matches!(s, Some(GpuStatus::Ready { .. })));
    // The current model's device, else the page's choice.
    let shows_gpu = move || {
        loaded.with(|m| match m {
            Some(m) => m.on_gpu(),
            None => use_gpu.get() && has_gpu(),
        })
    };
    let backend = move || {
        let on_gpu = shows_gpu();
        gpu.with(|status| {
            gpu_failure.with(|failure| backend_label(on_gpu, status.as_ref(), failure.as_deref()))
        })
    };

    let tokens = Signal::derive(move || {
        result.with(|r| r.as_ref().map(|r| r.tokens.clone()).unwrap_or_default())
    });
    let labels = Signal::derive(move || {
        result.with(|r| {
            r.as_ref()
                .map(|r| r.tokens.iter().map(|t| t.text.clone()).collect())
                .unwrap_or_default()
        })
    });
    let training_length =
        Signal::derive(move || loaded.with(|m| m.as_ref().map_or(64, |m| m.training_length())));
    let uniform = Signal::derive(move || {
        loaded.with(|m| uniform_nll(m.as_ref().map_or(1, |m| m.config().vocab_size)))
    });
    let attention =
        Signal::derive(move || result.with(|r| r.as_ref()?.attention_map(layer.get(), head.get())));
    let heat_scale = Signal::derive(move || {
        if log_scale.get() {
            HeatScale::Log
        } else {
            HeatScale::Linear
        }
    });
    let counts = Signal::derive(move || {
        loaded.with(|m| {
            m.as_ref().map_or((0, 0), |m| {
                (m.config().num_hidden_layers, m.config().num_attention_heads)
            })
        })
    });

    let run_summary = move || {
        result.with(|r| {
            let r = r.as_ref()?;
            Some(format!(
                "{} tokens, scheme {}, {} ms on {}. The model's guesses for the next token: {}",
                r.tokens.len(),
                r.scheme,
                r.elapsed_ms.round(),
                r.backend,
                r.next
                    .iter()
                    .map(|g| format!("{} ({})", quoted(&g.text), percent(g.probability)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    };
    let placeholder = move |what: &'static str| {
        move || {
            (result.with(Option::is_none) && !running.get())
                .then_some(view! { <p class="placeholder">{what}</p> })
        }
    };

    view! {
        <style>{include_str!("style.css")}</style>
        <main class="studio">
            <header>
                <h1>"DroPE Studio"</h1>
                <p class="tagline">
                    "Why language models fail past the length L they were trained on, and how "
                    "dropping RoPE after pretraining (DroPE) fixes it."
                </p>
            </header>

            <section class="controls">
                <div class="row">
                    <label>
                        "Model "
                        <select
                            data-testid="model-select"
                            on:change=move |ev| selected_id.set(Some(event_target_value(&ev)))
                            prop:disabled=move || manifest.with(Option::is_none)
                        >
                            {model_options}
                        </select>
                    </label>
                    {move || selected_entry.get().filter(|e| !e.trained).map(|_| view! {
                        <span class="badge untrained" data-testid="untrained-badge"
                            title="This model has random weights: its predictions are noise, its NLL sits near ln V.">
                            "untrained: random weights"
                        </span>
                    })}
                    {status}
                    <span class="backend">
                        <label title="Where the model runs: WebGPU (this browser's GPU) or the CPU path (the reference). Switching re-runs the prompt.">
                            "Backend "
                            <select
                                data-testid="backend-select"
                                on:change=move |ev| choose_backend(event_target_value(&ev) == "webgpu")
                                prop:disabled=move || loaded.with(Option::is_none) || running.get()
                            >
                                <option value="webgpu" prop:selected=shows_gpu prop:disabled=move || !has_gpu()>"WebGPU"</option>
                                <option value="cpu" prop:selected=move || !shows_gpu()>"CPU"</option>
                            </select>
                        </label>
                        " "
                        <span data-testid="backend">{backend}</span>
                    </span>
                </div>
                {move || gpu_failure.get().map(|reason| view! {
                    <p class="notice" data-testid="backend-notice" role="status">{fallback_notice(&reason)}</p>
                })}
                {move || loaded.get().map(|m| view! {
                    <p class="model-facts">{model_facts(&m)}</p>
                })}
                {move || selected_entry.get().filter(|e| !e.description.is_empty()).map(|e| view! {
                    <p class="model-description">{e.description}</p>
                })}

                <label class="prompt-label" for="prompt">"Prompt"</label>
                <textarea
                    id="prompt"
                    data-testid="prompt"
                    rows="7"
                    spellcheck="false"
                    prop:value=move || prompt.get()
                    on:input=move |ev| prompt.set(event_target_value(&ev))
                    on:keydown=move |ev: KeyboardEvent| {
                        if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) {
                            ev.prevent_default();
                            run();
                        }
                    }
                ></textarea>
                <div class="row">
                    <button
                        data-testid="run"
                        on:click=move |_| run()
                        prop:disabled=move || loaded.with(Option::is_none) || running.get()
                        title="Run the prompt (Ctrl+Enter)"
                    >
                        {move || if running.get() { "Running\u{2026}" } else { "Run" }}
                    </button>
                    <label title="Inference-time position scheme: rope, pi:4, ntk:dyn, yarn:8, none, none:dyn+beta ...">
                        "Position scheme "
                        <input
                            class="scheme"
                            list="scheme-presets"
                            data-testid="scheme"
                            prop:value=move || scheme.get()
                            on:change=move |ev| {
                                scheme.set(event_target_value(&ev));
                                run();
                            }
                        />
                    </label>
                    <datalist id="scheme-presets">
                        {SCHEME_PRESETS.iter().map(|(value, what)| view! { <option value=*value>{*what}</option> }).collect_view()}
                    </datalist>
                    {prompt_hint}
                </div>
                {move || error.get().map(|e| view! { <p class="error" data-testid="error" role="alert">{e}</p> })}
                <p
                    class="run-summary"
                    data-testid="run-summary"
                    data-backend=move || result.with(|r| r.as_ref().map(|r| r.backend))
                >
                    {run_summary}
                </p>
            </section>

            <section class="panel">
                <h2>"Surprise per token"</h2>
                {placeholder("Run a prompt to colour its tokens by surprise.")}
                <TokenStrip tokens=tokens nll_max=uniform training_length=training_length />
            </section>

            <section class="panel">
                <h2>"NLL vs position"</h2>
                <NllChart tokens=tokens training_length=training_length uniform_nll=uniform />
            </section>

            <section class="panel">
                <h2>"Attention"</h2>
                <div class="row">
                    <label>
                        "Layer "
                        <select data-testid="layer-select" on:change=move |ev| layer.set(event_target_value(&ev).parse().unwrap_or(0))>
                            {move || (0..counts.get().0).map(|i| view! {
                                <option value=i selected=move || layer.get() == i>{i}</option>
                            }).collect_view()}
                        </select>
                    </label>
                    <label>
                        "Head "
                        <select data-testid="head-select" on:change=move |ev| head.set(event_target_value(&ev).parse().unwrap_or(0))>
                            {move || (0..counts.get().1).map(|i| view! {
                                <option value=i selected=move || head.get() == i>{i}</option>
                            }).collect_view()}
                        </select>
                    </label>
                    <label>
                        <input type="checkbox" prop:checked=move || log_scale.get()
                            on:change=move |ev| log_scale.set(event_target_checked(&ev)) />
                        " log colour scale"
                    </label>
                </div>
                {placeholder("Run a prompt to see where each token looks.")}
                <AttentionHeatmap map=attention labels=labels scale=heat_scale />
            </section>
        </main>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
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
