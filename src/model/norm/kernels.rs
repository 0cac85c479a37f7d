//! BatchNorm over contiguous NCHW `f32` buffers, with the ReLU and the residual addition that
//! follow it in a ResNet block, in one pass over the activations each way.
//!
//! Burn's default BatchNorm on Flex is a chain of element-wise tensor ops: about eight full
//! passes forward and ten backward, each allocating its output. Here the forward reads the
//! input twice (mean, then the centred variance) and writes the output once; the backward
//! reads twice and writes once.
//!
//! Every per-channel sum runs in one fixed order (images in order, eight lanes within a row,
//! rows added in f64), whatever the thread count: the same bits on one thread and on two.

use rayon::prelude::*;

/// The shape of one BatchNorm: `images` x `channels` x `pixels` (H x W).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub images: usize,
    pub channels: usize,
    pub pixels: usize,
}

impl Shape {
    pub fn len(&self) -> usize {
        self.images * self.channels * self.pixels
    }

    /// Values per channel.
    fn count(&self) -> usize {
        self.images * self.pixels
    }

    /// Channel `c`'s rows: one run of `pixels` values per image.
    fn rows<'a>(&self, data: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> {
        let (channels, pixels) = (self.channels, self.pixels);
        (0..self.images).map(move |i| &data[(i * channels + c) * pixels..][..pixels])
    }
}

/// What follows the normalisation: `relu(bn(x) + residual)` in general.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epilogue {
    pub residual: bool,
    pub relu: bool,
}

/// The batch statistics of a training-mode forward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Statistics {
    pub mean: Vec<f32>,
    /// Biased (divided by the count), as Burn's BatchNorm keeps it.
    pub variance: Vec<f32>,
}

/// Sum of `f(v)` over a row, in eight independent lanes (so it vectorises) added in f64.
fn row_sum(row: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut lanes = [0.0f32; 8];
    let chunks = row.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += f(v);
        }
    }
    lanes.iter().map(|&l| f64::from(l)).sum::<f64>() + f64::from(tail)
}

/// Each channel's mean and biased variance (centred, two passes).
pub fn statistics(shape: Shape, x: &[f32]) -> Statistics {
    let n = shape.count() as f64;
    let (mean, variance) = (0..shape.channels)
        .into_par_iter()
        .map(|c| {
            let mean = (shape.rows(x, c).map(|r| row_sum(r, |v| v)).sum::<f64>() / n) as f32;
            let variance = shape
                .rows(x, c)
                .map(|r| row_sum(r, |v| (v - mean) * (v - mean)))
                .sum::<f64>()
                / n;
            (mean, variance as f32)
        })
        .unzip();
    Statistics { mean, variance }
}

/// Per channel, the scale and shift that normalise and apply gamma and beta:
/// `y = x * scale + shift`.
pub fn affine(
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    variance: &[f32],
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>) {
    gamma
        .iter()
        .zip(beta)
        .zip(mean.iter().zip(variance))
        .map(|((&g, &b), (&m, &v))| {
            let scale = g / (v + epsilon as f32).sqrt();
            (scale, b - m * scale)
        })
        .unzip()
}

/// `y = relu?(x * scale + shift + residual?)`, per channel.
pub fn forward(
    shape: Shape,
    x: &[f32],
    scale: &[f32],
    shift: &[f32],
    residual: Option<&[f32]>,
    relu: bool,
    y: &mut [f32],
) {
    y.par_chunks_mut(shape.pixels)
        .enumerate()
        .for_each(|(row, out)| {
            let c = row % shape.channels;
            let (s, t) = (scale[c], shift[c]);
            let input = &x[row * shape.pixels..][..shape.pixels];
            match residual {
                Some(r) => {
                    let r = &r[row * shape.pixels..][..shape.pixels];
                    for ((o, &v), &r) in out.iter_mut().zip(input).zip(r) {
                        *o = v * s + t + r;
                    }
                }
                None => {
                    for (o, &v) in out.iter_mut().zip(input) {
                        *o = v * s + t;
                    }
                }
            }
            if relu {
                for o in out.iter_mut() {
                    *o = o.max(0.0);
                }
            }
        });
}

