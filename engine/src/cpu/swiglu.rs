//! The MLP's gated activation, `silu(gate) * up`, as one fused op. In candle ops it is
//! `silu` then `mul`: two tensors of the MLP's hidden size (the largest activations after
//! the logits) forward, and a backward that rebuilds the sigmoid from scratch
//! (`neg`, `exp`, `+ 1`, `recip`, then four more element-wise ops for silu's derivative)
//! plus the two products of `mul`, about ten full-size temporaries. [`fused_swiglu`]
//! writes the output in one pass, and its backward writes both gradients in one pass,
//! computing each element's `exp` once.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor};

use super::kernel::{f32_values, fail};
use crate::error::Result;

/// `silu(gate) * up` for tensors of one shape, with its gradients for both, fused for f32
/// tensors on the CPU; other dtypes and devices take the same formula in candle ops.
pub fn fused_swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if gate.dims() != up.dims() {
        return Err(fail(format!(
            "swiglu gate has shape {:?}, up {:?}: they must match",
            gate.dims(),
            up.dims()
        ))
        .into());
    }
    let fused = gate.dtype() == DType::F32
        && up.dtype() == DType::F32
        && gate.device().is_cpu()
        && up.device().is_cpu();
    if !fused {
        return Ok((gate.silu()? * up)?);
    }
    let gate = gate.contiguous()?;
    let up = up.contiguous()?;
    Ok(gate.apply_op2(&up, SwiGlu)?)
}

fn same_shape(a: &Layout, b: &Layout) -> candle_core::Result<()> {
    if a.dims() != b.dims() {
        return Err(fail(format!(
            "swiglu operands have shapes {:?} and {:?}",
            a.dims(),
            b.dims()
        )));
    }
    Ok(())
}

/// `(sigmoid(g), silu(g))` with candle's own formulas (`silu = g / (1 + exp(-g))`,
/// `sigmoid = recip(exp(-g) + 1)`) and libm's `exp`, so the fused op agrees with the
/// reference to the rounding, not just to the formula: near silu's minimum its
/// derivative cancels, and even `kernel::exp`'s 2 ulp showed there (measured: no faster
/// here either). Both stay finite for any finite `g`: `exp(-g)` overflows to infinity,
/// giving `0` and `-0`.
#[inline(always)]
fn sigmoid_and_silu(g: f32) -> (f32, f32) {
    let e = (-g).exp();
    ((e + 1.0).recip(), g / (1.0 + e))
}

/// The kernel on plain slices of one length: `out = silu(gate) * up`. The candle op
/// above and the trainer's hand-written step both run it.
pub fn forward(gate: &[f32], up: &[f32], out: &mut [f32]) {
    assert!(
        gate.len() == up.len() && gate.len() == out.len(),
        "swiglu: mismatched lengths"
    );
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = g / (1.0 + (-g).exp()) * u;
    }
}

/// [`forward`]'s gradients from the output's, `grad`, written into `grad_gate` and
/// `grad_up`.
pub fn backward(
    gate: &[f32],
    up: &[f32],
    grad: &[f32],
    grad_gate: &mut [f32],
    grad_up: &mut [f32],
) {
    let n = gate.len();
    assert!(
        up.len() == n && grad.len() == n && grad_gate.len() == n && grad_up.len() == n,
        "swiglu backward: mismatched lengths"
    );
    let inputs = gate.iter().zip(up).zip(grad);
    for ((dg, du), ((&g, &u), &d)) in grad_gate.iter_mut().zip(grad_up.iter_mut()).zip(inputs) {
        let (s, silu) = sigmoid_and_silu(g);
        // d silu / dg = s * (1 + g * (1 - s)), written as candle writes it.
        *dg = d * u * (s * (1.0 - silu) + silu);
        *du = d * silu;
    }
}

struct SwiGlu;

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "fused-swiglu"
    }

    fn cpu_fwd(
        &self,
        gate: &CpuStorage,
        gate_layout: &Layout,
        up: &CpuStorage,
        up_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        same_shape(gate_layout, up_layout)?;
        let (gate, up) = (
            f32_values("fused swiglu", gate, gate_layout)?,
            f32_values("fused swiglu", up, up_layout)?,
        );
        let mut out = vec![0f32; gate.len()];
        forward(gate, up, &mut out);
        Ok((CpuStorage::F32(out), gate_layout.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _out: &Tensor,
        grad_out: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        // The gradient arrives from whatever op came next, in any layout.
        let grad_out = grad_out.contiguous()?;
        let both = gate.apply_op3_no_bwd(up, &grad_out, &SwiGluGrad)?;
        let n = gate.elem_count();
        let grad_gate = both.narrow(0, 0, n)?.reshape(gate.shape())?;
        let grad_up = both.narrow(0, n, n)?.reshape(up.shape())?;
        Ok((Some(grad_gate), Some(grad_up)))
    }
}

/// Both gradients of [`SwiGlu`] in one buffer, `grad_gate` then `grad_up`, so each
/// element's `exp` (the only costly part) is computed once, not once per gradient.
struct SwiGluGrad;

impl CustomOp3 for SwiGluGrad {
    fn name(&self) -> &'static str {
        "fused-swiglu-grad"
    }

    fn cpu_fwd(
        &self,
        gate: &CpuStorage,
        gate_layout: &Layout,
        up: &CpuStorage,
        up_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        same_shape(gate_layout, up_layout)?;
        same_shape(gate_layout, grad_layout)?;
        let (gate, up) = (
            f32_values("fused swiglu", gate, gate_layout)?,
            f32_values("fused swiglu", up, up_layout)?,
        );
        let grad = f32_values("fused swiglu", grad, grad_layout)?;
        let n = gate.len();
        let mut out = vec![0f32; 2 * n];
        let (grad_gate, grad_up) = out.split_at_mut(n);
        backward(gate, up, grad, grad_gate, grad_up);
        Ok((CpuStorage::F32(out), Shape::from(2 * n)))
    }
}

