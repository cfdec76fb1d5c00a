//! Needle-in-a-haystack results: the precomputed accuracy grid of `results/niah.json`
//! (rows = model/scheme, columns = context length in multiples of `L`, depths pooled),
//! an optional length x depth breakdown of one row, and the paper's table beside it.

use leptos::prelude::*;

use crate::colormap::VIRIDIS;
use crate::export::csv_field;
use crate::published::{NeedleCell, NeedleGrid, NEEDLE_CONFIDENCE};
use crate::views::training_story::model_label;
use crate::views::{ColourLegend, ExportButtons};

/// Length multiples shown when the file names none.
const DEFAULT_MULTIPLES: [usize; 4] = [1, 2, 4, 8];

/// `0.625` as `62%`.
pub fn percent(fraction: f64) -> String {
    format!("{:.0}%", 100.0 * fraction)
}

/// Background and text colour of a cell at `accuracy` in `[0, 1]`.
pub fn cell_colours(accuracy: f64) -> (String, String) {
    let background = VIRIDIS.at(accuracy as f32);
    (background.hex(), background.text_colour().hex())
}

/// Hover text of a cell: counts, interval and per-digit accuracy, where known.
pub fn cell_tooltip(cell: &NeedleCell) -> String {
    let depth = cell
        .depth
        .map_or("all depths".to_string(), |d| format!("depth {d}"));
    let mut text = format!(
        "{} `{}` at {}x L, {depth}: {} of {} exact",
        model_label(&cell.model),
        cell.scheme,
        cell.length_multiple,
        cell.correct,
        cell.trials
    );
    if let Some((low, high)) = cell.interval() {
        text += &format!("; 95% interval {} to {}", percent(low), percent(high));
    }
    if let Some(digits) = cell.digit_accuracy() {
        text += &format!("; {} of the answer digits right", percent(digits));
    }
    text
}

/// One coloured grid cell (`td[data-testid=test_id]`), or a dash where nothing ran.
fn grid_cell(cell: Option<&NeedleCell>, test_id: &'static str, multiple: usize) -> AnyView {
    let Some((cell, accuracy)) = cell.and_then(|c| c.accuracy().map(|a| (c, a))) else {
        return view! {
            <td data-testid=test_id data-multiple=multiple class="needle-cell missing"
                title="not measured">"\u{2013}"</td>
        }
        .into_any();
    };
    let interval = cell.interval().map(|(low, high)| {
        view! {
            <span class="interval">
                {format!("[{:.0}, {:.0}]", 100.0 * low, 100.0 * high)}
            </span>
        }
    });
    view! {
        <td data-testid=test_id data-multiple=multiple class="needle-cell"
            style:--cell-background=cell_colours(accuracy).0 style:--cell-ink=cell_colours(accuracy).1
            title=cell_tooltip(cell)>
            <span class="accuracy">{percent(accuracy)}</span>
            {interval}
            <span class="trials">{format!("n = {}", cell.trials)}</span>
        </td>
    }
    .into_any()
}

/// What the grid's numbers mean, from the file's own metadata.
fn method_note(grid: &NeedleGrid) -> String {
    let mut note =
        "Exact-match accuracy of the 7-digit answer, all depths pooled; n = trials.".to_string();
    // Intervals are computed from the counts, so a file that predates them shows them too.
    let confidence = grid.confidence.unwrap_or(NEEDLE_CONFIDENCE);
    note += &format!(
        " In brackets: the {:.0}% Wilson interval.",
        100.0 * confidence
    );
    if grid.confidence.is_none() {
        note += " This file predates the trial budget: each cell ran a fixed number of trials.";
    }
    if let (Some(half), Some(min), Some(max)) =
        (grid.target_half_width, grid.min_trials, grid.max_trials)
    {
        note += &format!(
            " Trials ran until the interval was within \u{00B1}{:.0} points ({min} to {max} per cell).",
            100.0 * half
        );
    }
    if let Some(seed) = grid.seed {
        note += &format!(" Needle documents from seed {seed}.");
    }
    note
}

