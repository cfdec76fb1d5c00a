//! The studio's forms: the prompt box (a held-out sample or the user's own text, and its
//! length) and the series editor (which models under which schemes are compared).

use leptos::prelude::*;
use web_sys::KeyboardEvent;

use crate::format::bytes_of;
use crate::manifest::Manifest;
use crate::model_store::LoadStage;
use crate::run_controller::{Activity, RunController, RunEnd};
use crate::samples::SampleSet;
use crate::series_look::{series_colours, SeriesFacts};
use crate::url_state::{parse_token_count, PromptSource, SeriesSpec, MAX_SERIES};

/// Position schemes offered in the scheme box (any text `SchemeSpec` parses is accepted).
const SCHEME_PRESETS: &[(&str, &str)] = &[
    ("rope", "RoPE as trained"),
    ("pi:dyn", "position interpolation, s = max(1, T/L)"),
    ("ntk:dyn", "NTK-aware scaling, dynamic s"),
    ("yarn:dyn", "YaRN, dynamic s"),
    ("pi:8", "position interpolation, s = 8"),
    ("yarn:8", "YaRN, s = 8"),
    ("yarn-ramp:8", "YaRN with the continuous ramp, s = 8"),
    ("none", "no positions (DroPE / NoPE)"),
    ("none:dyn+beta", "DroPE with its fitted logit scale"),
    (
        "none:dyn+beta=heads",
        "DroPE with a logit scale fitted per head (not the paper's)",
    ),
];

/// The length box's value: empty for the whole prompt (up to the cap), else a token
/// count as the URL takes it; anything else is an error (the length stays as it was).
fn parse_length_field(value: &str) -> Result<Option<usize>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    parse_token_count(value)
        .map(Some)
        .map_err(|e| format!("{e}; the length is unchanged."))
}

/// The prompt box: a held-out sample or the user's own text, and how many of its tokens
/// to run.
#[component]
pub fn PromptControls(
    /// Where the prompt comes from (the sample box and the text box set it).
    source: RwSignal<PromptSource>,
    /// The samples, once loaded.
    samples: RwSignal<Option<SampleSet>>,
    /// The prompt's text (the chosen sample's, or the user's).
    prompt_text: Memo<String>,
    /// Tokens to run; `None`: all, up to the cap.
    length: RwSignal<Option<usize>>,
    /// Tokens run so far, tokens to run, tokens in the whole text.
    counts: RwSignal<(usize, usize, usize)>,
    /// A message when the URL names a sample that does not exist.
    unknown_sample: Memo<Option<String>>,
    /// The chosen sample's id (`None`: the user's own text); the text box is rewritten
    /// only when it changes.
    sample_choice: Memo<Option<String>>,
    /// Runs the prompt (Ctrl+Enter in the text box).
    on_run: impl Fn() + Copy + 'static,
) -> impl IntoView {
    let length_problem = RwSignal::new(None::<String>);
    let chosen = move || match source.get() {
        PromptSource::Text(_) => "own".to_string(),
        PromptSource::Sample(id) if id.is_empty() => samples.with(|s| {
            s.as_ref()
                .and_then(|s| s.samples.first())
                .map(|s| s.id.clone())
                .unwrap_or_default()
        }),
        PromptSource::Sample(id) => id,
    };
    let options = move || {
        samples.with(|set| {
            set.as_ref()
                .map(|set| {
                    set.samples
                        .iter()
                        .map(|s| {
                            let id = s.id.clone();
                            view! { <option value=id.clone() selected=move || chosen() == id>{format!("{} \u{b7} {} tokens", s.title, s.tokens)}</option> }
                        })
                        .collect_view()
                })
        })
    };
    let max_length = move || counts.with(|&(_, total, full)| full.max(total));
    view! {
        <div class="row">
            <label>"Prompt "
                <select data-testid="sample-select" on:change=move |ev| {
                    let value = event_target_value(&ev);
                    if value == "own" {
                        source.set(PromptSource::Text(prompt_text.get_untracked()));
                    } else {
                        source.set(PromptSource::Sample(value));
                    }
                }>
                    {options}
                    <option value="own" selected=move || chosen() == "own">"Your own text (edit below)"</option>
                </select>
            </label>
            <label title="Run only the first N tokens of the prompt (at most 8L)">"Length "
                <input type="number" min="2" data-testid="length" class="length"
                    prop:value=move || length.get().map(|n| n.to_string()).unwrap_or_default()
                    placeholder=move || counts.get().1.to_string()
                    on:change=move |ev| {
                        let input = event_target::<web_sys::HtmlInputElement>(&ev);
                        // A number box reports text that is not a number as "", as if
                        // it were empty: its validity tells them apart.
                        let parsed = if input.validity().bad_input() {
                            Err("The length box does not hold a number; the length is unchanged.".to_string())
                        } else {
                            parse_length_field(&input.value())
                        };
                        match parsed {
                            Ok(n) => {
                                length_problem.set(None);
                                length.set(n);
                            }
                            Err(e) => length_problem.set(Some(e)),
                        }
                    } />
                // Before the first run the prompt's length is not known yet.
                {move || match max_length() {
                    0 => " tokens".to_string(),
                    n => format!(" tokens (of {n})"),
                }}
            </label>
        </div>
        {move || length_problem.get().map(|p| view! { <p class="error" role="alert" data-testid="length-problem">{p}</p> })}
        {move || unknown_sample.get().map(|p| view! { <p class="error" role="alert">{p}</p> })}
        <textarea
            id="prompt"
            data-testid="prompt"
            rows="5"
            spellcheck="false"
            aria-label="Prompt text"
            // Written when a sample is chosen, not echoed back while the user types (a
            // pasted megabyte would be laid out twice).
            prop:value=move || {
                sample_choice.track();
                samples.track();
                prompt_text.get_untracked()
            }
            on:input=move |ev| source.set(PromptSource::Text(event_target_value(&ev)))
            on:keydown=move |ev: KeyboardEvent| {
                if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) {
                    ev.prevent_default();
                    on_run();
                }
            }
        ></textarea>
    }
}

