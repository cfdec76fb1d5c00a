//! Rotary position embedding in one pass, forward and backward.
//!
//! The reference (`RotaryTables::rotate` in transformer.rs) narrows `x` into its two
//! halves, makes four broadcast products, a difference and a sum, and concatenates:
//! seven tensors the size of `x` (or half of it) for each of the queries and keys of every
//! layer, and backward as many again plus the gradients of the narrowed views padded back
//! to full size and added. [`fused_rotate`] reads `x` once and writes the rotated tensor;
//! its backward, the inverse rotation, reads the gradient once and writes the gradient of
//! `x`. The tables are constants, so they get no gradient.

use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Shape, Tensor, D};

use super::kernel::{f32_values, fail};
use crate::error::Result;

/// Rotates `x: [..., T, D]` by the `[T, D/2]` tables: pair `d` is dims `(d, d + D/2)`,
/// `(x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin)`. The same values and gradient as
/// `RotaryTables::rotate`. f32 on the CPU runs the fused op; other dtypes and devices run
/// that reference.
pub fn fused_rotate(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    check_shapes(x.shape(), cos.shape(), sin.shape())?;
    let (device, dtype) = (x.device(), x.dtype());
    let cos = cos.to_device(device)?.to_dtype(dtype)?;
    let sin = sin.to_device(device)?.to_dtype(dtype)?;
    if dtype != DType::F32 || !matches!(device, Device::Cpu) {
        let half = x.dim(D::Minus1)? / 2;
        let x1 = x.narrow(D::Minus1, 0, half)?;
        let x2 = x.narrow(D::Minus1, half, half)?;
        let first = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
        let second = (x2.broadcast_mul(&cos)? + x1.broadcast_mul(&sin)?)?;
        return Ok(Tensor::cat(&[first, second], D::Minus1)?);
    }
    Ok(x.contiguous()?.apply_op3(
        &cos.contiguous()?,
        &sin.contiguous()?,
        Rotate { inverse: false },
    )?)
}

/// `(T, D/2)`, once `x` is `[..., T, D]` with `D` even and both tables `[T, D/2]`.
fn check_shapes(x: &Shape, cos: &Shape, sin: &Shape) -> candle_core::Result<(usize, usize)> {
    let [.., t, d] = x.dims() else {
        return Err(fail(format!(
            "rotary: x must be [..., positions, head_dim], got shape {:?}",
            x.dims()
        )));
    };
    let (t, d) = (*t, *d);
    if d % 2 != 0 {
        return Err(fail(format!("rotary: head_dim {d} is odd")));
    }
    for (name, table) in [("cos", cos), ("sin", sin)] {
        if table.dims() != [t, d / 2] {
            return Err(fail(format!(
                "rotary: {name} table has shape {:?}, x of shape {:?} needs [{t}, {}]",
                table.dims(),
                x.dims(),
                d / 2
            )));
        }
    }
    Ok((t, d / 2))
}

/// The kernel on plain rows of `D` values with `half = D / 2`: row `r` of `x` is
/// rotated by the angles of table row `position(r)` (the tables are `[positions, half]`),
/// or with `inverse` by their negatives, into the same row of `out`. The candle op above
/// (rows of `[..., T, D]`, `position = r % T`) and the trainer's hand-written step (rows
/// of `[tokens, heads, D]`) both run it.
pub fn rotate(
    x: &[f32],
    (cos, sin, half): (&[f32], &[f32], usize),
    position: impl Fn(usize) -> usize,
    inverse: bool,
    out: &mut [f32],
) {
    assert!(
        x.len() == out.len() && cos.len() == sin.len(),
        "rotary: mismatched lengths"
    );
    if half == 0 {
        return;
    }
    // Negating sin is exact, so the inverse is the reference's backward
    // (g1 cos + g2 sin, g2 cos - g1 sin) to the bit.
    let sign = if inverse { -1f32 } else { 1f32 };
    let rows = x.chunks_exact(2 * half).zip(out.chunks_exact_mut(2 * half));
    for (row, (input, output)) in rows.enumerate() {
        let p = position(row);
        let cos = &cos[p * half..][..half];
        let sin = &sin[p * half..][..half];
        let (x1, x2) = input.split_at(half);
        let (first, second) = output.split_at_mut(half);
        let pairs = first.iter_mut().zip(second).zip(x1.iter().zip(x2));
        for (((o1, o2), (&a, &b)), (&c, &s)) in pairs.zip(cos.iter().zip(sin)) {
            let s = sign * s;
            *o1 = a * c - b * s;
            *o2 = b * c + a * s;
        }
    }
}

