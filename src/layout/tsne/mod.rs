//! Barnes-Hut t-SNE (van der Maaten 2014) with scikit-learn's optimiser settings, written to
//! be deterministic at any thread count and parallel where the time goes.
//!
//! Where the time goes (see `deepinsight bench layout`): exact neighbour search is one GEMM of
//! the data with itself; each of the 1,000 gradient steps builds a quadtree (O(n log n),
//! serial) and walks it once per point (parallel). Every per-point quantity is computed by
//! one task from data fixed before the step, and sums over points are taken in index order,
//! so the thread schedule never changes a bit of the result.

pub(crate) mod affinity;
mod attraction;
pub(crate) mod neighbours;
pub(crate) mod tree;

use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use affinity::Sparse;
use attraction::Attraction;
use tree::QuadTree;

/// How the embedding starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// The first two principal components (scikit-learn's default since 1.2).
    Pca,
    /// Gaussian noise from the seed.
    Random,
}

#[derive(Debug, Clone, Copy)]
pub struct TsneParams {
    pub perplexity: f64,
    pub iterations: usize,
    /// None: scikit-learn's "auto", max(n / early_exaggeration / 4, 50).
    pub learning_rate: Option<f64>,
    pub early_exaggeration: f64,
    pub exaggeration_iterations: usize,
    pub theta: f64,
    pub init: Init,
    pub seed: u64,
}

impl Default for TsneParams {
    fn default() -> Self {
        Self {
            perplexity: 30.0,
            iterations: 1000,
            learning_rate: None,
            early_exaggeration: 12.0,
            exaggeration_iterations: 250,
            theta: 0.5,
            init: Init::Pca,
            seed: 0,
        }
    }
}

/// Result of a fit: coordinates (n x 2) and the final KL divergence (Barnes-Hut estimate).
pub struct Embedding {
    pub coordinates: Array2<f64>,
    pub kl_divergence: f64,
}

/// Embeds the rows of `x` in 2-D, with Euclidean input distances. Needs at least 3 rows; the
/// perplexity must be below (n - 1) / 3.
pub fn fit(x: ArrayView2<f32>, params: &TsneParams) -> Embedding {
    let n = x.nrows();
    let k = ((3.0 * params.perplexity + 1.0) as usize).min(n - 1);
    let _span = tracing::info_span!("tsne", points = n, neighbours = k).entered();
    let started = std::time::Instant::now();
    let nb = neighbours::nearest(x, k);
    let p = affinity::joint(&nb, params.perplexity);
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "affinities");
    let y = initial(x, params);
    let y = optimise(&p, y, params);
    let kl_divergence = kl(&p, &y);
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        kl_divergence,
        "t-SNE done"
    );
    Embedding {
        coordinates: Array2::from_shape_vec((n, 2), y).expect("n x 2 coordinates"),
        kl_divergence,
    }
}

/// Starting coordinates, interleaved (x, y), with standard deviation 1e-4 on the first axis.
fn initial(x: ArrayView2<f32>, params: &TsneParams) -> Vec<f64> {
    let n = x.nrows();
    let start = match params.init {
        Init::Pca => super::pca::pca(x, params.seed),
        Init::Random => {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(params.seed);
            Array2::from_shape_fn((n, 2), |_| StandardNormal.sample(&mut rng))
        }
    };
    let col = start.column(0);
    let mean = col.sum() / n as f64;
    let sd = (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
    let scale = if sd > 0.0 { 1e-4 / sd } else { 1e-4 };
    start.iter().map(|v| v * scale).collect()
}

fn optimise(p: &Sparse, mut y: Vec<f64>, params: &TsneParams) -> Vec<f64> {
    let n = y.len() / 2;
    let rate = params
        .learning_rate
        .unwrap_or_else(|| (n as f64 / params.early_exaggeration / 4.0).max(50.0));
    let mut update = vec![0.0; 2 * n];
    let mut gains = vec![1.0f64; 2 * n];
    let mut grad = vec![0.0; 2 * n];
    let attraction = Attraction::new(p);
    for it in 0..params.iterations {
        let early = it < params.exaggeration_iterations;
        let exaggeration = if early {
            params.early_exaggeration
        } else {
            1.0
        };
        let momentum = if early { 0.5 } else { 0.8 };
        gradient(&attraction, &y, exaggeration, params.theta, &mut grad);
        for c in 0..2 * n {
            // Delta-bar-delta gains as in scikit-learn's _gradient_descent.
            gains[c] = if update[c] * grad[c] < 0.0 {
                gains[c] + 0.2
            } else {
                (gains[c] * 0.8).max(0.01)
            };
            update[c] = momentum * update[c] - rate * gains[c] * grad[c];
            y[c] += update[c];
        }
        if it % 250 == 249 {
            tracing::debug!(iteration = it + 1, "t-SNE step");
        }
    }
    y
}

/// KL gradient: 4 (exaggeration * attraction - repulsion / Z), scikit-learn's scaling.
fn gradient(p: &Attraction, y: &[f64], exaggeration: f64, theta: f64, grad: &mut [f64]) {
    let repulsion = QuadTree::new(y).repulsion(theta);
    let y32: Vec<f32> = y.iter().map(|&v| v as f32).collect();
    let z: f64 = repulsion
        .iter()
        .map(|r| r.2)
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);
    grad.par_chunks_mut(2)
        .zip(repulsion.par_iter())
        .enumerate()
        .for_each(|(i, (g, &(rx, ry, _)))| {
            let (ax, ay) = p.force(&y32, i);
            g[0] = 4.0 * (exaggeration * ax - rx / z);
            g[1] = 4.0 * (exaggeration * ay - ry / z);
        });
}

