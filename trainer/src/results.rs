//! `trainer eval` (the command): runs every measurement of `eval.rs` on the exported
//! models, writes `public/results/*.json` for the studio and `docs/RESULTS.md` with the
//! paper's numbers beside ours.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use engine::init::SplitMix64;
use engine::results::{
    pool_depths, to_json, DropeFit, NeedleCell, NeedleGrid, PerplexityTable, NEEDLE_CONFIDENCE,
};
use engine::{paper, ModelConfig, ModelWeights, TextTokenizer};
use serde_json::json;

use crate::args::Args;
use crate::data::{eval_windows, TokenStreams};
use crate::eval::{
    fit_c, fit_head_c, needle_grid, window_perplexity, AnswerDoc, EvalModel, HeadObjective,
    NeedleBudget, PerplexityRow,
};
use crate::manifest;
use crate::needles::NeedleMaker;
use crate::probes::{
    induction, previous_token_mass, strongest_per_layer, within_length, InductionScore,
};
use engine::needle_trial::trial_scheme;

/// Schemes measured for perplexity, per model id.
fn perplexity_schemes(id: &str) -> &'static [&'static str] {
    match id {
        "rope" => &[
            "rope", "pi:8", "ntk:8", "yarn:8", "pi:dyn", "ntk:dyn", "yarn:dyn",
        ],
        "drope" => &[
            "none",
            "none:8+beta",
            "none:dyn+beta",
            "none:dyn+beta=heads",
        ],
        _ => &["none"],
    }
}

/// Needle depths of the grid (0 = start of the haystack, 1 = end).
const NEEDLE_DEPTHS: [f64; 5] = [0.1, 0.3, 0.5, 0.7, 0.9];

/// Context lengths of the needle grid, in multiples of L.
const NEEDLE_MULTIPLES: [usize; 4] = [1, 2, 4, 8];

/// Seed of the needle documents (shared by every model and scheme).
const NEEDLE_SEED: u64 = 7;

