//! Causal attention softmax in one pass per row, forward and backward.
//!
//! The reference (`(scores * scale).broadcast_add(mask)` then [`softmax_last_dim`]) walks
//! the `[B, H, T, S]` scores tensor, the largest of attention, seven times forward (scale,
//! add mask, max, subtract, exp, sum, divide), five of them allocating a tensor of that
//! size, and about as many times backward. It also computes `exp(-inf)` for the masked
//! half of every row. [`fused_causal_softmax`] reads each row once, skips its
//! masked keys, and writes the probabilities; its backward reads the probabilities and
//! the incoming gradient once and writes the gradient of the scores.
//!
//! [`softmax_last_dim`]: crate::cpu::softmax_last_dim

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Device, Layout, Shape, Tensor};

use super::kernel::{exp, f32_values, fail, lanes_fold, LANES};
use super::transformer::causal_mask;
use crate::cpu::softmax_last_dim;
use crate::error::Result;

/// `softmax(scale * scores)` over the keys each query may see, 0 at the others.
///
/// `scores: [..., T, S]` with `S >= T`: the `T` queries are the last `T` of `S`
/// positions, so query `t` sees keys `j <= (S - T) + t`. The same values and gradient as
/// `softmax_last_dim((scores * scale) + causal_mask)`. f32 on the CPU runs the fused op;
/// other dtypes and devices run that reference.
pub fn fused_causal_softmax(scores: &Tensor, scale: f64) -> Result<Tensor> {
    let (t, s) = query_and_key_dims(scores.shape())?;
    if scores.dtype() != DType::F32 || !matches!(scores.device(), Device::Cpu) {
        let mask = causal_mask(s - t, t, scores.device())?.to_dtype(scores.dtype())?;
        return softmax_last_dim(&(scores * scale)?.broadcast_add(&mask)?);
    }
    Ok(scores.contiguous()?.apply_op1(CausalSoftmax {
        scale: scale as f32,
    })?)
}

/// `(T, S)`: the last two dimensions, checked.
fn query_and_key_dims(shape: &Shape) -> candle_core::Result<(usize, usize)> {
    let dims = shape.dims();
    let [.., t, s] = dims else {
        return Err(fail(format!(
            "causal softmax takes scores [..., queries, keys], got shape {dims:?}"
        )));
    };
    if s < t {
        return Err(fail(format!(
            "causal softmax: {s} keys cannot cover {t} queries (shape {dims:?})"
        )));
    }
    Ok((*t, *s))
}

/// Calls `each(row, seen)` for every row of `[..., T, S]` values (`len` of them in all,
/// numbered across all leading dimensions), `seen` being how many leading keys that row's
/// query may see.
fn for_each_row(len: usize, (t, s): (usize, usize), mut each: impl FnMut(usize, usize)) {
    if t > 0 && s > 0 {
        let cached = s - t;
        for row in 0..len / s {
            each(row, cached + row % t + 1);
        }
    }
}

/// The kernel on plain rows: `scores` holds rows of `S` keys in blocks of `T` queries
/// (`[..., T, S]`, `S >= T`); writes `softmax(scale * row)` over the keys each query may
/// see into `probs`, 0 at the rest. The candle op above and the trainer's hand-written
/// step both run it.
pub fn forward(scores: &[f32], (t, s): (usize, usize), scale: f32, probs: &mut [f32]) {
    assert!(
        scores.len() == probs.len() && s >= t,
        "causal softmax: mismatched shapes"
    );
    for_each_row(scores.len(), (t, s), |row, seen| {
        let input = &scores[row * s..][..seen];
        let (out, masked) = probs[row * s..][..s].split_at_mut(seen);
        masked.fill(0.0);
        for (o, &x) in out.iter_mut().zip(input) {
            *o = x * scale;
        }
        let max = lanes_fold(out, f32::NEG_INFINITY, f32::max, f32::max);
        for o in out.iter_mut() {
            *o = exp(*o - max);
        }
        let inv_sum = 1.0 / lanes_fold(out, 0.0, |a, v| a + v, |a, v| a + v);
        for o in out.iter_mut() {
            *o *= inv_sum;
        }
    });
}

