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
