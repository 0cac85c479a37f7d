//! Exact k nearest neighbours by squared Euclidean distance, from blocked matrix products.
//!
//! Exact search keeps the layout deterministic and needs no index: the distances of a block of
//! rows to all rows come from one GEMM (`|a|^2 + |b|^2 - 2 a.b`), so the cost is that of
//! multiplying the data by itself, which the BLAS-like kernels do at close to peak speed.
//! Blocks have a fixed size whatever the number of threads, so every distance, and so every
//! neighbour list, is the same bit for bit at any thread count.

use ndarray::{Array2, ArrayView2, Axis, s};
use rayon::prelude::*;

/// Rows per block: 256 rows x 20,000 points of f32 is 20 MB per thread.
const BLOCK: usize = 256;

/// The `k` nearest other rows of each row of `x`: indices and squared distances, row-major
/// (n x k), nearest first; ties go to the lower index.
pub struct Neighbours {
    pub k: usize,
    pub index: Vec<u32>,
    pub distance: Vec<f32>,
}

pub fn nearest(x: ArrayView2<f32>, k: usize) -> Neighbours {
    let n = x.nrows();
    assert!(k < n, "k = {k} neighbours need more than {n} points");
    let norms: Vec<f32> = x.rows().into_iter().map(|r| r.dot(&r)).collect();
    let xt = x.t();
    let mut index = vec![0u32; n * k];
    let mut distance = vec![0f32; n * k];
    index
        .par_chunks_mut(BLOCK * k)
        .zip(distance.par_chunks_mut(BLOCK * k))
        .enumerate()
        .for_each(|(b, (idx_out, dist_out))| {
            let start = b * BLOCK;
            let rows = x.slice(s![start..(start + BLOCK).min(n), ..]);
            let dots: Array2<f32> = rows.dot(&xt);
            let mut candidates: Vec<(f32, u32)> = Vec::with_capacity(n);
            for (r, dot_row) in dots.axis_iter(Axis(0)).enumerate() {
                let i = start + r;
                candidates.clear();
                candidates.extend(dot_row.iter().enumerate().filter(|&(j, _)| j != i).map(
                    |(j, &d)| {
                        // Rounding can make a tiny distance negative; distances are >= 0.
                        ((norms[i] + norms[j] - 2.0 * d).max(0.0), j as u32)
                    },
                ));
                let by_distance =
                    |a: &(f32, u32), b: &(f32, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
                candidates.select_nth_unstable_by(k - 1, by_distance);
                candidates[..k].sort_unstable_by(by_distance);
                for (slot, &(d, j)) in candidates[..k].iter().enumerate() {
                    idx_out[r * k + slot] = j;
                    dist_out[r * k + slot] = d;
                }
            }
        });
    Neighbours { k, index, distance }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn matches_brute_force() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let n = 300; // more than one block
        let x = Array2::from_shape_fn((n, 7), |_| rng.random_range(-1.0f32..1.0));
        let k = 5;
        let nb = nearest(x.view(), k);
        for i in [0, 17, 255, 256, 299] {
            let mut brute: Vec<(f64, usize)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    let d: f64 = x
                        .row(i)
                        .iter()
                        .zip(x.row(j))
                        .map(|(a, b)| f64::from(a - b).powi(2))
                        .sum();
                    (d, j)
                })
                .collect();
            brute.sort_by(|a, b| a.0.total_cmp(&b.0));
            let got: Vec<usize> = nb.index[i * k..(i + 1) * k]
                .iter()
                .map(|&j| j as usize)
                .collect();
            let want: Vec<usize> = brute[..k].iter().map(|p| p.1).collect();
            assert_eq!(got, want, "neighbours of row {i}");
            for (slot, p) in brute[..k].iter().enumerate() {
                assert!((f64::from(nb.distance[i * k + slot]) - p.0).abs() < 1e-4);
            }
        }
    }
}
