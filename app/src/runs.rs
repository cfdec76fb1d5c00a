//! Running the compared series over one prompt: resolving each series against the
//! manifest, preparing the prompt per tokenizer, and growing every series' run
//! together, a step at a time (or all at once). Kept apart from the page so the run
//! logic reads without the markup.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use engine::{PositionScheme, SchemeSpec};
use futures_channel::mpsc::{TryRecvError, UnboundedReceiver};
use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::analysis::{prepare_prompt, LiveRun, PreparedPrompt, RunResult};
use crate::error::AppError;
use crate::local_model::LOCAL_PREFIX;
use crate::manifest::{Manifest, ModelEntry};
use crate::model_store::LoadedModel;
use crate::series_look::{series_colours, SeriesFacts};
use crate::url_state::{SeriesSpec, StudioState};
use crate::views::ChartSeries;

/// A series checked against the manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedSeries {
    /// As asked for.
    pub spec: SeriesSpec,
    /// The model's manifest entry.
    pub entry: ModelEntry,
}

impl ResolvedSeries {
    /// The scheme the series runs under: its own, else the one `model` was trained with.
    pub fn scheme_for(&self, model: &LoadedModel) -> SchemeSpec {
        self.spec.scheme.unwrap_or_else(|| model.default_scheme())
    }

    /// What naming and colouring the series needs.
    pub fn facts(&self) -> SeriesFacts {
        SeriesFacts::of(&self.spec, Some(&self.entry))
    }

    /// Legend text: "RoPE + YaRN (dynamic)" ([`SeriesFacts::name`]).
    pub fn label(&self) -> String {
        self.facts().name()
    }
}

/// Checks every series against the manifest: the known ones resolved, each unknown
/// model reported with the ids that exist.
pub fn resolve_series(
    manifest: &Manifest,
    series: &[SeriesSpec],
) -> (Vec<ResolvedSeries>, Vec<String>) {
    let mut resolved = Vec::new();
    let mut problems = Vec::new();
    for spec in series {
        match manifest.model(&spec.model) {
            Some(entry) => resolved.push(ResolvedSeries {
                spec: spec.clone(),
                entry: entry.clone(),
            }),
            None if spec.model.starts_with(LOCAL_PREFIX) => problems.push(format!(
                "`{}` is a model from disk that this page has not opened",
                spec.model
            )),
            None => {
                let ids: Vec<&str> = manifest.models.iter().map(|m| m.id.as_str()).collect();
                problems.push(format!(
                    "no model `{}` (models: {})",
                    spec.model,
                    ids.join(", ")
                ));
            }
        }
    }
    (resolved, problems)
}

/// A link's series without the models the manifest does not list (local models stay:
/// the page asks for their files), and a message for each one left out. When none is
/// left, the default series.
pub fn known_series(manifest: &Manifest, series: &[SeriesSpec]) -> (Vec<SeriesSpec>, Vec<String>) {
    let known =
        |s: &&SeriesSpec| s.model.starts_with(LOCAL_PREFIX) || manifest.model(&s.model).is_some();
    let kept: Vec<SeriesSpec> = series.iter().filter(known).cloned().collect();
    let ids: Vec<&str> = manifest.models.iter().map(|m| m.id.as_str()).collect();
    let unknown = series
        .iter()
        .filter(|s| !known(s))
        .map(|s| {
            format!(
                "model `{}` is not one of the studio's ({})",
                s.model,
                ids.join(", ")
            )
        })
        .collect();
    let kept = match kept.is_empty() {
        true => StudioState::default().series,
        false => kept,
    };
    (kept, unknown)
}

/// One series' progress through the prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesProgress {
    /// The series' key (its URL form).
    pub key: String,
    /// Its name.
    pub label: String,
    /// Its colour.
    pub colour: &'static str,
    /// Tokens run.
    pub done: usize,
    /// Tokens of its prompt.
    pub total: usize,
}

