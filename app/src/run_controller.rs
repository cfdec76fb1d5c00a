//! The run controller: everything between "run these series over this prompt" and the
//! signals the views draw. It loads each series' model on the wanted device (falling back
//! to the CPU when WebGPU fails, and starting the run again there), starts a
//! [`Comparison`], drives it whole or a step at a time (pause, play, step), and publishes
//! what it has after every step. The studio page and every embed hold one and draw its
//! signals; neither owns any of the run logic. A run waits while its page is off screen
//! (an embed scrolled away), between models and between series.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use engine::gpu::GpuContext;
use engine::{DeviceKind, EngineError};
use futures_channel::{mpsc, oneshot};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::analysis::{uniform_nll, RunResult};
use crate::cpu_worker::{max_workers, CpuWorker};
use crate::error::AppError;
use crate::format::{percent, quoted};
use crate::manifest::Manifest;
use crate::model_store::{DownloadProgress, GpuStatus, LoadedModel};
use crate::needle_live::NeedleSubject;
use crate::page_engine::{
    local_openings, page_gpu_failed, page_gpu_retry, page_has_files, page_model,
};
use crate::pause::{next_frame, painted, pause};
use crate::runs::{resolve_series, Arrival, Comparison, ResolvedSeries, SeriesProgress};
use crate::samples::check_prompt_size;
use crate::url_state::{BackendChoice, SeriesSpec};
use crate::views::ChartSeries;

/// The series whose attention is shown (the focus and its partner), by key, and the
/// tokens each has run.
type AttentionLengths = Vec<(String, usize)>;

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

/// Whether runs go to WebGPU: a device is ready, WebGPU has not failed since it was last
/// chosen, and it was chosen, or nothing was chosen and the adapter is not a software
/// one (which runs WebGPU on the CPU, slower than the CPU path).
/// `ready` is `Some(software)` when a device is ready.
pub fn gpu_wanted(ready: Option<bool>, failed: bool, choice: Option<BackendChoice>) -> bool {
    match (ready, choice) {
        (Some(_), _) if failed => false,
        (Some(_), Some(choice)) => choice == BackendChoice::WebGpu,
        (Some(software), None) => !software,
        (None, _) => false,
    }
}

/// `Some(software)` when `status` is a ready device.
fn ready_device(status: Option<&GpuStatus>) -> Option<bool> {
    match status {
        Some(GpuStatus::Ready { software, .. }) => Some(*software),
        _ => None,
    }
}

impl RunInputs {
    /// [`gpu_wanted`] now (tracked: views redraw when it changes).
    pub fn on_gpu(&self) -> bool {
        let (failed, choice) = (self.gpu_failure.with(Option::is_some), self.backend.get());
        self.gpu
            .with(|status| gpu_wanted(ready_device(status.as_ref()), failed, choice))
    }
}

/// How the last run ended (the page is idle again after each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// Every series ran its whole prompt.
    Done,
    /// The visitor pressed Stop: what had run stays shown.
    Stopped,
    /// It failed, and the error line says why.
    Failed,
}

impl RunEnd {
    /// Lower-case name, for `data-ended`.
    pub fn name(self) -> &'static str {
        match self {
            RunEnd::Done => "done",
            RunEnd::Stopped => "stopped",
            RunEnd::Failed => "failed",
        }
    }
}

/// How a run goes through the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// All tokens in one pass per series.
    Whole,
    /// A few tokens per step, redrawing after each.
    Grow,
}

/// What a run reads from the page: the series, the prompt, its length, the grow step and
/// the device choice.
#[derive(Clone, Copy)]
pub struct RunInputs {
    /// The models' manifest, once listed.
    pub manifest: RwSignal<Option<Manifest>>,
    /// The series compared.
    pub series: RwSignal<Vec<SeriesSpec>>,
    /// Run only the first tokens of the prompt.
    pub length: RwSignal<Option<usize>>,
    /// The prompt's text.
    pub prompt_text: Signal<String>,
    /// Tokens per grow step.
    pub grow_step: RwSignal<usize>,
    /// The page's WebGPU adapter, once asked for.
    pub gpu: LocalResource<GpuStatus>,
    /// The backend the visitor (or the link) chose; `None` lets the page decide
    /// ([`gpu_wanted`]).
    pub backend: RwSignal<Option<BackendChoice>>,
    /// Why WebGPU was left, if it was.
    pub gpu_failure: RwSignal<Option<String>>,
    /// The page's error line, where a failed run says what went wrong.
    pub error: RwSignal<Option<String>>,
    /// Whether the view is on screen (a run waits while it is not).
    pub visible: Signal<bool>,
}

