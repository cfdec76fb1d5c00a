//! The live needle runner: the studio's series answer needle documents in the browser,
//! length by length; the accuracy grid fills as trials finish, and the last trial shows
//! the generated answer and how much attention the answer position paid to the needle.

use std::rc::Rc;

use engine::init::SplitMix64;
use engine::needles::{AnswerScore, NeedleTally};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::export::csv_field;
use crate::needle_live::{haystack_ids, run_trial, NeedleSubject, TrialOutcome};
use crate::pause::next_frame;
use crate::turns::Turns;
use crate::url_state::{parse_needle_trials, NeedleSettings, MAX_NEEDLE_TRIALS, NEEDLE_MULTIPLES};
use crate::views::needle_results::{cell_colours, percent};
use crate::views::ExportButtons;

/// Needle depths of every trial round (start, middle, end of the haystack).
const DEPTHS: [f64; 3] = [0.1, 0.5, 0.9];

/// What the runner has so far: a tally per (subject, multiple) and the latest trial.
#[derive(Clone, Default)]
struct Progress {
    /// Series labels and the training length at the run's start (the studio's series
    /// may change while the grid is shown).
    labels: Vec<String>,
    training_length: usize,
    tallies: Vec<Vec<NeedleTally>>,
    done: usize,
    planned: usize,
    last: Option<(String, TrialOutcome)>,
}

/// What the runner keeps when its tab closes, so that coming back shows it as it was:
/// the lengths and trials asked for and the results so far. The page holds one; a run
/// itself stops with its tab (its trials would compete with the page's own runs).
#[derive(Clone, Copy)]
pub struct NeedleLiveState {
    /// The ticked length multiples.
    chosen: RwSignal<Vec<usize>>,
    /// The trials-per-depth box, as typed.
    trials_text: RwSignal<String>,
    /// The last run's tallies and latest trial.
    progress: RwSignal<Progress>,
    /// What went wrong, if anything.
    problem: RwSignal<Option<String>>,
    /// The lengths of the last run, in grid order.
    run_multiples: RwSignal<Vec<usize>>,
}

impl NeedleLiveState {
    /// The runner's first state: `settings` (from the link), no results.
    pub fn new(settings: &NeedleSettings) -> Self {
        NeedleLiveState {
            chosen: RwSignal::new(settings.lengths.clone()),
            trials_text: RwSignal::new(settings.trials.to_string()),
            progress: RwSignal::new(Progress::default()),
            problem: RwSignal::new(None),
            run_multiples: RwSignal::new(Vec::new()),
        }
    }

    /// The settings as the boxes now hold them, for the URL (tracked); a trials box that
    /// does not hold a valid count keeps the default there.
    pub fn settings(&self) -> NeedleSettings {
        let mut lengths = self.chosen.get();
        lengths.sort_unstable();
        NeedleSettings {
            lengths: if lengths.is_empty() {
                NeedleSettings::default().lengths
            } else {
                lengths
            },
            trials: parse_needle_trials(&self.trials_text.get())
                .unwrap_or(NeedleSettings::default().trials),
        }
    }
}

impl Default for NeedleLiveState {
    fn default() -> Self {
        Self::new(&NeedleSettings::default())
    }
}

