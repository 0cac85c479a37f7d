//! Products of a large row-major f32 matrix R with thin blocks of at most `L` vectors: the
//! whole cost of PCA and kernel PCA, which multiply the data by ten vectors per pass.
//!
//! R is read where it lies and centred on the fly by a shift per row or per column (a
//! centred copy costs as much as a product). Each Gram product reads R from memory once:
//! `gram` (R^T R W) uses each row for its second product while it is still in cache, and
//! `outer_gram` (R R^T W) works through column blocks small enough to stay in cache between
//! its two products. The loops keep their lanes in fixed-size arrays and are compiled for
//! AVX2 and for the baseline target from one source with no fused multiply-add, so both
//! builds give the same bits (see `simd`). Every output value is summed in an order fixed
//! by the shape alone: the same result at any thread count.

use std::ops::Range;

use rayon::prelude::*;

const LANES: usize = 8;
/// Rows per task of `dot_rows`.
const ROWS_PER_TASK: usize = 64;
/// Rows added to a block of sums together, so that each sum is loaded once per group.
const GROUP: usize = 8;
/// Columns per block of `outer_gram`: 1000 rows of them take 2 MB, which stays in the
/// last-level cache between the block's two products.
const COLUMNS_PER_BLOCK: usize = 512;

/// A row-major `rows` x `cols` matrix whose value at (r, c) is
/// `data[r * cols + c] - row_shift[r] - col_shift[c]`.
pub struct Shifted<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_shift: Vec<f32>,
    col_shift: Vec<f32>,
}

