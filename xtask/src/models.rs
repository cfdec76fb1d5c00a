//! `cargo xtask models`: trains and exports the studio's three models, reproducibly.
//!
//! 1. RoPE for N steps (`runs/rope`),
//! 2. DroPE: the RoPE snapshot at 7N/8, RoPE removed, recalibrated to step N (`runs/drope`),
//! 3. NoPE: no positions from step 0, N steps (`runs/nope`),
//! 4. export of all three into `public/models/` and a new manifest.
//!
//! Each run resumes from its own state when interrupted, so the command can simply be
//! started again. Run it in the background: `nohup cargo xtask models > runs/models.log &`.
//! The glibc malloc settings below made candle training 1.5-2x faster on this project's
//! 2-core machines.

use std::path::Path;
use std::process::Command;

use crate::util::{self, root, Result};

const MALLOC: [(&str, &str); 3] = [
    ("MALLOC_MMAP_THRESHOLD_", "33554432"),
    ("MALLOC_TRIM_THRESHOLD_", "4294967296"),
    ("MALLOC_TOP_PAD_", "1073741824"),
];

fn trainer(args: &[&str]) -> Result<()> {
    let binary = root().join("target/release/trainer");
    let mut cmd = Command::new(&binary);
    cmd.args(args).current_dir(root());
    for (key, value) in MALLOC {
        cmd.env(key, value);
    }
    util::run(&mut cmd)
}

pub fn run(args: &[String]) -> Result<()> {
    let mut steps: usize = 2448;
    let mut corpus = "../shared/corpus".to_string();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--steps" => steps = value.parse().map_err(|_| format!("bad --steps {value}"))?,
            "--corpus" => corpus = value.clone(),
            _ => {
                return Err(format!(
                    "unknown option {flag} (options: --steps N, --corpus DIR)"
                ))
            }
        }
    }
    if !steps.is_multiple_of(16) {
        return Err(format!("--steps must be a multiple of 16 (the drop point 7N/8 must be a snapshot), got {steps}"));
    }
    util::run(
        Command::new("cargo")
            .args(["build", "--release", "-p", "trainer"])
            .current_dir(root()),
    )?;
    let snapshot_every = (steps / 16).to_string();
    let drop_step = (steps / 8 * 7).to_string();
    let total = steps.to_string();
    let common = |out: &str, positions: &str| -> Vec<String> {
        [
            "train",
            "--corpus",
            &corpus,
            "--tokenizer",
            "public/models/tokenizer.json",
            "--out",
            out,
            "--positions",
            positions,
            "--steps",
            &total,
            "--batch",
            "16",
            "--length",
            "256",
            "--warmup",
            "40",
            "--eval-every",
            &snapshot_every,
            "--snapshot-every",
            &snapshot_every,
            "--log-every",
            "10",
            "--seed",
            "1",
            // Upper end of the 10-20%: at N = 640 with 15% no model retrieved a
            // single needle, so the retrieval skill gets more examples.
            "--needle-fraction",
            "0.2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run_training = |mut a: Vec<String>, extra: &[&str]| -> Result<()> {
        a.extend(extra.iter().map(|s| s.to_string()));
        trainer(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    if !Path::new(&corpus).is_dir() {
        return Err(format!(
            "corpus folder {corpus} not found (pass --corpus DIR)"
        ));
    }
    run_training(common("runs/rope", "rope"), &[])?;
    let snapshot = format!("runs/rope/snapshot-{drop_step}.safetensors");
    run_training(
        common("runs/drope", "none"),
        &["--init-from", &snapshot, "--first-step", &drop_step],
    )?;
    run_training(common("runs/nope", "none"), &[])?;
    let cards = [
        ("rope", "RoPE", "10", "Pretrained with rotary position embeddings in every layer."),
        ("drope", "DroPE", "20", "The RoPE run's checkpoint at 7/8 of training, RoPE removed from every layer, recalibrated for the last 1/8 at the same length."),
        ("nope", "NoPE", "30", "No positional embedding from the first step (the paper's control)."),
    ];
    for (name, label, order, description) in cards {
        let run_dir = format!("runs/{name}");
        trainer(&[
            "export",
            "--run",
            &run_dir,
            "--models",
            "public/models",
            "--name",
            name,
            "--corpus",
            &corpus,
            "--label",
            label,
            "--order",
            order,
            "--description",
            description,
            "--log-from",
            "runs/rope",
        ])?;
    }
    println!("models: rope, drope and nope exported to public/models (N = {steps} steps)");
    Ok(())
}
