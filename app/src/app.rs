//! The studio page: pick a model (downloaded with a progress bar), type a prompt, run
//! it, and read per-token surprise, NLL against position, and one head's attention.

use std::collections::HashMap;
use std::sync::Arc;

use engine::{Backend, TrainedPositions};
use gloo::timers::callback::Timeout;
use js_sys::{Function, Promise, Reflect};
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::KeyboardEvent;

use crate::analysis::{analyse, uniform_nll, RunResult};
use crate::format::{bytes_of, percent, quoted, thousands};
use crate::manifest::{fetch_manifest, Manifest, ModelEntry};
use crate::model_store::{load_model, DownloadProgress, LoadedModel};
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

/// Whether the browser offers a WebGPU adapter (`navigator.gpu.requestAdapter()`
/// resolves to one). The CPU backend runs either way; the page says what WebGPU could add.
pub async fn webgpu_adapter_available() -> bool {
    let Some(window) = web_sys::window() else {
        return false;
    };
    let gpu = Reflect::get(&window.navigator(), &JsValue::from_str("gpu")).unwrap_or_default();
    if gpu.is_undefined() || gpu.is_null() {
        return false;
    }
    let request = Reflect::get(&gpu, &JsValue::from_str("requestAdapter"))
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok());
    let Some(Ok(promise)) = request.map(|f| f.call0(&gpu)) else {
        return false;
    };
    match JsFuture::from(Promise::resolve(&promise)).await {
        Ok(adapter) => !adapter.is_null() && !adapter.is_undefined(),
        Err(_) => false,
    }
}

/// The backend line: the backend's name and whether WebGPU could be used
/// (`None` while that is still being checked).
pub fn backend_label(name: &str, webgpu: Option<bool>) -> String {
    match webgpu {
        Some(true) => format!("{name} (WebGPU adapter found, not yet used)"),
        Some(false) => format!("{name} (no WebGPU adapter in this browser)"),
        None => name.to_string(),
    }
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
    let loaded = RwSignal::new(None::<Arc<LoadedModel>>);
    let progress = RwSignal::new(None::<DownloadProgress>);
    let error = RwSignal::new(None::<String>);
    let prompt = RwSignal::new(DEFAULT_PROMPT.to_string());
    let scheme = RwSignal::new(String::from("rope"));
    let result = RwSignal::new(None::<Arc<RunResult>>);
    let running = RwSignal::new(false);
    let layer = RwSignal::new(0usize);
    let head = RwSignal::new(0usize);
    let log_scale = RwSignal::new(false);
    // Models already downloaded this visit, so switching back is instant.
    let cache = StoredValue::new(HashMap::<String, Arc<LoadedModel>>::new());
    let webgpu = RwSignal::new(None::<bool>);
    spawn_local(async move { webgpu.set(Some(webgpu_adapter_available().await)) });

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

    let run = move || {
        let Some(model) = loaded.get_untracked() else {
            return;
        };
        if running.get_untracked() {
            return;
        }
        running.set(true);
        // The forward pass runs synchronously on this thread; wait a frame first so the
        // browser paints the "running" state before it blocks.
        Timeout::new(20, move || {
            running.set(false);
            let outcome = analyse(&model, &prompt.get_untracked(), &scheme.get_untracked());
            // Drop the result if another model was selected meanwhile.
            if !loaded.with_untracked(|m| m.as_ref().is_some_and(|m| Arc::ptr_eq(m, &model))) {
                return;
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
        })
        .forget();
    };

    // Load the selected model (from the cache or the network).
    Effect::new(move |_| {
        let Some(entry) = selected_entry.get() else {
            return;
        };
        loaded.set(None);
        result.set(None);
        error.set(None);
        if let Some(model) = cache.with_value(|c| c.get(&entry.id).cloned()) {
            loaded.set(Some(model));
            return;
        }
        let is_current = move |entry: &ModelEntry| {
            selected_id.with_untracked(|id| id.as_deref() == Some(entry.id.as_str()))
        };
        progress.set(Some(DownloadProgress {
            received: 0,
            total: entry.total_bytes(),
        }));
        spawn_local(async move {
            let outcome = load_model(&entry, |p| {
                if is_current(&entry) {
                    progress.set(Some(p));
                }
            })
            .await
            .map(Arc::new);
            if let Ok(model) = &outcome {
                cache.update_value(|c| {
                    c.insert(entry.id.clone(), Arc::clone(model));
                });
            }
            if !is_current(&entry) {
                return; // the user picked another model meanwhile
            }
            progress.set(None);
            match outcome {
                Ok(model) => loaded.set(Some(model)),
                Err(e) => error.set(Some(format!("Could not load {}: {e}", entry.label))),
            }
        });
    });

    // A freshly loaded model: use its own scheme, keep the head in range, and run the prompt.
    Effect::new(move |_| {
        let Some(model) = loaded.get() else {
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

    let backend = move || {
        let name = loaded.with(|m| m.as_ref().map_or("CPU", |m| m.backend.name()));
        backend_label(name, webgpu.get())
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
                "{} tokens, scheme {}, {} ms. The model's guesses for the next token: {}",
                r.tokens.len(),
                r.scheme,
                r.elapsed_ms.round(),
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
                    <span class="backend">"Backend: " <span data-testid="backend">{backend}</span></span>
                </div>
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
                <p class="run-summary">{run_summary}</p>
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
