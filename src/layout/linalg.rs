//! The small dense linear algebra the embeddings need: a symmetric eigensolver for l x l
//! matrices (cyclic Jacobi) and the dominant eigenvectors of a large symmetric operator by
//! randomised subspace iteration (Halko, Martinsson & Tropp 2011), the method scikit-learn's
//! PCA uses for large inputs.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// Eigenvalues (descending) and eigenvectors (as columns) of a symmetric matrix.
pub fn symmetric_eigen(a: &Array2<f64>) -> (Vec<f64>, Array2<f64>) {
    let n = a.nrows();
    let mut a = a.clone();
    let mut v = Array2::<f64>::eye(n);
    let scale: f64 = a
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[[i, j]] * a[[i, j]])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-14 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if a[[p, q]].abs() <= f64::MIN_POSITIVE {
                    continue;
                }
                // Rotation that zeroes a[p, q] (Golub & Van Loan, algorithm 8.4.1).
                let tau = (a[[q, q]] - a[[p, p]]) / (2.0 * a[[p, q]]);
                let t = tau.signum() / (tau.abs() + (1.0 + tau * tau).sqrt());
                let t = if tau == 0.0 { 1.0 } else { t };
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[[k, p]], a[[k, q]]);
                    a[[k, p]] = c * akp - s * akq;
                    a[[k, q]] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[[p, k]], a[[q, k]]);
                    a[[p, k]] = c * apk - s * aqk;
                    a[[q, k]] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[[k, p]], v[[k, q]]);
                    v[[k, p]] = c * vkp - s * vkq;
                    v[[k, q]] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| a[[j, j]].total_cmp(&a[[i, i]]));
    let values = order.iter().map(|&i| a[[i, i]]).collect();
    (values, v.select(Axis(1), &order))
}

/// Orthonormalises the columns in place (modified Gram-Schmidt); a column that vanishes is
/// replaced by zeros.
pub fn orthonormalise(q: &mut Array2<f64>) {
    for j in 0..q.ncols() {
        for i in 0..j {
            let proj = q.column(i).dot(&q.column(j));
            let prev = q.column(i).to_owned();
            q.column_mut(j).scaled_add(-proj, &prev);
        }
        let norm = q.column(j).dot(&q.column(j)).sqrt();
        if norm > 1e-300 {
            q.column_mut(j).mapv_inplace(|x| x / norm);
        } else {
            q.column_mut(j).fill(0.0);
        }
    }
}

/// An orthonormal basis (dim x l) of the dominant subspace of the symmetric positive
/// semi-definite operator `apply` (given by its product with a dim x l block): subspace
/// iteration from a seeded Gaussian block, `iterations` passes.
pub fn subspace(
    apply: impl Fn(ArrayView2<f64>) -> Array2<f64>,
    dim: usize,
    l: usize,
    iterations: usize,
    seed: u64,
) -> Array2<f64> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut q = Array2::from_shape_fn((dim, l), |_| StandardNormal.sample(&mut rng));
    orthonormalise(&mut q);
    for _ in 0..iterations {
        q = apply(q.view());
        orthonormalise(&mut q);
    }
    q
}

/// The `k` largest eigenpairs of the symmetric positive semi-definite operator `apply`
/// (dim x dim, given by its product with a dim x l block), by subspace iteration with
/// `oversample` extra vectors and `iterations` passes, then a Rayleigh-Ritz step.
pub fn dominant(
    apply: impl Fn(ArrayView2<f64>) -> Array2<f64>,
    dim: usize,
    k: usize,
    oversample: usize,
    iterations: usize,
    seed: u64,
) -> (Array1<f64>, Array2<f64>) {
    let l = (k + oversample).min(dim);
    let q = subspace(&apply, dim, l, iterations, seed);
    let aq = apply(q.view());
    let (values, vectors) = ritz(&q.t().dot(&aq), k);
    (values, q.dot(&vectors))
}

/// The `k` largest eigenpairs of a small symmetric matrix (symmetrised against rounding).
pub fn ritz(small: &Array2<f64>, k: usize) -> (Array1<f64>, Array2<f64>) {
    let small = (small + &small.t()) / 2.0;
    let (values, vectors) = symmetric_eigen(&small);
    let k = k.min(values.len());
    (
        Array1::from(values[..k].to_vec()),
        vectors.slice(ndarray::s![.., ..k]).to_owned(),
    )
}

/// Flips each column so that its entry of largest magnitude is positive (scikit-learn's
/// `svd_flip`), which makes the sign of a component reproducible.
pub fn flip_signs(scores: &mut Array2<f64>) {
    for mut col in scores.columns_mut() {
        let largest = col.iter().copied().fold(
            0.0f64,
            |best, v| if v.abs() > best.abs() { v } else { best },
        );
        if largest < 0.0 {
            col.mapv_inplace(|v| -v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn jacobi_diagonalises() {
        let a = array![[4.0, 1.0, 2.0], [1.0, 3.0, 0.5], [2.0, 0.5, 1.0]];
        let (values, v) = symmetric_eigen(&a);
        assert!(values[0] >= values[1] && values[1] >= values[2]);
        for (k, &lambda) in values.iter().enumerate() {
            let col = v.column(k);
            let residual = &a.dot(&col) - &(&col * lambda);
            assert!(residual.iter().all(|r| r.abs() < 1e-10));
        }
        assert!(
            (values.iter().sum::<f64>() - 8.0).abs() < 1e-10,
            "trace kept"
        );
    }

    #[test]
    fn subspace_iteration_finds_the_top_eigenvectors() {
        // A = U diag(10, 5, 1, 0.5, ...) U^T with a known U (a permutation here).
        let dim = 30;
        let diag: Vec<f64> = (0..dim)
            .map(|i| {
                [10.0, 5.0]
                    .get(i)
                    .copied()
                    .unwrap_or(1.0 / (i as f64 + 1.0))
            })
            .collect();
        let perm: Vec<usize> = (0..dim).map(|i| (i * 7) % dim).collect();
        let apply = |q: ArrayView2<f64>| {
            let mut out = Array2::zeros(q.dim());
            for (i, &p) in perm.iter().enumerate() {
                out.row_mut(p).assign(&(&q.row(p) * diag[i]));
            }
            out
        };
        let (values, vectors) = dominant(apply, dim, 2, 8, 7, 1);
        assert!((values[0] - 10.0).abs() < 1e-9 && (values[1] - 5.0).abs() < 1e-9);
        assert!((vectors[[perm[0], 0]].abs() - 1.0).abs() < 1e-9);
        assert!((vectors[[perm[1], 1]].abs() - 1.0).abs() < 1e-9);
    }
}
