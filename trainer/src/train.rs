//! `trainer train`: next-token training of the engine's own model code (the same
//! `Transformer` the studio runs), with AdamW, warm-up + cosine, validation, resumable
//! checkpoints and a JSON training log.
//!
//! The three models of the paper come from this one command:
//! - RoPE: `--positions rope --steps N`
//! - DroPE: `--positions none --init-from <rope run>/snapshot-<D>.safetensors
//!   --first-step D --steps N` (RoPE dropped from every layer at step D, recalibrated at
//!   L; the shipped recipe drops at D = N/2, `xtask/src/models.rs`)
//! - NoPE: `--positions none --steps N`
//!
//! Options for the recalibration: `--rewarm W` restarts the schedule at `--first-step`
//! (W warm-up steps to `--lr`, then `--schedule`: cosine to the floor at N, or constant)
//! instead of continuing the pretraining cosine; `--qk-norm true` adds the paper's QK-norm
//! (new weights start at 1).
//!
//! The curriculum: `--repeat-fraction F` of the sequences repeat a span (random tokens or
//! prose) until `--repeat-switch S`, then `--repeat-late G`; `--needle-fraction` are
//! retrieval documents; the rest prose windows. Gradients are clipped to a global norm
//! of `--clip` (1.0; 0 turns it off). At every evaluation the probes of
//! [`crate::probes`] are measured and logged.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use engine::config::ForeignFields;
use engine::cpu::{
    cross_entropy, fused_cross_entropy, ForwardSettings, Kernels, RotaryTables, Transformer,
};
use engine::init::random_weights;
use engine::{ModelConfig, ModelWeights, PositionScheme, TextTokenizer, TrainedPositions};
use serde::{Deserialize, Serialize};

use crate::args::Args;
use crate::backprop::{self, Workspace};
use crate::data::{eval_windows, BatchSampler, FirstToken, RepeatSchedule, TokenStreams};
use crate::eval::EvalModel;
use crate::needles::NeedleMaker;
use crate::optimizer::{
    clip_factor, global_norm, gradients_in_order, learning_rate, AdamW, AdamWConfig, Schedule,
};
use crate::probes::{probe, strongest_per_layer, ProbeRow};
pub use engine::train_log::TrainLog;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The model shape from the command line.
pub(crate) fn model_config(
    args: &Args,
    vocab: usize,
    positions: TrainedPositions,
) -> Result<ModelConfig, String> {
    let hidden: usize = args.get_or("hidden", 128)?;
    let heads: usize = args.get_or("heads", 4)?;
    let config = ModelConfig {
        hidden_size: hidden,
        num_hidden_layers: args.get_or("layers", 4)?,
        num_attention_heads: heads,
        num_key_value_heads: Some(args.get_or("kv-heads", heads)?),
        intermediate_size: args.get_or("intermediate", 384)?,
        vocab_size: vocab,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        tie_word_embeddings: true,
        max_position_embeddings: args.get_or("length", 128)?,
        head_dim: None,
        position_embedding: positions,
        drope_c: None,
        drope_head_c: None,
        qk_norm: args.get_or("qk-norm", false)?,
        bos_token_id: None,
        rope_scaling: None,
        foreign: ForeignFields::llama(),
    };
    config.validate().map_err(err)?;
    Ok(config)
}

/// Trainable variables named as in the safetensors file.
pub(crate) fn variables(weights: &ModelWeights) -> Result<Vec<(String, Var)>, String> {
    weights
        .named_tensors()
        .into_iter()
        .map(|(name, t)| Ok((name, Var::from_tensor(t).map_err(err)?)))
        .collect()
}

/// Weights that share storage with the variables, so gradients reach them.
fn weights_of(config: &ModelConfig, vars: &[(String, Var)]) -> Result<ModelWeights, String> {
    ModelWeights::from_layout(config, |name, _| {
        vars.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_tensor().clone())
            .ok_or_else(|| engine::EngineError::Weights(format!("no variable {name}")))
    })
    .map_err(err)
}