/// The needle results: `table[data-testid="needle-table"]` with one
/// `tr[data-testid="needle-row"]` (and `data-model`, `data-scheme`) per model/scheme and
/// `td[data-testid="needle-cell"]` (and `data-multiple`) per length; each row's
/// `button[data-testid="depth-toggle"]` opens `table[data-testid="depth-table"]`
/// (`td[data-testid="depth-cell"]`); the paper's numbers are in
/// `table[data-testid="paper-needle"]`.
/// The grid as CSV: the pooled cells, then the per-depth ones (`depth` empty when pooled).
pub fn grid_csv(grid: &NeedleGrid) -> String {
    let mut out = String::from(
        "model,scheme,length_multiple,depth,trials,correct,accuracy,wilson_low,wilson_high,digit_accuracy\n",
    );
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for c in grid.lengths.iter().chain(&grid.cells) {
        let interval = c.interval();
        out += &format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            csv_field(&c.model),
            csv_field(&c.scheme),
            c.length_multiple,
            opt(c.depth),
            c.trials,
            c.correct,
            opt(c.accuracy()),
            opt(interval.map(|i| i.0)),
            opt(interval.map(|i| i.1)),
            opt(c.digit_accuracy())
        );
    }
    out
}

/// The grid as JSON (the same fields as the CSV), with the paper's table beside it.
pub fn grid_json(grid: &NeedleGrid) -> String {
    let cell = |c: &NeedleCell| {
        let interval = c.interval();
        serde_json::json!({
            "model": c.model, "scheme": c.scheme, "length_multiple": c.length_multiple,
            "depth": c.depth, "trials": c.trials, "correct": c.correct, "accuracy": c.accuracy(),
            "wilson_low": interval.map(|i| i.0), "wilson_high": interval.map(|i| i.1),
            "digit_accuracy": c.digit_accuracy(),
        })
    };
    serde_json::json!({
        "pooled": grid.lengths.iter().map(cell).collect::<Vec<_>>(),
        "by_depth": grid.cells.iter().map(cell).collect::<Vec<_>>(),
        "paper": {
            "model": engine::paper::NIAH_MODEL,
            "training_length": engine::paper::NIAH_TRAINING_LENGTH,
            "multiples": engine::paper::NIAH_MULTIPLES,
            "ntk": engine::paper::NIAH_NTK,
            "yarn": engine::paper::NIAH_YARN,
            "drope": engine::paper::NIAH_DROPE,
        },
    })
    .to_string()
}

