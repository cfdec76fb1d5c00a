//! One view of the studio, alone, for a blog post: `embed.html?view=...` (an iframe)
//! and `<drope-studio view=...>` (a custom element) both mount [`Embed`]. It reads the
//! same parameters as the studio's URL and runs its models through the same
//! [`RunController`] and panels as the studio, on the page's shared engine
//! ([`crate::page_engine`]), and only while it is on screen: the loader mounts it when it
//! nears the viewport, and a run in progress waits between series while it is scrolled
//! away.

use std::rc::Rc;

use engine::results::NeedleGrid;
use engine::DeviceKind;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::assets::asset_url;
use crate::error::AppError;
use crate::format::{bytes_of, quoted};
use crate::model_store::GpuStatus;
use crate::page_engine::{page_gpu, page_manifest, page_samples};
use crate::panels::{FrequencyPanel, TrainingPanel, SHIPPED_ROTARY_SHAPE};
use crate::published::fetch_needle_grid;
use crate::run_controller::{Activity, RunController, RunInputs};
use crate::run_panels::{
    focus_profiles, keep_head_in_shape, open_at_informative_head, AttentionPair, HeadPickers,
    PerplexityPanel, TokenPanel,
};
use crate::samples::resolve_prompt;
use crate::url_state::{decode_query, encode_query, StudioState, View};
use crate::views::{ErrorLine, HeatScale, NeedleResults, Notice};

/// What an embed shows beyond the studio's URL state: the attention head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EmbedOptions {
    /// The layer of the attention maps (`None`: the head that reads furthest past L).
    pub layer: Option<usize>,
    /// The head of the attention maps (`None` as for `layer`).
    pub head: Option<usize>,
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
                Ok(n) => *slot = Some(n),
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

impl EmbedPhase {
    /// Where an embed is, from its preparation and its run: `prepared` once the model
    /// list (and for a run, the prompt) is in and the run has started.
    fn of(failed: bool, prepared: bool, runs: bool, activity: Activity, offscreen: bool) -> Self {
        match (failed, prepared, runs, activity) {
            (true, ..) => EmbedPhase::Failed,
            (false, false, ..) => EmbedPhase::Preparing,
            (false, true, false, _) | (false, true, true, Activity::Idle) => EmbedPhase::Ready,
            _ if offscreen => EmbedPhase::Paused,
            (.., Activity::Loading) => EmbedPhase::Loading,
            _ => EmbedPhase::Running,
        }
    }
}

/// The notice of an embed that runs on the CPU because WebGPU failed.
fn fallback_notice(reason: &str) -> String {
    format!("WebGPU failed ({reason}), so this figure runs on the CPU path.")
}

