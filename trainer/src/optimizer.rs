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

    /// One update with learning rate `lr`.
    pub fn step(
        &mut self,
        params: &[(String, Var)],
        grads: &candle_core::backprop::GradStore,
        lr: f64,
    ) -> candle_core::Result<()> {
        self.steps += 1;
        let c = self.config;
        let correction1 = 1.0 - c.beta1.powi(self.steps as i32);
        let correction2 = 1.0 - c.beta2.powi(self.steps as i32);
        for (name, var) in params {
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            let (m, v) = self
                .moments
                .get_mut(name)
                .expect("moments exist for every parameter");
            *m = ((&*m * c.beta1)? + (grad * (1.0 - c.beta1))?)?;
            *v = ((&*v * c.beta2)? + (grad.sqr()? * (1.0 - c.beta2))?)?;
            let update = ((&*m / correction1)? / ((&*v / correction2)?.sqrt()? + c.eps)?)?;
            let decay = if var.rank() >= 2 { c.weight_decay } else { 0.0 };
            let next = ((var.as_tensor() * (1.0 - lr * decay))? - (update * lr)?)?;
            var.set(&next)?;
        }
        Ok(())
    }
}

/// Linear warm-up to `peak`, then cosine decay to `peak * floor` at `total` steps.
pub fn learning_rate(step: usize, total: usize, warmup: usize, peak: f64, floor: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
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
        assert!((learning_rate(0, 100, 10, 1e-3, 0.1) - 1e-4).abs() < 1e-12);
        assert!((learning_rate(9, 100, 10, 1e-3, 0.1) - 1e-3).abs() < 1e-12);
        assert!((learning_rate(10, 100, 10, 1e-3, 0.1) - 1e-3).abs() < 1e-12);
        assert!((learning_rate(100, 100, 10, 1e-3, 0.1) - 1e-4).abs() < 1e-12);
        assert!(learning_rate(55, 100, 10, 1e-3, 0.1) < 1e-3);
    }
}
