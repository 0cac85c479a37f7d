//! Exact k nearest neighbours by squared Euclidean distance, from blocked matrix products.
//!
//! Exact search keeps the layout deterministic and needs no index: the distances between two
//! blocks of rows come from one GEMM (`|a|^2 + |b|^2 - 2 a.b`), so the cost is that of
//! multiplying the data by itself, which the BLAS-like kernels do at close to peak speed.
//! Distances are symmetric, so only the tiles on and above the diagonal are multiplied, and
//! each off-diagonal tile offers its distances to both blocks' rows: half the products.
//! Each row keeps its k best candidates under a strict order (distance, then index), so the
//! lists do not depend on the order tiles arrive in: the same bit for bit at any thread
//! count. Memory is one tile per thread and the n x k lists.

use std::collections::BinaryHeap;
use std::sync::Mutex;

use ndarray::{ArrayView2, s};
use rayon::prelude::*;

/// Rows per block, and the tile is BLOCK x BLOCK.
const BLOCK: usize = 256;

/// The `k` nearest other rows of each row of `x`: indices and squared distances, row-major
/// (n x k), nearest first; ties go to the lower index.
pub struct Neighbours {
    pub k: usize,
    pub index: Vec<u32>,
    pub distance: Vec<f32>,
}

/// A candidate neighbour, ordered by distance and then index.
#[derive(Clone, Copy, PartialEq)]
struct Candidate(f32, u32);

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

/// The k best candidates of one row, worst on top.
struct Best {
    k: usize,
    heap: BinaryHeap<Candidate>,
}

impl Best {
    fn offer(&mut self, c: Candidate) {
        if self.heap.len() < self.k {
            self.heap.push(c);
        } else if let Some(mut worst) = self.heap.peek_mut()
            && c < *worst
        {
            *worst = c;
        }
    }
}

pub fn nearest(x: ArrayView2<f32>, k: usize) -> Neighbours {
    let n = x.nrows();
    assert!(k < n, "k = {k} neighbours need more than {n} points");
    let norms: Vec<f32> = x.rows().into_iter().map(|r| r.dot(&r)).collect();
    let blocks = n.div_ceil(BLOCK);
    let best: Vec<Mutex<Vec<Best>>> = (0..blocks)
        .map(|b| {
            let rows = (n - b * BLOCK).min(BLOCK);
            let lists = (0..rows)
                .map(|_| Best {
                    k,
                    heap: BinaryHeap::with_capacity(k + 1),
                })
                .collect();
            Mutex::new(lists)
        })
        .collect();
    let tiles: Vec<(usize, usize)> = (0..blocks)
        .flat_map(|b| (b..blocks).map(move |c| (b, c)))
        .collect();
    tiles.into_par_iter().for_each(|(b, c)| {
        let range = |b: usize| b * BLOCK..((b + 1) * BLOCK).min(n);
        let (rows, cols) = (range(b), range(c));
        let dots = x
            .slice(s![rows.clone(), ..])
            .dot(&x.slice(s![cols.clone(), ..]).t());
        // Rounding can make a tiny distance negative; distances are >= 0.
        let distance = |i: usize, j: usize, dot: f32| (norms[i] + norms[j] - 2.0 * dot).max(0.0);
        {
            let mut lists = best[b].lock().expect("no task panics holding the lists");
            for (r, (dot_row, list)) in dots.outer_iter().zip(lists.iter_mut()).enumerate() {
                let i = rows.start + r;
                for (j, &d) in cols.clone().zip(dot_row) {
                    if j != i {
                        list.offer(Candidate(distance(i, j, d), j as u32));
                    }
                }
            }
        }
        if c != b {
            let mut lists = best[c].lock().expect("no task panics holding the lists");
            for (r, (dot_col, list)) in dots.columns().into_iter().zip(lists.iter_mut()).enumerate()
            {
                let j = cols.start + r;
                for (i, &d) in rows.clone().zip(dot_col) {
                    list.offer(Candidate(distance(i, j, d), i as u32));
                }
            }
        }
    });
    let mut index = Vec::with_capacity(n * k);
    let mut distance = Vec::with_capacity(n * k);
    for block in best {
        for list in block.into_inner().expect("no task panicked") {
            for Candidate(d, j) in list.heap.into_sorted_vec() {
                index.push(j);
                distance.push(d);
            }
        }
    }
    Neighbours { k, index, distance }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};

    #[test]
    fn matches_brute_force() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let n = 600; // three blocks: diagonal and off-diagonal tiles, a short last block
        let x = Array2::from_shape_fn((n, 7), |_| rng.random_range(-1.0f32..1.0));
        let k = 5;
        let nb = nearest(x.view(), k);
        for i in [0, 17, 255, 256, 299, 511, 512, 599] {
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

    #[test]
    fn the_same_lists_at_one_and_two_threads_with_ties_to_the_lower_index() {
        // Rows repeat in runs of three, so many distances tie exactly.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let base = Array2::from_shape_fn((300, 5), |_| rng.random_range(-1.0f32..1.0));
        let x = Array2::from_shape_fn((900, 5), |(i, j)| base[[i / 3, j]]);
        let k = 7;
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let nb = pool.install(|| nearest(x.view(), k));
            let bits: Vec<u32> = nb.distance.iter().map(|d| d.to_bits()).collect();
            (nb.index, bits)
        };
        let one = run(1);
        assert_eq!(one, run(2));
        // Row 4's two copies (rows 3 and 5) come first, at distance 0, lower index first.
        assert_eq!(&one.0[4 * k..4 * k + 2], &[3, 5]);
        assert_eq!(one.1[4 * k], 0);
        for (idx, d) in one.0.chunks(k).zip(one.1.chunks(k)) {
            for s in 1..k {
                let (a, b) = (f32::from_bits(d[s - 1]), f32::from_bits(d[s]));
                assert!(
                    a < b || (a == b && idx[s - 1] < idx[s]),
                    "order at slot {s}"
                );
            }
        }
    }
}