/// Every series' run of one prompt, grown together.
pub struct Comparison {
    /// The prompt per model id (models may have their own tokenizers).
    prompts: HashMap<String, PreparedPrompt>,
    /// One run per series, in legend order (the first is the focus); each records every
    /// head's attention, so that any series can become the focus, or be compared with
    /// it, without running again.
    runs: Vec<(ResolvedSeries, LiveRun)>,
    /// The text and length asked for, to tell a new focus from a new run.
    asked: (String, Option<usize>),
    /// Wall time spent advancing, in milliseconds (series side by side count once).
    wall_ms: f64,
    /// Prompts by tokenizer key ([`Comparison::prompt_for`]).
    by_tokenizer: HashMap<(String, usize, Option<u32>), PreparedPrompt>,
    /// Series whose models are still loading ([`Comparison::expect`]), and where they
    /// arrive, in legend order.
    awaiting: usize,
    arrivals: Option<UnboundedReceiver<Arrival>>,
}

/// A series whose model finished loading after the comparison started, or why it could
/// not load.
pub type Arrival = Result<(ResolvedSeries, Rc<LoadedModel>), AppError>;

impl Comparison {
    /// Prepares `text` (first `length` tokens) for each series' model and starts an
    /// empty run per series.
    pub fn start(
        series: &[(ResolvedSeries, Rc<LoadedModel>)],
        text: &str,
        length: Option<usize>,
    ) -> Result<Comparison, AppError> {
        let mut comparison = Comparison {
            prompts: HashMap::new(),
            runs: Vec::new(),
            asked: (text.to_string(), length),
            wall_ms: 0.0,
            by_tokenizer: HashMap::new(),
            awaiting: 0,
            arrivals: None,
        };
        for (resolved, model) in series {
            comparison.add(resolved, model)?;
        }
        Ok(comparison)
    }

    /// Appends a series (after those there): its model's prompt, and an empty run.
    fn add(&mut self, resolved: &ResolvedSeries, model: &Rc<LoadedModel>) -> Result<(), AppError> {
        self.prompt_for(resolved, model)?;
        let scheme = resolved.scheme_for(model);
        let run = LiveRun::start(Rc::clone(model), scheme)?;
        self.runs.push((resolved.clone(), run));
        Ok(())
    }

    /// Tokenizes the text for `resolved`'s model, unless done already. Tokenizing is the
    /// slowest step of starting a run (tens of milliseconds for a sample), so models
    /// with the same tokenizer file, cap and first token (all shipped models) with a
    /// known hash share one tokenization.
    fn prompt_for(
        &mut self,
        resolved: &ResolvedSeries,
        model: &Rc<LoadedModel>,
    ) -> Result<(), AppError> {
        if self.prompts.contains_key(&resolved.entry.id) {
            return Ok(());
        }
        // A manifest without hashes shares nothing.
        let tokenizer = match &resolved.entry.files.tokenizer.sha256 {
            sha if sha.is_empty() => format!("model {}", resolved.entry.id),
            sha => sha.clone(),
        };
        let key = (tokenizer, model.max_tokens(), model.config().bos_token_id);
        let prepared = match self.by_tokenizer.get(&key) {
            Some(prepared) => prepared.clone(),
            None => prepare_prompt(model, &self.asked.0, self.asked.1)?,
        };
        self.by_tokenizer.insert(key, prepared.clone());
        self.prompts.insert(resolved.entry.id.clone(), prepared);
        Ok(())
    }

    /// `count` more series will arrive on `arrivals` (their models still loading), to
    /// be appended in the order they come: the comparison is not finished before.
    pub fn expect(&mut self, count: usize, arrivals: UnboundedReceiver<Arrival>) {
        self.awaiting = count;
        self.arrivals = Some(arrivals);
    }

    /// Appends the series that have arrived, without waiting; the first that could not
    /// load is the error.
    pub fn take_arrivals(&mut self) -> Result<(), AppError> {
        while self.awaiting > 0 {
            let Some(arrivals) = &mut self.arrivals else {
                break;
            };
            match arrivals.try_recv() {
                Ok(arrival) => self.arrive(arrival)?,
                Err(TryRecvError::Empty) => break,
                // The loader stopped (a newer run): nothing more comes.
                Err(TryRecvError::Closed) => self.awaiting = 0,
            }
        }
        Ok(())
    }

