//! One view of the studio, alone, for a blog post: `embed.html?view=...` (an iframe)
//! and `<drope-studio view=...>` (a custom element) both mount [`Embed`]. It reads the
//! same parameters as the studio's URL, runs its models on the page's shared engine
//! ([`crate::page_engine`]), and only while it is on screen: the loader mounts it when it
//! nears the viewport, and a run in progress waits between series while it is scrolled
//! away.

use std::rc::Rc;
use std::sync::Arc;

use engine::gpu::GpuContext;
use engine::{DeviceKind, EngineError};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::analysis::{head_in_shape, uniform_nll, RunResult};
use crate::assets::asset_url;
use crate::error::AppError;
use crate::format::quoted;
use crate::manifest::Manifest;
use crate::model_store::GpuStatus;
use crate::page_engine::{page_gpu, page_gpu_failed, page_manifest, page_model, page_samples};
use crate::panels::{FrequencyPanel, TrainingPanel, SHIPPED_ROTARY_SHAPE};
use crate::pause::pause;
use crate::published::fetch_needle_grid;
use crate::runs::{resolve_series, Comparison, ResolvedSeries};
use crate::samples::{check_prompt_size, resolve_prompt};
use crate::url_state::{decode_query, encode_query, StudioState, View};
use crate::views::{AttentionHeatmap, HeatScale, NeedleResults, PerplexityChart, TokenStrip};

/// What an embed shows beyond the studio's URL state: the attention head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EmbedOptions {
    /// The layer of the attention maps.
    pub layer: usize,
    /// The head of the attention maps.
    pub head: usize,
}

/// An embed's parameters, from a query string or the custom element's attributes:
/// the studio's state, the embed's own options, and what was wrong (each bad value
/// keeps its default and is listed here).
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedParams {
    /// The view, series, prompt and length, as in the studio's URL.
    pub state: StudioState,
    /// Layer and head.
    pub options: EmbedOptions,
    /// Values that were not understood.
    pub problems: Vec<String>,
}

impl EmbedParams {
    /// Reads `view=...&models=...` (the studio's parameters; `prompt-sample` is taken
    /// for `sample`, the custom element's attribute name) plus `layer` and `head`.
    pub fn parse(query: &str) -> EmbedParams {
        let mut pairs = decode_query(query);
        for (key, _) in &mut pairs {
            if key == "prompt-sample" {
                *key = "sample".to_string();
            }
        }
        let (state, mut problems) = StudioState::from_pairs(&pairs);
        let mut options = EmbedOptions::default();
        for (key, value) in &pairs {
            let slot = match key.as_str() {
                "layer" => &mut options.layer,
                "head" => &mut options.head,
                _ => continue,
            };
            match value.trim().parse::<usize>() {
                Ok(n) => *slot = n,
                Err(_) => problems.push(format!("{key} `{value}` is not a whole number")),
            }
        }
        EmbedParams {
            state,
            options,
            problems,
        }
    }

    /// The studio's URL query for the same figure (the embed's "open in the studio").
    pub fn studio_query(&self) -> String {
        let (pairs, _) = self.state.to_pairs();
        encode_query(&pairs)
    }
}

/// Where an embed is, for its `data-state` (the tests and the loader read it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedPhase {
    /// Fetching the model list, samples or published data.
    Preparing,
    /// Downloading or loading models.
    Loading,
    /// Running the prompt.
    Running,
    /// A run waits because the embed is scrolled away.
    Paused,
    /// Drawn.
    Ready,
    /// Something failed (the message is shown).
    Failed,
}

impl EmbedPhase {
    fn key(self) -> &'static str {
        match self {
            EmbedPhase::Preparing => "preparing",
            EmbedPhase::Loading => "loading",
            EmbedPhase::Running => "running",
            EmbedPhase::Paused => "paused",
            EmbedPhase::Ready => "ready",
            EmbedPhase::Failed => "failed",
        }
    }
}

