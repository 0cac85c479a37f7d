//! Attractive forces of t-SNE: for each point, the sum over its neighbours in P of
//! p_ij q_ij Z (y_i - y_j), with q_ij Z = 1 / (1 + d^2).
//!
//! Evaluated in f32, eight neighbours at a time: positions are gathered from an f32 copy of
//! the embedding made once per step. The AVX2 build and the baseline build perform the same
//! operations in the same order (per-lane sums, no fused multiply-add), so they give the same
//! bits, and each point's sum is computed by one task, so the thread count does not matter.

use super::affinity::Sparse;
use crate::layout::simd;

/// Lanes of the f32 evaluation: one AVX2 register.
const LANES: usize = 8;

pub struct Attraction<'a> {
    p: &'a Sparse,
    values: Vec<f32>,
}

impl<'a> Attraction<'a> {
    pub fn new(p: &'a Sparse) -> Self {
        Self {
            p,
            values: p.values.iter().map(|&v| v as f32).collect(),
        }
    }

    /// Force on point `i`, with `y` the interleaved (x, y) coordinates of all points.
    pub fn force(&self, y: &[f32], i: usize) -> (f64, f64) {
        let range = self.p.offsets[i]..self.p.offsets[i + 1];
        let (cols, vals) = (&self.p.columns[range.clone()], &self.values[range]);
        let (x0, y0) = (y[2 * i], y[2 * i + 1]);
        let chunks = cols.len() / LANES * LANES;
        let mut lanes = [[0.0f32; LANES]; 2];
        #[cfg(target_arch = "x86_64")]
        if simd::avx2() {
            // SAFETY: the CPU supports AVX2 (checked just above); every column indexes `y`.
            unsafe { lanes_avx2(cols, vals, y, (x0, y0), chunks, &mut lanes) };
        } else {
            lanes_plain(cols, vals, y, (x0, y0), chunks, &mut lanes);
        }
        #[cfg(not(target_arch = "x86_64"))]
        lanes_plain(cols, vals, y, (x0, y0), chunks, &mut lanes);
        let [mut ax, mut ay] = lanes;
        for k in chunks..cols.len() {
            let (tx, ty) = term((x0, y0), y, cols[k], vals[k]);
            ax[0] += tx;
            ay[0] += ty;
        }
        let total = |v: [f32; LANES]| v.iter().map(|&t| f64::from(t)).sum::<f64>();
        (total(ax), total(ay))
    }
}

#[inline(always)]
fn term((x0, y0): (f32, f32), y: &[f32], j: u32, pij: f32) -> (f32, f32) {
    let j = j as usize;
    let dx = x0 - y[2 * j];
    let dy = y0 - y[2 * j + 1];
    let w = pij / (1.0 + dx * dx + dy * dy);
    (w * dx, w * dy)
}

/// Lane l sums the neighbours k = l, l + 8, ... below `chunks`: [x, y].
fn lanes_plain(
    cols: &[u32],
    vals: &[f32],
    y: &[f32],
    at: (f32, f32),
    chunks: usize,
    out: &mut [[f32; LANES]; 2],
) {
    for k in (0..chunks).step_by(LANES) {
        for l in 0..LANES {
            let (tx, ty) = term(at, y, cols[k + l], vals[k + l]);
            out[0][l] += tx;
            out[1][l] += ty;
        }
    }
}

/// `lanes_plain` with AVX2 registers and gathers.
///
/// # Safety
/// Every column must index a point of `y` (2 * column + 1 < y.len()) and below 2^30.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lanes_avx2(
    cols: &[u32],
    vals: &[f32],
    y: &[f32],
    (x0, y0): (f32, f32),
    chunks: usize,
    out: &mut [[f32; LANES]; 2],
) {
    use std::arch::x86_64::*;
    let (px, py) = (_mm256_set1_ps(x0), _mm256_set1_ps(y0));
    let (mut ax, mut ay) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for k in (0..chunks).step_by(LANES) {
        // SAFETY: k + LANES <= chunks <= cols.len() = vals.len(); the caller guarantees the
        // gathered offsets 2 * column and 2 * column + 1 are inside `y`.
        unsafe {
            // Scalar loads beat the gather instruction on the CPUs measured (AMD EPYC).
            let at = |l: usize| 2 * *cols.get_unchecked(k + l) as usize;
            let x = |l: usize| *y.get_unchecked(at(l));
            let v = |l: usize| *y.get_unchecked(at(l) + 1);
            let gx = _mm256_setr_ps(x(0), x(1), x(2), x(3), x(4), x(5), x(6), x(7));
            let gy = _mm256_setr_ps(v(0), v(1), v(2), v(3), v(4), v(5), v(6), v(7));
            let p = _mm256_loadu_ps(vals.as_ptr().add(k));
            let dx = _mm256_sub_ps(px, gx);
            let dy = _mm256_sub_ps(py, gy);
            let d = crate::layout::simd::one_plus_squares(dx, dy);
            let w = _mm256_div_ps(p, d);
            ax = _mm256_add_ps(ax, _mm256_mul_ps(w, dx));
            ay = _mm256_add_ps(ay, _mm256_mul_ps(w, dy));
        }
    }
    // SAFETY: each output row holds exactly LANES floats.
    unsafe {
        _mm256_storeu_ps(out[0].as_mut_ptr(), ax);
        _mm256_storeu_ps(out[1].as_mut_ptr(), ay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn matches_the_definition_and_avx2_matches_baseline_bits() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let n = 40;
        // Point 0 has 37 neighbours (4 full lanes and a tail), point 1 none.
        let columns: Vec<u32> = (1..38).collect();
        let values: Vec<f64> = columns
            .iter()
            .map(|_| rng.random_range(0.0..0.01))
            .collect();
        let p = Sparse {
            offsets: vec![0, columns.len(), columns.len()],
            columns,
            values,
        };
        let y: Vec<f32> = (0..2 * n).map(|_| rng.random_range(-10.0..10.0)).collect();
        let force = Attraction::new(&p);
        let (ax, ay) = force.force(&y, 0);
        let (mut ex, mut ey) = (0.0f64, 0.0f64);
        for (&j, &pij) in p.columns.iter().zip(&p.values) {
            let j = j as usize;
            let dx = f64::from(y[0]) - f64::from(y[2 * j]);
            let dy = f64::from(y[1]) - f64::from(y[2 * j + 1]);
            let w = pij / (1.0 + dx * dx + dy * dy);
            ex += w * dx;
            ey += w * dy;
        }
        assert!((ax - ex).abs() < 1e-5 * ex.abs().max(1e-3), "{ax} vs {ex}");
        assert!((ay - ey).abs() < 1e-5 * ey.abs().max(1e-3), "{ay} vs {ey}");
        // Point 1 has no neighbours: no force.
        assert_eq!(Attraction::new(&p).force(&y, 1), (0.0, 0.0));
        #[cfg(target_arch = "x86_64")]
        if simd::avx2() {
            let cols = &p.columns[..32];
            let vals = &force.values[..32];
            let (mut plain, mut avx) = ([[0.0; LANES]; 2], [[0.0; LANES]; 2]);
            lanes_plain(cols, vals, &y, (y[0], y[1]), 32, &mut plain);
            // SAFETY: AVX2 checked above; columns < n.
            unsafe { lanes_avx2(cols, vals, &y, (y[0], y[1]), 32, &mut avx) };
            let bits =
                |v: [[f32; LANES]; 2]| v.concat().iter().map(|t| t.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(plain), bits(avx));
        }
    }
}