#[cfg(test)]
mod tests {
    use crate::cpu::kernel::assert_close_rows;
    use candle_core::{Device, Var};

    use super::*;

    /// Gates over silu's whole range: saturated both ways (where `exp(-g)` overflows),
    /// around its minimum near -1.28 where its derivative changes sign, and plain noise;
    /// each row with its own scale of `up`.
    fn case(rows: usize, cols: usize) -> (Tensor, Tensor) {
        let dev = &Device::Cpu;
        let noise = Tensor::randn(0f32, 1.0, (rows, cols), dev).unwrap();
        let (shift, scale): (Vec<f32>, Vec<f32>) = (0..rows)
            .map(|i| match i % 5 {
                0 => (0.0, 1.0),
                1 => (0.0, 8.0),
                2 => (-1.28, 0.05),
                3 => (95.0, 10.0),
                _ => (-95.0, 10.0),
            })
            .unzip();
        let gate = noise
            .broadcast_mul(&Tensor::from_vec(scale, (rows, 1), dev).unwrap())
            .unwrap()
            .broadcast_add(&Tensor::from_vec(shift, (rows, 1), dev).unwrap())
            .unwrap();
        let up_scale: Vec<f32> = (0..rows).map(|i| 10f32.powi(i as i32 % 7 - 3)).collect();
        let up = Tensor::randn(0f32, 1.0, (rows, cols), dev)
            .unwrap()
            .broadcast_mul(&Tensor::from_vec(up_scale, (rows, 1), dev).unwrap())
            .unwrap();
        (gate, up)
    }

    /// Value and both gradients of the fused op and the reference under a loss that
    /// weighs each output differently.
    fn compare(gate: &Tensor, up: &Tensor) {
        let (gate, up) = (
            Var::from_tensor(gate).unwrap(),
            Var::from_tensor(up).unwrap(),
        );
        let mix = Tensor::randn(0f32, 1.0, gate.dims(), &Device::Cpu).unwrap();
        let reference = (gate.silu().unwrap() * up.as_tensor()).unwrap();
        let fused = fused_swiglu(gate.as_tensor(), up.as_tensor()).unwrap();
        assert_close_rows(&fused, &reference, 1e-6, "value");
        let grads = |out: &Tensor| {
            let g = (out * &mix).unwrap().sum_all().unwrap().backward().unwrap();
            (g.get(&gate).unwrap().clone(), g.get(&up).unwrap().clone())
        };
        let (rg, ru) = grads(&reference);
        let (fg, fu) = grads(&fused);
        assert_close_rows(&fg, &rg, 1e-6, "gate gradient");
        assert_close_rows(&fu, &ru, 1e-6, "up gradient");
    }

    #[test]
    fn fused_swiglu_matches_the_reference() {
        let (gate, up) = case(15, 33);
        compare(
            &gate.reshape((3, 5, 33)).unwrap(),
            &up.reshape((3, 5, 33)).unwrap(),
        );
    }

    #[test]
    fn fused_swiglu_takes_non_contiguous_input() {
        // A transposed gate (strided rows) against a contiguous up.
        let (gate, up) = case(10, 24);
        let gate_t = gate.t().unwrap().contiguous().unwrap().t().unwrap();
        assert!(!gate_t.is_contiguous());
        compare(&gate_t, &up);
    }

    #[test]
    fn fused_swiglu_falls_back_for_other_dtypes() {
        let (gate, up) = case(5, 8);
        let (gate, up) = (
            gate.to_dtype(DType::F64).unwrap(),
            up.to_dtype(DType::F64).unwrap(),
        );
        let fused = fused_swiglu(&gate, &up).unwrap();
        assert_eq!(fused.dtype(), DType::F64);
        let reference = (gate.silu().unwrap() * &up).unwrap();
        assert_eq!(
            fused.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            reference.flatten_all().unwrap().to_vec1::<f64>().unwrap()
        );
    }

    #[test]
    fn fused_swiglu_refuses_mismatched_shapes() {
        let (gate, up) = case(4, 6);
        let err = fused_swiglu(&gate, &up.t().unwrap()).unwrap_err();
        assert!(err.to_string().contains("[4, 6]"), "{err}");
        let err = fused_swiglu(&gate, &up.reshape(24).unwrap()).unwrap_err();
        assert!(err.to_string().contains("[24]"), "{err}");
    }
}
