//! The simple models the CNN is compared with, fitted on a training fold's selected, imputed
//! and normalised features (no images) and giving class probabilities for the test fold.

use anyhow::{Result, anyhow};
use linfa::prelude::*;
use linfa_logistic::MultiLogisticRegression;
use ndarray::{Array1, Array2, ArrayView2};
use smartcore::ensemble::random_forest_classifier::{
    RandomForestClassifier, RandomForestClassifierParameters,
};
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;

use super::settings::{Baseline, EvaluateSettings};

/// Class probabilities (rows of `n_classes`) of each `test` row, from `baseline` fitted on
/// `train` with its labels.
pub fn fit_predict(
    baseline: Baseline,
    settings: &EvaluateSettings,
    train: ArrayView2<f32>,
    labels: &[usize],
    test: ArrayView2<f32>,
    n_classes: usize,
    seed: u64,
) -> Result<Vec<Vec<f32>>> {
    match baseline {
        Baseline::Majority => Ok(majority(labels, test.nrows(), n_classes)),
        Baseline::Logistic => logistic(settings, train, labels, test, n_classes),
        Baseline::RandomForest => forest(settings, train, labels, test, n_classes, seed),
    }
}

/// Probability 1 for the most common training class (the lowest index among ties).
fn majority(labels: &[usize], rows: usize, n_classes: usize) -> Vec<Vec<f32>> {
    let mut counts = vec![0usize; n_classes];
    for &l in labels {
        counts[l] += 1;
    }
    let best = (0..n_classes)
        .max_by_key(|&c| (counts[c], std::cmp::Reverse(c)))
        .unwrap_or(0);
    let mut p = vec![0.0; n_classes];
    p[best] = 1.0;
    vec![p; rows]
}

fn as_f64(x: ArrayView2<f32>) -> Array2<f64> {
    x.mapv(f64::from)
}

fn logistic(
    settings: &EvaluateSettings,
    train: ArrayView2<f32>,
    labels: &[usize],
    test: ArrayView2<f32>,
    n_classes: usize,
) -> Result<Vec<Vec<f32>>> {
    let data = Dataset::new(as_f64(train), Array1::from(labels.to_vec()));
    let fitted = MultiLogisticRegression::default()
        .alpha(settings.logistic_alpha)
        .max_iterations(500)
        .fit(&data)
        .map_err(|e| anyhow!("logistic regression: {e}"))?;
    let p = fitted.predict_probabilities(&as_f64(test));
    // Columns follow the classes present in training; an absent class gets 0.
    let present = fitted.classes().to_vec();
    Ok(p.outer_iter()
        .map(|row| {
            let mut out = vec![0.0f32; n_classes];
            for (j, &c) in present.iter().enumerate() {
                out[c] = row[j] as f32;
            }
            out
        })
        .collect())
}

/// A random forest as scikit-learn grows one: bootstrap samples, fully grown Gini trees, and
/// sqrt(features) candidates drawn at every split (smartcore's trees). Each tree is fitted as a
/// forest of one so that its vote can be read, and the probabilities are the share of trees
/// voting for each class.
fn forest(
    settings: &EvaluateSettings,
    train: ArrayView2<f32>,
    labels: &[usize],
    test: ArrayView2<f32>,
    n_classes: usize,
    seed: u64,
) -> Result<Vec<Vec<f32>>> {
    let matrix = |x: ArrayView2<f32>| -> Result<DenseMatrix<f64>> {
        let rows: Vec<Vec<f64>> = x
            .outer_iter()
            .map(|r| r.iter().map(|&v| f64::from(v)).collect())
            .collect();
        DenseMatrix::from_2d_vec(&rows).map_err(|e| anyhow!("random forest: {e}"))
    };
    let (train, test) = (matrix(train)?, matrix(test)?);
    let y: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
    let mut votes = vec![vec![0.0f32; n_classes]; test.shape().0];
    for tree in 0..settings.forest_trees {
        let params = RandomForestClassifierParameters::default()
            .with_n_trees(1)
            .with_seed(seed.wrapping_mul(1_000_003).wrapping_add(tree as u64));
        let one = RandomForestClassifier::fit(&train, &y, params)
            .map_err(|e| anyhow!("random forest: {e}"))?;
        let predicted: Vec<u32> = one
            .predict(&test)
            .map_err(|e| anyhow!("random forest: {e}"))?;
        for (row, &c) in votes.iter_mut().zip(&predicted) {
            row[c as usize] += 1.0;
        }
    }
    let trees = settings.forest_trees as f32;
    for row in &mut votes {
        row.iter_mut().for_each(|v| *v /= trees);
    }
    Ok(votes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Metrics;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    /// Two classes separated along the first of 6 features, the rest noise.
    fn planted(n: usize, seed: u64) -> (Array2<f32>, Vec<usize>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let noise = Normal::new(0.0f32, 0.1).unwrap();
        let labels: Vec<usize> = (0..n).map(|i| i % 2).collect();
        let x = Array2::from_shape_fn((n, 6), |(i, j)| {
            let signal = if j == 0 {
                labels[i] as f32 * 0.6 + 0.2
            } else {
                0.5
            };
            signal + noise.sample(&mut rng)
        });
        (x, labels)
    }

    fn accuracy(baseline: Baseline, x: &Array2<f32>, labels: &[usize]) -> f64 {
        let settings = EvaluateSettings {
            forest_trees: 50,
            ..EvaluateSettings::default()
        };
        let (train, test) = (
            x.slice(ndarray::s![..60, ..]),
            x.slice(ndarray::s![60.., ..]),
        );
        let p = fit_predict(baseline, &settings, train, &labels[..60], test, 2, 7).unwrap();
        Metrics::from_probabilities(&labels[60..], &p, 2).accuracy
    }

    #[test]
    fn baselines_separate_a_planted_signal_and_fall_to_chance_without_one() {
        let (x, labels) = planted(100, 1);
        for b in [Baseline::Logistic, Baseline::RandomForest] {
            assert!(accuracy(b, &x, &labels) >= 0.95, "{b:?} on a separable set");
        }
        // Labels permuted at random: no feature says anything about them.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut permuted = labels.clone();
        use rand::seq::SliceRandom;
        permuted.shuffle(&mut rng);
        for b in [Baseline::Logistic, Baseline::RandomForest] {
            let a = accuracy(b, &x, &permuted);
            assert!(a <= 0.75, "{b:?} found signal in permuted labels: {a}");
        }
        assert_eq!(accuracy(Baseline::Majority, &x, &labels), 0.5);
    }

    #[test]
    fn probabilities_cover_every_class_and_sum_to_one() {
        let (x, labels) = planted(40, 2);
        let settings = EvaluateSettings::default();
        for b in [
            Baseline::Majority,
            Baseline::Logistic,
            Baseline::RandomForest,
        ] {
            // Three classes, one absent from training.
            let p = fit_predict(b, &settings, x.view(), &labels, x.view(), 3, 1).unwrap();
            for row in p {
                assert_eq!(row.len(), 3);
                assert!(
                    (row.iter().sum::<f32>() - 1.0).abs() < 1e-4,
                    "{b:?}: {row:?}"
                );
                assert_eq!(row[2], 0.0, "{b:?}");
            }
        }
    }
}