/// Scheme families of the needle test, per model id (`s = T / L` is added per length).
fn needle_schemes(id: &str) -> &'static [&'static str] {
    match id {
        "rope" => &["rope", "pi", "ntk", "yarn"],
        "drope" => &["none", "none+beta", "none+beta=heads"],
        _ => &["none"],
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn load_model(models: &Path, id: &str) -> Result<EvalModel, String> {
    let dir = models.join(id);
    let config = ModelConfig::from_json(&std::fs::read(dir.join("config.json")).map_err(err)?)
        .map_err(err)?;
    let weights = ModelWeights::from_safetensors(
        &config,
        &std::fs::read(dir.join("model.safetensors")).map_err(err)?,
    )
    .map_err(err)?;
    Ok(EvalModel {
        id: id.to_string(),
        config,
        weights,
    })
}

/// Stores the fitted `c` in the model's `config.json`.
fn store_c(models: &Path, id: &str, c: f64, head_c: &[f64]) -> Result<(), String> {
    let path = models.join(id).join("config.json");
    let mut config = ModelConfig::from_json(&std::fs::read(&path).map_err(err)?).map_err(err)?;
    config.drope_c = Some(c);
    config.drope_head_c = Some(head_c.to_vec());
    std::fs::write(&path, config.to_json() + "\n").map_err(err)
}

/// Needle documents for fitting per-head coefficients to answers: `per_length` at each of
/// 2x, 4x and 8x L, the depths taken in turn, from `haystack` (validation text).
fn answer_documents(
    maker: &NeedleMaker<'_>,
    haystack: &[u32],
    l: usize,
    per_length: usize,
    bos: Option<u32>,
) -> Result<Vec<AnswerDoc>, String> {
    // Not NEEDLE_SEED: these documents must not repeat the measured ones' draws.
    let mut rng = SplitMix64::new(NEEDLE_SEED ^ 0xf17);
    let mut docs = Vec::new();
    for m in [2usize, 4, 8] {
        let total = m * l;
        if haystack.len() <= total {
            return Err(format!(
                "the haystack of {} tokens is shorter than {total}",
                haystack.len()
            ));
        }
        for k in 0..per_length {
            let start = (rng.next_u64() % (haystack.len() - total) as u64) as usize;
            let depth = NEEDLE_DEPTHS[k % NEEDLE_DEPTHS.len()];
            let doc = maker
                .make(
                    &haystack[start..start + total],
                    total - 8,
                    &[depth],
                    0,
                    &mut rng,
                )?
                .with_bos(bos);
            let answer_start = doc.prompt.len();
            let mut tokens = doc.prompt;
            tokens.extend(&doc.answer);
            docs.push(AnswerDoc {
                multiple: m,
                tokens,
                answer_start,
            });
        }
    }
    Ok(docs)
}

/// `trainer eval --models DIR --corpus DIR --results DIR --report FILE
///  [--sequences 16] [--fit-sequences 4] [--head-fit-sequences 12] [--batch 2]
///  [--only rope,drope,nope]
///  [--needle-min-trials 40] [--needle-max-trials 400] [--needle-half-width 0.05]
///  [--split test|validation] [--samples FILE]
///  [--head-objective prose|needles] [--head-fit-documents 20]`
///
/// Needle trials are counted per (model, scheme, length), depths pooled: they run in
/// rounds of one per depth until the 95% Wilson interval of the exact-match accuracy has a
/// half-width of at most `--needle-half-width`, with at least `--needle-min-trials` and at most
/// `--needle-max-trials` (each rounded up to whole rounds).
pub fn run(argv: &[String]) -> Result<(), String> {
    let args = Args::parse(
        argv,
        &[
            "models",
            "corpus",
            "results",
            "report",
            "sequences",
            "fit-sequences",
            "head-fit-sequences",
            "needle-min-trials",
            "needle-max-trials",
            "needle-half-width",
            "batch",
            "only",
            "split",
            "samples",
            "head-objective",
            "head-fit-documents",
        ],
    )?;
    let models = Path::new(args.required("models")?);
    let results = Path::new(args.required("results")?);
    let report = Path::new(args.required("report")?);
    let n_sequences: usize = args.get_or("sequences", 16)?;
    let n_fit: usize = args.get_or("fit-sequences", 4)?;
    // Sixteen coefficients instead of one: more text, so they fit the data, not the sample.
    let n_head_fit: usize = args.get_or("head-fit-sequences", 12)?;
    // `needles` fits the per-head coefficients to needle answers instead of prose (a pilot
    // of stop 22): `--head-fit-documents` documents at each of 2x, 4x, 8x L.
    let head_objective: String = args.get_or("head-objective", "prose".to_string())?;
    if !["prose", "needles"].contains(&head_objective.as_str()) {
        return Err(format!(
            "--head-objective is prose or needles, not {head_objective}"
        ));
    }
    let n_head_docs: usize = args.get_or("head-fit-documents", 20)?;
    let defaults = NeedleBudget::default();
    let budget = NeedleBudget {
        min_trials: args.get_or("needle-min-trials", defaults.min_trials)?,
        max_trials: args.get_or("needle-max-trials", defaults.max_trials)?,
        half_width: args.get_or("needle-half-width", defaults.half_width)?,
    };
    if budget.max_trials < budget.min_trials || budget.half_width <= 0.0 {
        return Err(format!(
            "need --needle-max-trials >= --needle-min-trials and --needle-half-width > 0, got {budget:?}"
        ));
    }
    let batch: usize = args.get_or("batch", 2)?;
    let only: String = args.get_or("only", "rope,drope,nope".to_string())?;
    let ids: Vec<&str> = only
        .split(',')
        .filter(|id| models.join(id).join("config.json").exists())
        .collect();
    if ids.is_empty() {
        return Err(format!("none of {only} is in {}", models.display()));
    }
    std::fs::create_dir_all(results).map_err(err)?;
    let started = Instant::now();
    let tokenizer =
        TextTokenizer::from_json(&std::fs::read(models.join("tokenizer.json")).map_err(err)?)
            .map_err(err)?;
    let streams = TokenStreams::load(Path::new(args.required("corpus")?), &tokenizer)?;
    // `--split validation` measures on the validation split's second half (the first
    // holds the sequences `c` is fitted on), for choosing between training arms without
    // looking at the test split; the published results use the test split.
    let split: String = args.get_or("split", "test".to_string())?;
    let (held_out, split_name): (&[u32], &str) = match split.as_str() {
        "test" => (&streams.test, "test"),
        "validation" => (
            &streams.validation[streams.validation.len() / 2..],
            "validation (its second half)",
        ),
        other => return Err(format!("--split is test or validation, not {other}")),
    };

    let maker = NeedleMaker::new(&tokenizer)?;
    // 1. DroPE's c, on validation sequences of 8L.
    let mut fitted = None;
    if ids.contains(&"drope") {
        let mut model = load_model(models, "drope")?;
        let l = model.config.training_length();
        let windows = eval_windows(
            &streams.validation,
            8 * l + 1,
            n_fit.max(n_head_fit),
            model.config.bos_token_id,
        );
        let windows: Vec<&[u32]> = windows.iter().map(Vec::as_slice).collect();
        let val = &windows[..n_fit.min(windows.len())];
        let fit = fit_c(&model, val, batch)?;
        let (c, objective, grid) = (fit.c, fit.objective, fit.grid);
        println!(
            "fitted c = {c} (mean NLL at 2L/4L/8L {objective:.4}) in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        let head_val = &windows[..n_head_fit.min(windows.len())];
        let (heads, head_count) = if head_objective == "needles" {
            // The validation split's first half: `--split validation` measures on the second.
            let haystack = &streams.validation[..streams.validation.len() / 2];
            let docs =
                answer_documents(&maker, haystack, l, n_head_docs, model.config.bos_token_id)?;
            (
                fit_head_c(&mut model, c, &HeadObjective::Answers(&docs))?,
                docs.len(),
            )
        } else {
            let objective = HeadObjective::Prose {
                sequences: head_val,
                batch,
            };
            (fit_head_c(&mut model, c, &objective)?, head_val.len())
        };
        println!(
            "fitted c per head = {:?} ({head_objective} objective {:.4}) in {:.0} s",
            heads.c,
            heads.objective,
            started.elapsed().as_secs_f64()
        );
        store_c(models, "drope", c, &heads.c)?;
        manifest::write(models)?;
        let fit = DropeFit {
            c,
            grid,
            head_c: Some(heads.c),
            head_objective_mean_nll: Some(heads.objective),
            head_validation_sequences: Some(head_count),
            head_objective: (head_objective == "needles").then(|| "needle answers".to_string()),
            objective_mean_nll: Some(objective),
            paper_c_from_scratch: Some(paper::C_FROM_SCRATCH),
            paper_c_smollm: Some(paper::C_SMOLLM),
            validation_sequences: Some(val.len()),
        };
        std::fs::write(results.join("drope-c.json"), to_json(&fit)).map_err(err)?;
        fitted = Some(fit);
    }

    // 2. Perplexity by window, on test sequences of 8L.
    let mut rows: Vec<PerplexityRow> = Vec::new();
    let mut l = 0;
    for id in &ids {
        let model = load_model(models, id)?;
        l = model.config.training_length();
        let test = eval_windows(held_out, 8 * l + 1, n_sequences, model.config.bos_token_id);
        let test: Vec<&[u32]> = test.iter().map(Vec::as_slice).collect();
        for scheme in perplexity_schemes(id) {
            let row = window_perplexity(&model, &scheme.parse().map_err(err)?, &test)?;
            println!(
                "perplexity {id} {scheme}: {:?} ({:.0} s)",
                row.perplexity,
                started.elapsed().as_secs_f64()
            );
            rows.push(row);
        }
    }
    let sequences_used = held_out.len() / (8 * l + 1);
    let table = PerplexityTable {
        rows,
        sequences: n_sequences.min(sequences_used),
        training_length: l,
        windows: ["0-L", "L-2L", "2L-4L", "4L-8L"].map(String::from).to_vec(),
    };
    std::fs::write(results.join("perplexity.json"), to_json(&table)).map_err(err)?;
    let rows = table.rows;

    // 3. Needle in a haystack, held-out haystacks.
    let mut cells: Vec<NeedleCell> = Vec::new();
    for id in &ids {
        let model = load_model(models, id)?;
        for family in needle_schemes(id) {
            let grid = needle_grid(
                &model,
                family,
                &maker,
                held_out,
                &NEEDLE_MULTIPLES,
                &NEEDLE_DEPTHS,
                &budget,
                NEEDLE_SEED,
            )?;
            let summary: Vec<String> = pool_depths(&grid)
                .iter()
                .map(|c| format!("{}x {} n={}", c.length_multiple, with_interval(c), c.trials))
                .collect();
            println!(
                "needles {id} {family}: {} ({:.0} s)",
                summary.join(", "),
                started.elapsed().as_secs_f64()
            );
            cells.extend(grid);
        }
    }
    // `cells` per (model, scheme, length, depth) as before; `lengths` pools the depths,
    // which is what the stopping rule and the report use.
    std::fs::write(
        results.join("niah.json"),
        to_json(&NeedleGrid {
            lengths: pool_depths(&cells),
            cells: cells.clone(),
            depths: NEEDLE_DEPTHS.to_vec(),
            multiples: NEEDLE_MULTIPLES.to_vec(),
            seed: Some(NEEDLE_SEED),
            confidence: Some(NEEDLE_CONFIDENCE),
            target_half_width: Some(budget.half_width),
            min_trials: Some(budget.min_trials),
            max_trials: Some(budget.max_trials),
        }),
    )
    .map_err(err)?;

    // 4. Probes: copying from context at L and 4L per scheme, previous-token heads.
    let mut probes: Vec<ProbeResult> = Vec::new();
    for id in &ids {
        let model = load_model(models, id)?;
        let l = model.config.training_length();
        let prose = eval_windows(held_out, l, 8, model.config.bos_token_id);
        let prose: Vec<&[u32]> = prose.iter().map(Vec::as_slice).collect();
        let previous = previous_token_mass(&model, &prose)?;
        for family in needle_schemes(id) {
            let at = |m: usize| -> Result<InductionScore, String> {
                induction(
                    &model,
                    &trial_scheme(&family.parse().map_err(err)?, m),
                    m * l.max(1),
                    model.config.bos_token_id,
                )
            };
            let row = ProbeResult {
                model: id.to_string(),
                scheme: family.to_string(),
                within: induction(
                    &model,
                    &trial_scheme(&family.parse().map_err(err)?, 1),
                    within_length(&model.config),
                    model.config.bos_token_id,
                )?,
                at_4l: at(4)?,
                previous_token_max: strongest_per_layer(&previous),
                uniform_nll: (model.config.vocab_size as f64).ln(),
            };
            println!(
                "induction {id} {family}: {:.2} -> {:.2} within L, {:.2} -> {:.2} at 4L",
                row.within.first, row.within.second, row.at_4l.first, row.at_4l.second
            );
            probes.push(row);
        }
    }
    std::fs::write(
        results.join("induction.json"),
        serde_json::to_string_pretty(&json!({ "rows": probes })).map_err(err)? + "\n",
    )
    .map_err(err)?;

    // 5. The studio's default prompt (the first sample of `--samples`) under the studio's
    //    default series, window by window: the figure a visitor sees first, measured.
    let samples_path: String = args.get_or("samples", String::new())?;
    let prompt_rows = if samples_path.is_empty() {
        Vec::new()
    } else {
        default_prompt_rows(models, &ids, &tokenizer, Path::new(&samples_path))?
    };
    if !prompt_rows.is_empty() {
        std::fs::write(
            results.join("default-prompt.json"),
            serde_json::to_string_pretty(&json!({ "rows": prompt_rows })).map_err(err)? + "\n",
        )
        .map_err(err)?;
    }

    let budgets = ids
        .iter()
        .filter_map(|id| training_budget(models, id))
        .collect::<Vec<_>>()
        .join("\n");
    let mut markdown = report_markdown(
        (split_name, n_sequences.min(sequences_used)),
        l,
        &rows,
        &cells,
        &probes,
        fitted.as_ref(),
        &budget,
    );
    if !budgets.is_empty() {
        let table = format!(
            "## Training budget\n\n| model | steps | tokens | of which without RoPE after the drop | final validation perplexity |\n|---|---|---|---|---|\n{budgets}\n\n"
        );
        let at = markdown.find("## Perplexity").unwrap_or(0);
        markdown.insert_str(at, &table);
    }
    if let Some(section) = default_prompt_markdown(&prompt_rows) {
        let at = markdown
            .find("## Needle in a haystack")
            .unwrap_or(markdown.len());
        markdown.insert_str(at, &section);
    }
    std::fs::write(report, markdown).map_err(err)?;
    println!(
        "eval done in {:.0} s -> {} and {}",
        started.elapsed().as_secs_f64(),
        results.display(),
        report.display()
    );
    Ok(())
}

/// The series the studio compares by default (`app/src/url_state.rs`), plus each model
/// as trained and NoPE, for the default-prompt table.
fn prompt_schemes(id: &str) -> &'static [&'static str] {
    match id {
        "rope" => &["rope", "yarn:dyn"],
        "drope" => &["none", "none:dyn+beta", "none:dyn+beta=heads"],
        _ => &["none"],
    }
}

/// Perplexity by window of the first sample in `samples` (the studio's default prompt),
/// its first 8L tokens after the model's first token, per model and scheme.
fn default_prompt_rows(
    models: &Path,
    ids: &[&str],
    tokenizer: &TextTokenizer,
    samples: &Path,
) -> Result<Vec<PerplexityRow>, String> {
    let set: engine::samples::SampleSet = serde_json::from_slice(
        &std::fs::read(samples)
            .map_err(|e| format!("cannot read the samples file {}: {e}", samples.display()))?,
    )
    .map_err(|e| format!("{} is not a samples file: {e}", samples.display()))?;
    let Some(sample) = set.samples.first() else {
        return Err(format!("{} holds no sample", samples.display()));
    };
    let text: Vec<u32> = tokenizer
        .encode(&sample.text)
        .map_err(err)?
        .iter()
        .map(|piece| piece.id)
        .collect();
    let mut rows = Vec::new();
    for id in ids {
        let model = load_model(models, id)?;
        let needed = 8 * model.config.training_length() + 1;
        let mut tokens = model.config.with_bos(&text);
        if tokens.len() < needed {
            return Err(format!(
                "the default sample `{}` has {} tokens, 8L + 1 = {needed} are needed",
                sample.id,
                tokens.len()
            ));
        }
        tokens.truncate(needed);
        for scheme in prompt_schemes(id) {
            let row = window_perplexity(&model, &scheme.parse().map_err(err)?, &[&tokens])?;
            println!("default prompt {id} {scheme}: {:?}", row.perplexity);
            rows.push(row);
        }
    }
    Ok(rows)
}

/// The report's section on the default prompt, or `None` without rows.
fn default_prompt_markdown(rows: &[PerplexityRow]) -> Option<String> {
    if rows.is_empty() {
        return None;
    }
    let mut md = String::from(
        "## The studio's default prompt\n\nThe first sample of `public/samples.json` (a passage of a test document repeated \
         to 8L tokens, as its title says), perplexity by window under the series the studio shows \
         first, plus each model as trained and NoPE. From the second repeat on, every token is a \
         copy of one in the context: a model that copies from its context at that distance \
         predicts them well.\n\n| model | scheme | 0-L | L-2L | 2L-4L | 4L-8L |\n|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let cells: Vec<String> = row.perplexity.iter().map(|p| format!("{p:.2}")).collect();
        let _ = writeln!(
            md,
            "| {} | `{}` | {} |",
            row.model,
            row.scheme,
            cells.join(" | ")
        );
    }
    md.push('\n');
    Some(md)
}

/// The probes of one model under one scheme family (`s` = 4 at 4L).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeResult {
    /// Model id.
    pub model: String,
    /// Scheme family (as in the needle test).
    pub scheme: String,
    /// Repeated random tokens within L (100 tokens, or L if shorter).
    pub within: InductionScore,
    /// Repeated random tokens of 4L (a span of 2L repeated once).
    pub at_4l: InductionScore,
    /// Strongest previous-token head per layer on test prose (native scheme).
    pub previous_token_max: Vec<f64>,
    /// NLL of a uniform guess, `ln V`.
    pub uniform_nll: f64,
}

/// One table row from a model's `train-log.json`: steps, tokens, recalibration tokens.
fn training_budget(models: &Path, id: &str) -> Option<String> {
    let log: serde_json::Value =
        serde_json::from_slice(&std::fs::read(models.join(id).join("train-log.json")).ok()?)
            .ok()?;
    let steps = log["train"].as_array()?.last()?[0].as_f64()? as u64;
    let per_step = log["batch"].as_u64()? * log["length"].as_u64()?;
    let recalibration = log["drop_step"].as_u64().map_or("-".to_string(), |d| {
        format!("{:.2}M", ((steps - d) * per_step) as f64 / 1e6)
    });
    let validation = log["validation"].as_array()?.last()?[1].as_f64()?.exp();
    Some(format!(
        "| {id} | {steps} | {:.2}M | {recalibration} | {validation:.2} |",
        (steps * per_step) as f64 / 1e6
    ))
}

fn find<'a>(rows: &'a [PerplexityRow], model: &str, scheme: &str) -> Option<&'a PerplexityRow> {
    rows.iter().find(|r| r.model == model && r.scheme == scheme)
}