/// The compared series: each a model under a scheme; the first is the focus (token
/// strip and attention maps).
#[component]
pub fn SeriesEditor(
    /// The compared series, in legend order.
    series: RwSignal<Vec<SeriesSpec>>,
    /// The models' list (the model box offers them).
    manifest: RwSignal<Option<Manifest>>,
    /// Series left out of the last run, and why.
    problems: RwSignal<Vec<String>>,
) -> impl IntoView {
    let new_model = RwSignal::new(String::from("rope"));
    let new_scheme = RwSignal::new(String::new());
    let add_error = RwSignal::new(None::<String>);
    // Each series' name and colour, from the whole list: a colour depends on the set of
    // series, not on their order (series_look).
    let looks = Memo::new(move |_| {
        let facts: Vec<SeriesFacts> = series.with(|all| {
            manifest.with(|m| {
                all.iter()
                    .map(|spec| {
                        SeriesFacts::of(spec, m.as_ref().and_then(|m| m.model(&spec.model)))
                    })
                    .collect()
            })
        });
        let colours = series_colours(&facts);
        facts
            .into_iter()
            .zip(colours)
            .map(|(f, colour)| (f.name(), colour))
            .collect::<Vec<_>>()
    });
    let add = move || {
        let text = match new_scheme.get_untracked().trim() {
            "" => new_model.get_untracked(),
            scheme => format!("{}:{scheme}", new_model.get_untracked()),
        };
        match SeriesSpec::parse(&text) {
            Ok(spec) if series.with_untracked(|s| s.contains(&spec)) => {
                add_error.set(Some(format!("`{spec}` is already compared")))
            }
            Ok(_) if series.with_untracked(Vec::len) >= MAX_SERIES => add_error.set(Some(format!(
                "At most {MAX_SERIES} series; remove one first"
            ))),
            Ok(spec) => {
                add_error.set(None);
                series.update(|s| s.push(spec));
            }
            Err(e) => add_error.set(Some(e)),
        }
    };
    view! {
        <div class="series-editor" data-testid="series-editor">
            <span class="label">"Series "</span>
            {move || series.get().into_iter().zip(looks.get()).enumerate().map(|(i, (spec, (name, colour)))| {
                let key = spec.to_string();
                let (for_focus, for_remove) = (spec.clone(), spec.clone());
                let is_focus = i == 0;
                let title = format!("{name} ({key})");
                view! {
                    <span class="series-chip" class:focus=is_focus data-testid="series-chip" data-series=key.clone()
                        data-colour=colour title=title>
                        <span class="swatch" style:background=colour></span>
                        {name}
                        // The focus is a toggle: pressed on the series whose tokens and
                        // attention the other tabs show; pressing another moves it there
                        // (nothing runs again: the results are kept).
                        <button type="button" class="chip-button focus-toggle" data-testid="focus-series"
                            aria-pressed=is_focus.to_string()
                            title=if is_focus { "The focus series: the token strip and the attention maps show it" } else { "Make this the focus series (token strip, attention maps)" }
                            on:click=move |_| if !is_focus {
                                series.update(|s| {
                                    s.retain(|x| *x != for_focus);
                                    s.insert(0, for_focus.clone());
                                })
                            }>{if is_focus { "\u{25c9} focus" } else { "\u{25cb} focus" }}</button>
                        <button type="button" class="chip-button" data-testid="remove-series" aria-label="Remove this series"
                            on:click=move |_| series.update(|s| s.retain(|x| *x != for_remove))>"\u{d7}"</button>
                    </span>
                }
            }).collect_view()}
            <span class="series-add">
                <select data-testid="add-model" aria-label="Model" on:change=move |ev| new_model.set(event_target_value(&ev))>
                    {move || manifest.get().map(|m| m.models.into_iter().map(|e| {
                        let id = e.id.clone();
                        view! { <option value=id.clone() selected=move || new_model.get() == id>{e.label}</option> }
                    }).collect_view())}
                </select>
                <input class="scheme" list="scheme-presets" data-testid="add-scheme" placeholder="as trained"
                    aria-label="Position scheme (rope, pi:4, ntk:dyn, yarn:8, yarn-ramp:8, none:dyn+beta ...)"
                    prop:value=move || new_scheme.get()
                    on:input=move |ev| new_scheme.set(event_target_value(&ev))
                    on:keydown=move |ev: KeyboardEvent| if ev.key() == "Enter" { add() } />
                <datalist id="scheme-presets">
                    {SCHEME_PRESETS.iter().map(|(value, what)| view! { <option value=*value>{*what}</option> }).collect_view()}
                </datalist>
                <button type="button" data-testid="add-series" on:click=move |_| add()>"Add"</button>
            </span>
            {move || add_error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            {move || {
                let p = problems.get();
                (!p.is_empty()).then(|| view! { <p class="error" role="alert">{format!("Left out: {}", p.join("; "))}</p> })
            }}
        </div>
    }
}

/// Tokens added per step when growing.
const GROW_STEPS: &[usize] = &[1, 4, 16, 64];

/// Run, Grow (Pause, Play), Step, the tokens per step, and the run's status: the buttons
/// that drive the page's run controller.
#[component]
pub fn RunButtons(
    /// The page's run.
    run: RunController,
    /// The models' manifest (nothing runs before it is listed).
    manifest: RwSignal<Option<Manifest>>,
    /// Tokens per grow step.
    grow_step: RwSignal<usize>,
) -> impl IntoView {
    let RunController {
        activity,
        stepping,
        counts,
        progress,
        ended,
        series_progress,
        ..
    } = run;
    let busy = move || matches!(activity.get(), Activity::Loading | Activity::Running);
    let status = move || {
        if let Some((label, p)) = progress.get() {
            return view! {
                <span class="status loading" data-testid="download-progress">
                    <progress max=p.total.max(1) value=p.received></progress>
                    {match p.stage {
                        LoadStage::Download => format!(" Downloading {label}: {}", bytes_of(p.received, p.total)),
                        LoadStage::Upload => format!(" Uploading {label} to the GPU: {} of {} parts", p.received, p.total),
                    }}
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
            Activity::Idle if ended.get() == Some(RunEnd::Stopped) => {
                format!("Stopped at {done} of {total} tokens")
            }
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
                data-ended=move || ended.get().map(RunEnd::name)
                data-busy=move || stepping.get().to_string()
                data-done=done data-total=total>
                {text}
            </span>
        }
        .into_any()
    };
    // Each series' tokens run of its prompt; during a whole run, the series being run.
    let per_series = move || {
        let rows = series_progress.get();
        let running = activity.get() == Activity::Running;
        let current = rows.iter().position(|r| r.done < r.total);
        (rows.len() > 1 || running).then(|| {
            rows.into_iter()
                .enumerate()
                .map(|(i, r)| {
                    let now = running && current == Some(i);
                    view! {
                        <li data-testid="series-progress" data-series=r.key.clone() data-done=r.done data-total=r.total
                            class:running=now>
                            <span class="swatch" style:background=r.colour></span>
                            {format!("{}: {} of {}{}", r.label, r.done, r.total, if now { ", running\u{2026}" } else { "" })}
                        </li>
                    }
                })
                .collect_view()
        })
    };

    view! {
        <div class="row">
            <button data-testid="run" class="primary" on:click=move |_| run.run_whole()
                prop:disabled=move || busy() || manifest.with(Option::is_none)
                title="Run the whole prompt through every series (Ctrl+Enter in the prompt box)">
                {move || if activity.get() == Activity::Running { "Running\u{2026}" } else { "Run" }}
            </button>
            <button data-testid="grow" on:click=move |_| run.play()
                prop:disabled=move || matches!(activity.get(), Activity::Loading | Activity::Running) || manifest.with(Option::is_none)
                title="Feed the prompt in a few tokens at a time and watch every view update">
                {move || match activity.get() { Activity::Growing => "Pause", Activity::Paused => "Play", _ => "Grow" }}
            </button>
            <button data-testid="stop" on:click=move |_| run.stop()
                prop:disabled=move || activity.get() == Activity::Idle
                title="Stop the run: what has run stays shown">
                "Stop"
            </button>
            <button data-testid="step" on:click=move |_| run.step()
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
        <ul class="series-progress" aria-label="Progress per series">{per_series}</ul>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_field_takes_token_counts_or_nothing() {
        assert_eq!(parse_length_field(""), Ok(None));
        assert_eq!(parse_length_field(" 300 "), Ok(Some(300)));
        assert_eq!(parse_length_field("2"), Ok(Some(2)));
        for bad in ["1", "0", "-3", "abc", "2.5", "1e3"] {
            let error = parse_length_field(bad).unwrap_err();
            assert!(error.contains(&format!("`{bad}`")), "{error}");
        }
    }
}