impl<'a> Shifted<'a> {
    /// The matrix as stored.
    pub fn plain(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols, "matrix data and shape disagree");
        Self {
            data,
            rows,
            cols,
            row_shift: vec![0.0; rows],
            col_shift: vec![0.0; cols],
        }
    }

    /// Each column centred to mean zero (means summed in f64, in an order fixed by the shape).
    pub fn centre_columns(mut self) -> Self {
        let cols = self.cols;
        let partial: Vec<Vec<f64>> = self
            .data
            .par_chunks(self.rows_per_block() * cols.max(1))
            .map(|block| {
                let mut sums = vec![0.0f64; cols];
                for row in block.chunks_exact(cols) {
                    for (s, &v) in sums.iter_mut().zip(row) {
                        *s += f64::from(v);
                    }
                }
                sums
            })
            .collect();
        let sums = add_in_order(partial, cols);
        let n = self.rows.max(1) as f64;
        self.col_shift = sums.iter().map(|&s| (s / n) as f32).collect();
        self
    }

    /// Each row centred to mean zero (means summed in f64).
    pub fn centre_rows(mut self) -> Self {
        let n = self.cols.max(1) as f64;
        self.row_shift = (0..self.rows)
            .into_par_iter()
            .map(|r| (lane_sum(self.row(r)) / n) as f32)
            .collect();
        self
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    /// Rows per task where tasks' partial sums are added: a function of the shape only.
    fn rows_per_block(&self) -> usize {
        (self.rows / 16).clamp(GROUP, 1024).next_multiple_of(GROUP)
    }

    /// R V^T as `rows` x `L` (row-major); `v` holds `L` vectors of `cols` values, one after
    /// the other.
    pub fn dot_rows<const L: usize>(&self, v: &[f32]) -> Vec<f32> {
        assert_eq!(
            v.len(),
            L * self.cols,
            "dot_rows: {L} vectors of {} values",
            self.cols
        );
        let mut out = vec![0.0f32; self.rows * L];
        out.par_chunks_mut(ROWS_PER_TASK * L)
            .enumerate()
            .for_each(|(task, out)| {
                for (i, out) in out.chunks_exact_mut(L).enumerate() {
                    let r = task * ROWS_PER_TASK + i;
                    let out: &mut [f32; L] = out.try_into().expect("L outputs per row");
                    dot_row(self.row(r), self.row_shift[r], &self.col_shift, v, out);
                }
            });
        out
    }

    /// R^T W as `L` x `cols` (row-major); `w` holds `L` weights per row.
    pub fn sum_rows<const L: usize>(&self, w: &[f32]) -> Vec<f32> {
        assert_eq!(w.len(), L * self.rows, "sum_rows: {L} weights per row");
        self.sum_blocks::<L>(|r, _| w[r * L..(r + 1) * L].try_into().expect("L weights"))
    }

    /// R^T R V^T as `L` x `cols` (row-major), `v` as in `dot_rows`.
    pub fn gram<const L: usize>(&self, v: &[f32]) -> Vec<f32> {
        assert_eq!(
            v.len(),
            L * self.cols,
            "gram: {L} vectors of {} values",
            self.cols
        );
        self.sum_blocks::<L>(|r, row| {
            let mut y = [0.0f32; L];
            dot_row(row, self.row_shift[r], &self.col_shift, v, &mut y);
            y
        })
    }

    /// `sum_r weight(r) (x) row r` as `L` x `cols`, by fixed blocks of rows whose partial
    /// sums are added in block order.
    fn sum_blocks<const L: usize>(
        &self,
        weight: impl Fn(usize, &[f32]) -> [f32; L] + Sync,
    ) -> Vec<f32> {
        let block = self.rows_per_block();
        let columns = 0..self.cols;
        let partial: Vec<Vec<f32>> = (0..self.rows.div_ceil(block))
            .into_par_iter()
            .map(|b| {
                let rows = b * block..((b + 1) * block).min(self.rows);
                let mut sums = vec![0.0f32; L * self.cols];
                self.add_rows_into(rows, columns.clone(), &weight, &mut sums);
                sums
            })
            .collect();
        add_in_order(partial, L * self.cols)
    }

    /// Adds `weight(r) (x) row r[columns]` over `rows` to `sums` (`L` x `columns.len()`).
    fn add_rows_into<const L: usize>(
        &self,
        rows: Range<usize>,
        columns: Range<usize>,
        weight: &impl Fn(usize, &[f32]) -> [f32; L],
        sums: &mut [f32],
    ) {
        let mut scratch = vec![0.0f32; GROUP * columns.len()];
        for first in rows.clone().step_by(GROUP) {
            // A group past the end repeats the last row with zero weights.
            let group: [usize; GROUP] = std::array::from_fn(|i| (first + i).min(rows.end - 1));
            let present = rows.end - first;
            let slices = group.map(|r| &self.row(r)[columns.clone()]);
            let mut weights = [[0.0f32; L]; GROUP];
            for (i, w) in weights.iter_mut().enumerate().take(present) {
                *w = weight(group[i], self.row(group[i]));
            }
            let shifts = group.map(|r| self.row_shift[r]);
            let col_shift = &self.col_shift[columns.clone()];
            add_rows(slices, shifts, col_shift, &weights, sums, &mut scratch);
        }
    }

    /// R R^T W as `rows` x `L` (row-major), `w` as in `sum_rows`. Each block of columns
    /// gives its share R_b (R_b^T W) while it is in cache; the shares are added in order.
    pub fn outer_gram<const L: usize>(&self, w: &[f32]) -> Vec<f32> {
        assert_eq!(w.len(), L * self.rows, "outer_gram: {L} weights per row");
        let weight = |r: usize, _: &[f32]| -> [f32; L] {
            w[r * L..(r + 1) * L].try_into().expect("L weights")
        };
        let partial: Vec<Vec<f32>> = (0..self.cols.div_ceil(COLUMNS_PER_BLOCK))
            .into_par_iter()
            .map(|b| {
                let columns = b * COLUMNS_PER_BLOCK..((b + 1) * COLUMNS_PER_BLOCK).min(self.cols);
                let width = columns.len();
                let mut y = vec![0.0f32; L * width];
                self.add_rows_into(0..self.rows, columns.clone(), &weight, &mut y);
                let mut share = vec![0.0f32; self.rows * L];
                for (r, out) in share.chunks_exact_mut(L).enumerate() {
                    let out: &mut [f32; L] = out.try_into().expect("L outputs per row");
                    let row = &self.row(r)[columns.clone()];
                    dot_row(
                        row,
                        self.row_shift[r],
                        &self.col_shift[columns.clone()],
                        &y,
                        out,
                    );
                }
                share
            })
            .collect();
        add_in_order(partial, self.rows * L)
    }
}

