//! `trainer eval` (the command): runs every measurement of `eval.rs` on the exported
//! models, writes `public/results/*.json` for the studio and `docs/RESULTS.md` with the
//! paper's numbers beside ours.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use engine::{ModelConfig, ModelWeights, TextTokenizer};
use serde_json::json;

use crate::args::Args;
use crate::data::TokenStreams;
use crate::eval::{fit_c, needle_grid, window_perplexity, EvalModel, NeedleCell, PerplexityRow};
use crate::manifest;
use crate::needles::NeedleMaker;

/// Schemes measured for perplexity, per model id.
fn perplexity_schemes(id: &str) -> &'static [&'static str] {
    match id {
        "rope" => &[
            "rope", "pi:8", "ntk:8", "yarn:8", "pi:dyn", "ntk:dyn", "yarn:dyn",
        ],
        "drope" => &["none", "none:8+beta", "none:dyn+beta"],
        _ => &["none"],
    }
}

/// Scheme families of the needle test, per model id (`s = T / L` is added per length).
fn needle_schemes(id: &str) -> &'static [&'static str] {
    match id {
        "rope" => &["rope", "pi", "ntk", "yarn"],
        "drope" => &["none", "none+beta"],
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
fn store_c(models: &Path, id: &str, c: f64) -> Result<(), String> {
    let path = models.join(id).join("config.json");
    let mut config = ModelConfig::from_json(&std::fs::read(&path).map_err(err)?).map_err(err)?;
    config.drope_c = Some(c);
    std::fs::write(&path, config.to_json() + "\n").map_err(err)
}

/// `trainer eval --models DIR --corpus DIR --results DIR --report FILE
///  [--sequences 16] [--fit-sequences 4] [--needle-trials 4] [--batch 2] [--models-list rope,drope,nope]`
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
            "needle-trials",
            "batch",
            "only",
        ],
    )?;
    let models = Path::new(args.required("models")?);
    let results = Path::new(args.required("results")?);
    let report = Path::new(args.required("report")?);
    let n_sequences: usize = args.get_or("sequences", 16)?;
    let n_fit: usize = args.get_or("fit-sequences", 4)?;
    let trials: usize = args.get_or("needle-trials", 4)?;
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

    // 1. DroPE's c, on validation sequences of 8L.
    let mut fitted = None;
    if ids.contains(&"drope") {
        let model = load_model(models, "drope")?;
        let l = model.config.training_length();
        let val: Vec<&[u32]> = streams
            .validation
            .chunks_exact(8 * l + 1)
            .take(n_fit)
            .collect();
        let fit = fit_c(&model, &val, batch)?;
        let (c, objective, grid) = (fit.c, fit.objective, fit.grid);
        println!(
            "fitted c = {c} (mean NLL at 2L/4L/8L {objective:.4}) in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        store_c(models, "drope", c)?;
        manifest::write(models)?;
        fitted = Some(
            json!({"c": c, "objective_mean_nll": objective, "grid": grid,
            "validation_sequences": val.len(), "paper_c_from_scratch": 0.412, "paper_c_smollm": 0.103}),
        );
        std::fs::write(
            results.join("drope-c.json"),
            serde_json::to_string_pretty(&fitted).map_err(err)? + "\n",
        )
        .map_err(err)?;
    }

    // 2. Perplexity by window, on test sequences of 8L.
    let mut rows: Vec<PerplexityRow> = Vec::new();
    let mut l = 0;
    for id in &ids {
        let model = load_model(models, id)?;
        l = model.config.training_length();
        let test: Vec<&[u32]> = streams
            .test
            .chunks_exact(8 * l + 1)
            .take(n_sequences)
            .collect();
        for scheme in perplexity_schemes(id) {
            let row = window_perplexity(&model, &scheme.parse().map_err(err)?, &test, batch)?;
            println!(
                "perplexity {id} {scheme}: {:?} ({:.0} s)",
                row.perplexity,
                started.elapsed().as_secs_f64()
            );
            rows.push(row);
        }
    }
    let sequences_used = streams.test.len() / (8 * l + 1);
    std::fs::write(
        results.join("perplexity.json"),
        serde_json::to_string_pretty(&json!({
            "training_length": l, "windows": ["0-L", "L-2L", "2L-4L", "4L-8L"],
            "sequences": n_sequences.min(sequences_used), "rows": rows,
        }))
        .map_err(err)?
            + "\n",
    )
    .map_err(err)?;

    // 3. Needle in a haystack, test-split haystacks.
    let maker = NeedleMaker::new(&tokenizer)?;
    let depths = [0.1, 0.3, 0.5, 0.7, 0.9];
    let mut cells: Vec<NeedleCell> = Vec::new();
    for id in &ids {
        let model = load_model(models, id)?;
        for family in needle_schemes(id) {
            cells.extend(needle_grid(
                &model,
                family,
                &maker,
                &streams.test,
                &[1, 2, 4, 8],
                &depths,
                trials,
                7,
            )?);
            println!(
                "needles {id} {family} done ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    std::fs::write(
        results.join("niah.json"),
        serde_json::to_string_pretty(
            &json!({"depths": depths, "multiples": [1, 2, 4, 8], "cells": cells}),
        )
        .map_err(err)?
            + "\n",
    )
    .map_err(err)?;

    let budgets = ids
        .iter()
        .filter_map(|id| training_budget(models, id))
        .collect::<Vec<_>>()
        .join("\n");
    let mut markdown = report_markdown(
        l,
        &rows,
        &cells,
        fitted.as_ref(),
        n_sequences.min(sequences_used),
        trials,
    );
    if !budgets.is_empty() {
        let table = format!(
            "## Training budget\n\n| model | steps | tokens | of which without RoPE after the drop | final validation perplexity |\n|---|---|---|---|---|\n{budgets}\n\n"
        );
        let at = markdown.find("## Perplexity").unwrap_or(0);
        markdown.insert_str(at, &table);
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

/// Accuracy (fraction) of a model/scheme at a length multiple, over all depths.
fn accuracy(cells: &[NeedleCell], model: &str, scheme: &str, m: usize) -> Option<f64> {
    let (mut correct, mut trials) = (0, 0);
    for c in cells
        .iter()
        .filter(|c| c.model == model && c.scheme == scheme && c.length_multiple == m)
    {
        correct += c.correct;
        trials += c.trials;
    }
    (trials > 0).then(|| correct as f64 / trials as f64)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "reproduced"
    } else {
        "not reproduced"
    }
}

/// The report: tables, the paper's numbers labelled as such, and one sentence per claim.
pub fn report_markdown(
    l: usize,
    rows: &[PerplexityRow],
    cells: &[NeedleCell],
    fitted: Option<&serde_json::Value>,
    sequences: usize,
    trials: usize,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Results\n");
    let _ = writeln!(
        md,
        "Produced by `cargo xtask results` (`trainer eval`) on the test split; do not edit by hand. \
         Training length L = {l}. The paper's numbers are for much larger models and are shown \
         for the shape of the effect, not as a target to match.\n"
    );
    let _ = writeln!(md, "## Perplexity by position window\n");
    let _ = writeln!(md, "{sequences} test sequences of 8L tokens. Fixed-s schemes use s = 8; dynamic ones s = (window end) / L.\n");
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
    let _ = writeln!(
        md,
        "\n## Needle in a haystack (accuracy, all depths pooled)\n"
    );
    let _ = writeln!(md, "{trials} trials per (length, depth) cell, 5 depths (0.1 .. 0.9): {} trials per entry; greedy, exact match of 7 digits. s = T / L.\n", trials * 5);
    let _ = writeln!(
        md,
        "| model | scheme | 1x | 2x | 4x | 8x |\n|---|---|---|---|---|---|"
    );
    let mut seen: Vec<(String, String)> = Vec::new();
    for c in cells {
        let key = (c.model.clone(), c.scheme.clone());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let accs: Vec<String> = [1, 2, 4, 8]
            .iter()
            .map(|&m| {
                accuracy(cells, &c.model, &c.scheme, m)
                    .map_or("-".into(), |a| format!("{:.0}%", 100.0 * a))
            })
            .collect();
        let _ = writeln!(
            md,
            "| {} | `{}` | {} |",
            c.model,
            c.scheme,
            accs.join(" | ")
        );
    }
    let _ = writeln!(md, "\nThe paper's (SmolLM-360M, L = 2048, standard NIAH): NTK 29.84 / 14.37 / 7.19 at 2x / 4x / 8x; YaRN 48.25 / 25.62 / 12.18; DroPE 74.92 / 55.00 / 52.20.\n");
    if let Some(f) = fitted {
        let _ = writeln!(md, "## DroPE logit scale\n");
        let _ = writeln!(
            md,
            "Fitted on {} validation sequences (mean NLL at 2L, 4L, 8L): **c = {}**. The paper's: c = 0.412 for its from-scratch model, 0.103 for SmolLM-360M.\n",
            f["validation_sequences"], f["c"]
        );
    }
    let _ = writeln!(md, "## Claims\n");
    let at = |m: &str, s: &str, w: usize| find(rows, m, s).map(|r| r.perplexity[w]);
    if let (Some(in_l), Some(far)) = (at("rope", "rope", 0), at("rope", "rope", 3)) {
        let _ = writeln!(md, "- RoPE breaks past L: perplexity {far:.2} at 4L-8L vs {in_l:.2} at 0-L, ratio {:.2} (target >= 2): {}.", far / in_l, verdict(far >= 2.0 * in_l));
    }
    if let (Some(rope), Some(drope)) = (at("rope", "rope", 0), at("drope", "none", 0)) {
        let _ = writeln!(md, "- DroPE keeps in-context quality: {drope:.2} vs RoPE {rope:.2} at 0-L ({:+.1}%, target within 5%): {}.", 100.0 * (drope / rope - 1.0), verdict(drope <= 1.05 * rope));
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
    let acc = |m: &str, s: &str, x: usize| accuracy(cells, m, s, x);
    for (model, scheme) in [("rope", "rope"), ("drope", "none")] {
        if let Some(a) = acc(model, scheme, 1) {
            let _ = writeln!(
                md,
                "- {model} finds the needle within L: {:.0}% (target >= 80%): {}.",
                100.0 * a,
                verdict(a >= 0.8)
            );
        }
    }
    for m in [2, 4, 8] {
        let drope = ["none", "none+beta"]
            .iter()
            .filter_map(|s| acc("drope", s, m))
            .fold(None, |b: Option<f64>, a| Some(b.map_or(a, |b| b.max(a))));
        let scaled = ["pi", "ntk", "yarn"]
            .iter()
            .filter_map(|s| acc("rope", s, m))
            .fold(None, |b: Option<f64>, a| Some(b.map_or(a, |b| b.max(a))));
        if let (Some(d), Some(s)) = (drope, scaled) {
            let _ = writeln!(md, "- Needle at {m}x L: DroPE (best of with/without beta) {:.0}% vs best of PI/NTK/YaRN {:.0}%: {}.", 100.0 * d, 100.0 * s, verdict(d > s));
        }
    }
    md
}
