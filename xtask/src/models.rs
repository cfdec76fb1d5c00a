//! `cargo xtask models`: trains and exports the studio's three models, reproducibly.
//!
//! 1. RoPE for N steps (`runs/rope`),
//! 2. DroPE: the RoPE snapshot at N/2, RoPE removed, recalibrated to step N with a fresh,
//!    clipped warm-up and cosine decay (`runs/drope`),
//! 3. NoPE: no positions from step 0, N steps (`runs/nope`),
//! 4. `trainer probe`: the needle probe on every snapshot of the three runs, into their logs,
//! 5. export of all three into `public/models/` and a new manifest.
//!
//! From the drop step on, every sequence of all three runs starts with the end-of-text
//! token (`--bos-from N/2`): without positions it is the one fixed point attention can
//! count from. RoPE pretrains without it: the recalibration pilots that added the token
//! only at the drop rebuilt copying best (docs/TRAINING.md).
//!
//! NoPE trains beside RoPE, each process on one thread: on 2 cores two one-thread runs
//! make 6.5k tokens/s together where one two-thread run makes 3.6k (candle's matmul
//! threads wait on each other at this size). RoPE stops at the drop step; then its second
//! half and DroPE run side by side with NoPE, so the three finish together. Each run logs to
//! `runs/<name>.log` and resumes from its own state when interrupted, so the command can
//! simply be started again. Run it in the background:
//! `nohup cargo xtask models > runs/models.log 2>&1 &`.
//! The glibc malloc settings below made candle training 1.5-2x faster on this project's
//! 2-core machines.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command};

use crate::util::{self, root, Result};

const MALLOC: [(&str, &str); 3] = [
    ("MALLOC_MMAP_THRESHOLD_", "33554432"),
    ("MALLOC_TRIM_THRESHOLD_", "4294967296"),
    ("MALLOC_TOP_PAD_", "1073741824"),
];

fn trainer_command(args: &[&str]) -> Command {
    let binary = root().join("target/release/trainer");
    let mut cmd = Command::new(&binary);
    cmd.args(args).current_dir(root());
    for (key, value) in MALLOC {
        cmd.env(key, value);
    }
    cmd
}

fn trainer(args: &[&str]) -> Result<()> {
    util::run(&mut trainer_command(args))
}

/// Starts a one-thread training run in the background, its output in `runs/<name>.log`.
fn start_training(name: &str, args: &[String]) -> Result<Child> {
    let log_path = root().join("runs").join(format!("{name}.log"));
    let log = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let err_log = log.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = trainer_command(&args.iter().map(String::as_str).collect::<Vec<_>>());
    cmd.env("RAYON_NUM_THREADS", "1")
        .stdout(log)
        .stderr(err_log);
    println!("$ {} (log: {})", util::show(&cmd), log_path.display());
    cmd.spawn()
        .map_err(|e| format!("could not start the {name} run: {e}"))
}

/// Waits for a run started by [`start_training`].
fn finish(name: &str, mut child: Child) -> Result<()> {
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        println!("{name}: done");
        Ok(())
    } else {
        Err(format!(
            "the {name} run failed ({status}); see runs/{name}.log"
        ))
    }
}

/// The recipe (docs/TRAINING.md): a small model at a short L, many small batches, a
/// curriculum of repeated spans that makes copying (induction heads) form early, then
/// fewer repeats; DroPE recalibrated for the second half with a fresh, clipped warm-up.
const LENGTH: &str = "128";
const BATCH: &str = "8";
/// Default steps: 11520 x 8 x 128 = 11.8M tokens per model.
const DEFAULT_STEPS: usize = 11520;
/// Recalibration: peak learning rate (between the paper's 3e-4 without QK-norm and the
/// pretraining 1e-3; clipping keeps it stable) and warm-up share.
const RECAL_LR: &str = "5e-4";
const RECAL_WARMUP_SHARE: usize = 10;