/// What one [`train_step`] did, with the seconds each phase took.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepReport {
    /// Mean training loss of the batch.
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub norm: f64,
    /// Forward pass and loss.
    pub forward: f64,
    /// Backpropagation.
    pub backward: f64,
    /// Gradient norm, clipping and the AdamW update.
    pub update: f64,
}

/// How a training step computes its gradients.
pub enum Gradients {
    /// candle's autograd over the forward pass in the given kernels (what the trainer ran
    /// before the hand-written step; `trainer bench` times it beside that step).
    Autograd(Kernels),
    /// The backward pass written out by hand ([`crate::backprop`]), in the buffers it
    /// keeps from step to step: what training runs.
    Handwritten(Box<Workspace>),
}

impl Gradients {
    /// The hand-written step with fresh buffers.
    pub fn handwritten() -> Self {
        Gradients::Handwritten(Box::default())
    }
}

/// One optimisation step on `(inputs, targets)` at learning rate `lr`, gradients clipped
/// to global norm `clip`: the training loop's step, and what `trainer bench` times.
#[allow(clippy::too_many_arguments)]
pub fn train_step(
    method: &mut Gradients,
    config: &ModelConfig,
    vars: &[(String, Var)],
    optimizer: &mut AdamW,
    settings: &ForwardSettings,
    (inputs, targets): (&Tensor, &Tensor),
    lr: f64,
    clip: f64,
) -> Result<StepReport, String> {
    let started = Instant::now();
    let (loss, grads, forward, backward) = match method {
        Gradients::Autograd(kernels) => {
            let weights = weights_of(config, vars)?;
            let logits = Transformer::new(config, &weights)
                .with_kernels(*kernels)
                .forward(inputs, settings, None, |_, _| Ok(()))
                .map_err(err)?;
            let loss = match kernels {
                Kernels::Reference => cross_entropy(&logits, targets),
                Kernels::Fused => fused_cross_entropy(&logits, targets),
            }
            .map_err(err)?;
            let forward = started.elapsed().as_secs_f64();
            let store = loss.backward().map_err(err)?;
            let grads = gradients_in_order(vars, &store).map_err(err)?;
            let backward = started.elapsed().as_secs_f64() - forward;
            let loss = loss.to_scalar::<f32>().map_err(err)? as f64;
            (loss, grads, forward, backward)
        }
        Gradients::Handwritten(workspace) => {
            let shape = inputs.dims2().map_err(err)?;
            let tokens = |t: &Tensor| t.flatten_all()?.to_vec1::<u32>();
            let (inputs, targets) = (tokens(inputs).map_err(err)?, tokens(targets).map_err(err)?);
            let out = backprop::loss_and_gradients(
                workspace,
                config,
                vars,
                settings.rotary,
                settings.logit_scale,
                (&inputs, &targets),
                shape,
            )?;
            (out.loss, out.gradients, out.forward, out.backward)
        }
    };
    let norm = global_norm(&grads).map_err(err)?;
    optimizer
        .step(vars, &grads, lr, clip_factor(norm, clip))
        .map_err(err)?;
    let update = started.elapsed().as_secs_f64() - forward - backward;
    Ok(StepReport {
        loss,
        norm,
        forward,
        backward,
        update,
    })
}

/// Mean loss of `tokens: [B, L+1]`-shaped windows under `weights`.
pub fn mean_loss(
    config: &ModelConfig,
    weights: &ModelWeights,
    rotary: Option<&RotaryTables>,
    windows: &[&[u32]],
    batch: usize,
) -> Result<f64, String> {
    let length = config.training_length();
    let settings = ForwardSettings {
        rotary,
        logit_scale: 1.0,
        head_scales: None,
    };
    let model = Transformer::new(config, weights);
    let (mut total, mut count) = (0.0, 0usize);
    for group in windows.chunks(batch.max(1)) {
        let inputs: Vec<u32> = group
            .iter()
            .flat_map(|w| w[..length].iter().copied())
            .collect();
        let targets: Vec<u32> = group
            .iter()
            .flat_map(|w| w[1..=length].iter().copied())
            .collect();
        let shape = (group.len(), length);
        let inputs = Tensor::from_vec(inputs, shape, &Device::Cpu).map_err(err)?;
        let targets = Tensor::from_vec(targets, shape, &Device::Cpu).map_err(err)?;
        let logits = model
            .forward(&inputs, &settings, None, |_, _| Ok(()))
            .map_err(err)?;
        let loss = cross_entropy(&logits, &targets)
            .map_err(err)?
            .to_scalar::<f32>()
            .map_err(err)?;
        total += loss as f64 * group.len() as f64;
        count += group.len();
    }
    Ok(total / count.max(1) as f64)
}