/// The run controller's state: its inputs, what it publishes, and the run in progress.
#[derive(Clone, Copy)]
pub struct RunController {
    /// What it reads from the page (and the error line it reports to).
    pub inputs: RunInputs,
    /// Series left out (unknown models), with why.
    pub series_problems: RwSignal<Vec<String>>,
    /// Lengths cut to a model's cap in the current run, with why.
    pub cap_notes: RwSignal<Vec<String>>,
    /// The model downloading and how far.
    pub progress: RwSignal<Option<(String, DownloadProgress)>>,
    /// What the controller is doing.
    pub activity: RwSignal<Activity>,
    /// How the last run ended; `None` while one is under way (or before the first).
    pub ended: RwSignal<Option<RunEnd>>,
    /// Each series' tokens run of its prompt, in legend order.
    pub series_progress: RwSignal<Vec<SeriesProgress>>,
    /// A step is running (Pause takes effect when it ends: its tokens still arrive).
    pub stepping: RwSignal<bool>,
    /// The run waits because its view is off screen.
    pub offscreen: RwSignal<bool>,
    /// One line per series.
    pub chart: RwSignal<Vec<ChartSeries>>,
    /// The focus series' result.
    pub focus: RwSignal<Option<Arc<RunResult>>>,
    /// The second series (label, result), whose attention shows beside the focus'.
    pub compared: RwSignal<Option<(String, Arc<RunResult>)>>,
    /// The focus prompt's token texts.
    pub token_texts: RwSignal<Vec<String>>,
    /// Tokens run so far / in the prompt (after the length and the cap), and before cuts.
    pub counts: RwSignal<(usize, usize, usize)>,
    /// Series that have run their whole prompt.
    pub series_done: RwSignal<usize>,
    /// One sentence on the run so far.
    pub summary: RwSignal<Option<String>>,
    /// The focus model's (head_dim, rope_theta, L), for the frequency explorer.
    pub rotary_shape: RwSignal<(usize, f64, usize)>,
    /// The series' loaded models, for the live needle runner.
    pub needle_subjects: RwSignal<Vec<NeedleSubject>, LocalStorage>,
    /// The run shown (its generation), for tests and for telling runs apart.
    pub shown_run: RwSignal<u64>,
    /// The comparison being grown (models come from the page's engine).
    comparison: StoredValue<Option<Rc<RefCell<Option<Comparison>>>>, LocalStorage>,
    /// [`local_openings`] when the comparison started: a model opened since may replace
    /// one it holds, so it cannot merely be reordered.
    started_with_openings: StoredValue<u64>,
    /// Bumped by every new run; a run whose number is no longer current stops.
    generation: StoredValue<u64>,
    /// The run and the attention lengths of the focus and compared results last
    /// published (so unchanged ones are not copied again).
    shown_attention: StoredValue<Option<(u64, AttentionLengths)>>,
    /// Set when WebGPU failed mid-run: the run starts again (on the CPU).
    restart: RwSignal<Option<Mode>>,
    /// Told when the run's first series has landed (its line drawn): the models of the
    /// other series load only then, so the first figure waits for one download.
    first_landed: StoredValue<Option<oneshot::Sender<()>>, LocalStorage>,
}