/// Waits while the embed is off screen.
async fn while_hidden(visible: Signal<bool>, phase: RwSignal<EmbedPhase>) {
    if visible.get_untracked() {
        return;
    }
    let before = phase.get_untracked();
    phase.set(EmbedPhase::Paused);
    while !visible.get_untracked() {
        pause(150).await;
    }
    phase.set(before);
}

/// The signals a run reports through.
#[derive(Clone, Copy)]
struct Reporting {
    /// Whether the embed is on screen (runs wait while it is not).
    visible: Signal<bool>,
    phase: RwSignal<EmbedPhase>,
    /// Download progress.
    progress: RwSignal<Option<String>>,
    /// What the run has drawn so far.
    shown: RwSignal<Option<Shown>>,
    /// Why the embed runs on the CPU though the page has WebGPU.
    notice: RwSignal<Option<String>>,
    /// Series that name no model (the others still run).
    left_out: RwSignal<Vec<String>>,
}

/// The notice of an embed that moved to the CPU.
fn fallback_notice(reason: &str) -> String {
    format!("WebGPU failed ({reason}), so this figure runs on the CPU path.")
}

/// Runs the embed's prompt through its series' models. When WebGPU fails part way, the
/// notice says so and the run starts again with every model on the CPU; when the
/// device is gone (lost, or it reported an error outside a pass), the page's GPU is
/// marked failed too, so embeds that start later go to the CPU at once (with a notice).
async fn run_models(
    params: &EmbedParams,
    manifest: &Manifest,
    report: Reporting,
) -> Result<(), AppError> {
    let samples = page_samples().await?;
    let text = resolve_prompt(&params.state.prompt, &samples).map_err(AppError::Input)?;
    check_prompt_size(&text).map_err(AppError::Input)?;
    let (resolved, problems) = resolve_series(manifest, &params.state.series);
    if resolved.is_empty() {
        return Err(AppError::Input(format!(
            "no series to run ({})",
            problems.join("; ")
        )));
    }
    report.left_out.update(|named| {
        for problem in problems {
            if !named.contains(&problem) {
                named.push(problem);
            }
        }
    });
    let gpu = page_gpu().await;
    if let GpuStatus::Failed(reason) = &gpu {
        report.notice.set(Some(fallback_notice(reason)));
    }
    let mut context = gpu.context();
    loop {
        let device = context.take();
        let outcome = load_and_run(
            &resolved,
            &text,
            params.state.length,
            device.clone(),
            report,
        )
        .await;
        match (outcome, device) {
            (Err(AppError::Engine(EngineError::Gpu(reason))), Some(device)) => {
                // The browser reports a loss a little after the failed pass.
                crate::pause::next_frame().await;
                if let Err(EngineError::Gpu(gone)) = device.check_alive() {
                    page_gpu_failed(&gone);
                }
                report.notice.set(Some(fallback_notice(&reason)));
                // What the GPU drew so far goes; the CPU run draws it again.
                report.shown.set(None);
            }
            (outcome, _) => return outcome,
        }
    }
}

/// Loads every series' model (onto `context`'s GPU, else the CPU) and runs the prompt
/// through them one series at a time, publishing each as it lands; waits between
/// series while the embed is off screen.
async fn load_and_run(
    resolved: &[ResolvedSeries],
    text: &str,
    length: Option<usize>,
    mut context: Option<Rc<GpuContext>>,
    report: Reporting,
) -> Result<(), AppError> {
    let Reporting {
        visible,
        phase,
        progress,
        shown,
        notice,
        ..
    } = report;
    phase.set(EmbedPhase::Loading);
    let mut models = Vec::new();
    for series in resolved {
        while_hidden(visible, phase).await;
        let label = series.entry.label.clone();
        let (loaded, failure) = page_model(&series.entry, context.clone(), |p| {
            progress.set(Some(format!(
                "Downloading {label}: {}",
                crate::format::bytes_of(p.received, p.total)
            )));
        })
        .await;
        progress.set(None);
        if let Some(reason) = failure {
            // The GPU refused a model (it loaded on the CPU): the rest go there too.
            notice.set(Some(fallback_notice(&reason)));
            context = None;
        }
        let model = loaded
            .map_err(|e| AppError::Input(format!("Could not load {}: {e}", series.entry.label)))?;
        models.push((series.clone(), model));
    }
    let mut comparison = Comparison::start(&models, text, length)?;
    phase.set(EmbedPhase::Running);
    // The first forward pass gets a task of its own (as in the studio).
    crate::pause::next_frame().await;
    let total = comparison.total();
    while !comparison.finished() {
        while_hidden(visible, phase).await;
        if !comparison.advance_one(total).await? {
            break;
        }
        shown.set(Some(Shown::of(&comparison)));
    }
    Ok(())
}