/// The depth-pooled needle cell of a model/scheme at a length multiple.
fn find_needle<'a>(
    pooled: &'a [NeedleCell],
    model: &str,
    scheme: &str,
    m: usize,
) -> Option<&'a NeedleCell> {
    pooled
        .iter()
        .find(|c| c.model == model && c.scheme == scheme && c.length_multiple == m)
}

/// Exact-match accuracy with its 95% interval, e.g. "62% [57, 67]".
fn with_interval(c: &NeedleCell) -> String {
    let tally = c.tally();
    let (low, high) = tally.wilson();
    format!(
        "{:.0}% [{:.0}, {:.0}]",
        100.0 * tally.accuracy(),
        100.0 * low,
        100.0 * high
    )
}

/// A table of the depth-pooled needle cells: one row per model/scheme, one column per
/// length multiple (`-` where the length was not run).
fn needle_table(pooled: &[NeedleCell], entry: impl Fn(&NeedleCell) -> String) -> String {
    let mut table = format!(
        "| model | scheme | {} |\n|---|---|{}\n",
        NEEDLE_MULTIPLES.map(|m| format!("{m}x")).join(" | "),
        "---|".repeat(NEEDLE_MULTIPLES.len())
    );
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for c in pooled {
        if seen.contains(&(&c.model, &c.scheme)) {
            continue;
        }
        seen.push((&c.model, &c.scheme));
        let entries = NEEDLE_MULTIPLES
            .map(|m| find_needle(pooled, &c.model, &c.scheme, m).map_or("-".to_string(), &entry));
        let _ = writeln!(
            table,
            "| {} | `{}` | {} |",
            c.model,
            c.scheme,
            entries.join(" | ")
        );
    }
    table
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "reproduced"
    } else {
        "not reproduced"
    }
}