/// The runner. `subjects` are the studio's series with their loaded models (empty until
/// the first run has loaded them); `haystack` is the held-out text the documents are cut
/// from.
#[component]
pub fn NeedleLive(
    /// Series to test.
    #[prop(into)]
    subjects: Signal<Vec<NeedleSubject>, LocalStorage>,
    /// Prose for the haystack (the first sample), `None` while loading.
    #[prop(into)]
    haystack: Signal<Option<String>>,
    /// What outlives the view (a fresh state when not given).
    #[prop(optional)]
    state: Option<NeedleLiveState>,
) -> impl IntoView {
    let NeedleLiveState {
        chosen,
        trials_text,
        progress,
        problem,
        run_multiples,
    } = state.unwrap_or_default();
    let running = RwSignal::new(false);
    // Bumped by Run and Stop, and gone with the view: a loop whose number is no longer
    // current stops.
    let generation = StoredValue::new(0u64);
    let waiting = RwSignal::new(false);
    // Trials running now in this view, and the most that ever ran at once
    // (`data-trials-peak`: never more than one).
    let trials_running = RwSignal::new((0usize, 0usize));

    let start = move |_| {
        problem.set(None);
        let trials = match parse_needle_trials(&trials_text.get_untracked()) {
            Ok(n) => n,
            Err(e) => return problem.set(Some(e)),
        };
        let subjects = subjects.get_untracked();
        let Some(text) = haystack.get_untracked() else {
            return problem.set(Some("The held-out samples are still loading.".into()));
        };
        if subjects.is_empty() {
            return problem.set(Some(
                "No model has loaded yet: run a prompt first (the runner tests the series chosen above)."
                    .into(),
            ));
        }
        let mut multiples = chosen.get_untracked();
        multiples.sort_unstable();
        if multiples.is_empty() {
            return problem.set(Some("Tick at least one length.".into()));
        }
        run_multiples.set(multiples.clone());
        let run_id = generation.get_value() + 1;
        generation.set_value(run_id);
        progress.set(Progress {
            labels: subjects.iter().map(|s| s.label.clone()).collect(),
            training_length: subjects.first().map_or(0, |s| s.model.training_length()),
            tallies: vec![vec![NeedleTally::default(); multiples.len()]; subjects.len()],
            done: 0,
            planned: subjects.len() * multiples.len() * DEPTHS.len() * trials,
            last: None,
        });
        running.set(true);
        let turns = NEEDLE_TURNS.with(Turns::clone);
        spawn_local(async move {
            waiting.set(turns.busy());
            let _turn = turns.take().await;
            if !current(generation, run_id) {
                return;
            }
            waiting.set(false);
            let outcome = drive(
                subjects,
                text,
                multiples,
                trials,
                Watch {
                    run_id,
                    generation,
                    progress,
                    trials_running,
                },
            )
            .await;
            if current(generation, run_id) {
                running.set(false);
                if let Err(e) = outcome {
                    problem.set(Some(e));
                }
            }
        });
    };
    let stop = move |_| {
        generation.update_value(|g| *g += 1);
        running.set(false);
    };

    let toggle = move |m: usize| {
        chosen.update(|list| match list.iter().position(|&x| x == m) {
            Some(i) => {
                list.remove(i);
            }
            None => list.push(m),
        })
    };

    view! {
        <section class="needle-live" data-testid="needle-live"
            data-trials-peak=move || trials_running.get().1>
            <h3>"Run it here"</h3>
            <p class="view-note">
                "Each trial hides \u{201c}The magic number for \u{2026} is \u{2026}\u{201d} in held-out prose at depth "
                "10%, 50% or 90%, asks for it at the end, and lets the model answer greedily. "
                "The series are the ones chosen above; schemes with a scale factor use s = the length multiple."
            </p>
            <div class="needle-controls">
                <fieldset>
                    <legend>"Lengths"</legend>
                    {NEEDLE_MULTIPLES
                        .into_iter()
                        .map(|m| {
                            view! {
                                <label>
                                    <input type="checkbox" data-testid="needle-length"
                                        value=m
                                        prop:checked=move || chosen.with(|c| c.contains(&m))
                                        on:change=move |_| toggle(m) />
                                    {format!("{m}x L")}
                                </label>
                            }
                        })
                        .collect_view()}
                </fieldset>
                <label>
                    "Trials per depth "
                    <input type="number" min="1" max=MAX_NEEDLE_TRIALS data-testid="needle-trials"
                        prop:value=move || trials_text.get()
                        on:input=move |ev| trials_text.set(event_target_value(&ev)) />
                </label>
                {move || if running.get() {
                    view! { <button data-testid="needle-stop" on:click=stop>"Stop"</button> }.into_any()
                } else {
                    view! { <button data-testid="needle-run" on:click=start>"Run needle trials"</button> }.into_any()
                }}
                <span class="needle-progress" data-testid="needle-progress" aria-live="polite">
                    {move || if waiting.get() && running.get() {
                        Some("Waiting for the stopped run to finish its trial\u{2026}".to_string())
                    } else {
                        progress.with(|p| {
                            (p.planned > 0).then(|| format!("{} of {} trials", p.done, p.planned))
                        })
                    }}
                </span>
            </div>
            {move || problem.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            {move || live_grid(&progress.get(), &run_multiples.get())}
            {move || progress.with(|p| !p.tallies.is_empty()).then(|| view! {
                <ExportButtons stem="drope-needles-live"
                    csv=Callback::new(move |()| {
                        // The lengths of the run shown (the boxes may have changed since).
                        let multiples = run_multiples.get_untracked();
                        progress.with_untracked(|p| live_csv(p, &multiples))
                    }) />
            })}
            {move || progress.with(|p| p.last.clone()).map(|(label, trial)| last_trial(&label, &trial))}
        </section>
    }
}

/// The live grid as CSV: one row per (series, length) with its counts.
fn live_csv(progress: &Progress, multiples: &[usize]) -> String {
    let mut out = String::from("series,length_multiple,correct,trials\n");
    for (label, tallies) in progress.labels.iter().zip(&progress.tallies) {
        for (tally, m) in tallies.iter().zip(multiples) {
            out += &format!(
                "{},{m},{},{}\n",
                csv_field(label),
                tally.correct,
                tally.trials
            );
        }
    }
    out
}

thread_local! {
    /// One needle run at a time page-wide: a run started just after Stop (or after the
    /// tab was left and opened again) waits for the stopped one to finish its trial (a
    /// pass cannot be interrupted) instead of sharing the models with it.
    static NEEDLE_TURNS: Turns = Turns::default();
}

/// Whether run `run_id` is still the view's current one (`false` once the view is gone).
fn current(generation: StoredValue<u64>, run_id: u64) -> bool {
    generation.try_get_value() == Some(run_id)
}

/// What a run reports to and checks with its view.
struct Watch {
    run_id: u64,
    generation: StoredValue<u64>,
    progress: RwSignal<Progress>,
    trials_running: RwSignal<(usize, usize)>,
}

/// Runs every trial in order (length, then depth round, then series), publishing each.
async fn drive(
    subjects: Vec<NeedleSubject>,
    text: String,
    multiples: Vec<usize>,
    trials: usize,
    watch: Watch,
) -> Result<(), String> {
    let Watch {
        run_id,
        generation,
        progress,
        trials_running,
    } = watch;
    let mut haystacks = Vec::with_capacity(subjects.len());
    for subject in &subjects {
        haystacks.push(Rc::new(
            haystack_ids(&subject.model, &text).map_err(|e| e.to_string())?,
        ));
    }
    for (column, &multiple) in multiples.iter().enumerate() {
        for round in 0..trials {
            for &depth in &DEPTHS {
                // The same document for every series at this (length, depth, round), so
                // the grid compares them on equal terms.
                let stream =
                    ((multiple as u64) << 32) | ((round as u64) << 16) | (depth * 1000.0) as u64;
                for (row, subject) in subjects.iter().enumerate() {
                    // Let the page paint between trials (each is one blocking pass on the CPU path).
                    next_frame().await;
                    if !current(generation, run_id) {
                        return Ok(());
                    }
                    let mut rng = SplitMix64::for_stream(7, stream);
                    trials_running.update(|(now, peak)| {
                        *now += 1;
                        *peak = (*peak).max(*now);
                    });
                    let trial =
                        run_trial(subject, &haystacks[row], multiple, depth, &mut rng).await;
                    trials_running.update(|(now, _)| *now = now.saturating_sub(1));
                    let trial = trial.map_err(|e| format!("{}: {e}", subject.label))?;
                    if !current(generation, run_id) {
                        return Ok(());
                    }
                    progress.update(|p| {
                        p.tallies[row][column].record(AnswerScore {
                            exact: trial.exact,
                            digits_right: trial.digits_right,
                        });
                        p.done += 1;
                        p.last = Some((subject.label.clone(), trial));
                    });
                }
            }
        }
    }
    Ok(())
}

fn live_grid(progress: &Progress, multiples: &[usize]) -> AnyView {
    if progress.tallies.is_empty() {
        return ().into_any();
    }
    let l = progress.training_length;
    let header = multiples
        .iter()
        .map(|m| view! { <th scope="col">{format!("{m}x L ({} tokens)", m * l)}</th> })
        .collect_view();
    let rows = progress
        .labels
        .iter()
        .zip(&progress.tallies)
        .map(|(label, tallies)| {
            let cells = tallies
                .iter()
                .zip(multiples)
                .map(|(tally, &m)| match (tally.trials > 0).then(|| tally.accuracy()) {
                    None => view! {
                        <td class="needle-cell missing" data-testid="needle-live-cell" data-multiple=m>"\u{2026}"</td>
                    }
                    .into_any(),
                    Some(accuracy) => {
                        view! {
                            <td class="needle-cell" data-testid="needle-live-cell" data-multiple=m
                                style:--cell-background=cell_colours(accuracy).0
                                style:--cell-ink=cell_colours(accuracy).1
                                title=format!("{} of {} exact", tally.correct, tally.trials)>
                                <span class="accuracy">{percent(accuracy)}</span>
                                <span class="trials">{format!("{} / {}", tally.correct, tally.trials)}</span>
                            </td>
                        }
                        .into_any()
                    }
                })
                .collect_view();
            view! { <tr><th scope="row">{label.clone()}</th>{cells}</tr> }
        })
        .collect_view();
    view! {
        <div class="table-scroll">
            <table class="needle-table live" data-testid="needle-live-grid">
                <caption>"Exact-match accuracy, this browser's run"</caption>
                <thead><tr><th scope="col">"series"</th>{header}</tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
    .into_any()
}

fn last_trial(label: &str, trial: &TrialOutcome) -> impl IntoView {
    let verdict = if trial.exact {
        "right".to_string()
    } else {
        format!("wrong ({} of 7 digits in place)", trial.digits_right)
    };
    let layers = trial.needle_mass.len() / trial.heads.max(1);
    let per_layer: Vec<(usize, f32)> = (0..layers)
        .map(|layer| {
            let row = &trial.needle_mass[layer * trial.heads..(layer + 1) * trial.heads];
            (layer, row.iter().copied().fold(0.0, f32::max))
        })
        .collect();
    let strongest = trial.strongest_head().map(|(layer, head, mass)| {
        format!(
            "The head looking hardest at the needle: layer {layer}, head {head}, with {} of its attention.",
            percent(mass as f64)
        )
    });
    view! {
        <div class="needle-last" data-testid="needle-last">
            <p>
                <strong>{label.to_string()}</strong>
                {format!(
                    " at {}x L (a {}-token prompt), needle at depth {}: asked for {}, wrote \u{201c}{}\u{201d}: ",
                    trial.multiple,
                    trial.prompt_tokens,
                    percent(trial.depth),
                    trial.expected,
                    trial.generated.trim()
                )}
                <span data-testid="needle-verdict" class=if trial.exact { "verdict right" } else { "verdict wrong" }>
                    {verdict}
                </span>
            </p>
            <p class="needle-sentence">"Needle: " <q>{trial.needle_text.trim().to_string()}</q></p>
            <p>"Attention from the answer position to the needle's tokens (largest head per layer):"</p>
            <ul class="needle-mass" data-testid="needle-mass">
                {per_layer
                    .into_iter()
                    .map(|(layer, mass)| {
                        view! {
                            <li>
                                <span class="layer">{format!("layer {layer}")}</span>
                                <span class="bar" style:width=format!("{:.1}%", 100.0 * mass)></span>
                                <span class="value">{percent(mass as f64)}</span>
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
            {strongest.map(|s| view! { <p>{s}</p> })}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trials_box_takes_whole_numbers_in_range() {
        assert_eq!(parse_needle_trials(" 3 "), Ok(3));
        assert_eq!(parse_needle_trials("20"), Ok(20));
        for bad in ["0", "21", "-1", "2.5", "", "many"] {
            assert!(
                parse_needle_trials(bad).unwrap_err().contains("1 to 20"),
                "{bad}"
            );
        }
    }
}