/// The gradient that reaches the normalisation's output: `dy` where the ReLU passed its input
/// (`y > 0`), zero elsewhere. Also the residual's gradient.
pub fn through_relu(dy: &[f32], y: &[f32]) -> Vec<f32> {
    let mut g = vec![0.0; dy.len()];
    g.par_chunks_mut(4096)
        .zip(dy.par_chunks(4096).zip(y.par_chunks(4096)))
        .for_each(|(g, (dy, y))| {
            for ((g, &d), &y) in g.iter_mut().zip(dy).zip(y) {
                *g = if y > 0.0 { d } else { 0.0 };
            }
        });
    g
}

/// Gradients of a training-mode BatchNorm given `g`, the gradient of its output:
/// `dx` is written, and gamma's and beta's gradients returned.
pub fn backward(
    shape: Shape,
    x: &[f32],
    g: &[f32],
    gamma: &[f32],
    statistics: &Statistics,
    epsilon: f64,
    dx: &mut [f32],
) -> (Vec<f32>, Vec<f32>) {
    let inv_std: Vec<f32> = statistics
        .variance
        .iter()
        .map(|&v| 1.0 / (v + epsilon as f32).sqrt())
        .collect();
    // Per channel: sum of g (beta's gradient) and of g * x_hat (gamma's).
    let (d_gamma, d_beta): (Vec<f32>, Vec<f32>) = (0..shape.channels)
        .into_par_iter()
        .map(|c| {
            let (m, s) = (statistics.mean[c], inv_std[c]);
            let (mut d_gamma, mut d_beta) = (0.0f64, 0.0f64);
            for (xr, gr) in shape.rows(x, c).zip(shape.rows(g, c)) {
                d_beta += row_sum(gr, |v| v);
                d_gamma += dot(xr, gr, m, s);
            }
            (d_gamma as f32, d_beta as f32)
        })
        .unzip();
    let n = shape.count() as f32;
    dx.par_chunks_mut(shape.pixels)
        .enumerate()
        .for_each(|(row, out)| {
            let c = row % shape.channels;
            let (m, s) = (statistics.mean[c], inv_std[c]);
            let k = gamma[c] * s;
            let (mean_g, mean_gx) = (d_beta[c] / n, d_gamma[c] / n);
            let xr = &x[row * shape.pixels..][..shape.pixels];
            let gr = &g[row * shape.pixels..][..shape.pixels];
            for ((o, &xv), &gv) in out.iter_mut().zip(xr).zip(gr) {
                *o = k * (gv - mean_g - (xv - m) * s * mean_gx);
            }
        });
    (d_gamma, d_beta)
}