    /// Waits for the next series to arrive and appends it.
    pub async fn wait_for_arrival(&mut self) -> Result<(), AppError> {
        let next = match &mut self.arrivals {
            Some(arrivals) if self.awaiting > 0 => arrivals.next().await,
            _ => return Ok(()),
        };
        match next {
            Some(arrival) => self.arrive(arrival),
            None => {
                self.awaiting = 0;
                Ok(())
            }
        }
    }

    fn arrive(&mut self, arrival: Arrival) -> Result<(), AppError> {
        self.awaiting = self.awaiting.saturating_sub(1);
        let (resolved, model) = arrival?;
        self.add(&resolved, &model)
    }

    /// Puts the runs in the order of `series` when that is all that changed (the same
    /// series, text and length: a new focus), so nothing runs again; `false`, and nothing
    /// moved, otherwise.
    pub fn reorder(&mut self, series: &[SeriesSpec], text: &str, length: Option<usize>) -> bool {
        if self.asked.0 != text || self.asked.1 != length || series.len() != self.runs.len() {
            return false;
        }
        let mut order = Vec::with_capacity(series.len());
        for spec in series {
            match (0..self.runs.len())
                .find(|&i| !order.contains(&i) && self.runs[i].0.spec == *spec)
            {
                Some(i) => order.push(i),
                None => return false,
            }
        }
        let mut runs: Vec<Option<(ResolvedSeries, LiveRun)>> = std::mem::take(&mut self.runs)
            .into_iter()
            .map(Some)
            .collect();
        self.runs = order.into_iter().filter_map(|i| runs[i].take()).collect();
        true
    }

