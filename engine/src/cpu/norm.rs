//! RMS normalisation as one fused op. The reference, [`rms_norm`], is five candle ops
//! forward (`sqr`, `mean_keepdim`, `+ eps`/`sqrt`, `broadcast_div`, `broadcast_mul`), each
//! allocating a tensor, three of them of the activations' full size; its backward walks
//! that chain in reverse, with a full-size temporary per element-wise gradient plus the
//! reductions for the row statistic and the weight. The model runs it twice per layer and
//! once before the output projection. [`fused_rms_norm`] reads each row once for its mean
//! square and once to write the output; its backward is one op that writes the gradients
//! of both the input and the weight in a single pass over the rows.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor};

use super::kernel::{f32_values, fail};
use super::transformer::rms_norm;
use crate::error::Result;

/// `x / sqrt(mean(x^2) + eps) * weight` over the last dimension of `x: [..., H]` with
/// `weight: [H]`: the value and gradients of [`rms_norm`], in one op each way for f32
/// tensors on the CPU. Other dtypes and devices take [`rms_norm`] itself.
pub fn fused_rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let Some(&hidden) = x.dims().last() else {
        return Err(fail("rms norm needs an input with at least one dimension".into()).into());
    };
    if weight.dims() != [hidden] {
        return Err(fail(format!(
            "rms norm weight has shape {:?}, the input {:?} needs [{hidden}]",
            weight.dims(),
            x.dims()
        ))
        .into());
    }
    let fused = x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && x.device().is_cpu()
        && weight.device().is_cpu();
    if !fused {
        return rms_norm(x, weight, eps);
    }
    let x = x.contiguous()?;
    let weight = weight.contiguous()?;
    Ok(x.apply_op2(&weight, RmsNorm { eps })?)
}

/// The input's values, the weight's, and the row length, checked against each other.
fn input_and_weight<'a>(
    x: &'a CpuStorage,
    x_layout: &Layout,
    weight: &'a CpuStorage,
    weight_layout: &Layout,
) -> candle_core::Result<(&'a [f32], &'a [f32])> {
    let (x, weight) = (
        f32_values("fused rms norm", x, x_layout)?,
        f32_values("fused rms norm", weight, weight_layout)?,
    );
    if x_layout.dims().last() != Some(&weight.len()) || weight_layout.dims().len() != 1 {
        return Err(fail(format!(
            "rms norm weight has shape {:?}, the input {:?}",
            weight_layout.dims(),
            x_layout.dims()
        )));
    }
    Ok((x, weight))
}

/// Independent accumulators, so the sums vectorise (a single running float sum cannot be
/// reordered by the compiler) and add in a tree-like order.
const LANES: usize = 8;

/// `sum(row^2)` in f64: an f32 running sum over a few thousand squares loses digits
/// the 1e-5 agreement with the reference needs.
fn sum_of_squares(row: &[f32]) -> f64 {
    let mut acc = [0f64; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += f64::from(v) * f64::from(v);
        }
    }
    let tail: f64 = tail.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    acc.iter().sum::<f64>() + tail
}

/// `(sum(x^2), sum(g * w * x))` in f64, one pass over the three rows.
fn backward_sums(x: &[f32], g: &[f32], w: &[f32]) -> (f64, f64) {
    let mut squares = [0f64; LANES];
    let mut dots = [0f64; LANES];
    let (xs, gs, ws) = (
        x.chunks_exact(LANES),
        g.chunks_exact(LANES),
        w.chunks_exact(LANES),
    );
    let (mut square, mut dot) = (0f64, 0f64);
    for ((&xv, &gv), &wv) in xs
        .remainder()
        .iter()
        .zip(gs.remainder())
        .zip(ws.remainder())
    {
        square += f64::from(xv) * f64::from(xv);
        dot += f64::from(gv * wv) * f64::from(xv);
    }
    for ((xc, gc), wc) in xs.zip(gs).zip(ws) {
        let lanes = squares.iter_mut().zip(dots.iter_mut());
        for (((square, dot), &xv), (&gv, &wv)) in lanes.zip(xc).zip(gc.iter().zip(wc)) {
            *square += f64::from(xv) * f64::from(xv);
            *dot += f64::from(gv * wv) * f64::from(xv);
        }
    }
    (
        square + squares.iter().sum::<f64>(),
        dot + dots.iter().sum::<f64>(),
    )
}