/// Sum of `g * (x - m) * s` over a row, in eight lanes added in f64.
fn dot(x: &[f32], g: &[f32], m: f32, s: f32) -> f64 {
    let mut lanes = [0.0f32; 8];
    let (xc, gc) = (x.chunks_exact(8), g.chunks_exact(8));
    let tail: f32 = xc
        .remainder()
        .iter()
        .zip(gc.remainder())
        .map(|(&xv, &gv)| gv * (xv - m) * s)
        .sum();
    for (xs, gs) in xc.zip(gc) {
        for ((lane, &xv), &gv) in lanes.iter_mut().zip(xs).zip(gs) {
            *lane += gv * (xv - m) * s;
        }
    }
    lanes.iter().map(|&l| f64::from(l)).sum::<f64>() + f64::from(tail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-2.0..3.0)).collect()
    }

    /// The statistics equal the definition, computed naively in f64.
    #[test]
    fn statistics_are_the_mean_and_biased_variance() {
        let shape = Shape {
            images: 3,
            channels: 4,
            pixels: 13,
        };
        let x = random(shape.len(), 1);
        let stats = statistics(shape, &x);
        for c in 0..4 {
            let values: Vec<f64> = shape.rows(&x, c).flatten().map(|&v| f64::from(v)).collect();
            let mean = values.iter().sum::<f64>() / 39.0;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 39.0;
            assert!(
                (f64::from(stats.mean[c]) - mean).abs() < 1e-6,
                "channel {c}"
            );
            assert!(
                (f64::from(stats.variance[c]) - var).abs() < 1e-5,
                "channel {c}"
            );
        }
    }

    /// The backward pass is the forward's adjoint: for a small step along a random direction,
    /// <dL/dx, v> matches the change in L = <probe, y>, with the ReLU and the residual on.
    #[test]
    fn backward_matches_finite_differences() {
        let shape = Shape {
            images: 2,
            channels: 3,
            pixels: 10,
        };
        let (gamma, beta) = (vec![0.7, 1.3, -0.4], vec![0.1, -0.2, 0.3]);
        let x = random(shape.len(), 2);
        let residual = random(shape.len(), 3);
        let probe = random(shape.len(), 4);
        let direction = random(shape.len(), 5);
        let loss = |x: &[f64]| -> f64 {
            let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let stats = statistics(shape, &xf);
            let (scale, shift) = affine(&gamma, &beta, &stats.mean, &stats.variance, 1e-5);
            let mut y = vec![0.0; shape.len()];
            forward(shape, &xf, &scale, &shift, Some(&residual), true, &mut y);
            y.iter().zip(&probe).map(|(&a, &b)| f64::from(a * b)).sum()
        };
        let stats = statistics(shape, &x);
        let (scale, shift) = affine(&gamma, &beta, &stats.mean, &stats.variance, 1e-5);
        let mut y = vec![0.0; shape.len()];
        forward(shape, &x, &scale, &shift, Some(&residual), true, &mut y);
        let g = through_relu(&probe, &y);
        let mut dx = vec![0.0; shape.len()];
        backward(shape, &x, &g, &gamma, &stats, 1e-5, &mut dx);
        let h = 1e-3;
        let at = |sign: f64| -> Vec<f64> {
            x.iter()
                .zip(&direction)
                .map(|(&a, &d)| f64::from(a) + sign * h * f64::from(d))
                .collect()
        };
        let numeric = (loss(&at(1.0)) - loss(&at(-1.0))) / (2.0 * h);
        let analytic: f64 = dx
            .iter()
            .zip(&direction)
            .map(|(&a, &d)| f64::from(a * d))
            .sum();
        assert!(
            (numeric - analytic).abs() < 2e-2 * numeric.abs().max(1.0),
            "finite difference {numeric}, backward {analytic}"
        );
    }

    /// Statistics, output and gradients are the same bits on one thread and on two.
    #[test]
    fn the_same_bits_at_one_and_two_threads() {
        let shape = Shape {
            images: 7,
            channels: 9,
            pixels: 37,
        };
        let (x, r, dy) = (
            random(shape.len(), 6),
            random(shape.len(), 7),
            random(shape.len(), 8),
        );
        let gamma = random(9, 9);
        let run = |threads: usize| {
            crate::model::flex::on_threads(threads, || {
                let stats = statistics(shape, &x);
                let (scale, shift) = affine(&gamma, &gamma, &stats.mean, &stats.variance, 1e-5);
                let mut y = vec![0.0; shape.len()];
                forward(shape, &x, &scale, &shift, Some(&r), true, &mut y);
                let g = through_relu(&dy, &y);
                let mut dx = vec![0.0; shape.len()];
                let (dg, db) = backward(shape, &x, &g, &gamma, &stats, 1e-5, &mut dx);
                [stats.mean, stats.variance, y, dx, dg, db]
                    .map(|v| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>())
            })
        };
        assert_eq!(run(1), run(2));
    }
}
