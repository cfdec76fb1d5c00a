//! The training loss, twice: [`cross_entropy`] in differentiable candle ops (the
//! reference), and [`fused_cross_entropy`], one pass over each row of logits forward and
//! one pass backward. The logits are the largest tensor of a training step (`tokens x
//! vocabulary`, 4M floats at the recipe's shape), and the reference walks them about ten
//! times forward and as many backward, each pass allocating a tensor of that size.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor, D};

use super::kernel::{exp, fail, lanes_fold};
use crate::error::Result;

/// Per-token cross-entropy of `logits: [B, T, V]` against `targets: [B, T]` (mean), in
/// differentiable ops.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (b, t, v) = logits.dims3()?;
    let logits = logits.reshape((b * t, v))?.to_dtype(DType::F32)?;
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let log_sum = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    let log_probs = shifted.broadcast_sub(&log_sum)?;
    let picked = log_probs.gather(&targets.reshape((b * t, 1))?, 1)?;
    Ok(picked.neg()?.mean_all()?)
}

/// The same loss as [`cross_entropy`] (f32 logits on the CPU), computed row by row, with
/// a hand-written gradient: `(softmax(row) - onehot(target)) / rows`.
pub fn fused_cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (b, t, v) = logits.dims3()?;
    let logits = logits.reshape((b * t, v))?.contiguous()?;
    let targets = targets.reshape(b * t)?.contiguous()?;
    Ok(logits.apply_op2(&targets, CrossEntropy)?)
}

/// The rows of contiguous `[n, v]` f32 logits and their `[n]` u32 targets.
fn rows_and_targets<'a>(
    logits: &'a CpuStorage,
    logits_layout: &Layout,
    targets: &'a CpuStorage,
    targets_layout: &Layout,
) -> candle_core::Result<(&'a [f32], usize, &'a [u32])> {
    let (n, v) = logits_layout.shape().dims2()?;
    let (CpuStorage::F32(values), CpuStorage::U32(ids)) = (logits, targets) else {
        return Err(fail(
            "fused cross-entropy takes f32 logits and u32 targets".into(),
        ));
    };
    if !logits_layout.is_contiguous() || !targets_layout.is_contiguous() {
        return Err(fail("fused cross-entropy takes contiguous tensors".into()));
    }
    let values = &values[logits_layout.start_offset()..][..n * v];
    let ids = &ids[targets_layout.start_offset()..][..n];
    if let Some(&bad) = ids.iter().find(|&&id| id as usize >= v) {
        return Err(fail(format!(
            "target {bad} is not below the vocabulary of {v}"
        )));
    }
    Ok((values, v, ids))
}

/// `ln(sum(exp(row)))`, with the row's maximum subtracted for stability.
fn log_sum_exp(row: &[f32]) -> f32 {
    let max = row_max(row);
    max + exp_sum(row, max).ln()
}

fn row_max(row: &[f32]) -> f32 {
    lanes_fold(row, f32::NEG_INFINITY, f32::max, f32::max)
}

/// `sum(exp(row - max))`.
fn exp_sum(row: &[f32], max: f32) -> f32 {
    lanes_fold(row, 0.0, |a, v| a + exp(v - max), |a, b| a + b)
}

/// The kernel on plain rows: the summed (not mean) loss of `[n, v]` logits against
/// their `n` targets, each below `v`. The candle op below and the trainer's hand-written
/// step both run it.
pub fn total_loss(logits: &[f32], v: usize, targets: &[u32]) -> f64 {
    logits
        .chunks_exact(v)
        .zip(targets)
        .map(|(row, &id)| (log_sum_exp(row) - row[id as usize]) as f64)
        .sum()
}

/// Turns `[n, v]` logits into the gradient of `per_row` times the summed loss,
/// `(softmax(row) - onehot(target)) * per_row`, in place, and returns the summed loss:
/// one `exp` per logit (the logits are the step's largest tensor; the hand-written step
/// has no further use for them).
pub fn loss_and_gradient_in_place(
    logits: &mut [f32],
    v: usize,
    targets: &[u32],
    per_row: f32,
) -> f64 {
    let mut total = 0f64;
    for (row, &id) in logits.chunks_exact_mut(v).zip(targets) {
        let max = row_max(row);
        let picked = row[id as usize];
        // A plain loop, which the compiler vectorises (an unrolled one with the sum
        // folded in stayed scalar).
        for x in row.iter_mut() {
            *x = exp(*x - max);
        }
        let sum = lanes_fold(row, 0.0, |a, v| a + v, |a, b| a + b);
        total += f64::from(max + sum.ln() - picked);
        let scale = per_row / sum;
        for x in row.iter_mut() {
            *x *= scale;
        }
        row[id as usize] -= per_row;
    }
    total
}