impl RunController {
    /// A controller reading `inputs`, idle; the frequency explorer starts from
    /// `rotary_shape` until a model has run.
    pub fn new(inputs: RunInputs, rotary_shape: (usize, f64, usize)) -> Self {
        let controller = RunController {
            inputs,
            series_problems: RwSignal::new(Vec::new()),
            cap_notes: RwSignal::new(Vec::new()),
            progress: RwSignal::new(None),
            activity: RwSignal::new(Activity::Idle),
            ended: RwSignal::new(None),
            series_progress: RwSignal::new(Vec::new()),
            stepping: RwSignal::new(false),
            offscreen: RwSignal::new(false),
            chart: RwSignal::new(Vec::new()),
            focus: RwSignal::new(None),
            compared: RwSignal::new(None),
            token_texts: RwSignal::new(Vec::new()),
            counts: RwSignal::new((0, 0, 0)),
            series_done: RwSignal::new(0),
            summary: RwSignal::new(None),
            rotary_shape: RwSignal::new(rotary_shape),
            needle_subjects: RwSignal::new_local(Vec::new()),
            shown_run: RwSignal::new(0),
            comparison: StoredValue::new_local(None),
            started_with_openings: StoredValue::new(0),
            generation: StoredValue::new(0),
            shown_attention: StoredValue::new(None),
            restart: RwSignal::new(None),
            first_landed: StoredValue::new_local(None),
        };
        // A run that WebGPU failed starts again (on the CPU) from here.
        Effect::new(move |_| {
            let restart = controller.restart;
            if let Some(mode) = restart.get() {
                restart.set(None);
                controller.start(mode);
            }
        });
        controller
    }

    /// The device context the page wants, if it has one.
    fn wanted_context(self) -> Option<Rc<GpuContext>> {
        let RunInputs {
            gpu,
            backend,
            gpu_failure,
            ..
        } = self.inputs;
        let status = gpu.get_untracked();
        gpu_wanted(
            ready_device(status.as_ref()),
            gpu_failure.with_untracked(Option::is_some),
            backend.get_untracked(),
        )
        .then(|| status.and_then(|s| s.context()))
        .flatten()
    }

    /// Leaves WebGPU for the CPU path, saying why (until WebGPU is chosen again).
    fn fall_back_to_cpu(self, reason: String) {
        self.inputs.gpu_failure.set(Some(reason));
    }

    /// Leaves WebGPU after a pass failed on it. When the device itself is gone (lost, or
    /// it reported an error outside a pass), the page's GPU is marked failed too, so that
    /// views which open later (other embeds) go to the CPU at once.
    async fn leave_gpu(self, reason: String) {
        if let Some(device) = self.wanted_context() {
            // The browser reports a loss a little after the failed pass.
            next_frame().await;
            if let Err(EngineError::Gpu(gone)) = device.check_alive() {
                page_gpu_failed(&gone);
            }
        }
        self.fall_back_to_cpu(reason);
    }

    /// Waits while the view is off screen, saying so (`offscreen`) when `shown`.
    async fn while_offscreen(self, shown: bool) {
        let Self {
            offscreen,
            inputs: RunInputs { visible, .. },
            ..
        } = self;
        if visible.get_untracked() {
            return;
        }
        // A loader in the background waits unshown: the run itself may still be
        // finishing a pass, and "paused" would then be untrue until it lands.
        if shown {
            offscreen.set(true);
        }
        while !visible.get_untracked() {
            pause(150).await;
        }
        if shown {
            offscreen.set(false);
        }
    }

    /// Every series' model, downloaded if needed, on the wanted device; `None` when a
    /// newer run started meanwhile. Off screen it waits, and says so when `shown` (not
    /// for a loader beside a running comparison: see [`Self::while_offscreen`]).
    async fn load_models(
        self,
        resolved: Vec<ResolvedSeries>,
        run_id: u64,
        shown: bool,
    ) -> Result<Option<Vec<(ResolvedSeries, Rc<LoadedModel>)>>, AppError> {
        let Self {
            progress,
            generation,
            inputs: RunInputs { gpu, .. },
            ..
        } = self;
        gpu.await;
        let mut out = Vec::new();
        for series in resolved {
            self.while_offscreen(shown).await;
            if generation.get_value() != run_id {
                return Ok(None);
            }
            let label = series.entry.label.clone();
            let (loaded, failure) = page_model(&series.entry, self.wanted_context(), |p| {
                progress.set(Some((label.clone(), p)));
            })
            .await;
            progress.set(None);
            if let Some(reason) = failure {
                self.fall_back_to_cpu(reason);
            }
            let model = loaded.map_err(|e| {
                AppError::Input(format!("Could not load {}: {e}", series.entry.label))
            })?;
            out.push((series, model));
        }
        Ok(Some(out))
    }

