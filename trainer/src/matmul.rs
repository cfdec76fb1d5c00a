//! Matrix products on strided views of plain `f32` slices, for the hand-written training
//! step (`backprop.rs`). A view names a matrix inside a buffer by its offset and strides,
//! so a transpose, or one head's `[T, D]` block inside the `[tokens, heads * D]`
//! activations, is a product operand without a copy, and a product can add into its
//! destination, so gradients that sum several products are written in place. candle's
//! `matmul` can do neither: it allocates its output, and the autograd around it copies
//! transposes and accumulates gradients into fresh tensors. Both call the same `gemm`
//! kernels.

use gemm::{gemm, Parallelism};

/// A `rows x cols` matrix inside `data`: element `(r, c)` at `offset + r * rs + c * cs`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    data: &'a [f32],
    offset: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    /// All of `data` as a row-major `rows x cols` matrix.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols, "a {rows} x {cols} matrix");
        View::block(data, 0, (rows, cols), cols)
    }

    /// The `rows x cols` block at `offset` whose rows are `row_stride` apart.
    pub fn block(
        data: &'a [f32],
        offset: usize,
        (rows, cols): (usize, usize),
        row_stride: usize,
    ) -> Self {
        let view = View {
            data,
            offset,
            rows,
            cols,
            rs: row_stride,
            cs: 1,
        };
        assert!(view.fits(data.len()), "a block outside its buffer");
        view
    }

    /// The transpose, without moving a value.
    pub fn t(self) -> Self {
        View {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Whether every element lies inside a buffer of `len` values.
    fn fits(&self, len: usize) -> bool {
        self.rows == 0
            || self.cols == 0
            || self.offset + (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < len
    }
}

/// The destination of a product: a `rows x cols` block of `data` at `offset`, rows
/// `row_stride` apart.
pub struct Out<'a> {
    data: &'a mut [f32],
    offset: usize,
    rows: usize,
    cols: usize,
    rs: usize,
}

impl<'a> Out<'a> {
    /// All of `data` as a row-major `rows x cols` matrix.
    pub fn rows(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols, "a {rows} x {cols} matrix");
        Out::block(data, 0, (rows, cols), cols)
    }

    /// The `rows x cols` block at `offset` whose rows are `row_stride` apart.
    pub fn block(
        data: &'a mut [f32],
        offset: usize,
        (rows, cols): (usize, usize),
        row_stride: usize,
    ) -> Self {
        let fits = rows == 0 || cols == 0 || offset + (rows - 1) * row_stride + cols <= data.len();
        assert!(fits, "a block outside its buffer");
        Out {
            data,
            offset,
            rows,
            cols,
            rs: row_stride,
        }
    }
}

/// Whether a product writes its destination or adds to it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// `out = a b`.
    Set,
    /// `out += a b`.
    Add,
}

/// `out = a b` or `out += a b`, on the threads candle uses (`RAYON_NUM_THREADS`).
pub fn matmul(out: Out<'_>, a: View<'_>, b: View<'_>, write: Write) {
    assert!(
        a.cols == b.rows && out.rows == a.rows && out.cols == b.cols,
        "matmul: [{} x {}] x [{} x {}] into [{} x {}]",
        a.rows,
        a.cols,
        b.rows,
        b.cols,
        out.rows,
        out.cols
    );
    if out.rows == 0 || out.cols == 0 {
        return;
    }
    if a.cols == 0 {
        if write == Write::Set {
            for r in 0..out.rows {
                out.data[out.offset + r * out.rs..][..out.cols].fill(0.0);
            }
        }
        return;
    }
    let threads = candle_core::utils::get_num_threads();
    let parallelism = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: the constructors checked that every element of the three views lies inside
    // its slice; `out` borrows its slice mutably, so it aliases neither operand.
    unsafe {
        gemm(
            out.rows,
            out.cols,
            a.cols,
            out.data.as_mut_ptr().add(out.offset),
            1,
            out.rs as isize,
            write == Write::Add,
            a.data.as_ptr().add(a.offset),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr().add(b.offset),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The product written out, element by element.
    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        out
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 250.0 - 2.0)
            .collect()
    }

    #[test]
    fn products_of_transposes_and_blocks_match_the_naive_product() {
        let (m, k, n) = (5, 7, 3);
        let a = values(m * k, 1);
        let b = values(k * n, 2);
        let expected = naive(&a, &b, m, k, n);
        let mut out = vec![0f32; m * n];
        matmul(
            Out::rows(&mut out, m, n),
            View::rows(&a, m, k),
            View::rows(&b, k, n),
            Write::Set,
        );
        let close = |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-4);
        assert!(close(&out, &expected));
        // a^T stored as [k, m], used transposed back: the same product.
        let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let mut again = vec![1f32; m * n];
        matmul(
            Out::rows(&mut again, m, n),
            View::rows(&at, k, m).t(),
            View::rows(&b, k, n),
            Write::Set,
        );
        assert!(close(&again, &expected));
        // Add accumulates: out + a b = 2 a b.
        matmul(
            Out::rows(&mut again, m, n),
            View::rows(&a, m, k),
            View::rows(&b, k, n),
            Write::Add,
        );
        let doubled: Vec<f32> = expected.iter().map(|v| 2.0 * v).collect();
        assert!(close(&again, &doubled));
        // A column block of a wider buffer, written into a column block of another.
        let wide: Vec<f32> = (0..m * (k + 4))
            .map(|i| {
                if i % (k + 4) >= 2 && i % (k + 4) < 2 + k {
                    a[(i / (k + 4)) * k + i % (k + 4) - 2]
                } else {
                    99.0
                }
            })
            .collect();
        let mut target = vec![-1f32; m * (n + 2)];
        matmul(
            Out::block(&mut target, 1, (m, n), n + 2),
            View::block(&wide, 2, (m, k), k + 4),
            View::rows(&b, k, n),
            Write::Set,
        );
        for i in 0..m {
            assert_eq!(
                target[i * (n + 2)],
                -1.0,
                "the block's left neighbour is untouched"
            );
            assert!(close(
                &target[i * (n + 2) + 1..][..n],
                &expected[i * n..][..n]
            ));
        }
    }

    #[test]
    #[should_panic(expected = "outside its buffer")]
    fn a_block_past_the_end_of_its_buffer_is_refused() {
        let data = vec![0f32; 10];
        View::block(&data, 4, (2, 4), 4);
    }
}