struct CrossEntropy;

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "fused-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        logits: &CpuStorage,
        logits_layout: &Layout,
        targets: &CpuStorage,
        targets_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (values, v, ids) = rows_and_targets(logits, logits_layout, targets, targets_layout)?;
        let mean = total_loss(values, v, ids) / ids.len().max(1) as f64;
        Ok((CpuStorage::F32(vec![mean as f32]), Shape::from(())))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _loss: &Tensor,
        grad_loss: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let scale = grad_loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        let grad = logits.apply_op2_no_bwd(targets, &CrossEntropyGrad { scale })?;
        Ok((Some(grad), None))
    }
}

/// The gradient of the mean loss times `scale`, written in one pass.
struct CrossEntropyGrad {
    scale: f32,
}

impl CustomOp2 for CrossEntropyGrad {
    fn name(&self) -> &'static str {
        "fused-cross-entropy-grad"
    }

    fn cpu_fwd(
        &self,
        logits: &CpuStorage,
        logits_layout: &Layout,
        targets: &CpuStorage,
        targets_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (values, v, ids) = rows_and_targets(logits, logits_layout, targets, targets_layout)?;
        let mut grad = values.to_vec();
        loss_and_gradient_in_place(&mut grad, v, ids, self.scale / ids.len().max(1) as f32);
        Ok((CpuStorage::F32(grad), logits_layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use crate::cpu::kernel::max_difference;
    use candle_core::{Device, Var};

    use super::*;

    /// Logits with a wide range (some rows far from zero) and their targets.
    fn case() -> (Var, Tensor) {
        let logits = Tensor::randn(0f32, 4.0, (2, 5, 37), &Device::Cpu)
            .unwrap()
            .broadcast_add(&Tensor::new(&[[[30f32]], [[-20f32]]], &Device::Cpu).unwrap())
            .unwrap();
        let targets: Vec<u32> = (0..10).map(|i| (i * 7 + 3) % 37).collect();
        let targets = Tensor::from_vec(targets, (2, 5), &Device::Cpu).unwrap();
        (Var::from_tensor(&logits).unwrap(), targets)
    }

    #[test]
    fn fused_loss_and_gradient_match_the_reference() {
        let (logits, targets) = case();
        let reference = cross_entropy(logits.as_tensor(), &targets).unwrap();
        let fused = fused_cross_entropy(logits.as_tensor(), &targets).unwrap();
        let (r, f) = (
            reference.to_scalar::<f32>().unwrap(),
            fused.to_scalar::<f32>().unwrap(),
        );
        assert!((r - f).abs() < 1e-5 * r.abs().max(1.0), "{r} vs {f}");
        // Scaled, as the loss is inside a larger graph in training.
        let grad_of = |loss: Tensor| {
            (loss * 3.0)
                .unwrap()
                .backward()
                .unwrap()
                .get(&logits)
                .unwrap()
                .clone()
        };
        let (gr, gf) = (grad_of(reference), grad_of(fused));
        assert_eq!(gr.dims(), gf.dims());
        let diff = max_difference(&gr, &gf);
        assert!(diff < 1e-6, "gradients differ by {diff}");
        // Each row's gradient sums to zero (softmax minus one-hot).
        let row_sums = gf
            .sum(D::Minus1)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap();
        assert!(row_sums.max(0).unwrap().to_scalar::<f32>().unwrap() < 1e-6);
    }

    #[test]
    fn fused_loss_refuses_targets_outside_the_vocabulary() {
        let (logits, _) = case();
        let targets = Tensor::from_vec(vec![37u32; 10], (2, 5), &Device::Cpu).unwrap();
        let err = fused_cross_entropy(logits.as_tensor(), &targets).unwrap_err();
        assert!(err.to_string().contains("target 37"), "{err}");
    }
}
