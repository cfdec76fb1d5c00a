//! What the fused ops (`cross_entropy`, `norm`, `rotary`, `softmax`, `swiglu`) share:
//! their error type and the f32 values of a contiguous tensor's storage, which is all a
//! candle `CustomOp`'s CPU kernel gets.

use candle_core::{CpuStorage, Layout};

/// A kernel's error, as candle reports it.
pub(crate) fn fail(message: String) -> candle_core::Error {
    candle_core::Error::Msg(message)
}

/// The values of a contiguous f32 tensor; `op` names the kernel in the error.
pub(crate) fn f32_values<'a>(
    op: &str,
    storage: &'a CpuStorage,
    layout: &Layout,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(values) = storage else {
        return Err(fail(format!("{op} takes f32 tensors")));
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        return Err(fail(format!("{op} takes contiguous tensors")));
    };
    Ok(&values[start..end])
}

// Float reductions are only vectorized when the code itself sums in independent lanes
// (the compiler may not reorder them); eight lanes also shorten each f32 chain, which
// keeps the rounding error below a single running sum's.
pub(crate) const LANES: usize = 8;

/// Folds `values` with `step` in [`LANES`] independent accumulators started at `init`,
/// then joins them with `combine`: a vectorisable max (`f32::max` both ways) or sum.
pub(crate) fn lanes_fold(
    values: &[f32],
    init: f32,
    step: impl Fn(f32, f32) -> f32,
    combine: impl Fn(f32, f32) -> f32,
) -> f32 {
    let mut acc = [init; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder().iter().fold(init, |a, &v| step(a, v));
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = step(*a, v);
        }
    }
    acc.into_iter().fold(rest, combine)
}

/// The largest absolute difference between two tensors of the same shape (tests hold
/// each fused op to its reference with it).
#[cfg(test)]
pub(crate) fn max_difference(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[cfg(test)]
/// Asserts `|a - b| <= tol * max|b|` row by row (last dimension), so rows of very
/// different scale are each held to their own.
pub(crate) fn assert_close_rows(
    a: &candle_core::Tensor,
    b: &candle_core::Tensor,
    tol: f32,
    what: &str,
) {
    assert_eq!(a.dims(), b.dims(), "{what}");
    let hidden = *b.dims().last().unwrap();
    let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for (i, (ra, rb)) in a.chunks(hidden).zip(b.chunks(hidden)).enumerate() {
        let scale = rb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = ra
            .iter()
            .zip(rb)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            diff <= tol * scale,
            "{what}, row {i}: differs by {diff}, row scale {scale}"
        );
    }
}

/// `e^x` in plain f32 arithmetic that the compiler vectorises. `f32::exp` is a call into
/// libm per element, and the loss's and softmax's rows are millions of them a training
/// step. Range reduction `x = n ln2 + r` (ln2 in two parts, so `r` stays exact), a
/// degree-6 polynomial for `e^r` on `|r| <= ln2/2` (the classic Cephes `expf`
/// coefficients), and `2^n` written into the exponent bits. Within 2 ulp of `f32::exp`
/// (a test sweeps the range); results below 2^-125 (`x < -86.6`) flush to 0, and
/// `x > 88.72` gives infinity; NaN stays NaN.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    // Adding 1.5 * 2^23 rounds to an integer, which then sits in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    const ROUND_BITS: i32 = 0x4B40_0000;
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    const LOW: f32 = -86.6;
    const HIGH: f32 = 88.72;
    let clamped = x.clamp(LOW, HIGH);
    let t = clamped * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = clamped - n * LN2_HIGH - n * LN2_LOW;
    let p = ((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e = p * r * r + r + 1.0;
    // 2^(n - 1) then times 2, so n = 128 (x near 88.72) stays below the exponent's 255.
    let half_power = f32::from_bits(((t.to_bits() as i32 - ROUND_BITS + 126) << 23) as u32);
    let y = e * half_power * 2.0;
    // Two selects, not an if/else chain: the chain compiles to branches, which keep a
    // loop of these from vectorising.
    let y = if x < LOW { 0.0 } else { y };
    if x > HIGH {
        f32::INFINITY
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::exp;

    #[test]
    fn exp_is_within_two_ulp_of_libm_over_its_range() {
        let ulp = |v: f32| f32::from_bits(v.to_bits() + 1) - v;
        let mut x = -86.5f32;
        while x < 88.7 {
            let (got, want) = (exp(x), x.exp());
            assert!(
                (got - want).abs() <= 2.0 * ulp(want),
                "exp({x}) = {got}, libm {want}"
            );
            x += 0.000_731;
        }
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(89.0), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
    }
}