/// [`forward`]'s gradient, `scale * p * (g - sum_j(g_j p_j))` per row, from the
/// probabilities `p` and their gradient `g`, written into `out`; 0 at masked keys.
pub fn backward(p: &[f32], g: &[f32], (t, s): (usize, usize), scale: f32, out: &mut [f32]) {
    assert!(
        p.len() == g.len() && p.len() == out.len() && s >= t,
        "causal softmax backward: mismatched shapes"
    );
    for_each_row(p.len(), (t, s), |row, seen| {
        let p = &p[row * s..][..seen];
        let g = &g[row * s..][..seen];
        let dot = lanes_dot(p, g);
        let (out, masked) = out[row * s..][..s].split_at_mut(seen);
        masked.fill(0.0);
        for ((o, &pj), &gj) in out.iter_mut().zip(p).zip(g) {
            *o = scale * pj * (gj - dot);
        }
    });
}

fn lanes_dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (chunks_a, chunks_b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let rest: f32 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(&x, &y)| x * y)
        .sum();
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for ((s, &x), &y) in acc.iter_mut().zip(ca).zip(cb) {
            *s += x * y;
        }
    }
    acc.into_iter().fold(rest, |x, y| x + y)
}

struct CausalSoftmax {
    scale: f32,
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "fused-causal-softmax"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let shape = layout.shape();
        let values = f32_values("fused causal softmax", storage, layout)?;
        let dims = query_and_key_dims(shape)?;
        let mut probs = vec![0f32; values.len()];
        forward(values, dims, self.scale, &mut probs);
        Ok((CpuStorage::F32(probs), shape.clone()))
    }

    fn bwd(
        &self,
        _scores: &Tensor,
        probs: &Tensor,
        grad_probs: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let grad = probs.apply_op2_no_bwd(
            &grad_probs.contiguous()?,
            &CausalSoftmaxGrad { scale: self.scale },
        )?;
        Ok(Some(grad))
    }
}

/// `scale * p * (g - sum_j(g_j p_j))` per row, from the probabilities `p` and their
/// gradient `g`; 0 at masked keys (where `p` is 0).
struct CausalSoftmaxGrad {
    scale: f32,
}

impl CustomOp2 for CausalSoftmaxGrad {
    fn name(&self) -> &'static str {
        "fused-causal-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        probs: &CpuStorage,
        probs_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let shape = probs_layout.shape();
        if grad_layout.shape() != shape {
            return Err(fail(format!(
                "fused causal softmax: gradient of shape {:?} for probabilities {:?}",
                grad_layout.shape().dims(),
                shape.dims()
            )));
        }
        let p = f32_values("fused causal softmax", probs, probs_layout)?;
        let g = f32_values("fused causal softmax", grad, grad_layout)?;
        let mut out = vec![0f32; p.len()];
        backward(p, g, query_and_key_dims(shape)?, self.scale, &mut out);
        Ok((CpuStorage::F32(out), shape.clone()))
    }
}

#[cfg(test)]
mod tests {
    use crate::cpu::kernel::max_difference;
    use candle_core::{Var, D};

    use super::*;

    /// The forward pass's own mask.
    fn reference_mask(cached: usize, new: usize) -> Tensor {
        causal_mask(cached, new, &Device::Cpu).unwrap()
    }

    fn reference(scores: &Tensor, scale: f64) -> Tensor {
        let (t, s) = (
            scores.dim(D::Minus2).unwrap(),
            scores.dim(D::Minus1).unwrap(),
        );
        let masked = (scores * scale)
            .unwrap()
            .broadcast_add(&reference_mask(s - t, t))
            .unwrap();
        softmax_last_dim(&masked).unwrap()
    }

    /// Scores `[2, 3, t, s]` with a wide range: per-head offsets far from zero, and a
    /// spread large enough that some rows are nearly one-hot.
    fn scores(t: usize, s: usize) -> Tensor {
        let offsets = Tensor::new(&[[40f32], [-25.0], [0.0]], &Device::Cpu)
            .unwrap()
            .reshape((1, 3, 1, 1))
            .unwrap();
        Tensor::randn(0f32, 6.0, (2, 3, t, s), &Device::Cpu)
            .unwrap()
            .broadcast_add(&offsets)
            .unwrap()
    }

