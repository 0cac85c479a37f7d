//! PCA and RBF kernel PCA of the features (points are features, dimensions are samples).
//!
//! Both find their two components by randomised subspace iteration (see `linalg`), in blocks
//! of a fixed number of rows whose partial products are summed in a fixed order: the result is
//! the same at any thread count, and the data matrix is only ever multiplied by thin blocks.

use anyhow::{Result, bail};
use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use super::linalg::{dominant, flip_signs, ritz, subspace};
use super::thin::Shifted;

/// Extra vectors and passes of the subspace iteration: scikit-learn's defaults for PCA.
const OVERSAMPLE: usize = 8;
const PCA_PASSES: usize = 7;
/// Vectors per pass: the two components and the oversampling.
const WIDTH: usize = 2 + OVERSAMPLE;
/// Kernel PCA spectra decay slowly; more passes are cheap next to building the kernel.
const KERNEL_PASSES: usize = 30;
/// An n x n f32 kernel matrix of this many features takes 400 MB.
pub const KERNEL_PCA_MAX: usize = 10_000;
/// The points x dimensions matrix A, each dimension centred over the points, stored as it
/// arrived: as A itself, or as A^T (a transposed view of a samples x features table, which
/// is how the features usually arrive; a transposing copy would cost as much as a pass).
struct Points<'a> {
    stored: Shifted<'a>,
    points_are_rows: bool,
}

impl Points<'_> {
    /// A^T A q for a dims x l block q (l <= WIDTH).
    fn gram_times(&self, q: ArrayView2<f64>) -> Array2<f64> {
        let d = q.nrows();
        if self.points_are_rows {
            let product = self.stored.gram::<WIDTH>(&vectors::<WIDTH>(q));
            Array2::from_shape_fn((d, q.ncols()), |(i, k)| f64::from(product[k * d + i]))
        } else {
            let product = self.stored.outer_gram::<WIDTH>(&weights::<WIDTH>(q));
            Array2::from_shape_fn((d, q.ncols()), |(i, k)| f64::from(product[i * WIDTH + k]))
        }
    }

    /// A q (points x l) for a dims x l block q (l <= WIDTH).
    fn times(&self, q: ArrayView2<f64>) -> Array2<f64> {
        if self.points_are_rows {
            times::<WIDTH>(&self.stored, q)
        } else {
            let n = self.stored.cols();
            let product = self.stored.sum_rows::<WIDTH>(&weights::<WIDTH>(q));
            Array2::from_shape_fn((n, q.ncols()), |(i, k)| f64::from(product[k * n + i]))
        }
    }
}

/// R q (rows x l) for a block q of at most L columns.
fn times<const L: usize>(r: &Shifted, q: ArrayView2<f64>) -> Array2<f64> {
    let product = r.dot_rows::<L>(&vectors::<L>(q));
    Array2::from_shape_fn((r.rows(), q.ncols()), |(i, k)| {
        f64::from(product[i * L + k])
    })
}

/// The columns of `q` (n x l, l <= L) as L vectors of n values, zero-padded.
fn vectors<const L: usize>(q: ArrayView2<f64>) -> Vec<f32> {
    assert!(q.ncols() <= L, "at most {L} vectors");
    let n = q.nrows();
    let mut v = vec![0.0f32; L * n];
    for (k, column) in q.columns().into_iter().enumerate() {
        for (out, &x) in v[k * n..(k + 1) * n].iter_mut().zip(column) {
            *out = x as f32;
        }
    }
    v
}

/// The rows of `q` (n x l, l <= L) as L weights per row, zero-padded.
fn weights<const L: usize>(q: ArrayView2<f64>) -> Vec<f32> {
    assert!(q.ncols() <= L, "at most {L} vectors");
    let mut w = vec![0.0f32; L * q.nrows()];
    for ((i, k), &x) in q.indexed_iter() {
        w[i * L + k] = x as f32;
    }
    w
}

/// Scores of the points (rows of `x`) on the first two principal components (n x 2).
pub fn pca(x: ArrayView2<f32>, seed: u64) -> Array2<f64> {
    let (n, d) = x.dim();
    let transposed = x.t();
    let copy;
    let points = if let Some(data) = transposed.to_slice() {
        Points {
            stored: Shifted::plain(data, d, n).centre_rows(),
            points_are_rows: false,
        }
    } else {
        copy = x.as_standard_layout();
        Points {
            stored: Shifted::plain(copy.as_slice().expect("row-major"), n, d).centre_columns(),
            points_are_rows: true,
        }
    };
    // Rayleigh-Ritz on A^T A restricted to the subspace Q: the eigenvectors V of
    // (AQ)^T (AQ) give the scores (AQ) V directly, one pass over A instead of two.
    let l = (2 + OVERSAMPLE).min(d);
    let q = subspace(|q| points.gram_times(q), d, l, PCA_PASSES, seed);
    let aq = points.times(q.view());
    let (_, vectors) = ritz(&aq.t().dot(&aq), 2);
    let mut scores = aq.dot(&vectors);
    if scores.ncols() < 2 {
        // One sample dimension: the second axis carries nothing.
        scores = ndarray::concatenate![Axis(1), scores, Array2::zeros((n, 1))];
    }
    flip_signs(&mut scores);
    scores
}