    /// What the page says about lengths cut to a model's cap, once per model.
    pub fn cap_notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = self
            .prompts
            .values()
            .filter_map(|p| p.capped.clone())
            .collect();
        notes.sort();
        notes.dedup();
        notes
    }

    /// Tokens of the longest prepared prompt (the chart's axis).
    pub fn total(&self) -> usize {
        self.prompts
            .values()
            .map(|p| p.ids.len())
            .max()
            .unwrap_or(0)
    }

    /// Tokens in the whole text before the length or the cap cut it (the focus model's).
    pub fn full_len(&self) -> usize {
        self.focus_prompt().map_or(0, |p| p.full_len)
    }

    /// Tokens every series has run.
    pub fn done(&self) -> usize {
        self.runs.iter().map(|(_, r)| r.len()).min().unwrap_or(0)
    }

    /// How many series have run their whole prompt.
    pub fn series_done(&self) -> usize {
        self.runs
            .iter()
            .filter(|(resolved, run)| {
                run.len()
                    >= self
                        .prompts
                        .get(&resolved.entry.id)
                        .map_or(0, |p| p.ids.len())
            })
            .count()
    }

    /// Whether every series has run its whole prompt (and none is still loading).
    pub fn finished(&self) -> bool {
        self.awaiting == 0 && self.series_done() == self.runs.len()
    }

    /// Whether every series there has run its whole prompt while others still load:
    /// the run waits for them ([`Self::wait_for_arrival`]).
    pub fn waiting_for_models(&self) -> bool {
        self.awaiting > 0 && self.series_done() == self.runs.len()
    }

    fn focus_prompt(&self) -> Option<&PreparedPrompt> {
        let (resolved, _) = self.runs.first()?;
        self.prompts.get(&resolved.entry.id)
    }

    /// Runs every series up to `upto` tokens (each series to its own prompt's end at
    /// most). Stops at the first failure.
    pub async fn advance(&mut self, upto: usize) -> Result<(), AppError> {
        let started = js_sys::Date::now();
        let mut outcome = Ok(());
        for (resolved, run) in &mut self.runs {
            let Some(prompt) = self.prompts.get(&resolved.entry.id) else {
                continue;
            };
            outcome = run.advance(prompt, upto).await;
            if outcome.is_err() {
                break;
            }
        }
        self.wall_ms += js_sys::Date::now() - started;
        outcome
    }

    /// How many CPU workers hold the series' sessions (0 on WebGPU).
    pub fn workers(&self) -> usize {
        let mut workers: Vec<usize> = self.runs.iter().filter_map(|(_, r)| r.worker()).collect();
        workers.sort_unstable();
        workers.dedup();
        workers.len()
    }

    /// Whether the series should run side by side ([`Self::advance_together`]): more
    /// than one, all on the CPU path, whose sessions the workers share out (see
    /// `cpu_worker.rs`). On WebGPU they take turns on one device, and each pass' scratch
    /// memory is better spent one series at a time.
    pub fn side_by_side(&self) -> bool {
        self.runs.len() > 1 && self.runs.iter().all(|(_, run)| !run.model().on_gpu())
    }

    /// Runs the first `at_most` series that have not reached `upto` tokens up to there at
    /// once, each pass in its session's worker, and calls `landed` as each one lands (so
    /// each is drawn then). Every pass runs to its end; the first failure is returned
    /// after. A whole run goes `at_most` workers' worth of series at a time, so that an
    /// embed scrolled away still pauses between them.
    pub async fn advance_together(
        &mut self,
        upto: usize,
        at_most: usize,
        mut landed: impl FnMut(&Comparison),
    ) -> Result<(), AppError> {
        let started = js_sys::Date::now();
        let mut flying = FuturesUnordered::new();
        for (i, (resolved, run)) in self.runs.iter_mut().enumerate() {
            let Some(prompt) = self.prompts.get(&resolved.entry.id) else {
                continue;
            };
            if flying.len() == at_most {
                break;
            }
            if let Some(pass) = run.begin(prompt, upto) {
                flying.push(async move { (i, pass.run().await) });
            }
        }
        let mut first_error = None;
        while let Some((i, ran)) = flying.next().await {
            let (resolved, run) = &mut self.runs[i];
            let outcome = match self.prompts.get(&resolved.entry.id) {
                Some(prompt) => run.finish(prompt, ran),
                None => Ok(()),
            };
            match outcome {
                Ok(()) => landed(self),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        self.wall_ms += js_sys::Date::now() - started;
        first_error.map_or(Ok(()), Err)
    }

    /// Runs the first series that has not reached `upto` tokens (or its prompt's end)
    /// up to there; `false` when every series already has. The run controller calls
    /// this in a loop for a whole run, so each series is drawn as it lands and a run
    /// can wait between series while its view is off screen.
    pub async fn advance_one(&mut self, upto: usize) -> Result<bool, AppError> {
        for (resolved, run) in &mut self.runs {
            let Some(prompt) = self.prompts.get(&resolved.entry.id) else {
                continue;
            };
            if run.len() < upto.min(prompt.ids.len()) {
                let started = js_sys::Date::now();
                let outcome = run.advance(prompt, upto).await;
                self.wall_ms += js_sys::Date::now() - started;
                return outcome.map(|()| true);
            }
        }
        Ok(false)
    }

    /// Each series' tokens run of its own prompt, in legend order.
    pub fn progress(&self) -> Vec<SeriesProgress> {
        self.runs
            .iter()
            .zip(self.colours())
            .map(|((resolved, run), colour)| SeriesProgress {
                key: resolved.spec.to_string(),
                label: resolved.label(),
                colour,
                done: run.len(),
                total: self
                    .prompts
                    .get(&resolved.entry.id)
                    .map_or(0, |p| p.ids.len()),
            })
            .collect()
    }

    /// Each series' colour, in legend order ([`series_colours`]).
    pub fn colours(&self) -> Vec<&'static str> {
        let facts: Vec<SeriesFacts> = self.runs.iter().map(|(r, _)| r.facts()).collect();
        series_colours(&facts)
    }

    /// The chart's lines: each series' NLL per position so far.
    pub fn chart_series(&self) -> Vec<ChartSeries> {
        self.runs
            .iter()
            .zip(self.colours())
            .map(|((resolved, run), colour)| ChartSeries {
                key: resolved.spec.to_string(),
                label: resolved.label(),
                colour,
                nll: run.result().tokens.iter().map(|t| t.nll).collect(),
            })
            .collect()
    }

    /// The series whose attention shows beside the focus': the first other one that
    /// differs from the focus in having positions at all (DroPE beside a RoPE focus, RoPE
    /// beside DroPE: the comparison the studio is about), else the second.
    fn partner(&self) -> Option<usize> {
        let rotates = |i: usize| {
            let (_, run) = &self.runs[i];
            !matches!(run.result().scheme.position, PositionScheme::None)
        };
        if self.runs.is_empty() {
            return None;
        }
        let focus = rotates(0);
        (1..self.runs.len())
            .find(|&i| rotates(i) != focus)
            .or((self.runs.len() > 1).then_some(1))
    }

    /// The partner series' ([`Comparison::partner`]) result, legend label and key.
    pub fn compared(&self) -> Option<(String, Arc<RunResult>)> {
        self.partner().map(|i| {
            let (resolved, run) = &self.runs[i];
            (resolved.label(), Arc::new(run.result().clone()))
        })
    }

    /// Tokens run by the focus and by its partner, with their keys: the results that
    /// carry attention change only when these do.
    pub fn attention_lengths(&self) -> Vec<(String, usize)> {
        [Some(0), self.partner()]
            .into_iter()
            .flatten()
            .filter_map(|i| self.runs.get(i))
            .map(|(resolved, run)| (resolved.spec.to_string(), run.len()))
            .collect()
    }

    /// The focus series' full result (tokens, guesses, attention).
    pub fn focus(&self) -> Option<Arc<RunResult>> {
        self.runs
            .first()
            .map(|(_, run)| Arc::new(run.result().clone()))
    }

    /// The focus model's rotary shape: `(head_dim, rope_theta, L)`.
    pub fn focus_rotary_shape(&self) -> Option<(usize, f64, usize)> {
        let (_, run) = self.runs.first()?;
        let config = run.model().config();
        Some((
            config.head_dim(),
            config.rope_theta,
            config.training_length(),
        ))
    }

    /// The focus prompt's token texts (the chart's hover readout).
    pub fn token_texts(&self) -> Vec<String> {
        self.focus_prompt()
            .map(|p| p.texts.clone())
            .unwrap_or_default()
    }

    /// Milliseconds spent running the series (wall time: series side by side count
    /// once).
    pub fn elapsed_ms(&self) -> f64 {
        self.wall_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_links_unknown_models_are_left_out_with_a_message() {
        let file = r#"{"path": "x", "bytes": 1}"#;
        let entry = |id: &str| {
            format!(
                r#"{{"id": "{id}", "label": "{id}", "trained": true, "training_length": 128,
                "files": {{"config": {file}, "weights": {file}, "tokenizer": {file}}}}}"#
            )
        };
        let manifest = Manifest::parse(
            format!(r#"{{"models": [{}, {}]}}"#, entry("rope"), entry("drope")).as_bytes(),
        )
        .unwrap();
        let series: Vec<SeriesSpec> = ["nosuch", "rope", "local-mine"]
            .iter()
            .map(|m| SeriesSpec::model(m))
            .collect();
        let (kept, unknown) = known_series(&manifest, &series);
        assert_eq!(kept, series[1..].to_vec());
        assert_eq!(
            unknown,
            vec!["model `nosuch` is not one of the studio's (rope, drope)"]
        );
        // Nothing known: the defaults, not an empty comparison.
        let (kept, unknown) = known_series(&manifest, &series[..1]);
        assert_eq!(kept, StudioState::default().series);
        assert_eq!(unknown.len(), 1);
    }
}