#[component]
pub fn NeedleResults(
    /// The parsed `niah.json`.
    #[prop(into)]
    grid: Signal<NeedleGrid>,
    /// The (model, scheme) row broken down by depth, if any (a local signal when not given).
    #[prop(optional)]
    selected: Option<RwSignal<Option<(String, String)>>>,
) -> impl IntoView {
    let selected = selected.unwrap_or_else(|| RwSignal::new(None));
    let multiples = move || {
        grid.with(|g| {
            if g.multiples.is_empty() {
                DEFAULT_MULTIPLES.to_vec()
            } else {
                g.multiples.clone()
            }
        })
    };

    let header = move || {
        multiples()
            .into_iter()
            .map(|m| view! { <th scope="col">{format!("{m}x L")}</th> })
            .collect_view()
    };
    let body = move || {
        let (grid, multiples) = (grid.get(), multiples());
        grid.rows()
            .into_iter()
            .map(|(model, scheme)| {
                let cells = multiples
                    .iter()
                    .map(|&m| grid_cell(grid.pooled(&model, &scheme, m), "needle-cell", m))
                    .collect_view();
                let key = (model.clone(), scheme.clone());
                let is_open = {
                    let key = key.clone();
                    Signal::derive(move || selected.with(|s| s.as_ref() == Some(&key)))
                };
                let toggle = {
                    let key = key.clone();
                    move |_| {
                        selected.update(|s| {
                            *s = if s.as_ref() == Some(&key) {
                                None
                            } else {
                                Some(key.clone())
                            }
                        })
                    }
                };
                view! {
                    <tr data-testid="needle-row" data-model=model.clone() data-scheme=scheme.clone()
                        class:open=is_open>
                        <th scope="row">{model_label(&model)}</th>
                        <td class="scheme"><code>{scheme.clone()}</code></td>
                        {cells}
                        <td>
                            <button data-testid="depth-toggle" class="depth-toggle"
                                attr:aria-pressed=move || is_open.get().to_string()
                                on:click=toggle>"by depth"</button>
                        </td>
                    </tr>
                }
            })
            .collect_view()
    };

    let breakdown = move || {
        let (model, scheme) = selected.get()?;
        let (grid, multiples) = (grid.get(), multiples());
        let header = multiples
            .iter()
            .map(|m| view! { <th scope="col">{format!("{m}x L")}</th> })
            .collect_view();
        let rows = if grid.depths.is_empty() {
            view! { <tr><td colspan="9">"This file has no per-depth cells."</td></tr> }.into_any()
        } else {
            grid.depths
                .iter()
                .map(|&depth| {
                    let cells = multiples
                        .iter()
                        .map(|&m| {
                            grid_cell(grid.at_depth(&model, &scheme, m, depth), "depth-cell", m)
                        })
                        .collect_view();
                    view! { <tr><th scope="row">{format!("{depth}")}</th>{cells}</tr> }
                })
                .collect_view()
                .into_any()
        };
        Some(view! {
            <table data-testid="depth-table" class="needle-table depth-table">
                <caption>
                    {format!("{} `{scheme}` by needle depth (0 = start of the haystack, 1 = end)", model_label(&model))}
                </caption>
                <thead><tr><th scope="col">"depth"</th>{header}</tr></thead>
                <tbody>{rows}</tbody>
            </table>
        })
    };

    let paper_rows = engine::paper::NIAH_TABLE
        .iter()
        .map(|(method, row)| {
            let cells = engine::paper::NIAH_MULTIPLES
                .iter()
                .zip(row)
                .map(|(m, p)| {
                    view! {
                        <td data-testid="paper-cell" data-multiple=*m class="needle-cell"
                            style:--cell-background=cell_colours(p / 100.0).0
                            style:--cell-ink=cell_colours(p / 100.0).1>
                            <span class="accuracy">{format!("{p:.2}%")}</span>
                        </td>
                    }
                })
                .collect_view();
            view! { <tr><th scope="row">{*method}</th>{cells}</tr> }
        })
        .collect_view();
    let paper_header = engine::paper::NIAH_MULTIPLES
        .iter()
        .map(|m| view! { <th scope="col">{format!("{m}x L")}</th> })
        .collect_view();
    let paper_caption = format!(
        "The paper's, {}, L = {} (standard NIAH; not this studio's models)",
        engine::paper::NIAH_MODEL,
        engine::paper::NIAH_TRAINING_LENGTH
    );

    view! {
        <section class="needle-results">
            <ColourLegend colormap=VIRIDIS title="exact-match accuracy".to_string()
                low="0%".to_string() high="100%".to_string() />
            <div class="table-scroll">
                <table data-testid="needle-table" class="needle-table">
                    <caption>"This studio's models: needle accuracy by context length"</caption>
                    <thead><tr>
                        <th scope="col">"model"</th><th scope="col">"scheme"</th>
                        {header}
                        <th scope="col"><span class="visually-hidden">"breakdown"</span></th>
                    </tr></thead>
                    <tbody>{body}</tbody>
                </table>
            </div>
            <p class="chart-summary">{move || grid.with(method_note)}</p>
            <ExportButtons stem="drope-needles"
                csv=Callback::new(move |()| grid.with_untracked(grid_csv))
                json=Callback::new(move |()| grid.with_untracked(grid_json)) />
            <div class="table-scroll">{breakdown}</div>
            <div class="table-scroll">
                <table data-testid="paper-needle" class="needle-table paper">
                    <caption>{paper_caption}</caption>
                    <thead><tr><th scope="col">"method"</th>{paper_header}</tr></thead>
                    <tbody>{paper_rows}</tbody>
                </table>
            </div>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tooltips_and_notes_say_what_is_known() {
        let cell = NeedleCell {
            model: "drope".into(),
            scheme: "none".into(),
            length_multiple: 2,
            depth: None,
            trials: 10,
            correct: 8,
            digits_correct: Some(65),
        };
        let tip = cell_tooltip(&cell);
        assert!(
            tip.contains("DroPE `none` at 2x L, all depths: 8 of 10 exact"),
            "{tip}"
        );
        assert!(tip.contains("95% interval 49% to 94%"), "{tip}");
        assert!(tip.contains("93% of the answer digits right"), "{tip}");
        let old = NeedleGrid::default();
        assert!(method_note(&old).contains("predates the trial budget"));
    }
}