/// The report: tables, the paper's numbers labelled as such, and one sentence per claim.
/// `held_out` names the split measured on and how many sequences of 8L it gave.
pub fn report_markdown(
    (split, sequences): (&str, usize),
    l: usize,
    rows: &[PerplexityRow],
    cells: &[NeedleCell],
    probes: &[ProbeResult],
    fitted: Option<&DropeFit>,
    budget: &NeedleBudget,
) -> String {
    let pooled = pool_depths(cells);
    let mut md = String::new();
    let _ = writeln!(md, "# Results\n");
    let _ = writeln!(
        md,
        "Produced by `cargo xtask results` (`trainer eval`) on the {split} split; do not edit by hand. \
         Training length L = {l}. The paper's numbers are for much larger models and are shown \
         for the shape of the effect, not as a target to match.\n"
    );
    let _ = writeln!(md, "## Perplexity by position window\n");
    let _ = writeln!(md, "{sequences} {split} sequences of 8L tokens. Fixed-s schemes use s = 8; dynamic ones s = (window end) / L.\n");
    let _ = writeln!(
        md,
        "| model | scheme | 0-L | L-2L | 2L-4L | 4L-8L |\n|---|---|---|---|---|---|"
    );
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | `{}` | {} |",
            r.model,
            r.scheme,
            r.perplexity
                .iter()
                .map(|p| format!("{p:.2}"))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    let _ = writeln!(md, "\n## Needle in a haystack (all depths pooled)\n");
    let _ = writeln!(
        md,
        "Greedy decoding of the 7-digit answer; s = T / L; the same documents for every model \
         and scheme. At each length, trials run in rounds of one per depth ({}) until the 95% \
         Wilson interval of the exact-match accuracy is within +-{:.0} points, with at \
         least {} and at most {} trials.\n",
        NEEDLE_DEPTHS.map(|d| d.to_string()).join(", "),
        100.0 * budget.half_width,
        budget.min_trials,
        budget.max_trials
    );
    let _ = writeln!(
        md,
        "Exact match: accuracy [95% Wilson interval] (trials).\n\n{}",
        needle_table(&pooled, |c| format!("{} ({})", with_interval(c), c.trials))
    );
    let _ = write!(
        md,
        "Per-digit accuracy: the share of the 7 answer digits generated in the right place, \
         which shows partial retrieval where exact match is 0%.\n\n{}",
        needle_table(&pooled, |c| format!(
            "{:.0}%",
            100.0 * c.tally().digit_accuracy()
        ))
    );
    let percents = |row: [f64; 3]| row.map(|p| format!("{p:.2}")).join(" / ");
    let _ = writeln!(
        md,
        "\nThe paper's ({}, L = {}, standard NIAH): NTK {} at {}; YaRN {}; DroPE {}.\n",
        paper::NIAH_MODEL,
        paper::NIAH_TRAINING_LENGTH,
        percents(paper::NIAH_NTK),
        paper::NIAH_MULTIPLES.map(|m| format!("{m}x")).join(" / "),
        percents(paper::NIAH_YARN),
        percents(paper::NIAH_DROPE)
    );
    if !probes.is_empty() {
        let _ = writeln!(md, "## Copying from context (induction)\n");
        let _ = writeln!(
            md,
            "Mean NLL (nats) of the first and the second copy of a span of random tokens \
             repeated once (uniform is ln V = {:.2}); 8 sequences, the same for every model. \
             Within L: {} tokens; at 4L: {} tokens (a span of 2L), with s = 4 for scaled \
             schemes. A model that copies pays far less for the second copy. Previous-token \
             mass: the strongest head of each layer, attention on the previous token over \
             test prose.\n",
            probes[0].uniform_nll,
            l.min(100),
            4 * l
        );
        let _ = writeln!(
            md,
            "| model | scheme | within L: first -> second | at 4L: first -> second | previous-token (max per layer) |\n|---|---|---|---|---|"
        );
        for p in probes {
            let _ = writeln!(
                md,
                "| {} | `{}` | {:.2} -> {:.2} | {:.2} -> {:.2} | {} |",
                p.model,
                p.scheme,
                p.within.first,
                p.within.second,
                p.at_4l.first,
                p.at_4l.second,
                p.previous_token_max
                    .iter()
                    .map(|x| format!("{x:.2}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        let _ = writeln!(md);
    }
    if let Some(f) = fitted {
        let _ = writeln!(md, "## DroPE logit scale\n");
        let _ = writeln!(
            md,
            "Fitted on {} validation sequences (mean NLL at 2L, 4L, 8L): **c = {}**. The paper's: c = {} for its from-scratch model, {} for {}.\n",
            f.validation_sequences.unwrap_or(0), f.c, paper::C_FROM_SCRATCH, paper::C_SMOLLM, paper::NIAH_MODEL
        );
        if let (Some(cs), Some(objective)) = (&f.head_c, f.head_objective_mean_nll) {
            let list: Vec<String> = cs.iter().map(|c| c.to_string()).collect();
            let _ = writeln!(
                md,
                "One c per head (`+beta=heads`; not the paper's method, which has one c per model), fitted {} heads in order layer by layer: {}. Objective {objective:.4} (one c: {}).\n",
                match &f.head_objective {
                    Some(what) => format!("to the mean NLL of the {what} of {} validation needle documents at 2x, 4x and 8x L (not comparable with the one c's objective);", f.head_validation_sequences.unwrap_or(0)),
                    None => format!("by the same objective on {} validation sequences,", f.head_validation_sequences.unwrap_or(0)),
                },
                list.join(", "),
                f.objective_mean_nll.map_or("-".to_string(), |o| format!("{o:.4}"))
            );
        }
    }
    let _ = writeln!(md, "## Claims\n");
    let at = |m: &str, s: &str, w: usize| find(rows, m, s).map(|r| r.perplexity[w]);
    if let (Some(in_l), Some(far)) = (at("rope", "rope", 0), at("rope", "rope", 3)) {
        let _ = writeln!(md, "- RoPE breaks past L: perplexity {far:.2} at 4L-8L vs {in_l:.2} at 0-L, ratio {:.2} (target >= 2): {}.", far / in_l, verdict(far >= 2.0 * in_l));
    }
    if let (Some(rope), Some(drope)) = (at("rope", "rope", 0), at("drope", "none", 0)) {
        let _ = writeln!(md, "- DroPE keeps in-context quality: {drope:.2} vs RoPE {rope:.2} at 0-L ({:.2}x, target at most 1.15x): {}.", drope / rope, verdict(drope <= 1.15 * rope));
    }
    if let (Some(nope), Some(rope), Some(drope)) = (
        at("nope", "none", 0),
        at("rope", "rope", 0),
        at("drope", "none", 0),
    ) {
        let _ = writeln!(md, "- NoPE trains worse than both: {nope:.2} at 0-L vs RoPE {rope:.2}, DroPE {drope:.2}: {}.", verdict(nope > rope && nope > drope));
    }
    if let (Some(in_l), Some(far)) = (
        at("drope", "none:dyn+beta", 0),
        at("drope", "none:dyn+beta", 3),
    ) {
        let _ = writeln!(md, "- DroPE with beta extends: {far:.2} at 4L-8L vs {in_l:.2} at 0-L, ratio {:.2} (target <= 1.3): {}.", far / in_l, verdict(far <= 1.3 * in_l));
    }
    let drope_far = [
        "none",
        "none:8+beta",
        "none:dyn+beta",
        "none:dyn+beta=heads",
    ]
    .iter()
    .filter_map(|s| find(rows, "drope", s).map(|r| (s, r.perplexity[3])))
    .min_by(|a, b| a.1.total_cmp(&b.1));
    let rope_far = rows
        .iter()
        .filter(|r| r.model == "rope")
        .map(|r| (&r.scheme, r.perplexity[3]))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    if let (Some((ds, d)), Some((rs, r))) = (drope_far, rope_far) {
        let _ = writeln!(md, "- DroPE beats every RoPE scheme at 4L-8L: DroPE (`{ds}`) {d:.2} vs the best RoPE scheme (`{rs}`) {r:.2}: {}.", verdict(d < r));
    }
    let probe = |m: &str, s: &str| probes.iter().find(|p| p.model == m && p.scheme == s);
    for model in ["rope", "drope"] {
        if let Some(p) = probe(model, if model == "rope" { "rope" } else { "none" }) {
            let _ = writeln!(md, "- {model} copies within L: second copy {:.2} nats per token (first {:.2}; target at most 1): {}.", p.within.second, p.within.first, verdict(p.within.second <= 1.0));
        }
    }
    let drope_copy = ["none", "none+beta", "none+beta=heads"]
        .iter()
        .filter_map(|s| probe("drope", s))
        .min_by(|a, b| a.at_4l.second.total_cmp(&b.at_4l.second));
    if let Some(p) = drope_copy {
        let _ = writeln!(md, "- DroPE copies at 4L (best of its schemes, `{}`): second copy {:.2} nats per token (first {:.2}; target at most 2): {}.", p.scheme, p.at_4l.second, p.at_4l.first, verdict(p.at_4l.second <= 2.0));
    }
    let needle = |m: &str, s: &str, x: usize| find_needle(&pooled, m, s, x);
    for (model, scheme) in [("rope", "rope"), ("drope", "none")] {
        if let Some(c) = needle(model, scheme, 1) {
            let _ = writeln!(
                md,
                "- {model} finds the needle within L: {} (target >= 80%): {}.",
                with_interval(c),
                verdict(c.tally().accuracy() >= 0.8)
            );
        }
    }
    for m in [2, 4, 8] {
        let best = |model: &str, schemes: &[&str]| {
            schemes
                .iter()
                .filter_map(|s| needle(model, s, m))
                .max_by(|a, b| a.tally().accuracy().total_cmp(&b.tally().accuracy()))
        };
        if let (Some(d), Some(s)) = (
            best("drope", &["none", "none+beta", "none+beta=heads"]),
            best("rope", &["pi", "ntk", "yarn"]),
        ) {
            // A win inside overlapping intervals may be noise: say so next to the verdict.
            let ((d_low, d_high), (s_low, s_high)) = (d.tally().wilson(), s.tally().wilson());
            let overlap = if d_low <= s_high && s_low <= d_high {
                " (the 95% intervals overlap)"
            } else {
                ""
            };
            let _ = writeln!(md, "- Needle at {m}x L: DroPE (best of its schemes, `{}`) {} vs best of PI/NTK/YaRN (`{}`) {}{overlap}: {}.", d.scheme, with_interval(d), s.scheme, with_interval(s), verdict(d.tally().accuracy() > s.tally().accuracy()));
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::needles::NeedleTally;

    /// The report's lines with the paper's numbers, byte for byte.
    #[test]
    fn the_papers_numbers_read_exactly_as_in_the_report() {
        let fitted = DropeFit {
            c: 0.25,
            grid: Vec::new(),
            head_c: None,
            head_objective_mean_nll: None,
            head_validation_sequences: None,
            head_objective: None,
            objective_mean_nll: None,
            paper_c_from_scratch: None,
            paper_c_smollm: None,
            validation_sequences: Some(4),
        };
        let tally = NeedleTally {
            trials: 10,
            correct: 7,
            digits_correct: 60,
        };
        let cells = [NeedleCell::new("drope", "none", 2, Some(0.5), tally)];
        let md = report_markdown(
            ("test", 16),
            256,
            &[],
            &cells,
            &[],
            Some(&fitted),
            &NeedleBudget::default(),
        );
        assert!(md.contains(
            "\nThe paper's (SmolLM-360M, L = 2048, standard NIAH): NTK 29.84 / 14.37 / 7.19 at \
             2x / 4x / 8x; YaRN 48.25 / 25.62 / 12.18; DroPE 74.92 / 55.00 / 52.20.\n\n## DroPE \
             logit scale\n\nFitted on 4 validation sequences (mean NLL at 2L, 4L, 8L): **c = \
             0.25**. The paper's: c = 0.412 for its from-scratch model, 0.103 for SmolLM-360M.\n\n"
        ), "{md}");
    }
}
