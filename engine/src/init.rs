//! Seeded random weights: the "untrained" model, test models, and the trainer's
//! initialisation. A small self-contained generator keeps results identical on every
//! platform (native and wasm) for a given seed.

use candle_core::{Device, Tensor};

use crate::config::ModelConfig;
use crate::error::Result;
use crate::weights::ModelWeights;

/// SplitMix64: tiny, fast, and good enough for initialisation.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// A generator for one of many independent streams of one seed (for example one per
    /// training step). Both numbers go through SplitMix64's finaliser first: seeding with
    /// `seed ^ stream` directly would make stream `t + 1` a copy of stream `t` shifted by
    /// one draw, because the state advances by a fixed constant.
    pub fn for_stream(seed: u64, stream: u64) -> Self {
        SplitMix64(mix(seed ^ mix(stream.wrapping_add(0x5851_F42D_4C95_7F2D))))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn next_normal(&mut self) -> f64 {
        let u1 = self.next_f64().max(f64::MIN_POSITIVE);
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// SplitMix64's finaliser: a bijection of 64-bit values with full avalanche.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Random weights: normal(0, `std`) matrices, norms set to 1 (the usual Llama init).
pub fn random_weights(config: &ModelConfig, seed: u64, std: f64) -> Result<ModelWeights> {
    let mut rng = SplitMix64::new(seed);
    ModelWeights::from_layout(config, |name, shape| {
        let count: usize = shape.iter().product();
        let values: Vec<f32> = if name.ends_with("norm.weight") {
            vec![1.0; count]
        } else {
            (0..count)
                .map(|_| (rng.next_normal() * std) as f32)
                .collect()
        };
        Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbouring_streams_do_not_share_draws() {
        let draws = |stream| {
            let mut rng = SplitMix64::for_stream(1, stream);
            (0..64).map(|_| rng.next_u64()).collect::<Vec<_>>()
        };
        let (a, b) = (draws(10), draws(11));
        assert!(
            a.iter().all(|x| !b.contains(x)),
            "stream 11 repeats draws of stream 10"
        );
        assert_eq!(draws(10), a, "a stream is reproducible");
    }
}