/// Rotary tables for training positions `0..L`, or `None` without positions.
pub fn training_rotary(config: &ModelConfig) -> Result<Option<RotaryTables>, String> {
    match config.position_embedding {
        TrainedPositions::None => Ok(None),
        TrainedPositions::Rope => {
            let freqs = PositionScheme::Rope
                .frequencies(
                    config.head_dim(),
                    config.rope_theta,
                    config.training_length(),
                    1.0,
                )
                .unwrap_or_default();
            Ok(Some(
                RotaryTables::new(&freqs, 0, config.training_length(), &Device::Cpu)
                    .map_err(err)?,
            ))
        }
    }
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), String> {
    let json = serde_json::to_string_pretty(value).map_err(err)?;
    std::fs::write(path, json + "\n").map_err(|e| format!("{}: {e}", path.display()))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Saves weights and optimizer moments (`adam.m.<name>`, `adam.v.<name>`) to one file.
fn save_state(path: &Path, vars: &[(String, Var)], optimizer: &AdamW) -> Result<(), String> {
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (name, var) in vars {
        tensors.push((name.clone(), var.as_tensor().clone()));
        let (m, v) = &optimizer.moments[name];
        tensors.push((format!("adam.m.{name}"), m.clone()));
        tensors.push((format!("adam.v.{name}"), v.clone()));
    }
    let tmp = path.with_extension("tmp");
    let bytes =
        safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), None).map_err(err)?;
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Loads the tensors of a state or snapshot file by name.
fn load_tensors(path: &Path) -> Result<std::collections::HashMap<String, Tensor>, String> {
    candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The model weights held in a state or snapshot file (other tensors are ignored).
pub(crate) fn weights_from_file(config: &ModelConfig, path: &Path) -> Result<ModelWeights, String> {
    let tensors = load_tensors(path)?;
    ModelWeights::from_layout(config, |name, shape| {
        match tensors.get(name) {
            Some(t) => Ok(t.clone()),
            // QK-norm added at the drop (a RoPE snapshot has none): weights start at 1,
            // so the new norm only rescales each head's queries and keys.
            None if name.ends_with("q_norm.weight") || name.ends_with("k_norm.weight") => {
                Tensor::ones(shape, DType::F32, &Device::Cpu).map_err(Into::into)
            }
            None => Err(engine::EngineError::Weights(format!(
                "{} lacks {name}",
                path.display()
            ))),
        }
    })
    .map_err(err)
}

/// The probes of the model in `vars` at `step`, the previous-token one on the first 8
/// validation windows (which already start with the run's first token) cut to L.
fn probe_vars(
    config: &ModelConfig,
    vars: &[(String, Var)],
    validation: &[&[u32]],
    step: usize,
    bos: Option<u32>,
) -> Result<ProbeRow, String> {
    let model = EvalModel {
        id: String::new(),
        config: config.clone(),
        weights: weights_of(config, vars)?,
    };
    let length = config.training_length();
    let prose: Vec<&[u32]> = validation.iter().take(8).map(|w| &w[..length]).collect();
    probe(&model, step, &prose, bos)
}

#[derive(Serialize, Deserialize)]
struct RunState {
    step: usize,
    optimizer_steps: usize,
}

/// `trainer train ...` (see the module docs and `trainer/src/main.rs`).
pub fn run(argv: &[String]) -> Result<(), String> {
    let args = Args::parse(
        argv,
        &[
            "corpus",
            "tokenizer",
            "out",
            "positions",
            "steps",
            "first-step",
            "init-from",
            "batch",
            "length",
            "lr",
            "warmup",
            "min-lr",
            "seed",
            "needle-fraction",
            "eval-every",
            "eval-windows",
            "snapshot-every",
            "layers",
            "hidden",
            "heads",
            "kv-heads",
            "intermediate",
            "log-every",
            "stop-at",
            "qk-norm",
            "rewarm",
            "schedule",
            "clip",
            "repeat-fraction",
            "repeat-late",
            "repeat-switch",
            "probe-every",
            "bos",
            "bos-from",
        ],
    )?;
    let out = PathBuf::from(args.required("out")?);
    std::fs::create_dir_all(&out).map_err(err)?;
    let tokenizer_path = args.required("tokenizer")?;
    let tokenizer = TextTokenizer::from_json(
        &std::fs::read(tokenizer_path).map_err(|e| format!("{tokenizer_path}: {e}"))?,
    )
    .map_err(err)?;
    let positions = match args.required("positions")? {
        "rope" => TrainedPositions::Rope,
        "none" => TrainedPositions::None,
        other => return Err(format!("--positions must be rope or none, not {other}")),
    };
    let mut config = model_config(&args, tokenizer.vocab_size(), positions)?;
    let total_steps: usize = args.get_or("steps", 1000)?;
    let first_step: usize = args.get_or("first-step", 0)?;
    let batch: usize = args.get_or("batch", 8)?;
    let peak_lr: f64 = args.get_or("lr", 1e-3)?;
    let warmup: usize = args.get_or("warmup", 70)?;
    let min_lr: f64 = args.get_or("min-lr", 0.1)?;
    // 0: continue the run's schedule; W > 0: a fresh warm-up + cosine from --first-step.
    let rewarm: usize = args.get_or("rewarm", 0)?;
    let schedule: Schedule = args.get_or("schedule", Schedule::Cosine)?;
    let clip: f64 = args.get_or("clip", 1.0)?;
    if !(clip >= 0.0 && clip.is_finite()) {
        return Err(format!("--clip must be a finite value >= 0, got {clip}"));
    }
    let repeat_early: f64 = args.get_or("repeat-fraction", 0.0)?;
    let repeats = RepeatSchedule {
        early: repeat_early,
        late: args.get_or("repeat-late", repeat_early)?,
        switch: args.get_or("repeat-switch", 0)?,
    };
    if first_step >= total_steps {
        return Err(format!(
            "--first-step ({first_step}) must be below --steps ({total_steps})"
        ));
    }
    let seed: u64 = args.get_or("seed", 1)?;
    let eval_every: usize = args.get_or("eval-every", 100)?;
    // Probes at every evaluation by default; 0 turns them off.
    let probe_every: usize = args.get_or("probe-every", eval_every)?;
    if probe_every > 0 && config.training_length() < 6 {
        return Err(format!(
            "the probes need --length >= 6, got {} (--probe-every 0 turns them off)",
            config.training_length()
        ));
    }
    let snapshot_every: usize = args.get_or("snapshot-every", 100)?;
    let log_every: usize = args.get_or("log-every", 10)?;
    // Stop early (state saved) without changing the schedule: for time-boxed sessions.
    let stop_at: usize = args.get_or("stop-at", total_steps)?;
    let length = config.training_length();

    let started = Instant::now();
    let streams = TokenStreams::load(Path::new(args.required("corpus")?), &tokenizer)?;
    println!(
        "data: {} train / {} validation / {} test tokens, tokenised in {:.1} s",
        streams.train.len(),
        streams.validation.len(),
        streams.test.len(),
        started.elapsed().as_secs_f64()
    );
    let needles = NeedleMaker::new(&tokenizer)?;
    let needle_fraction: f64 = args.get_or("needle-fraction", 0.15)?;
    let shares = [needle_fraction, repeats.early, repeats.late];
    if shares.iter().any(|x| !(0.0..=1.0).contains(x))
        || needle_fraction + repeats.early.max(repeats.late) > 1.0
    {
        return Err(format!(
            "--needle-fraction ({needle_fraction}), --repeat-fraction ({}) and --repeat-late ({}) must each lie in [0, 1], and the needles plus either repeat share at most 1",
            repeats.early, repeats.late
        ));
    }
    // `--bos true`: every sequence starts with end-of-text, which a model without
    // positions can use to tell where the window starts (Kazemnejad et al. 2023).
    // `--bos-from S`: only from step S on (a RoPE run that pretrains without it, so that
    // its DroPE recalibration from S sees the same data as RoPE's second half).
    let bos_from: Option<usize> = match args.get_or("bos-from", String::new())?.as_str() {
        "" => args.get_or("bos", false)?.then_some(0),
        s => Some(
            s.parse()
                .map_err(|_| format!("--bos-from: cannot parse `{s}`"))?,
        ),
    };
    if let Some(from) = bos_from.filter(|&f| f >= total_steps) {
        return Err(format!(
            "--bos-from ({from}) must be below --steps ({total_steps}): the trained model must have seen the token"
        ));
    }
    let first_token = bos_from.map(|from| FirstToken {
        token: streams.end_of_text,
        from,
    });
    // Recorded in config.json, so the studio and `trainer eval` start every prompt with it
    // (the model at the end of the run has been trained with it).
    config.bos_token_id = first_token.map(|f| f.token);
    let sampler = BatchSampler {
        bos: first_token,
        stream: &streams.train,
        needles: &needles,
        needle_fraction,
        repeats,
        vocab: tokenizer.vocab_size(),
        batch,
        length,
        seed,
    };
    // Validation windows and probes start like the training sequences of the same step.
    let eval_count = args.get_or("eval-windows", 32)?;
    let windows = |bos: Option<u32>| eval_windows(&streams.validation, length + 1, eval_count, bos);
    let (plain, with_first) = (windows(None), windows(config.bos_token_id));
    if plain.is_empty() {
        return Err("the validation split is shorter than one window".into());
    }
    // At `step` (after `step` training steps) they look like the last batch trained on:
    // a RoPE run switching at S is measured at S on windows it has seen, like the DroPE
    // run's just-dropped probe, so the two compare.
    let validation_at = |step: usize| -> (Vec<&[u32]>, Option<u32>) {
        let bos = FirstToken::at(first_token, step.saturating_sub(1));
        let windows = if bos.is_some() { &with_first } else { &plain };
        (windows.iter().map(Vec::as_slice).collect(), bos)
    };

    // Start: resume this run, or initialise from another run's snapshot, or at random.
    let state_path = out.join("state.safetensors");
    let log_path = out.join("train-log.json");
    let resumed = state_path.exists();
    let init_from: String = args.get_or("init-from", String::new())?;
    let initial = if resumed {
        weights_from_file(&config, &state_path)?
    } else if !init_from.is_empty() {
        weights_from_file(&config, Path::new(&init_from))?
    } else {
        random_weights(&config, seed, 0.02).map_err(err)?
    };
    let vars = variables(&initial)?;
    let mut optimizer = AdamW::new(AdamWConfig::PAPER, &vars).map_err(err)?;
    let mut step = first_step;
    let mut log = TrainLog {
        positions: format!("{positions:?}").to_lowercase(),
        drop_step: (first_step > 0 && positions == TrainedPositions::None).then_some(first_step),
        batch,
        length,
        ..Default::default()
    };
    if resumed {
        let tensors = load_tensors(&state_path)?;
        for (name, (m, v)) in optimizer.moments.iter_mut() {
            *m = tensors
                .get(&format!("adam.m.{name}"))
                .cloned()
                .ok_or("state lacks moments")?;
            *v = tensors
                .get(&format!("adam.v.{name}"))
                .cloned()
                .ok_or("state lacks moments")?;
        }
        let state: RunState = read_json(&out.join("state.json"))?;
        step = state.step;
        optimizer.steps = state.optimizer_steps;
        log = read_json(&log_path)?;
        println!("resumed {} at step {step}", out.display());
    }
    write_json(
        &out.join("config.json"),
        &serde_json::from_str::<serde_json::Value>(&config.to_json()).map_err(err)?,
    )?;

    let rotary = training_rotary(&config)?;
    let settings = ForwardSettings {
        rotary: rotary.as_ref(),
        logit_scale: 1.0,
        head_scales: None,
    };
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all cores".into());
    println!(
        "training {} ({} parameters, positions {:?}, threads {threads}) steps {step}..{total_steps}, batch {batch} x {length}",
        out.display(),
        config.parameter_count(),
        positions
    );
    if !resumed && !init_from.is_empty() && probe_every > 0 {
        // The probes right after initialising from another run (for DroPE: RoPE just
        // dropped, before any recalibration), so the log shows what the drop destroys.
        let (validation, bos) = validation_at(step);
        log.probes
            .push(probe_vars(&config, &vars, &validation, step, bos)?);
    }
    let segment_start = Instant::now();
    let segment_first = step;
    let save = |step: usize, optimizer: &AdamW, log: &TrainLog| -> Result<(), String> {
        save_state(&state_path, &vars, optimizer)?;
        write_json(
            &out.join("state.json"),
            &RunState {
                step,
                optimizer_steps: optimizer.steps,
            },
        )?;
        write_json(&log_path, log)
    };
    let mut gradients = Gradients::handwritten();
    while step < total_steps.min(stop_at) {
        let (inputs, targets) = sampler.batch(step, &Device::Cpu)?;
        let lr = if rewarm > 0 {
            learning_rate(
                schedule,
                step - first_step,
                total_steps - first_step,
                rewarm,
                peak_lr,
                min_lr,
            )
        } else {
            learning_rate(schedule, step, total_steps, warmup, peak_lr, min_lr)
        };
        let StepReport { loss, norm, .. } = train_step(
            &mut gradients,
            &config,
            &vars,
            &mut optimizer,
            &settings,
            (&inputs, &targets),
            lr,
            clip,
        )?;
        if !loss.is_finite() {
            return Err(format!("loss became {loss} at step {step}; lower --lr"));
        }
        step += 1;
        let elapsed = segment_start.elapsed().as_secs_f64();
        log.tokens_per_second =
            ((step - segment_first) * batch * length) as f64 / elapsed.max(1e-9);
        if step.is_multiple_of(log_every) || step == total_steps {
            log.train.push([step as f64, loss, lr, elapsed]);
            println!(
                "step {step:>6}  loss {loss:.4}  lr {lr:.2e}  grad norm {norm:.3}  {:.0} tok/s",
                log.tokens_per_second
            );
        }
        let (validation, bos) = validation_at(step);
        if step.is_multiple_of(eval_every) || step == total_steps {
            let detached = weights_of(&config, &vars)?;
            let val = mean_loss(&config, &detached, rotary.as_ref(), &validation, batch)?;
            log.validation.push([step as f64, val]);
            println!(
                "step {step:>6}  validation loss {val:.4}  perplexity {:.2}",
                val.exp()
            );
        }
        if probe_every > 0 && (step.is_multiple_of(probe_every) || step == total_steps) {
            let row = probe_vars(&config, &vars, &validation, step, bos)?;
            let strongest = strongest_per_layer(&row.previous_token)
                .iter()
                .map(|x| format!("{x:.2}"))
                .collect::<Vec<_>>()
                .join(" ");
            if let (Some(within), Some(at_4l)) = (row.induction, row.induction_4l) {
                println!(
                    "step {step:>6}  induction {} tokens: {:.2} -> {:.2}  at 4L: {:.2} -> {:.2}  previous-token (max per layer): {strongest}",
                    within.tokens, within.first, within.second, at_4l.first, at_4l.second
                );
            }
            log.probes.push(row);
        }
        if step.is_multiple_of(snapshot_every) || step == total_steps {
            let weights = weights_of(&config, &vars)?;
            let bytes = weights.to_safetensors(DType::F32).map_err(err)?;
            std::fs::write(out.join(format!("snapshot-{step}.safetensors")), bytes).map_err(err)?;
            save(step, &optimizer, &log)?;
        }
    }
    save(step, &optimizer, &log)?;
    println!(
        "done: {} in {:.1} s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
