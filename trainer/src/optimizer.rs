//! AdamW (Loshchilov & Hutter 2019) with its moments kept as named tensors, so a
//! checkpoint holds the whole optimizer state and a resumed run continues exactly.

use std::collections::HashMap;

use candle_core::{Tensor, Var};

/// AdamW hyper-parameters.
#[derive(Debug, Clone, Copy)]
pub struct AdamWConfig {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// Decoupled weight decay (applied to matrices only, not norm gains).
    pub weight_decay: f64,
}

impl AdamWConfig {
    /// The paper's from-scratch settings: betas (0.9, 0.95), weight decay 0.1.
    pub const PAPER: AdamWConfig = AdamWConfig {
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.1,
    };
}

/// The optimizer state.
pub struct AdamW {
    config: AdamWConfig,
    /// Steps taken (for bias correction).
    pub steps: usize,
    /// First and second moments by parameter name.
    pub moments: HashMap<String, (Tensor, Tensor)>,
}

impl AdamW {
    /// Fresh state with zero moments.
    pub fn new(config: AdamWConfig, params: &[(String, Var)]) -> candle_core::Result<Self> {
        let mut moments = HashMap::new();
        for (name, var) in params {
            moments.insert(name.clone(), (var.zeros_like()?, var.zeros_like()?));
        }
        Ok(AdamW {
            config,
            steps: 0,
            moments,
        })
    }

    /// One update with learning rate `lr` from `grads` (one per parameter, in order), the
    /// gradients multiplied by `grad_scale` (the clipping factor, see [`clip_factor`]).
    pub fn step(
        &mut self,
        params: &[(String, Var)],
        grads: &[Tensor],
        lr: f64,
        grad_scale: f64,
    ) -> candle_core::Result<()> {
        if grads.len() != params.len() {
            candle_core::bail!("{} gradients for {} parameters", grads.len(), params.len());
        }
        self.steps += 1;
        let c = self.config;
        let correction1 = 1.0 - c.beta1.powi(self.steps as i32);
        let correction2 = 1.0 - c.beta2.powi(self.steps as i32);
        for ((name, var), grad) in params.iter().zip(grads) {
            let (m, v) = self
                .moments
                .get_mut(name)
                .expect("moments exist for every parameter");
            let values = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
            let (mut p, g, mut m1, mut m2) = (values(var)?, values(grad)?, values(m)?, values(v)?);
            if g.len() != p.len() {
                candle_core::bail!("{name}: a gradient of {} values for {}", g.len(), p.len());
            }
            // One pass over plain values: the same update as a chain of candle ops, without
            // a tensor allocated per operation (the update took 5% of a training step so).
            let (beta1, beta2) = (c.beta1 as f32, c.beta2 as f32);
            let (inv1, inv2) = ((1.0 / correction1) as f32, (1.0 / correction2) as f32);
            let decay = if var.rank() >= 2 { c.weight_decay } else { 0.0 };
            let keep = (1.0 - lr * decay) as f32;
            let (lr, eps, scale) = (lr as f32, c.eps as f32, grad_scale as f32);
            for (((p, &g), m1), m2) in p.iter_mut().zip(&g).zip(&mut m1).zip(&mut m2) {
                let g = g * scale;
                *m1 = beta1 * *m1 + (1.0 - beta1) * g;
                *m2 = beta2 * *m2 + (1.0 - beta2) * g * g;
                let update = (*m1 * inv1) / ((*m2 * inv2).sqrt() + eps);
                *p = *p * keep - lr * update;
            }
            let shape = var.shape();
            *m = Tensor::from_vec(m1, shape, m.device())?;
            *v = Tensor::from_vec(m2, shape, v.device())?;
            var.set(&Tensor::from_vec(p, shape, var.device())?)?;
        }
        Ok(())
    }
}

/// The global L2 norm of `grads`.
pub fn global_norm(grads: &[Tensor]) -> candle_core::Result<f64> {
    let mut sum = 0f64;
    for grad in grads {
        let values = grad.flatten_all()?.to_vec1::<f32>()?;
        sum += values
            .iter()
            .map(|&g| f64::from(g) * f64::from(g))
            .sum::<f64>();
    }
    Ok(sum.sqrt())
}

/// The gradient of each of `params` from candle's autograd, in their order (zeros for
/// one the loss does not reach).
pub fn gradients_in_order(
    params: &[(String, Var)],
    grads: &candle_core::backprop::GradStore,
) -> candle_core::Result<Vec<Tensor>> {
    params
        .iter()
        .map(|(_, var)| match grads.get(var.as_tensor()) {
            Some(grad) => Ok(grad.clone()),
            None => var.zeros_like(),
        })
        .collect()
}

/// The factor that scales gradients of global norm `norm` down to at most `max_norm`
/// (1 when already within it, or when `max_norm` is 0, meaning no clipping).
pub fn clip_factor(norm: f64, max_norm: f64) -> f64 {
    if max_norm > 0.0 && norm > max_norm {
        max_norm / norm
    } else {
        1.0
    }
}

/// The learning rate's shape after the warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Cosine decay from the peak to `peak * floor` at the last step.
    Cosine,
    /// The peak to the end (the paper's recalibration).
    Constant,
}

impl std::str::FromStr for Schedule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "cosine" => Ok(Schedule::Cosine),
            "constant" => Ok(Schedule::Constant),
            other => Err(format!("a schedule is cosine or constant, not {other}")),
        }
    }
}

/// Linear warm-up to `peak`, then cosine decay to `peak * floor` at `total` steps, or the
/// peak held constant.
pub fn learning_rate(
    schedule: Schedule,
    step: usize,
    total: usize,
    warmup: usize,
    peak: f64,
    floor: f64,
) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    if schedule == Schedule::Constant {
        return peak;
    }
    let progress = ((step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64).min(1.0);
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    peak * (floor + (1.0 - floor) * cosine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        let lr = |step| learning_rate(Schedule::Cosine, step, 100, 10, 1e-3, 0.1);
        assert!((lr(0) - 1e-4).abs() < 1e-12);
        assert!((lr(9) - 1e-3).abs() < 1e-12);
        assert!((lr(10) - 1e-3).abs() < 1e-12);
        assert!((lr(100) - 1e-4).abs() < 1e-12);
        assert!(lr(55) < 1e-3);
    }

    #[test]
    fn constant_schedule_holds_the_peak_after_its_warm_up() {
        let lr = |step| learning_rate(Schedule::Constant, step, 100, 10, 3e-4, 0.1);
        assert!((lr(4) - 1.5e-4).abs() < 1e-12);
        assert_eq!(lr(10), 3e-4);
        assert_eq!(lr(99), 3e-4);
        assert_eq!("constant".parse::<Schedule>(), Ok(Schedule::Constant));
        assert!("linear".parse::<Schedule>().is_err());
    }

    #[test]
    fn clipping_scales_only_norms_above_the_limit() {
        assert_eq!(clip_factor(0.5, 1.0), 1.0);
        assert_eq!(clip_factor(4.0, 1.0), 0.25);
        assert_eq!(clip_factor(4.0, 0.0), 1.0);
    }
}