/// Gamma of the RBF kernel when none is given: 1 / dimensions, scikit-learn's default.
pub fn default_gamma(dimensions: usize) -> f64 {
    1.0 / dimensions.max(1) as f64
}

/// RBF kernel PCA: the points projected on the top two eigenvectors of the centred kernel
/// matrix exp(-gamma |x_i - x_j|^2), scaled by the square roots of their eigenvalues.
pub fn kernel_pca(x: ArrayView2<f32>, gamma: f64, seed: u64) -> Result<Array2<f64>> {
    let n = x.nrows();
    if n > KERNEL_PCA_MAX {
        bail!(
            "kernel PCA keeps an n x n kernel matrix: {n} features would need {:.1} GB; \
             use at most {KERNEL_PCA_MAX} features (select.top_k) or method = \"pca\" or \"tsne\"",
            (n * n * 4) as f64 / 1e9
        );
    }
    let kernel = centred_kernel(x, gamma);
    let stored = Shifted::plain(kernel.as_slice().expect("row-major kernel"), n, n);
    let (values, vectors) = dominant(
        |q| times::<WIDTH>(&stored, q),
        n,
        2,
        OVERSAMPLE,
        KERNEL_PASSES,
        seed,
    );
    let mut scores = vectors;
    for (mut col, &lambda) in scores.columns_mut().into_iter().zip(values.iter()) {
        col.mapv_inplace(|v| v * lambda.max(0.0).sqrt());
    }
    flip_signs(&mut scores);
    Ok(scores)
}

/// exp(-gamma |x_i - x_j|^2), double-centred (rows and columns of the feature-space Gram
/// matrix to mean zero).
fn centred_kernel(x: ArrayView2<f32>, gamma: f64) -> Array2<f32> {
    let x = x.as_standard_layout();
    let norms: Vec<f32> = x.rows().into_iter().map(|r| r.dot(&r)).collect();
    let mut k = x.dot(&x.t());
    k.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(i, mut row)| {
            for (j, v) in row.iter_mut().enumerate() {
                let d2 = (norms[i] + norms[j] - 2.0 * *v).max(0.0);
                *v = (-(gamma as f32) * d2).exp();
            }
        });
    let n = k.nrows() as f64;
    let row_means: Vec<f64> = k
        .rows()
        .into_iter()
        .map(|r| r.iter().map(|&v| f64::from(v)).sum::<f64>() / n)
        .collect();
    let all_mean = row_means.iter().sum::<f64>() / n;
    k.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(i, mut row)| {
            for (j, v) in row.iter_mut().enumerate() {
                // The kernel is symmetric: column means equal row means.
                *v = (f64::from(*v) - row_means[i] - row_means[j] + all_mean) as f32;
            }
        });
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::linalg::symmetric_eigen;
    use ndarray::s;
    use rand::{Rng, SeedableRng};

    #[test]
    fn pca_matches_the_covariance_eigenvectors_in_either_memory_order() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        // 400 points in 12 dimensions with two strong directions, offset from the origin.
        let x = Array2::from_shape_fn((400, 12), |(i, j)| {
            let t = (i as f32 * 0.37).sin() * 5.0;
            let u = (i as f32 * 0.11).cos() * 2.0;
            t * (j as f32 / 12.0)
                + u * if j % 2 == 0 { 1.0 } else { -1.0 }
                + rng.random_range(-0.1..0.1)
                + 7.0
        });
        // Points as stored rows, and as the transposed view of a dimensions x points table
        // (how features x samples arrive): the two code paths.
        let stored_transposed = x.t().as_standard_layout().into_owned();
        let by_rows = pca(x.view(), 0);
        let by_columns = pca(stored_transposed.t(), 0);
        let xc = x.mapv(f64::from);
        let xc = &xc - &xc.mean_axis(Axis(0)).unwrap();
        let (values, vectors) = symmetric_eigen(&xc.t().dot(&xc));
        let mut exact = xc.dot(&vectors.slice(s![.., ..2]));
        flip_signs(&mut exact);
        for scores in [by_rows, by_columns] {
            for (a, b) in scores.iter().zip(exact.iter()) {
                assert!((a - b).abs() < 1e-3 * values[0].sqrt(), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn kernel_pca_separates_two_rings() {
        // Inner and outer circles: linear PCA cannot separate them, an RBF kernel can.
        let n = 200;
        let x = Array2::from_shape_fn((n, 2), |(i, k)| {
            let r = if i < n / 2 { 1.0 } else { 4.0 };
            let a = i as f32 * 0.7;
            if k == 0 { r * a.cos() } else { r * a.sin() }
        });
        let scores = kernel_pca(x.view(), 0.5, 0).unwrap();
        let radius_score = |i: usize| scores[[i, 0]];
        let inner: Vec<f64> = (0..n / 2).map(radius_score).collect();
        let outer: Vec<f64> = (n / 2..n).map(radius_score).collect();
        let (imin, imax) = inner
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        let (omin, omax) = outer
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        assert!(
            imax < omin || omax < imin,
            "rings overlap on the first component: inner [{imin}, {imax}], outer [{omin}, {omax}]"
        );
        assert!(kernel_pca(Array2::<f32>::zeros((KERNEL_PCA_MAX + 1, 1)).view(), 1.0, 0).is_err());
    }
}