/// `1 / sqrt(mean + eps)`, the row's scale.
fn inverse_rms(sum_of_squares: f64, hidden: usize, eps: f64) -> f64 {
    1.0 / (sum_of_squares / hidden as f64 + eps).sqrt()
}

/// The kernel on plain rows: `out = x / rms(x) * w` for each row of `x` (rows of
/// `w.len()`). The candle op above and the trainer's hand-written step both run it.
pub fn forward(x: &[f32], w: &[f32], eps: f64, out: &mut [f32]) {
    let hidden = w.len();
    assert_eq!(
        x.len(),
        out.len(),
        "rms norm: input and output lengths differ"
    );
    // chunks_exact(0) panics; an empty last dimension leaves nothing to write.
    if hidden == 0 {
        return;
    }
    for (row, out) in x.chunks_exact(hidden).zip(out.chunks_exact_mut(hidden)) {
        let r = inverse_rms(sum_of_squares(row), hidden, eps) as f32;
        for ((o, &v), &wv) in out.iter_mut().zip(row).zip(w) {
            *o = v * r * wv;
        }
    }
}

/// [`forward`]'s gradients from the output's, `g`: writes `grad_x` and adds each row's
/// share to `grad_w` (f64, since it sums over every row, as the row statistics do).
pub fn backward(x: &[f32], w: &[f32], g: &[f32], eps: f64, grad_x: &mut [f32], grad_w: &mut [f64]) {
    let hidden = w.len();
    assert!(
        x.len() == g.len() && x.len() == grad_x.len() && grad_w.len() == hidden,
        "rms norm backward: mismatched lengths"
    );
    if hidden == 0 {
        return;
    }
    for ((xr, gr), dx) in x
        .chunks_exact(hidden)
        .zip(g.chunks_exact(hidden))
        .zip(grad_x.chunks_exact_mut(hidden))
    {
        let (square, dot) = backward_sums(xr, gr, w);
        let r = inverse_rms(square, hidden, eps);
        // dx = r * (g*w - x*r * mean(g*w * x*r)) = r*g*w - x * r^3 * mean(g*w*x)
        let c = (r * r * r * dot / hidden as f64) as f32;
        let r32 = r as f32;
        for (((d, &xv), &gv), &wv) in dx.iter_mut().zip(xr).zip(gr).zip(w) {
            *d = r32 * gv * wv - c * xv;
        }
        for ((acc, &xv), &gv) in grad_w.iter_mut().zip(xr).zip(gr) {
            *acc += f64::from(gv) * f64::from(xv) * r;
        }
    }
}

struct RmsNorm {
    eps: f64,
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w) = input_and_weight(x, x_layout, weight, weight_layout)?;
        let mut out = vec![0f32; x.len()];
        forward(x, w, self.eps, &mut out);
        Ok((CpuStorage::F32(out), x_layout.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _out: &Tensor,
        grad_out: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        // The gradient arrives from whatever op came next, in any layout.
        let grad_out = grad_out.contiguous()?;
        let both = x.apply_op3_no_bwd(weight, &grad_out, &RmsNormGrad { eps: self.eps })?;
        let (n, hidden) = (x.elem_count(), weight.elem_count());
        let grad_x = both.narrow(0, 0, n)?.reshape(x.shape())?;
        let grad_weight = both.narrow(0, n, hidden)?.reshape(weight.shape())?;
        Ok((Some(grad_x), Some(grad_weight)))
    }
}

/// Both gradients of [`RmsNorm`] in one buffer, `grad_x` (the input's size) then
/// `grad_weight` (`H`), so one pass over the rows writes both.
struct RmsNormGrad {
    eps: f64,
}

impl CustomOp3 for RmsNormGrad {
    fn name(&self) -> &'static str {
        "fused-rms-norm-grad"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w) = input_and_weight(x, x_layout, weight, weight_layout)?;
        let g = f32_values("fused rms norm", grad, grad_layout)?;
        if grad_layout.dims() != x_layout.dims() {
            return Err(fail(format!(
                "rms norm gradient has shape {:?}, the input {:?}",
                grad_layout.dims(),
                x_layout.dims()
            )));
        }
        let hidden = w.len();
        let mut out = vec![0f32; x.len() + hidden];
        let (grad_x, grad_w) = out.split_at_mut(x.len());
        let mut grad_w64 = vec![0f64; hidden];
        backward(x, w, g, self.eps, grad_x, &mut grad_w64);
        for (dw, &acc) in grad_w.iter_mut().zip(&grad_w64) {
            *dw = acc as f32;
        }
        Ok((CpuStorage::F32(out), Shape::from(x.len() + hidden)))
    }
}