/// The rotation by the tables' angles, or with `inverse` by their negatives (the
/// gradient: a rotation's transpose is its inverse).
struct Rotate {
    inverse: bool,
}

impl CustomOp3 for Rotate {
    fn name(&self) -> &'static str {
        if self.inverse {
            "fused-rotary-inverse"
        } else {
            "fused-rotary"
        }
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        cos: &CpuStorage,
        cos_layout: &Layout,
        sin: &CpuStorage,
        sin_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (t, half) = check_shapes(x_layout.shape(), cos_layout.shape(), sin_layout.shape())?;
        let x = f32_values("fused rotary", x, x_layout)?;
        let cos = f32_values("fused rotary", cos, cos_layout)?;
        let sin = f32_values("fused rotary", sin, sin_layout)?;
        let mut out = vec![0f32; x.len()];
        rotate(x, (cos, sin, half), |row| row % t, self.inverse, &mut out);
        Ok((CpuStorage::F32(out), x_layout.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _rotated: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad_x = grad.contiguous()?.apply_op3_no_bwd(
            cos,
            sin,
            &Rotate {
                inverse: !self.inverse,
            },
        )?;
        Ok((Some(grad_x), None, None))
    }
}

#[cfg(test)]
mod tests {
    use crate::cpu::kernel::max_difference;
    use candle_core::Var;

    use super::*;

    /// `RotaryTables::rotate`, written out.
    fn reference(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
        let half = x.dim(D::Minus1).unwrap() / 2;
        let x1 = x.narrow(D::Minus1, 0, half).unwrap();
        let x2 = x.narrow(D::Minus1, half, half).unwrap();
        let first = (x1.broadcast_mul(cos).unwrap() - x2.broadcast_mul(sin).unwrap()).unwrap();
        let second = (x2.broadcast_mul(cos).unwrap() + x1.broadcast_mul(sin).unwrap()).unwrap();
        Tensor::cat(&[first, second], D::Minus1).unwrap()
    }

    /// Tables of `t` positions starting far from 0 (long contexts), `half` frequencies.
    fn tables(t: usize, half: usize) -> (Tensor, Tensor) {
        let frequencies: Vec<f64> = (0..half)
            .map(|i| 10_000f64.powf(-(i as f64) / half as f64))
            .collect();
        let (cos, sin) = crate::position::rotary_table(&frequencies, 1000, t);
        (
            Tensor::from_vec(cos, (t, half), &Device::Cpu).unwrap(),
            Tensor::from_vec(sin, (t, half), &Device::Cpu).unwrap(),
        )
    }

    /// Values with a wide range: per-head offsets far from zero.
    fn wide(shape: (usize, usize, usize, usize)) -> Tensor {
        let offsets = Tensor::new(&[30f32, -12.0, 0.0], &Device::Cpu)
            .unwrap()
            .reshape((1, 3, 1, 1))
            .unwrap();
        Tensor::randn(0f32, 5.0, shape, &Device::Cpu)
            .unwrap()
            .broadcast_add(&offsets)
            .unwrap()
    }