pub fn run(args: &[String]) -> Result<()> {
    let mut steps: usize = DEFAULT_STEPS;
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
    if steps < 32 || !steps.is_multiple_of(32) {
        return Err(format!("--steps must be a positive multiple of 32 (the drop point N/2 must be a snapshot and an evaluation, every N/32 steps), got {steps}"));
    }
    if !Path::new(&corpus).is_dir() {
        return Err(format!(
            "corpus folder {corpus} not found (pass --corpus DIR)"
        ));
    }
    util::run(
        Command::new("cargo")
            .args(["build", "--release", "-p", "trainer"])
            .current_dir(root()),
    )?;
    let snapshot_every = (steps / 16).to_string();
    let eval_every = (steps / 32).to_string();
    // Dropping halfway leaves DroPE half the run to rebuild its copying heads: the
    // pilots that dropped later kept less (docs/TRAINING.md).
    let drop_step = steps / 2;
    // Half the sequences repeat a span until 5/8 of the run (copying forms in the first
    // half, docs/TRAINING.md), a quarter after.
    let repeat_switch = (steps / 8 * 5).to_string();
    let total = steps.to_string();
    // Every sequence starts with the end-of-text token from the drop on, in all three runs.
    let drop = drop_step.to_string();
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
            BATCH,
            "--length",
            LENGTH,
            "--layers",
            "4",
            "--hidden",
            "128",
            "--heads",
            "4",
            "--intermediate",
            "384",
            "--lr",
            "1e-3",
            "--warmup",
            "100",
            "--clip",
            "1.0",
            "--eval-every",
            &eval_every,
            "--snapshot-every",
            &snapshot_every,
            "--log-every",
            "20",
            "--seed",
            "1",
            "--needle-fraction",
            "0.2",
            "--repeat-fraction",
            "0.5",
            "--repeat-late",
            "0.25",
            "--repeat-switch",
            &repeat_switch,
            "--bos-from",
            &drop,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    std::fs::create_dir_all(root().join("runs")).map_err(|e| e.to_string())?;
    let with = |mut a: Vec<String>, extra: &[&str]| -> Vec<String> {
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let mut nope = start_training("nope", &common("runs/nope", "none"))?;
    // RoPE to the drop step, then RoPE's second half beside DroPE. Whatever fails, every
    // run still going is stopped before returning, so a rerun never finds a detached
    // trainer writing into `runs/`; each resumes from its last snapshot.
    let rope_and_drope = || -> Result<()> {
        finish(
            "rope",
            start_training(
                "rope",
                &with(
                    common("runs/rope", "rope"),
                    &["--stop-at", &drop_step.to_string()],
                ),
            )?,
        )?;
        let snapshot = format!("runs/rope/snapshot-{drop_step}.safetensors");
        let rewarm = ((steps - drop_step) / RECAL_WARMUP_SHARE)
            .max(1)
            .to_string();
        let mut rope = start_training("rope", &common("runs/rope", "rope"))?;
        let drope = start_training(
            "drope",
            &with(
                common("runs/drope", "none"),
                &[
                    "--init-from",
                    &snapshot,
                    "--first-step",
                    &drop_step.to_string(),
                    "--rewarm",
                    &rewarm,
                    "--schedule",
                    "cosine",
                    "--lr",
                    RECAL_LR,
                ],
            ),
        );
        let drope = match drope {
            Ok(child) => child,
            Err(e) => {
                let _ = rope.kill();
                let _ = rope.wait();
                return Err(e);
            }
        };
        let drope_result = finish("drope", drope);
        if drope_result.is_err() {
            let _ = rope.kill();
        }
        let rope_result = finish("rope", rope);
        drope_result.and(rope_result)
    };
    if let Err(e) = rope_and_drope() {
        let _ = nope.kill();
        let _ = nope.wait();
        return Err(e);
    }
    finish("nope", nope)?;
    // Needle accuracy of every snapshot, into each run's log (the training story's needle
    // curves); snapshots up to the drop were trained without the first token. DroPE's
    // starting point, RoPE's snapshot at the drop, is probed as it was just dropped.
    let dropped = format!("runs/rope/snapshot-{drop_step}.safetensors");
    for name in ["rope", "drope", "nope"] {
        let run_dir = format!("runs/{name}");
        let mut args = vec![
            "probe",
            "--run",
            &run_dir,
            "--corpus",
            &corpus,
            "--tokenizer",
            "public/models/tokenizer.json",
            "--bos-from",
            &drop,
        ];
        if name == "drope" {
            args.extend(["--init-from", dropped.as_str()]);
        }
        trainer(&args)?;
    }
    let cards = [
        ("rope", "RoPE", "10", "Pretrained with rotary position embeddings in every layer."),
        ("drope", "DroPE", "20", "The RoPE run's checkpoint at half of training, RoPE removed from every layer, recalibrated for the second half at the same length."),
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