/// The sum of `values` in f64, over eight lanes added in order (a single running sum waits
/// on each addition's latency).
fn lane_sum(values: &[f32]) -> f64 {
    let mut lanes = [0.0f64; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail: f64 = chunks.remainder().iter().map(|&v| f64::from(v)).sum();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += f64::from(v);
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// The element-wise sum of tasks' partial results, in task order.
fn add_in_order<T: Copy + Default + std::ops::AddAssign>(
    partial: Vec<Vec<T>>,
    len: usize,
) -> Vec<T> {
    let mut out = vec![T::default(); len];
    for part in partial {
        for (o, p) in out.iter_mut().zip(part) {
            *o += p;
        }
    }
    out
}

/// `out[k] = sum_c (x[c] - row_shift - col_shift[c]) * v[k * x.len() + c]`, dispatched to
/// the AVX2 build where the CPU has it.
fn dot_row<const L: usize>(
    x: &[f32],
    row_shift: f32,
    col_shift: &[f32],
    v: &[f32],
    out: &mut [f32; L],
) {
    #[cfg(target_arch = "x86_64")]
    if super::simd::avx2() {
        // SAFETY: the CPU supports AVX2 (checked just above).
        unsafe { dot_row_avx2(x, row_shift, col_shift, v, out) };
        return;
    }
    dot_row_body(x, row_shift, col_shift, v, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_row_avx2<const L: usize>(
    x: &[f32],
    row_shift: f32,
    col_shift: &[f32],
    v: &[f32],
    out: &mut [f32; L],
) {
    dot_row_body(x, row_shift, col_shift, v, out);
}

/// Lane l of vector k sums the columns c = l mod 8 of the full chunks; the lanes are added
/// in order, then the tail columns.
#[inline(always)]
fn dot_row_body<const L: usize>(
    x: &[f32],
    row_shift: f32,
    col_shift: &[f32],
    v: &[f32],
    out: &mut [f32; L],
) {
    let cols = x.len();
    let full = cols / LANES * LANES;
    let vectors: [&[f32]; L] = std::array::from_fn(|k| &v[k * cols..(k + 1) * cols]);
    let mut acc = [[0.0f32; LANES]; L];
    for c in (0..full).step_by(LANES) {
        let x = centred_chunk(x, row_shift, col_shift, c);
        for (acc, vector) in acc.iter_mut().zip(vectors) {
            let y: &[f32; LANES] = vector[c..c + LANES].try_into().expect("a full chunk");
            for l in 0..LANES {
                acc[l] += x[l] * y[l];
            }
        }
    }
    for ((out, acc), vector) in out.iter_mut().zip(&acc).zip(vectors) {
        let mut total = 0.0f32;
        for &a in acc {
            total += a;
        }
        for c in full..cols {
            total += (x[c] - row_shift - col_shift[c]) * vector[c];
        }
        *out = total;
    }
}

#[inline(always)]
fn centred_chunk(x: &[f32], row_shift: f32, col_shift: &[f32], c: usize) -> [f32; LANES] {
    let x: &[f32; LANES] = x[c..c + LANES].try_into().expect("a full chunk");
    let s: &[f32; LANES] = col_shift[c..c + LANES].try_into().expect("a full chunk");
    // Plain loops: `array::from_fn` is not always inlined into the AVX2 build.
    let mut out = [0.0f32; LANES];
    for l in 0..LANES {
        out[l] = x[l] - row_shift - s[l];
    }
    out
}

/// `sums[k * width + c] += sum_i weights[i][k] * (rows[i][c] - row_shifts[i] - col_shift[c])`
/// with the rows added in order; `scratch` holds GROUP x width values.
fn add_rows<const L: usize>(
    rows: [&[f32]; GROUP],
    row_shifts: [f32; GROUP],
    col_shift: &[f32],
    weights: &[[f32; L]; GROUP],
    sums: &mut [f32],
    scratch: &mut [f32],
) {
    let width = col_shift.len();
    // Centred once here rather than once per vector below.
    #[cfg(target_arch = "x86_64")]
    if super::simd::avx2() {
        // SAFETY: the CPU supports AVX2 (checked just above).
        unsafe { centre_avx2(rows, row_shifts, col_shift, scratch) };
    } else {
        centre(rows, row_shifts, col_shift, scratch);
    }
    #[cfg(not(target_arch = "x86_64"))]
    centre(rows, row_shifts, col_shift, scratch);
    let x: [&[f32]; GROUP] = std::array::from_fn(|i| &scratch[i * width..(i + 1) * width]);
    for (k, sums) in sums.chunks_exact_mut(width).enumerate() {
        let mut w = [0.0f32; GROUP];
        for (w, weights) in w.iter_mut().zip(weights) {
            *w = weights[k];
        }
        #[cfg(target_arch = "x86_64")]
        if super::simd::avx2() {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { axpy_avx2(x, w, sums) };
            continue;
        }
        axpy_plain(x, w, sums, 0);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn centre_avx2(
    rows: [&[f32]; GROUP],
    row_shifts: [f32; GROUP],
    col_shift: &[f32],
    scratch: &mut [f32],
) {
    centre(rows, row_shifts, col_shift, scratch);
}

/// `scratch[i * width + c] = rows[i][c] - row_shifts[i] - col_shift[c]`.
#[inline(always)]
fn centre(rows: [&[f32]; GROUP], row_shifts: [f32; GROUP], col_shift: &[f32], scratch: &mut [f32]) {
    let width = col_shift.len();
    for ((x, row), shift) in scratch.chunks_exact_mut(width).zip(rows).zip(row_shifts) {
        for ((x, &v), &s) in x.iter_mut().zip(row).zip(col_shift) {
            *x = v - shift - s;
        }
    }
}

/// `sums[c] = (((sums[c] + w[0] x[0][c]) + w[1] x[1][c]) + ...)` from column `from` on.
fn axpy_plain(x: [&[f32]; GROUP], w: [f32; GROUP], sums: &mut [f32], from: usize) {
    for (c, s) in sums.iter_mut().enumerate().skip(from) {
        let mut total = *s;
        for i in 0..GROUP {
            total += w[i] * x[i][c];
        }
        *s = total;
    }
}

/// `axpy_plain` eight columns at a time, the same operations in the same order.
///
/// # Safety
/// The CPU must support AVX2; every `x[i]` must be as long as `sums`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn axpy_avx2(x: [&[f32]; GROUP], w: [f32; GROUP], sums: &mut [f32]) {
    use std::arch::x86_64::*;
    let width = sums.len();
    assert!(
        x.iter().all(|x| x.len() == width),
        "rows as long as the sums"
    );
    let full = width / LANES * LANES;
    let weights = w.map(|w| _mm256_set1_ps(w));
    for c in (0..full).step_by(LANES) {
        // SAFETY: c + LANES <= full <= width, the length of `sums` and of every row.
        unsafe {
            let at = sums.as_mut_ptr().add(c);
            let mut total = _mm256_loadu_ps(at);
            for i in 0..GROUP {
                let xi = _mm256_loadu_ps(x[i].as_ptr().add(c));
                total = _mm256_add_ps(total, _mm256_mul_ps(weights[i], xi));
            }
            _mm256_storeu_ps(at, total);
        }
    }
    axpy_plain(x, w, sums, full);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A 37 x 1043 matrix (tails in both directions, two column blocks) with row and
    /// column shifts, and its centred values in f64.
    fn case() -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<Vec<f64>>) {
        let (rows, cols) = (37, COLUMNS_PER_BLOCK + 531);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let data: Vec<f32> = (0..rows * cols)
            .map(|_| rng.random_range(-1.0..3.0))
            .collect();
        let row_shift: Vec<f32> = (0..rows).map(|_| rng.random_range(0.0..1.0)).collect();
        let col_shift: Vec<f32> = (0..cols).map(|_| rng.random_range(0.0..1.0)).collect();
        let exact = (0..rows)
            .map(|r| {
                (0..cols)
                    .map(|c| f64::from(data[r * cols + c] - row_shift[r] - col_shift[c]))
                    .collect()
            })
            .collect();
        (data, row_shift, col_shift, exact)
    }

    fn shifted<'a>(data: &'a [f32], rs: &[f32], cs: &[f32]) -> Shifted<'a> {
        let mut m = Shifted::plain(data, rs.len(), cs.len());
        m.row_shift = rs.to_vec();
        m.col_shift = cs.to_vec();
        m
    }

    fn close(got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (g, w) in got.iter().zip(want) {
            assert!((f64::from(*g) - w).abs() < 1e-4 * scale, "{g} vs {w}");
        }
    }

    #[test]
    fn products_match_their_definitions() {
        const L: usize = 3;
        let (data, rs, cs, x) = case();
        let (rows, cols) = (rs.len(), cs.len());
        let m = shifted(&data, &rs, &cs);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let v: Vec<f32> = (0..L * cols).map(|_| rng.random_range(-1.0..1.0)).collect();
        let w: Vec<f32> = (0..L * rows).map(|_| rng.random_range(-1.0..1.0)).collect();
        // R V^T, rows x L.
        let xv: Vec<f64> = (0..rows * L)
            .map(|i| {
                (0..cols)
                    .map(|c| x[i / L][c] * f64::from(v[(i % L) * cols + c]))
                    .sum()
            })
            .collect();
        close(&m.dot_rows::<L>(&v), &xv);
        // R^T W, L x cols.
        let xtw: Vec<f64> = (0..L * cols)
            .map(|i| {
                (0..rows)
                    .map(|r| f64::from(w[r * L + i / cols]) * x[r][i % cols])
                    .sum()
            })
            .collect();
        close(&m.sum_rows::<L>(&w), &xtw);
        // R^T (R V^T), L x cols.
        let gram: Vec<f64> = (0..L * cols)
            .map(|i| {
                (0..rows)
                    .map(|r| xv[r * L + i / cols] * x[r][i % cols])
                    .sum()
            })
            .collect();
        close(&m.gram::<L>(&v), &gram);
        // R (R^T W), rows x L.
        let outer: Vec<f64> = (0..rows * L)
            .map(|i| {
                (0..cols)
                    .map(|c| x[i / L][c] * xtw[(i % L) * cols + c])
                    .sum()
            })
            .collect();
        close(&m.outer_gram::<L>(&w), &outer);
    }

    #[test]
    fn centring_uses_the_means() {
        let data: Vec<f32> = vec![1.0, 10.0, 3.0, 20.0, 5.0, 60.0];
        let rows = Shifted::plain(&data, 3, 2).centre_rows();
        assert_eq!(rows.row_shift, vec![5.5, 11.5, 32.5]);
        let cols = Shifted::plain(&data, 3, 2).centre_columns();
        assert_eq!(cols.col_shift, vec![3.0, 30.0]);
    }

    #[test]
    fn the_same_bits_at_one_and_two_threads() {
        const L: usize = 10;
        let (data, rs, cs, _) = case();
        let m = shifted(&data, &rs, &cs);
        let v: Vec<f32> = (0..L * cs.len()).map(|i| (i as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..L * rs.len()).map(|i| (i as f32 * 0.11).cos()).collect();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| [m.gram::<L>(&v), m.outer_gram::<L>(&w), m.sum_rows::<L>(&w)])
        };
        let bits =
            |out: [Vec<f32>; 3]| out.concat().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(run(1)), bits(run(2)));
    }

    #[test]
    fn avx2_kernels_give_the_baseline_bits() {
        #[cfg(target_arch = "x86_64")]
        if crate::layout::simd::avx2() {
            let (data, rs, cs, _) = case();
            let cols = cs.len();
            let v: Vec<f32> = (0..10 * cols).map(|i| (i as f32 * 0.37).sin()).collect();
            let (mut plain, mut avx) = ([0.0f32; 10], [0.0f32; 10]);
            dot_row_body(&data[..cols], rs[0], &cs, &v, &mut plain);
            // SAFETY: AVX2 checked above.
            unsafe { dot_row_avx2(&data[..cols], rs[0], &cs, &v, &mut avx) };
            assert_eq!(plain.map(f32::to_bits), avx.map(f32::to_bits));

            let x: [&[f32]; GROUP] = std::array::from_fn(|i| &data[i * cols..(i + 1) * cols]);
            let w: [f32; GROUP] = std::array::from_fn(|i| 0.3 - i as f32 * 0.1);
            let mut plain: Vec<f32> = v[..cols].to_vec();
            let mut avx = plain.clone();
            axpy_plain(x, w, &mut plain, 0);
            // SAFETY: AVX2 checked above; every row is `cols` long.
            unsafe { axpy_avx2(x, w, &mut avx) };
            let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&plain), bits(&avx));
            assert_ne!(plain, v[..cols].to_vec(), "the rows were added");
        }
    }
}