#[cfg(test)]
mod tests {
    use crate::cpu::kernel::assert_close_rows;
    use candle_core::{Device, Var, D};

    use super::*;

    const EPS: f64 = 1e-5;

    /// Rows with a wide range: unit noise, rows shifted far from zero, a tiny row, a
    /// huge one and an all-zero one (where only `eps` keeps the scale finite).
    fn wide_rows(rows: usize, hidden: usize) -> Tensor {
        let dev = &Device::Cpu;
        let noise = Tensor::randn(0f32, 1.0, (rows, hidden), dev).unwrap();
        let (shift, scale): (Vec<f32>, Vec<f32>) = (0..rows)
            .map(|i| match i % 6 {
                0 => (0.0, 1.0),
                1 => (200.0, 3.0),
                2 => (-50.0, 0.1),
                3 => (0.0, 1e-3),
                4 => (0.0, 0.0),
                _ => (1e3, 400.0),
            })
            .unzip();
        let shift = Tensor::from_vec(shift, (rows, 1), dev).unwrap();
        let scale = Tensor::from_vec(scale, (rows, 1), dev).unwrap();
        noise
            .broadcast_mul(&scale)
            .unwrap()
            .broadcast_add(&shift)
            .unwrap()
    }

    /// Value and both gradients of the fused op and the reference under a loss that
    /// weighs each output differently.
    fn compare(x: &Tensor) {
        let dev = &Device::Cpu;
        let hidden = *x.dims().last().unwrap();
        let x = Var::from_tensor(x).unwrap();
        let weight = (Tensor::randn(0f32, 1.0, hidden, dev).unwrap() + 0.5).unwrap();
        let weight = Var::from_tensor(&weight).unwrap();
        let mix = Tensor::randn(0f32, 1.0, x.dims(), dev).unwrap();
        let reference = rms_norm(x.as_tensor(), weight.as_tensor(), EPS).unwrap();
        let fused = fused_rms_norm(x.as_tensor(), weight.as_tensor(), EPS).unwrap();
        assert_close_rows(&fused, &reference, 1e-5, "value");
        let grads = |out: &Tensor| {
            let g = (out * &mix).unwrap().sum_all().unwrap().backward().unwrap();
            (g.get(&x).unwrap().clone(), g.get(&weight).unwrap().clone())
        };
        let (rx, rw) = grads(&reference);
        let (fx, fw) = grads(&fused);
        assert_close_rows(&fx, &rx, 1e-5, "input gradient");
        assert_close_rows(&fw, &rw, 1e-5, "weight gradient");
    }

    #[test]
    fn fused_rms_norm_matches_the_reference() {
        // 8 does not divide 37: the lane tails are exercised too.
        compare(&wide_rows(12, 37).reshape((2, 6, 37)).unwrap());
        compare(&wide_rows(6, 256));
    }

    #[test]
    fn fused_rms_norm_takes_non_contiguous_input() {
        // [2, 64, 6] transposed to [2, 6, 64]: each row of the norm is strided.
        let x = wide_rows(12, 64)
            .reshape((2, 6, 64))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
            .transpose(1, 2)
            .unwrap();
        assert!(!x.is_contiguous());
        compare(&x);
    }

    #[test]
    fn fused_rms_norm_falls_back_for_other_dtypes() {
        let x = wide_rows(6, 16).to_dtype(DType::F64).unwrap();
        let w = Tensor::randn(0f64, 1.0, 16, &Device::Cpu).unwrap();
        let fused = fused_rms_norm(&x, &w, EPS).unwrap();
        let reference = rms_norm(&x, &w, EPS).unwrap();
        assert_eq!(fused.dtype(), DType::F64);
        let diff = (fused - reference)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(D::Minus1)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert_eq!(diff, 0.0);
    }

    #[test]
    fn fused_rms_norm_refuses_a_mismatched_weight() {
        let x = wide_rows(4, 8);
        let short = Tensor::ones(7, DType::F32, &Device::Cpu).unwrap();
        let err = fused_rms_norm(&x, &short, EPS).unwrap_err();
        assert!(err.to_string().contains("[7]"), "{err}");
        let square = Tensor::ones((8, 8), DType::F32, &Device::Cpu).unwrap();
        assert!(fused_rms_norm(&x, &square, EPS).is_err());
        let scalar = Tensor::new(1f32, &Device::Cpu).unwrap();
        assert!(fused_rms_norm(&scalar, &short, EPS).is_err());
    }
}
