//! `trainer bench`: how fast the training step runs on this machine, and where its time
//! goes. The step is the training loop's own ([`train_step`]) on a fixed batch of random
//! tokens, so every repetition does the same work, in three ways from identical weights
//! and batches, side by side, with their ratios: candle's autograd over differentiable
//! candle ops (the reference, what the trainer first ran), candle's autograd over the
//! fused kernels, and the hand-written backward pass (`backprop.rs`, what training
//! runs). The hand-written step's phases (forward and loss, backward, norm + clipping +
//! AdamW) are timed inside the step; the matrix products the step must do are then timed
//! alone, with the same shapes, so the rest (element-wise ops, softmax, norms, copies and
//! allocation) is what the step spends beyond them.
//!
//! Run it with the threads a training run uses, e.g. `RAYON_NUM_THREADS=1 trainer bench`
//! (the shipped recipe runs one thread per process).

use std::time::Instant;

use candle_core::{Device, Tensor};
use engine::init::{random_weights, SplitMix64};
use engine::{ModelConfig, TrainedPositions};

use crate::anchor;
use crate::args::Args;
use crate::optimizer::{AdamW, AdamWConfig};
use crate::train::{model_config, train_step, training_rotary, variables, Gradients, StepReport};
use engine::cpu::{ForwardSettings, Kernels};

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// One matrix product `[batch, m, k] x [batch, k, n]`, done `count` times per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Product {
    /// Independent products in one call (heads x sequences for attention).
    pub batch: usize,
    /// Rows of the left operand.
    pub m: usize,
    /// Inner dimension.
    pub k: usize,
    /// Columns of the right operand.
    pub n: usize,
    /// How many such calls one training step makes.
    pub count: usize,
}

impl Product {
    /// Multiply-adds of all `count` calls.
    pub fn flops(&self) -> f64 {
        2.0 * (self.count * self.batch * self.m * self.k * self.n) as f64
    }
}

/// The products of one training step of `config` on `batch x length` tokens, split into
/// the linear layers' (forward `x W^T`, and backward's two: input and weight gradients)
/// and attention's (scores and weighted values, and backward's four).
pub fn step_products(
    config: &ModelConfig,
    batch: usize,
    length: usize,
) -> (Vec<Product>, Vec<Product>) {
    let tokens = batch * length;
    let (h, d) = (config.hidden_size, config.head_dim());
    let (heads, kv) = (config.num_attention_heads, config.kv_heads());
    let layers = config.num_hidden_layers;
    let mut linear = Vec::new();
    let mut add_linear = |inputs: usize, outputs: usize, count: usize| {
        // Forward, gradient of the input, gradient of the weight.
        for (m, k, n) in [
            (tokens, inputs, outputs),
            (tokens, outputs, inputs),
            (outputs, tokens, inputs),
        ] {
            linear.push(Product {
                batch: 1,
                m,
                k,
                n,
                count,
            });
        }
    };
    add_linear(h, heads * d, layers); // q
    add_linear(h, kv * d, 2 * layers); // k, v
    add_linear(heads * d, h, layers); // o
    add_linear(h, config.intermediate_size, 2 * layers); // gate, up
    add_linear(config.intermediate_size, h, layers); // down
    add_linear(h, config.vocab_size, 1); // lm_head
    let calls = batch * heads;
    let square = |k: usize, n: usize| Product {
        batch: calls,
        m: length,
        k,
        n,
        count: layers,
    };
    // Forward: scores Q K^T, values P V. Backward: dP = dO V^T, dV = P^T dO,
    // dQ = dS K, dK = dS^T Q.
    let attention = vec![
        square(d, length),
        square(length, d),
        square(d, length),
        square(length, d),
        square(length, d),
        square(length, d),
    ];
    (linear, attention)
}

/// Seconds one step spends in `products`, each timed alone (best of `repeats`).
fn time_products(products: &[Product], repeats: usize) -> Result<f64, String> {
    let mut total = 0.0;
    for p in products {
        let a = Tensor::randn(0f32, 1.0, (p.batch, p.m, p.k), &Device::Cpu).map_err(err)?;
        let b = Tensor::randn(0f32, 1.0, (p.batch, p.k, p.n), &Device::Cpu).map_err(err)?;
        let mut best = f64::INFINITY;
        for _ in 0..repeats.max(1) {
            let started = Instant::now();
            let c = a.matmul(&b).map_err(err)?;
            best = best.min(started.elapsed().as_secs_f64());
            drop(c);
        }
        total += best * p.count as f64;
    }
    Ok(total)
}