/// KL(P || Q) over the non-zero entries of P, with Z from the tree.
fn kl(p: &Sparse, y: &[f64]) -> f64 {
    let z: f64 = QuadTree::new(y).repulsion(0.5).iter().map(|r| r.2).sum();
    (0..y.len() / 2)
        .map(|i| {
            let (cols, vals) = p.row(i);
            cols.iter()
                .zip(vals)
                .filter(|&(_, &pij)| pij > 0.0)
                .map(|(&j, &pij)| {
                    let j = j as usize;
                    let (dx, dy) = (y[2 * i] - y[2 * j], y[2 * i + 1] - y[2 * j + 1]);
                    let q = 1.0 / (1.0 + dx * dx + dy * dy) / z;
                    pij * (pij / q.max(f64::MIN_POSITIVE)).ln()
                })
                .sum::<f64>()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Three well-separated Gaussian clusters in 20 dimensions.
    fn clusters(n_per: usize) -> (Array2<f32>, Vec<usize>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut labels = vec![];
        let x = Array2::from_shape_fn((3 * n_per, 20), |(i, j)| {
            let c = i / n_per;
            let centre = if j % 3 == c { 5.0 } else { 0.0 };
            centre + rng.random_range(-1.0f32..1.0)
        });
        labels.extend((0..3 * n_per).map(|i| i / n_per));
        (x, labels)
    }

    #[test]
    fn clusters_stay_apart() {
        let (x, labels) = clusters(60);
        let params = TsneParams {
            iterations: 500,
            perplexity: 15.0,
            ..Default::default()
        };
        let e = fit(x.view(), &params);
        let y = &e.coordinates;
        // Every point's nearest embedded neighbour is in its own cluster.
        for i in 0..y.nrows() {
            let nearest = (0..y.nrows())
                .filter(|&j| j != i)
                .min_by(|&a, &b| {
                    let d = |j: usize| {
                        (y[[i, 0]] - y[[j, 0]]).powi(2) + (y[[i, 1]] - y[[j, 1]]).powi(2)
                    };
                    d(a).total_cmp(&d(b))
                })
                .unwrap();
            assert_eq!(labels[i], labels[nearest], "point {i}");
        }
        assert!(
            e.kl_divergence.is_finite() && e.kl_divergence > 0.0 && e.kl_divergence < 2.0,
            "KL {}",
            e.kl_divergence
        );
    }

    #[test]
    fn same_layout_at_one_and_two_threads() {
        let (x, _) = clusters(400); // 1,200 points: several neighbour blocks and tree levels
        let params = TsneParams {
            iterations: 120,
            exaggeration_iterations: 60,
            ..Default::default()
        };
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| fit(x.view(), &params).coordinates)
        };
        let (one, two) = (run(1), run(2));
        assert!(
            one.iter()
                .zip(two.iter())
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
        let random = TsneParams {
            init: Init::Random,
            seed: 3,
            ..params
        };
        let r1 = fit(x.view(), &random).coordinates;
        assert_eq!(
            r1,
            fit(x.view(), &random).coordinates,
            "same seed, same layout"
        );
        assert_ne!(
            r1,
            fit(x.view(), &TsneParams { seed: 4, ..random }).coordinates
        );
    }
}