    /// Compares value and gradient of the fused op with the reference on the scores
    /// `view(var)`, where `view` (identity or a transpose) also maps the gradient at `var`
    /// to the scores' layout.
    fn check(var: &Var, view: impl Fn(&Tensor) -> Tensor, scale: f64) {
        let scores = &view(var.as_tensor());
        let reference_out = reference(scores, scale);
        let fused_out = fused_causal_softmax(scores, scale).unwrap();
        let diff = max_difference(&reference_out, &fused_out);
        assert!(diff < 1e-6, "probabilities differ by {diff}");
        // Masked keys are exactly 0, rows sum to 1.
        let (t, s) = (
            scores.dim(D::Minus2).unwrap(),
            scores.dim(D::Minus1).unwrap(),
        );
        let flat = fused_out.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (row, values) in flat.chunks_exact(s).enumerate() {
            let seen = s - t + row % t + 1;
            assert!(values[seen..].iter().all(|&p| p == 0.0), "row {row}");
            let sum: f32 = values.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "row {row} sums to {sum}");
        }

        let weights = Tensor::randn(0f32, 1.0, fused_out.shape(), &Device::Cpu).unwrap();
        let grad_of = |out: &Tensor| {
            let loss = (out * &weights).unwrap().sum_all().unwrap();
            loss.backward().unwrap().get(var).unwrap().clone()
        };
        let (gr, gf) = (grad_of(&reference_out), grad_of(&fused_out));
        let scale_of_grad = gr
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(scale_of_grad > 0.1, "trivial gradient: {scale_of_grad}");
        let diff = max_difference(&gr, &gf);
        assert!(diff < 2e-6, "gradients differ by {diff}");
        let flat = view(&gf).flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (row, values) in flat.chunks_exact(s).enumerate() {
            let seen = s - t + row % t + 1;
            assert!(values[seen..].iter().all(|&g| g == 0.0), "row {row}");
        }
    }

    #[test]
    fn fused_softmax_matches_the_reference_without_cache() {
        let var = Var::from_tensor(&scores(9, 9)).unwrap();
        check(&var, Tensor::clone, 0.35);
    }

    #[test]
    fn fused_softmax_matches_the_reference_with_cached_keys() {
        // S = 37 keys for T = 11 queries: 26 cached, rows longer than the 8 lanes.
        let var = Var::from_tensor(&scores(11, 37)).unwrap();
        check(&var, Tensor::clone, 0.5);
    }

    #[test]
    fn fused_softmax_matches_the_reference_on_non_contiguous_scores() {
        // Stored as [2, 3, S, T] and transposed to [2, 3, T, S].
        let var = Var::from_tensor(&scores(20, 6)).unwrap();
        let transpose = |t: &Tensor| t.transpose(2, 3).unwrap();
        assert!(!transpose(var.as_tensor()).is_contiguous());
        check(&var, transpose, 1.3);
    }

    #[test]
    fn fused_softmax_falls_back_for_other_dtypes() {
        let half = Tensor::randn(0f32, 2.0, (2, 3, 5, 7), &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F16)
            .unwrap();
        let out = fused_causal_softmax(&half, 0.5).unwrap();
        assert_eq!(out.dtype(), DType::F16);
        // The same (f16-representable) scores in f32: only f16 rounding inside differs.
        let exact = fused_causal_softmax(&half.to_dtype(DType::F32).unwrap(), 0.5).unwrap();
        let diff = max_difference(&out.to_dtype(DType::F32).unwrap(), &exact);
        assert!(diff < 5e-3, "f16 differs by {diff}");
    }

    #[test]
    fn fused_softmax_refuses_bad_shapes() {
        let more_queries = Tensor::zeros((1, 2, 5, 4), DType::F32, &Device::Cpu).unwrap();
        let err = fused_causal_softmax(&more_queries, 1.0).unwrap_err();
        assert!(
            err.to_string().contains("4 keys cannot cover 5 queries"),
            "{err}"
        );
        let vector = Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap();
        let err = fused_causal_softmax(&vector, 1.0).unwrap_err();
        assert!(err.to_string().contains("[..., queries, keys]"), "{err}");
    }
}