/// What a run has drawn so far.
#[derive(Clone)]
struct Shown {
    chart: Vec<crate::views::ChartSeries>,
    focus: Option<Arc<RunResult>>,
    compared: Option<(String, Arc<RunResult>)>,
    token_texts: Vec<String>,
    done_tokens: usize,
    /// Series that have run the whole prompt (`data-series-done`).
    series_done: usize,
    backend: &'static str,
}

impl Shown {
    fn of(c: &Comparison) -> Shown {
        let focus = c.focus();
        let backend = match &focus {
            Some(r) if r.backend == DeviceKind::WebGpu => "WebGPU",
            _ => "the CPU",
        };
        Shown {
            chart: c.chart_series(),
            compared: c.compared(),
            token_texts: c.token_texts(),
            done_tokens: c.total(),
            series_done: c.series_done(),
            focus,
            backend,
        }
    }
}

/// One studio view, alone. `visible` is whether it is on screen (the loader's
/// IntersectionObserver); runs wait while it is false.
#[component]
pub fn Embed(
    /// What to show.
    params: EmbedParams,
    /// Whether the embed is on screen.
    #[prop(into)]
    visible: Signal<bool>,
) -> impl IntoView {
    let params = Rc::new(params);
    let view_kind = params.state.view;
    let phase = RwSignal::new(EmbedPhase::Preparing);
    let error = RwSignal::new(None::<String>);
    let progress = RwSignal::new(None::<String>);
    let notice = RwSignal::new(None::<String>);
    let left_out = RwSignal::new(Vec::<String>::new());
    let shown = RwSignal::new(None::<Shown>);
    let manifest = RwSignal::new(None::<Manifest>);
    let needle_grid = RwSignal::new(None);
    let report = Reporting {
        visible,
        phase,
        progress,
        shown,
        notice,
        left_out,
    };

    {
        let params = Rc::clone(&params);
        spawn_local(async move {
            let outcome = async {
                let m = page_manifest().await?;
                manifest.set(Some((*m).clone()));
                match view_kind {
                    v if v.runs_models() => run_models(&params, &m, report).await,
                    View::Needle => {
                        needle_grid.set(Some(fetch_needle_grid().await?));
                        Ok(())
                    }
                    _ => Ok(()),
                }
            }
            .await;
            match outcome {
                Ok(()) => phase.set(EmbedPhase::Ready),
                Err(e) => {
                    error.set(Some(e.to_string()));
                    phase.set(EmbedPhase::Failed);
                }
            }
        });
    }

    let studio_link = format!("{}{}", asset_url("./"), params.studio_query());
    let picked = RwSignal::new((params.options.layer, params.options.head));
    let focus = Signal::derive(move || shown.with(|s| s.as_ref().and_then(|s| s.focus.clone())));
    let training_length =
        Signal::derive(move || focus.with(|r| r.as_ref().map_or(128, |r| r.training_length)));
    let uniform = Signal::derive(move || {
        focus.with(|r| uniform_nll(r.as_ref().map_or(4096, |r| r.vocab_size)))
    });
    let token_texts = Signal::derive(move || {
        shown.with(|s| {
            s.as_ref()
                .map(|s| s.token_texts.clone())
                .unwrap_or_default()
        })
    });
    let chart = Signal::derive(move || {
        shown.with(|s| s.as_ref().map(|s| s.chart.clone()).unwrap_or_default())
    });
    let axis_length = Signal::derive(move || token_texts.with(Vec::len));
    let caption = move || {
        shown.with(|s| {
            let s = s.as_ref()?;
            let next = s
                .focus
                .as_ref()
                .and_then(|r| r.next.first())
                .map(|g| quoted(&g.text));
            Some(format!(
                "{} tokens, {} series, on {}.{}",
                s.done_tokens,
                s.chart.len(),
                s.backend,
                next.map(|n| format!(" The focus model's next guess: {n}."))
                    .unwrap_or_default()
            ))
        })
    };
    let problems = params.problems.clone();

    let tokens = Signal::derive(move || {
        focus.with(|r| r.as_ref().map(|r| r.tokens.clone()).unwrap_or_default())
    });
    let body = move || {
        match view_kind {
        View::Perplexity => view! {
            <PerplexityChart series=chart token_texts=token_texts training_length=training_length
                uniform_nll=uniform axis_length=axis_length />
        }
        .into_any(),
        View::Tokens => view! {
            <TokenStrip tokens=tokens nll_max=uniform training_length=training_length />
        }
        .into_any(),
        View::Attention => attention_pair(shown, picked, token_texts, left_out).into_any(),
        View::Needle => view! {
            {move || needle_grid.get().map(|grid| view! { <NeedleResults grid=Signal::stored(grid) /> })}
        }
        .into_any(),
        View::Frequencies => view! { <FrequencyPanel shape=SHIPPED_ROTARY_SHAPE /> }.into_any(),
        View::Training => view! { <TrainingPanel manifest=manifest /> }.into_any(),
    }
    };

    view! {
        // The wrapper is the style sheet's scope root (rules match below it).
        <div class="drope">
        <div class="drope-embed" data-testid="embed" data-view=view_kind.key()
            data-state=move || phase.get().key()
            data-series-done=move || shown.with(|s| s.as_ref().map_or(0, |s| s.series_done))>
            <div class="embed-head">
                <strong class="embed-title">{view_kind.title()}</strong>
                <span class="embed-status" data-testid="embed-status">{move || {
                    if let Some(p) = progress.get() {
                        return p;
                    }
                    match phase.get() {
                        EmbedPhase::Preparing => "Starting\u{2026}".to_string(),
                        EmbedPhase::Loading => "Loading models\u{2026}".to_string(),
                        EmbedPhase::Running => "Running\u{2026}".to_string(),
                        EmbedPhase::Paused => "Paused while off screen".to_string(),
                        EmbedPhase::Ready | EmbedPhase::Failed => String::new(),
                    }
                }}</span>
                <a class="embed-link" href=studio_link target="_blank" rel="noopener" data-testid="embed-link">
                    "Open in DroPE Studio \u{2197}"
                </a>
            </div>
            {(!problems.is_empty()).then(|| view! {
                <p class="notice" data-testid="embed-problems" role="status">
                    {format!("Some settings were not understood and were left at their defaults: {}.", problems.join("; "))}
                </p>
            })}
            {move || left_out.with(|p| (!p.is_empty()).then(|| view! {
                <p class="notice" data-testid="embed-left-out" role="status">{format!("Left out: {}.", p.join("; "))}</p>
            }))}
            {move || notice.get().map(|n| view! { <p class="notice" data-testid="embed-notice" role="status">{n}</p> })}
            {move || error.get().map(|e| view! { <p class="error" data-testid="embed-error" role="alert">{e}</p> })}
            {body}
            <p class="embed-caption" data-testid="embed-caption">{caption}</p>
        </div>
        </div>
    }
}