    /// Compares value and gradient with the reference on `x` (a `Var` or a view of one).
    fn check(var: &Var, x: &Tensor) {
        let (t, d) = (x.dim(D::Minus2).unwrap(), x.dim(D::Minus1).unwrap());
        let (cos, sin) = tables(t, d / 2);
        let reference_out = reference(x, &cos, &sin);
        let fused_out = fused_rotate(x, &cos, &sin).unwrap();
        // The same products and sums in the same order: equal to the bit.
        assert_eq!(max_difference(&reference_out, &fused_out), 0.0);

        let weights = Tensor::randn(0f32, 1.0, fused_out.shape(), &Device::Cpu).unwrap();
        let grad_of = |out: &Tensor| {
            let loss = (out * &weights).unwrap().sum_all().unwrap();
            loss.backward().unwrap().get(var).unwrap().clone()
        };
        let (gr, gf) = (grad_of(&reference_out), grad_of(&fused_out));
        let diff = max_difference(&gr, &gf);
        // Also equal to the bit: see `Rotate::cpu_fwd`.
        assert_eq!(diff, 0.0, "gradients differ");
        // Not the identity: the gradient is the weights rotated back, not the weights.
        let x_shaped_weights = if x.is_contiguous() {
            weights.clone()
        } else {
            weights.transpose(2, 3).unwrap()
        };
        assert!(max_difference(&gf, &x_shaped_weights) > 0.1);
    }

    #[test]
    fn fused_rotation_matches_the_reference() {
        // D = 38: 19 pairs, not a multiple of any vector width.
        let var = Var::from_tensor(&wide((2, 3, 7, 38))).unwrap();
        check(&var, var.as_tensor());
    }

    #[test]
    fn fused_rotation_matches_the_reference_on_non_contiguous_x() {
        // Stored as [2, 3, D, T] and transposed to [2, 3, T = 12, D = 16].
        let var = Var::from_tensor(&wide((2, 3, 16, 12))).unwrap();
        let transposed = var.as_tensor().transpose(2, 3).unwrap();
        assert!(!transposed.is_contiguous());
        check(&var, &transposed);
    }

    #[test]
    fn fused_rotation_falls_back_for_other_dtypes() {
        let x = wide((1, 3, 5, 8));
        let (cos, sin) = tables(5, 4);
        let half = x.to_dtype(DType::F16).unwrap();
        let out = fused_rotate(&half, &cos, &sin).unwrap();
        assert_eq!(out.dtype(), DType::F16);
        let diff = max_difference(
            &out.to_dtype(DType::F32).unwrap(),
            &reference(&x, &cos, &sin),
        );
        assert!(diff < 0.1, "f16 differs by {diff}");
    }

    #[test]
    fn fused_rotation_refuses_bad_shapes() {
        let x = Tensor::zeros((1, 2, 5, 8), DType::F32, &Device::Cpu).unwrap();
        let (cos, sin) = tables(5, 4);
        let (short_cos, _) = tables(4, 4);
        let err = fused_rotate(&x, &short_cos, &sin).unwrap_err();
        assert!(
            err.to_string().contains("cos table has shape [4, 4]"),
            "{err}"
        );
        let (_, wide_sin) = tables(5, 8);
        let err = fused_rotate(&x, &cos, &wide_sin).unwrap_err();
        assert!(
            err.to_string().contains("sin table has shape [5, 8]"),
            "{err}"
        );
        let odd = Tensor::zeros((1, 2, 5, 7), DType::F32, &Device::Cpu).unwrap();
        let err = fused_rotate(&odd, &cos, &sin).unwrap_err();
        assert!(err.to_string().contains("head_dim 7 is odd"), "{err}");
        let vector = Tensor::zeros(8, DType::F32, &Device::Cpu).unwrap();
        let err = fused_rotate(&vector, &cos, &sin).unwrap_err();
        assert!(
            err.to_string().contains("[..., positions, head_dim]"),
            "{err}"
        );
    }
}