    /// Loads the models of the series `later` once the first line is drawn, one after
    /// another, and sends each series to the running comparison (which waits for them
    /// after its own series); then hands every series to the live needle runner.
    async fn load_later(
        self,
        later: Vec<ResolvedSeries>,
        mut models: Vec<(ResolvedSeries, Rc<LoadedModel>)>,
        run_id: u64,
        first_landed: oneshot::Receiver<()>,
        arrive: mpsc::UnboundedSender<Arrival>,
    ) {
        // Dropped unsent when the run ended before its first line: nothing to load.
        if first_landed.await.is_err() || self.generation.get_value() != run_id {
            return;
        }
        // The line is on the page once the browser has painted it.
        painted().await;
        for series in later {
            let loaded = match self.load_models(vec![series], run_id, false).await {
                Ok(Some(mut loaded)) => loaded.pop(),
                Ok(None) => return,
                Err(e) => {
                    let _ = arrive.unbounded_send(Err(e));
                    return;
                }
            };
            if let Some(loaded) = loaded {
                models.push(loaded.clone());
                if arrive.unbounded_send(Ok(loaded)).is_err() {
                    return;
                }
            }
        }
        self.needle_subjects.set(needle_subjects(&models));
    }

    /// Shows what the comparison has so far.
    fn publish(self, c: &Comparison) {
        let Self {
            chart,
            focus,
            compared,
            token_texts,
            counts,
            series_done,
            summary,
            rotary_shape,
            shown_run,
            generation,
            shown_attention,
            ..
        } = self;
        shown_run.set(generation.get_value());
        if c.series_done() > 0 {
            self.first_landed.update_value(|first| {
                if let Some(told) = first.take() {
                    let _ = told.send(());
                }
            });
        }
        if let Some(shape) = c.focus_rotary_shape() {
            rotary_shape.set(shape);
        }
        chart.set(c.chart_series());
        // The focus' and its partner's results hold every head's attention: a whole run
        // publishes after each series, and copies them only when they grew or changed.
        let key = Some((generation.get_value(), c.attention_lengths()));
        if shown_attention.get_value() != key {
            shown_attention.set_value(key);
            focus.set(c.focus());
            compared.set(c.compared());
        }
        token_texts.set(c.token_texts());
        self.series_progress.set(c.progress());
        counts.set((c.done(), c.total(), c.full_len()));
        series_done.set(c.series_done());
        summary.set(focus.with_untracked(|f| {
            let r = f.as_ref()?;
            Some(format!(
                "{} of {} tokens, {} series, {} ms on {}. The focus model's guesses for the next token: {}",
                c.done(),
                c.total(),
                chart.with_untracked(Vec::len),
                c.elapsed_ms().round(),
                match (r.backend, CpuWorker::shared_placement().unwrap_or("page")) {
                    (DeviceKind::Cpu, "worker") if c.workers() > 1 => {
                        format!("the CPU ({} Web Workers side by side)", c.workers())
                    }
                    (DeviceKind::Cpu, "worker") => "the CPU (in a Web Worker)".into(),
                    (DeviceKind::Cpu, _) => "the CPU (on the page's thread)".into(),
                    (DeviceKind::WebGpu, _) => "WebGPU".into(),
                },
                r.next
                    .iter()
                    .map(|g| format!("{} ({})", quoted(&g.text), percent(g.probability)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }));
    }

    /// Runs the current comparison forward until it is done (whole: one series at a time,
    /// each drawn as it lands) or paused (grow: every series a few tokens further).
    async fn drive(self, run_id: u64, mode: Mode) {
        let Self {
            activity,
            stepping,
            comparison,
            generation,
            restart,
            inputs: RunInputs {
                grow_step, error, ..
            },
            ..
        } = self;
        let Some(cell) = comparison.get_value() else {
            return;
        };
        loop {
            self.while_offscreen(true).await;
            if generation.get_value() != run_id {
                return;
            }
            let Some(mut c) = cell.borrow_mut().take() else {
                return;
            };
            // Series whose models loaded since (a whole run starts with the focus'),
            // waiting for the next when the others have run.
            let arrived = if c.waiting_for_models() {
                c.wait_for_arrival().await
            } else {
                c.take_arrivals()
            };
            if generation.get_value() != run_id {
                return;
            }
            if let Err(e) = arrived {
                activity.set(Activity::Idle);
                self.ended.set(Some(RunEnd::Failed));
                error.set(Some(e.to_string()));
                *cell.borrow_mut() = Some(c);
                return;
            }
            if c.finished() || (mode == Mode::Grow && activity.get_untracked() != Activity::Growing)
            {
                if c.finished() {
                    activity.set(Activity::Idle);
                    self.ended.set(Some(RunEnd::Done));
                }
                *cell.borrow_mut() = Some(c);
                return;
            }
            stepping.set(true);
            // Each series is drawn as it lands, also when they run side by side.
            let landed = |c: &Comparison| {
                if generation.get_value() == run_id {
                    self.publish(c);
                }
            };
            let outcome = match (mode, c.side_by_side()) {
                (Mode::Whole, false) => {
                    let total = c.total();
                    c.advance_one(total).await.map(|_| ())
                }
                (Mode::Whole, true) => {
                    let total = c.total();
                    c.advance_together(total, max_workers(), landed).await
                }
                (Mode::Grow, false) => {
                    let upto = c.done() + grow_step.get_untracked();
                    c.advance(upto).await
                }
                // Grow keeps every series in step: drawn once all reached `upto`.
                (Mode::Grow, true) => {
                    let upto = c.done() + grow_step.get_untracked();
                    c.advance_together(upto, usize::MAX, |_| ()).await
                }
            };
            if generation.get_value() != run_id {
                stepping.set(false);
                return;
            }
            if let Err(e) = outcome {
                stepping.set(false);
                match e {
                    // Also when the page already moved to the CPU: a model that loaded
                    // onto the GPU before a later one found the device lost fails here.
                    AppError::Engine(EngineError::Gpu(reason)) => {
                        // Start again on the CPU (the pool moves each model on demand);
                        // never idle in between, so that nobody reads the run as done.
                        activity.set(Activity::Loading);
                        self.leave_gpu(reason).await;
                        restart.set(Some(mode));
                    }
                    e => {
                        activity.set(Activity::Idle);
                        self.ended.set(Some(RunEnd::Failed));
                        error.set(Some(e.to_string()));
                    }
                }
                return;
            }
            self.publish(&c);
            stepping.set(false);
            *cell.borrow_mut() = Some(c);
            // Let the browser paint (and take clicks) between steps.
            pause(if mode == Mode::Grow { 15 } else { 0 }).await;
        }
    }

    /// Ends the run with `message` on the error line: idle, nothing shown, so that no
    /// status, legend or count is left from a run that is gone.
    fn fail(self, message: String) {
        let Self {
            activity,
            stepping,
            chart,
            focus,
            compared,
            counts,
            series_done,
            summary,
            inputs: RunInputs { error, .. },
            ..
        } = self;
        activity.set(Activity::Idle);
        self.ended.set(Some(RunEnd::Failed));
        stepping.set(false);
        chart.set(Vec::new());
        self.series_progress.set(Vec::new());
        focus.set(None);
        compared.set(None);
        counts.set((0, 0, 0));
        series_done.set(0);
        summary.set(None);
        self.cap_notes.set(Vec::new());
        // Nothing of a run that is gone may come back by reordering it.
        self.comparison.set_value(None);
        error.set(Some(message));
    }

    /// Starts a new comparison of the current series over the current prompt (a run in
    /// progress stops at its next step).
    pub fn start(self, mode: Mode) {
        let Self {
            series_problems,
            activity,
            needle_subjects,
            comparison,
            generation,
            inputs:
                RunInputs {
                    manifest,
                    series,
                    length,
                    prompt_text,
                    error,
                    ..
                },
            ..
        } = self;
        let run_id = generation.get_value() + 1;
        generation.set_value(run_id);
        error.set(None);
        self.ended.set(None);
        // The old runs go now (unless a pass of theirs is still out): their memory is
        // freed before the new ones take theirs, and their sessions no longer count as
        // busy when the new sessions are shared out among the CPU workers.
        if let Some(cell) = comparison.get_value() {
            drop(cell.borrow_mut().take());
        }
        // An older run's loader still waiting for its first line gives up.
        self.first_landed.set_value(None);
        let Some(m) = manifest.get_untracked() else {
            return;
        };
        let text = prompt_text.get_untracked();
        if let Err(e) = check_prompt_size(&text) {
            self.fail(e);
            return;
        }
        let (resolved, problems) = resolve_series(&m, &series.get_untracked());
        series_problems.set(problems.clone());
        if resolved.is_empty() {
            self.fail(if problems.is_empty() {
                "No series to run: add a model.".to_string()
            } else {
                format!("No series to run ({}).", problems.join("; "))
            });
            return;
        }
        activity.set(Activity::Loading);
        // Before loading: a model opened while this run loads is newer than its copy.
        let openings = local_openings();
        // A whole run starts with the focus model's series (and those after it whose
        // files are on the page already); the other models are downloaded once the
        // first line is drawn (`load_later`). Growing keeps every series in step, so it
        // starts with all of them.
        let mut resolved = resolved;
        let later = match mode {
            Mode::Whole => {
                let focus_model = resolved[0].entry.id.clone();
                let first = resolved
                    .iter()
                    .take_while(|r| r.entry.id == focus_model || page_has_files(&r.entry.id))
                    .count();
                resolved.split_off(first)
            }
            Mode::Grow => Vec::new(),
        };
        spawn_local(async move {
            let models = match self.load_models(resolved, run_id, true).await {
                Ok(Some(models)) => models,
                Ok(None) => return,
                Err(e) => {
                    self.fail(e.to_string());
                    return;
                }
            };
            if generation.get_value() != run_id {
                return;
            }
            needle_subjects.set(self::needle_subjects(&models));
            match Comparison::start(&models, &text, length.get_untracked()) {
                Ok(mut c) => {
                    if !later.is_empty() {
                        let (arrive, arrivals) = mpsc::unbounded();
                        c.expect(later.len(), arrivals);
                        let (told, first_landed) = oneshot::channel();
                        self.first_landed.set_value(Some(told));
                        spawn_local(self.load_later(later, models, run_id, first_landed, arrive));
                    }
                    self.started_with_openings.set_value(openings);
                    self.cap_notes.set(c.cap_notes());
                    self.publish(&c);
                    comparison.set_value(Some(Rc::new(RefCell::new(Some(c)))));
                }
                Err(e) => {
                    self.fail(e.to_string());
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
            self.drive(run_id, mode).await;
        });
    }

    /// Runs the whole prompt again.
    pub fn run_whole(self) {
        self.start(Mode::Whole);
    }

    /// The series (or the length) changed: when only their order did (a new focus) and
    /// the comparison in hand is not mid-step, it is reordered and shown again, with
    /// nothing rerun; otherwise the whole prompt runs again.
    pub fn series_changed(self) {
        let Self {
            comparison,
            activity,
            shown_attention,
            inputs:
                RunInputs {
                    series,
                    length,
                    prompt_text,
                    ..
                },
            ..
        } = self;
        let settled = matches!(activity.get_untracked(), Activity::Idle | Activity::Paused)
            && self.started_with_openings.get_value() == local_openings();
        let reordered = settled
            && comparison.get_value().is_some_and(|cell| {
                // Empty while a step runs: then this is a new run.
                let mut slot = cell.borrow_mut();
                let Some(c) = slot.as_mut() else {
                    return false;
                };
                let moved = series.with_untracked(|s| {
                    c.reorder(s, &prompt_text.get_untracked(), length.get_untracked())
                });
                if moved {
                    shown_attention.set_value(None);
                    self.publish(c);
                }
                moved
            });
        if !reordered {
            self.run_whole();
        }
    }

    /// Stops the run under way: it ends at once as far as the page is concerned (what
    /// had run stays shown, the buttons come back); a forward pass already sent to the
    /// GPU or the worker finishes there and its result is dropped.
    pub fn stop(self) {
        let Self {
            activity,
            stepping,
            progress,
            generation,
            ended,
            ..
        } = self;
        if activity.get_untracked() == Activity::Idle {
            return;
        }
        generation.set_value(generation.get_value() + 1);
        activity.set(Activity::Idle);
        stepping.set(false);
        progress.set(None);
        ended.set(Some(RunEnd::Stopped));
    }

    /// Grow: starts growing, pauses a grow, or continues a paused one.
    pub fn play(self) {
        let Self {
            activity,
            generation,
            ..
        } = self;
        match activity.get_untracked() {
            Activity::Paused => {
                activity.set(Activity::Growing);
                spawn_local(self.drive(generation.get_value(), Mode::Grow));
            }
            Activity::Growing => activity.set(Activity::Paused),
            _ => self.start(Mode::Grow),
        }
    }

    /// One grow step from a pause.
    pub fn step(self) {
        let Self {
            activity,
            comparison,
            generation,
            inputs: RunInputs {
                grow_step, error, ..
            },
            ..
        } = self;
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
                    let outcome = if c.side_by_side() {
                        c.advance_together(upto, usize::MAX, |_| ()).await
                    } else {
                        c.advance(upto).await
                    };
                    if generation.get_value() == run_id {
                        let failed = outcome.is_err();
                        match outcome {
                            Ok(()) => self.publish(&c),
                            Err(e) => error.set(Some(e.to_string())),
                        }
                        if failed || c.finished() {
                            activity.set(Activity::Idle);
                            self.ended.set(Some(if failed {
                                RunEnd::Failed
                            } else {
                                RunEnd::Done
                            }));
                        } else {
                            activity.set(Activity::Paused);
                        }
                        *cell.borrow_mut() = Some(c);
                    }
                }
            });
        }
    }

    /// The focus model's training length L (128 before a run).
    pub fn training_length(self) -> Signal<usize> {
        let focus = self.focus;
        Signal::derive(move || focus.with(|r| r.as_ref().map_or(128, |r| r.training_length)))
    }

    /// The NLL of a uniform guess over the focus model's vocabulary (the charts' top).
    pub fn uniform_nll(self) -> Signal<f32> {
        let focus = self.focus;
        Signal::derive(move || {
            focus.with(|r| uniform_nll(r.as_ref().map_or(4096, |r| r.vocab_size)))
        })
    }

    /// `(layers, heads)` of the focus model (`(0, 0)` before a run).
    pub fn head_shape(self) -> Signal<(usize, usize)> {
        let focus = self.focus;
        Signal::derive(move || focus.with(|r| r.as_ref().map_or((0, 0), |r| (r.layers, r.heads))))
    }

    /// Switches the device (WebGPU or the CPU path) and runs again on it.
    pub fn choose_backend(self, want_gpu: bool) {
        let RunInputs {
            backend,
            gpu_failure,
            gpu,
            ..
        } = self.inputs;
        backend.set(Some(if want_gpu {
            BackendChoice::WebGpu
        } else {
            BackendChoice::Cpu
        }));
        if want_gpu {
            gpu_failure.set(None);
            // After a device loss the page's device is gone: ask the browser for a new
            // one (and load the models onto it) instead of failing on the old one.
            let lost = gpu.get_untracked().is_some_and(|status| match status {
                GpuStatus::Ready { context, .. } => context.check_alive().is_err(),
                GpuStatus::Failed(_) => true,
                GpuStatus::NoAdapter => false,
            });
            if lost {
                page_gpu_retry();
                gpu.refetch();
            }
        }
        self.run_whole();
    }
}

/// The live needle runner's subjects: each series' label, scheme and loaded model.
fn needle_subjects(models: &[(ResolvedSeries, Rc<LoadedModel>)]) -> Vec<NeedleSubject> {
    models
        .iter()
        .map(|(series, model)| NeedleSubject {
            label: series.label(),
            scheme: series.scheme_for(model),
            model: Rc::clone(model),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_software_adapter_runs_on_the_cpu_unless_webgpu_is_chosen() {
        use BackendChoice::{Cpu, WebGpu};
        // Hardware: WebGPU unless the CPU is chosen or WebGPU failed.
        assert!(gpu_wanted(Some(false), false, None));
        assert!(!gpu_wanted(Some(false), false, Some(Cpu)));
        assert!(!gpu_wanted(Some(false), true, None));
        // Software: the CPU, one choice away from WebGPU.
        assert!(!gpu_wanted(Some(true), false, None));
        assert!(gpu_wanted(Some(true), false, Some(WebGpu)));
        // No device: never.
        assert!(!gpu_wanted(None, false, Some(WebGpu)));
    }
}