/// The attention maps of the first two series side by side, with the head's pickers.
fn attention_pair(
    shown: RwSignal<Option<Shown>>,
    picked: RwSignal<(usize, usize)>,
    labels: Signal<Vec<String>>,
    left_out: RwSignal<Vec<String>>,
) -> impl IntoView {
    let shape = move || {
        shown.with(|s| {
            s.as_ref()
                .and_then(|s| s.focus.as_ref())
                .map_or((0, 0), |r| (r.layers, r.heads))
        })
    };
    // `layer` and `head` come from the embed's settings: one the model lacks is named
    // and shown as 0.
    Effect::new(move |_| {
        if let Some((fixed, why)) = head_in_shape(picked.get_untracked(), shape()) {
            picked.set(fixed);
            left_out.update(|l| l.push(why));
        }
    });
    let map_of = move |second: bool| {
        Signal::derive(move || {
            let (layer, head) = picked.get();
            shown.with(|s| {
                let s = s.as_ref()?;
                let run = if second {
                    &s.compared.as_ref()?.1
                } else {
                    s.focus.as_ref()?
                };
                run.attention_map(layer, head)
            })
        })
    };
    let label_of = move |second: bool| {
        move || {
            shown.with(|s| {
                let s = s.as_ref()?;
                if second {
                    s.compared.as_ref().map(|(label, _)| label.clone())
                } else {
                    s.chart.first().map(|c| c.label.clone())
                }
            })
        }
    };
    let scale = Signal::stored(HeatScale::Linear);
    let picker = move |name: &'static str,
                       which: fn(&mut (usize, usize)) -> &mut usize,
                       count: fn((usize, usize)) -> usize| {
        view! {
            <label>{name} " "
                <select data-testid=format!("embed-{}", name.to_lowercase())
                    on:change=move |ev| picked.update(|p| *which(p) = event_target_value(&ev).parse().unwrap_or(0))>
                    {move || (0..count(shape())).map(|i| view! {
                        <option value=i selected=move || { let mut p = picked.get(); *which(&mut p) == i }>{i}</option>
                    }).collect_view()}
                </select>
            </label>
        }
    };
    view! {
        <div class="row">
            {picker("Layer", |p| &mut p.0, |s| s.0)}
            {picker("Head", |p| &mut p.1, |s| s.1)}
        </div>
        <div class="attention-pair">
            <figure>
                <figcaption>{label_of(false)}</figcaption>
                <AttentionHeatmap map=map_of(false) labels=labels scale=scale />
            </figure>
            {move || shown.with(|s| s.as_ref().is_some_and(|s| s.compared.is_some())).then(|| view! {
                <figure>
                    <figcaption>{label_of(true)}</figcaption>
                    <AttentionHeatmap map=map_of(true) labels=labels scale=scale />
                </figure>
            })}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::url_state::PromptSource;

    #[test]
    fn params_read_the_studio_state_and_the_head() {
        let p = EmbedParams::parse(
            "view=attention&models=drope,rope&prompt-sample=austen-3&length=512&layer=2&head=5",
        );
        assert_eq!(p.state.view, View::Attention);
        assert_eq!(p.state.series.len(), 2);
        assert_eq!(p.state.prompt, PromptSource::Sample("austen-3".into()));
        assert_eq!(p.state.length, Some(512));
        assert_eq!(p.options, EmbedOptions { layer: 2, head: 5 });
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(
            p.studio_query(),
            "?view=attention&models=drope,rope&sample=austen-3&length=512"
        );
    }

    #[test]
    fn bad_values_are_reported_and_keep_their_defaults() {
        let p = EmbedParams::parse("view=nope&layer=x&length=1");
        assert_eq!(p.state.view, View::Perplexity);
        assert_eq!(p.options.layer, 0);
        assert_eq!(p.problems.len(), 3, "{:?}", p.problems);
        assert!(p.problems.iter().any(|m| m.contains("layer `x`")));
    }
}