/// Fetches what the embed's view needs and, for a view of a run, starts it: the model
/// list, then the prompt (a sample or the embed's own text) or the published needles.
async fn prepare(
    params: &EmbedParams,
    run: RunController,
    prompt: RwSignal<String>,
    needle_grid: RwSignal<Option<NeedleGrid>>,
) -> Result<(), AppError> {
    let m = page_manifest().await?;
    run.inputs.manifest.set(Some((*m).clone()));
    match params.state.view {
        v if v.runs_models() => {
            let samples = page_samples().await?;
            prompt.set(resolve_prompt(&params.state.prompt, &samples).map_err(AppError::Input)?);
            run.run_whole();
        }
        View::Needle => needle_grid.set(Some(fetch_needle_grid().await?)),
        _ => {}
    }
    Ok(())
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
    let error = RwSignal::new(None::<String>);
    let prepared = RwSignal::new(false);
    let prompt = RwSignal::new(String::new());
    let needle_grid = RwSignal::new(None);
    let gpu = LocalResource::new(page_gpu);
    let run = RunController::new(
        RunInputs {
            manifest: RwSignal::new(None),
            series: RwSignal::new(params.state.series.clone()),
            length: RwSignal::new(params.state.length),
            prompt_text: prompt.into(),
            grow_step: RwSignal::new(16),
            gpu,
            backend: RwSignal::new(params.state.backend),
            gpu_failure: RwSignal::new(None),
            error,
            visible,
        },
        SHIPPED_ROTARY_SHAPE,
    );
    let RunController {
        progress,
        activity,
        offscreen,
        series_problems,
        series_done,
        chart,
        focus,
        counts,
        rotary_shape,
        inputs: RunInputs {
            manifest,
            gpu_failure,
            ..
        },
        ..
    } = run;
    {
        let params = Rc::clone(&params);
        spawn_local(async move {
            match prepare(&params, run, prompt, needle_grid).await {
                Ok(()) => prepared.set(true),
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    }
    let phase = Memo::new(move |_| {
        EmbedPhase::of(
            error.with(Option::is_some),
            prepared.get(),
            view_kind.runs_models(),
            activity.get(),
            offscreen.get(),
        )
    });
    // Why the figure runs on the CPU though it wanted WebGPU: a failure during its run,
    // or one the page met before (another embed lost the device).
    let notice = Signal::derive(move || {
        gpu_failure
            .get()
            .or_else(|| {
                gpu.with(|s| match s {
                    Some(GpuStatus::Failed(reason)) => Some(reason.clone()),
                    _ => None,
                })
            })
            .map(|reason| fallback_notice(&reason))
    });
    let head_problems = RwSignal::new(Vec::<String>::new());
    let left_out = Signal::derive(move || {
        let mut all = series_problems.get();
        all.extend(head_problems.get());
        (!all.is_empty()).then(|| format!("Left out: {}.", all.join("; ")))
    });
    let caption = move || {
        let (_, total, _) = counts.get();
        focus.with(|r| {
            let r = r.as_ref()?;
            let next = r.next.first().map(|g| quoted(&g.text));
            Some(format!(
                "{total} tokens, {} series, on {}.{}",
                chart.with(Vec::len),
                match r.backend {
                    DeviceKind::WebGpu => "WebGPU",
                    DeviceKind::Cpu => "the CPU",
                },
                next.map(|n| format!(" The focus model's next guess: {n}."))
                    .unwrap_or_default()
            ))
        })
    };
    let status = move || {
        if let Some((label, p)) = progress.get() {
            return format!("Downloading {label}: {}", bytes_of(p.received, p.total));
        }
        match phase.get() {
            EmbedPhase::Preparing => "Starting\u{2026}".to_string(),
            EmbedPhase::Loading => "Loading models\u{2026}".to_string(),
            EmbedPhase::Running => "Running\u{2026}".to_string(),
            EmbedPhase::Paused => "Paused while off screen".to_string(),
            EmbedPhase::Ready | EmbedPhase::Failed => String::new(),
        }
    };
    let studio_link = format!("{}{}", asset_url("./"), params.studio_query());
    let EmbedOptions { layer, head } = params.options;
    let picked = RwSignal::new((layer.unwrap_or(0), head.unwrap_or(0)));
    let head_named = layer.is_some() || head.is_some();
    let problems = params.problems.clone();
    let body = match view_kind {
        View::Perplexity => view! { <PerplexityPanel run=run /> }.into_any(),
        View::Tokens => view! { <TokenPanel run=run /> }.into_any(),
        View::Attention => view! { <EmbedAttention run=run picked=picked head_named=head_named problems=head_problems /> }.into_any(),
        View::Needle => view! {
            {move || needle_grid.get().map(|grid| view! { <NeedleResults grid=Signal::stored(grid) /> })}
        }
        .into_any(),
        View::Frequencies => view! { <FrequencyPanel shape=rotary_shape /> }.into_any(),
        View::Training => view! { <TrainingPanel manifest=manifest /> }.into_any(),
    };

    view! {
        // The wrapper is the style sheet's scope root (rules match below it).
        <div class="drope">
        <div class="drope-embed" data-testid="embed" data-view=view_kind.key()
            data-state=move || phase.get().key() data-series-done=move || series_done.get()>
            <div class="embed-head">
                <strong class="embed-title">{view_kind.title()}</strong>
                <span class="embed-status" data-testid="embed-status">{status}</span>
                <a class="embed-link" href=studio_link target="_blank" rel="noopener" data-testid="embed-link">
                    "Open in DroPE Studio \u{2197}"
                </a>
            </div>
            <Notice testid="embed-problems" text=Signal::stored((!problems.is_empty()).then(|| format!(
                "Some settings were not understood and were left at their defaults: {}.", problems.join("; "))))
            />
            <Notice testid="embed-left-out" text=left_out />
            <Notice testid="embed-notice" text=notice />
            <ErrorLine testid="embed-error" text=error />
            {body}
            <p class="embed-caption" data-testid="embed-caption">{caption}</p>
        </div>
        </div>
    }
}

/// The embed's attention maps: the pickers (a head the model lacks, named in the embed's
/// settings, is reported in `problems` and shown as 0) and the pair of maps.
#[component]
fn EmbedAttention(
    /// The embed's run.
    run: RunController,
    /// The head shown.
    picked: RwSignal<(usize, usize)>,
    /// Whether the embed's settings name a layer or head (else it opens at the head that
    /// reads furthest past L).
    head_named: bool,
    /// Where a head out of the model's shape is reported.
    problems: RwSignal<Vec<String>>,
) -> impl IntoView {
    keep_head_in_shape(run, picked, move |why| problems.update(|l| l.push(why)));
    if !head_named {
        open_at_informative_head(focus_profiles(run), picked);
    }
    view! {
        <div class="row">
            <HeadPickers run=run picked=picked testids=("embed-layer", "embed-head") />
        </div>
        // Log colours: attention weights span decades (on a linear scale most of a map is
        // one dark colour).
        <AttentionPair run=run picked=picked scale=Signal::stored(HeatScale::Log) />
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
        assert_eq!(
            p.options,
            EmbedOptions {
                layer: Some(2),
                head: Some(5)
            }
        );
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(
            p.studio_query(),
            "?view=attention&models=drope,rope&sample=austen-3&length=512"
        );
    }

    #[test]
    fn the_phase_follows_preparation_then_the_run() {
        use Activity::*;
        let of = EmbedPhase::of;
        assert_eq!(of(false, false, true, Idle, false), EmbedPhase::Preparing);
        assert_eq!(of(false, true, true, Loading, false), EmbedPhase::Loading);
        assert_eq!(of(false, true, true, Running, false), EmbedPhase::Running);
        assert_eq!(of(false, true, true, Running, true), EmbedPhase::Paused);
        assert_eq!(of(false, true, true, Loading, true), EmbedPhase::Paused);
        assert_eq!(of(false, true, true, Idle, false), EmbedPhase::Ready);
        // A view of published data is ready once fetched; a failure wins over all.
        assert_eq!(of(false, true, false, Idle, false), EmbedPhase::Ready);
        assert_eq!(of(true, true, true, Running, false), EmbedPhase::Failed);
        assert_eq!(of(true, false, false, Idle, false), EmbedPhase::Failed);
    }

    #[test]
    fn bad_values_are_reported_and_keep_their_defaults() {
        let p = EmbedParams::parse("view=nope&layer=x&length=1");
        assert_eq!(p.state.view, View::Perplexity);
        assert_eq!(p.options.layer, None);
        assert_eq!(p.problems.len(), 3, "{:?}", p.problems);
        assert!(p.problems.iter().any(|m| m.contains("layer `x`")));
    }
}