/// Mean phase times of `steps` training steps of each of `methods` (after `warmup`
/// untimed ones), each from the same weights and batch. The methods take turns, one step
/// each, so a slow spell of a shared machine falls on all of them alike and their ratios
/// hold even when the absolute times drift.
pub fn time_steps(
    methods: Vec<Gradients>,
    config: &ModelConfig,
    batch: usize,
    steps: usize,
    warmup: usize,
) -> Result<Vec<StepReport>, String> {
    let length = config.training_length();
    let rotary = training_rotary(config)?;
    let settings = ForwardSettings {
        rotary: rotary.as_ref(),
        logit_scale: 1.0,
        head_scales: None,
    };
    let mut rng = SplitMix64::new(7);
    let vocab = config.vocab_size as u64;
    let tokens: Vec<u32> = (0..batch * (length + 1))
        .map(|_| (rng.next_u64() % vocab) as u32)
        .collect();
    let window = Tensor::from_vec(tokens, (batch, length + 1), &Device::Cpu).map_err(err)?;
    let columns = |from: usize| -> Result<Tensor, String> {
        window
            .narrow(1, from, length)
            .and_then(|t| t.contiguous())
            .map_err(err)
    };
    let (inputs, targets) = (columns(0)?, columns(1)?);
    struct Run {
        method: Gradients,
        vars: Vec<(String, candle_core::Var)>,
        optimizer: AdamW,
        sum: StepReport,
    }
    let mut runs = methods
        .into_iter()
        .map(|method| {
            let weights = random_weights(config, 1, 0.02).map_err(err)?;
            let vars = variables(&weights)?;
            let optimizer = AdamW::new(AdamWConfig::PAPER, &vars).map_err(err)?;
            Ok(Run {
                method,
                vars,
                optimizer,
                sum: StepReport::default(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    for i in 0..warmup + steps.max(1) {
        for run in &mut runs {
            let report = train_step(
                &mut run.method,
                config,
                &run.vars,
                &mut run.optimizer,
                &settings,
                (&inputs, &targets),
                1e-4,
                1.0,
            )?;
            if i >= warmup {
                run.sum.loss += report.loss;
                run.sum.forward += report.forward;
                run.sum.backward += report.backward;
                run.sum.update += report.update;
            }
        }
    }
    let n = steps.max(1) as f64;
    Ok(runs
        .into_iter()
        .map(|run| StepReport {
            loss: run.sum.loss / n,
            norm: 0.0,
            forward: run.sum.forward / n,
            backward: run.sum.backward / n,
            update: run.sum.update / n,
        })
        .collect())
}

/// `trainer bench [--batch 8] [--length 128] [--layers 4] [--hidden 128] [--heads 4]
/// [--intermediate 384] [--vocab 4096] [--positions rope|none] [--steps 20] [--warmup 3]
/// [--pytorch PYTHON]`; with `--pytorch`, the same step timed in PyTorch beside ours
/// (the anchor, see [`crate::anchor`]).
pub fn run(argv: &[String]) -> Result<(), String> {
    let args = Args::parse(
        argv,
        &[
            "batch",
            "length",
            "layers",
            "hidden",
            "heads",
            "kv-heads",
            "intermediate",
            "qk-norm",
            "vocab",
            "positions",
            "steps",
            "warmup",
            "pytorch",
        ],
    )?;
    let positions = match args.get_or("positions", "rope".to_string())?.as_str() {
        "rope" => TrainedPositions::Rope,
        "none" => TrainedPositions::None,
        other => return Err(format!("--positions must be rope or none, not {other}")),
    };
    let config = model_config(&args, args.get_or("vocab", 4096)?, positions)?;
    let batch: usize = args.get_or("batch", 8)?;
    let steps: usize = args.get_or("steps", 20)?;
    let warmup: usize = args.get_or("warmup", 3)?;
    if batch == 0 || steps == 0 {
        return Err("--batch and --steps must be positive".into());
    }
    let length = config.training_length();
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all cores".into());
    println!(
        "trainer bench: {} layers x {}, {} heads, SwiGLU {}, vocabulary {}, positions {positions:?}; batch {batch} x {length}; threads {threads}; mean of {steps} steps after {warmup}\n",
        config.num_hidden_layers,
        config.hidden_size,
        config.num_attention_heads,
        config.intermediate_size,
        config.vocab_size
    );
    // The PyTorch anchor runs first, so a missing interpreter or torch fails fast.
    let python: String = args.get_or("pytorch", String::new())?;
    let anchor = || {
        (!python.is_empty())
            .then(|| {
                let threads = anchor::threads();
                anchor::pytorch_step(python.as_ref(), &config, batch, steps, warmup, threads)
            })
            .transpose()
    };
    // PyTorch runs before and after ours, and the ratio uses the mean of the two, so a
    // shared machine's drift during the run moves both sides alike.
    let before = anchor()?;
    let methods = vec![
        Gradients::Autograd(Kernels::Reference),
        Gradients::Autograd(Kernels::Fused),
        Gradients::handwritten(),
    ];
    let [reference, fused, step] = time_steps(methods, &config, batch, steps, warmup)?[..] else {
        return Err("the bench times three steps".into());
    };
    let seconds = |s: &StepReport| s.forward + s.backward + s.update;
    let tokens = (batch * length) as f64;
    println!("| step | ms | tokens/s | mean loss |\n|---|---|---|---|");
    for (name, s) in [
        ("reference: candle ops, autograd", &reference),
        ("fused kernels, autograd", &fused),
        ("hand-written backward (training's)", &step),
    ] {
        println!(
            "| {name} | {:.1} | {:.0} | {:.4} |",
            seconds(s) * 1e3,
            tokens / seconds(s),
            s.loss
        );
    }
    println!(
        "\nhand-written / reference: {:.2}x tokens/s; hand-written / fused autograd: {:.2}x\n",
        seconds(&reference) / seconds(&step),
        seconds(&fused) / seconds(&step)
    );
    if let (Some(before), Some(after)) = (before, anchor()?) {
        anchor::print_comparison(&step, tokens, &[before, after]);
    }
    let total = seconds(&step);
    let (linear, attention) = step_products(&config, batch, length);
    let linear_s = time_products(&linear, 5)?;
    let attention_s = time_products(&attention, 5)?;
    let flops: f64 = linear.iter().chain(&attention).map(Product::flops).sum();
    let row = |name: &str, seconds: f64| {
        println!(
            "| {name} | {:.1} | {:.0}% |",
            seconds * 1e3,
            100.0 * seconds / total
        )
    };
    println!("| phase of the hand-written step | ms | share |\n|---|---|---|");
    row("forward and loss", step.forward);
    row("backward", step.backward);
    row("gradient norm, clipping, AdamW", step.update);
    row("whole step", total);
    println!(
        "\n{:.2} GFLOP of matrix products per step, {:.2} GFLOP/s over the whole step\n",
        flops / 1e9,
        flops / 1e9 / total
    );
    println!("| where the time goes | ms | share |\n|---|---|---|");
    row("linear layers' matrix products (timed alone)", linear_s);
    row("attention's matrix products (timed alone)", attention_s);
    row(
        "everything else: element-wise, softmax, norms, copies, allocation",
        (total - linear_s - attention_s).max(0.0),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ModelConfig {
        ModelConfig::from_json(
            br#"{"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "intermediate_size": 48, "vocab_size": 100,
            "max_position_embeddings": 16}"#,
        )
        .unwrap()
    }

    #[test]
    fn a_step_has_the_products_of_its_layers_counted_by_hand() {
        let (linear, attention) = step_products(&config(), 3, 16);
        // 6 linear kinds x 3 products each; q/o/down once per layer, k/v/gate/up twice.
        assert_eq!(linear.len(), 18);
        let tokens = 48;
        assert_eq!(
            linear[0],
            Product {
                batch: 1,
                m: tokens,
                k: 32,
                n: 32,
                count: 2
            }
        );
        // k and v: 2 kv heads of 8.
        assert_eq!((linear[3].n, linear[3].count), (16, 4));
        // Weight gradient of lm_head: [vocab, tokens] x [tokens, hidden].
        assert_eq!(
            (linear[17].m, linear[17].k, linear[17].n),
            (100, tokens, 32)
        );
        let linear_flops: f64 = linear.iter().map(Product::flops).sum();
        // Per token per layer: q 32x32, k+v 2x32x16, o 32x32, gate+up 2x32x48, down
        // 48x32; plus lm_head 32x100; 3 products of 2 flops per weight.
        let weights = 2 * (32 * 32 + 2 * 32 * 16 + 32 * 32 + 2 * 32 * 48 + 48 * 32) + 32 * 100;
        assert_eq!(linear_flops, (6 * tokens * weights) as f64);
        assert_eq!(attention.len(), 6);
        assert!(attention
            .iter()
            .all(|p| p.batch == 12 && p.m == 16 && p.count == 2));
    }

    #[test]
    fn every_step_trains_the_same_and_reports_every_phase() {
        let methods = vec![
            Gradients::Autograd(Kernels::Reference),
            Gradients::Autograd(Kernels::Fused),
            Gradients::handwritten(),
        ];
        let [reference, fused, handwritten] = time_steps(methods, &config(), 2, 3, 1).unwrap()[..]
        else {
            panic!("one report per method");
        };
        assert!(reference.loss.is_finite() && reference.loss > 0.0);
        // Same weights, batch and updates: the same losses, up to float rounding.
        for other in [&fused, &handwritten] {
            assert!(
                (reference.loss - other.loss).abs() < 1e-4,
                "{reference:?} vs {other:?}"
            );
        }
        for phase in [
            handwritten.forward,
            handwritten.backward,
            handwritten.update,
        ] {
            assert!(phase > 0.0 && phase.is_finite(), "{handwritten:?}");
        }
    }
}
