//! PCA and RBF kernel PCA of the features (points are features, dimensions are samples).
//!
//! Both find their two components by randomised subspace iteration (see `linalg`), in blocks
//! of a fixed number of rows whose partial products are summed in a fixed order: the result is
//! the same at any thread count, and the data matrix is only ever multiplied by thin blocks.

use anyhow::{Result, bail};
use ndarray::{Array2, ArrayView2, Axis, s};
use rayon::prelude::*;

use super::linalg::{dominant, flip_signs};

const ROWS_PER_BLOCK: usize = 1024;
/// Extra vectors and passes of the subspace iteration: scikit-learn's defaults for PCA.
const OVERSAMPLE: usize = 8;
const PCA_PASSES: usize = 7;
/// Kernel PCA spectra decay slowly; more passes are cheap next to building the kernel.
const KERNEL_PASSES: usize = 30;
/// An n x n f32 kernel matrix of this many features takes 400 MB.
pub const KERNEL_PCA_MAX: usize = 10_000;

/// Columns centred to mean zero, as an owned f32 matrix in the input's memory order.
fn centred(x: ArrayView2<f32>) -> Array2<f32> {
    let n = x.nrows() as f64;
    let means: Vec<f32> = x
        .columns()
        .into_iter()
        .map(|c| (c.iter().map(|&v| f64::from(v)).sum::<f64>() / n) as f32)
        .collect();
    // Features x samples usually arrives as a transposed view: keep its memory order (a
    // transposing copy of the data costs more than the multiplications that follow).
    let mut out = x.to_owned();
    out -= &ndarray::Array1::from(means);
    out
}

/// `a * q` for a tall f32 `a`, computed by row blocks in parallel.
fn times(a: &Array2<f32>, q: ArrayView2<f64>) -> Array2<f64> {
    let q32 = q.mapv(|v| v as f32);
    let blocks: Vec<Array2<f32>> = a
        .axis_chunks_iter(Axis(0), ROWS_PER_BLOCK)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|block| block.dot(&q32))
        .collect();
    let views: Vec<_> = blocks.iter().map(|b| b.view()).collect();
    ndarray::concatenate(Axis(0), &views)
        .expect("blocks share their width")
        .mapv(f64::from)
}

/// `a^T * z` for a tall f32 `a`: per-block products summed in block order.
fn transpose_times(a: &Array2<f32>, z: &Array2<f64>) -> Array2<f64> {
    let z32 = z.mapv(|v| v as f32);
    let parts: Vec<Array2<f32>> = (0..a.nrows().div_ceil(ROWS_PER_BLOCK))
        .into_par_iter()
        .map(|b| {
            let rows = b * ROWS_PER_BLOCK..((b + 1) * ROWS_PER_BLOCK).min(a.nrows());
            a.slice(s![rows.clone(), ..])
                .t()
                .dot(&z32.slice(s![rows, ..]))
        })
        .collect();
    let mut sum = Array2::<f64>::zeros((a.ncols(), z.ncols()));
    for p in parts {
        sum += &p.mapv(f64::from);
    }
    sum
}

/// Scores of the points on the first two principal components (n x 2).
pub fn pca(x: ArrayView2<f32>, seed: u64) -> Array2<f64> {
    let xc = centred(x);
    let d = xc.ncols();
    let (_, components) = dominant(
        |q| transpose_times(&xc, &times(&xc, q)),
        d,
        2,
        OVERSAMPLE,
        PCA_PASSES,
        seed,
    );
    let mut scores = times(&xc, components.view());
    if scores.ncols() < 2 {
        // One sample dimension: the second axis carries nothing.
        scores = ndarray::concatenate![Axis(1), scores, Array2::zeros((xc.nrows(), 1))];
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
    let (values, vectors) = dominant(|q| times(&kernel, q), n, 2, OVERSAMPLE, KERNEL_PASSES, seed);
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
    use rand::{Rng, SeedableRng};

    #[test]
    fn pca_matches_the_covariance_eigenvectors() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        // 400 points in 12 dimensions with two strong directions.
        let x = Array2::from_shape_fn((400, 12), |(i, j)| {
            let t = (i as f32 * 0.37).sin() * 5.0;
            let u = (i as f32 * 0.11).cos() * 2.0;
            t * (j as f32 / 12.0)
                + u * if j % 2 == 0 { 1.0 } else { -1.0 }
                + rng.random_range(-0.1..0.1)
        });
        let scores = pca(x.view(), 0);
        let xc = centred(x.view()).mapv(f64::from);
        let (values, vectors) = symmetric_eigen(&xc.t().dot(&xc));
        let mut exact = xc.dot(&vectors.slice(s![.., ..2]));
        flip_signs(&mut exact);
        for (a, b) in scores.iter().zip(exact.iter()) {
            assert!((a - b).abs() < 1e-3 * values[0].sqrt(), "{a} vs {b}");
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
