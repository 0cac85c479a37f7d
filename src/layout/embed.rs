//! 2-D embeddings of features: each feature is a point whose coordinates are its values over
//! the training samples.

use anyhow::{Context, Result, bail};
use linfa::DatasetBase;
use linfa::traits::{Fit, Predict, Transformer};
use linfa_reduction::Pca;
use linfa_tsne::TSneParams;
use std::collections::HashMap;

use ndarray::{Array2, ArrayView2, Axis};
use ndarray_rand::rand::SeedableRng;
use ndarray_rand::rand::rngs::StdRng;

use crate::config::{EmbedMethod, Metric};

/// Settings of the embedding, copied from the layout config.
#[derive(Debug, Clone, Copy)]
pub struct EmbedSettings {
    pub method: EmbedMethod,
    pub perplexity: f64,
    pub iterations: usize,
    pub metric: Metric,
    pub seed: u64,
}

/// Embeds the rows of `points` (features x samples) in 2-D.
pub fn embed(points: ArrayView2<f32>, settings: &EmbedSettings) -> Result<Array2<f64>> {
    let n = points.nrows();
    if n < 3 {
        bail!("a layout needs at least 3 features, got {n}");
    }
    let x = points.mapv(f64::from);
    match settings.method {
        EmbedMethod::Pca => pca(x),
        EmbedMethod::Tsne => tsne(x, settings),
    }
}

fn pca(x: Array2<f64>) -> Result<Array2<f64>> {
    if x.ncols() < 2 {
        // One sample dimension: the second axis carries nothing.
        let mut out = Array2::zeros((x.nrows(), 2));
        out.column_mut(0).assign(&x.column(0));
        return Ok(out);
    }
    let dataset = DatasetBase::from(x);
    let model = Pca::params(2)
        .fit(&dataset)
        .context("PCA of the features failed")?;
    Ok(model.predict(dataset.records()))
}

/// Scales each row to unit length, after centring it for the correlation metric. Euclidean
/// distance between such rows is a monotone function of the cosine (or correlation) distance,
/// which is how the Barnes-Hut t-SNE here, Euclidean only, gets pyDeepInsight's cosine metric.
/// Bounded distances also keep the perplexity search from underflowing: with raw values in
/// hundreds of dimensions every Gaussian affinity rounds to zero, the affinities become NaN and
/// bhtsne's space-partitioning tree recurses until the stack overflows.
fn unit_rows(mut x: Array2<f64>, metric: Metric) -> Array2<f64> {
    for mut row in x.rows_mut() {
        if metric == Metric::Correlation {
            let mean = row.mean().unwrap_or(0.0);
            row -= mean;
        }
        let norm = row.dot(&row).sqrt();
        if norm > 0.0 {
            row /= norm;
        }
    }
    x
}

/// Largest number of distinct feature profiles embedded with exact (O(n^2)) t-SNE.
pub const EXACT_UP_TO: usize = 1000;

/// Distinct rows (to 1e-9) and, for each input row, the index of its distinct row.
fn distinct_rows(x: &Array2<f64>) -> (Array2<f64>, Vec<usize>) {
    let mut index: HashMap<Vec<i64>, usize> = HashMap::new();
    let mut keep = Vec::new();
    let map = x
        .rows()
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            let key: Vec<i64> = row.iter().map(|v| (v * 1e9).round() as i64).collect();
            *index.entry(key).or_insert_with(|| {
                keep.push(i);
                keep.len() - 1
            })
        })
        .collect();
    (x.select(Axis(0), &keep), map)
}

/// t-SNE of the distinct profiles; features with the same profile share its position.
/// Barnes-Hut t-SNE pulls duplicates onto the same spot, where bhtsne's tree never stops
/// splitting: embedding each profile once avoids that, and duplicates belong together anyway.
fn tsne(x: Array2<f64>, settings: &EmbedSettings) -> Result<Array2<f64>> {
    let (distinct, map) = distinct_rows(&unit_rows(x, settings.metric));
    if distinct.nrows() < 3 {
        // One or two profiles: nothing to optimise; put them on a line.
        return Ok(Array2::from_shape_fn((map.len(), 2), |(i, k)| {
            if k == 0 { map[i] as f64 } else { 0.0 }
        }));
    }
    let embedded = tsne_distinct(distinct, settings)?;
    Ok(embedded.select(Axis(0), &map))
}

fn tsne_distinct(x: Array2<f64>, settings: &EmbedSettings) -> Result<Array2<f64>> {
    let n = x.nrows();
    // Barnes-Hut t-SNE needs n - 1 >= 3 * perplexity; small layouts get a smaller perplexity.
    let max_perplexity = ((n - 1) as f64 / 3.0).max(1.0);
    let perplexity = if settings.perplexity > max_perplexity {
        tracing::warn!(
            requested = settings.perplexity,
            used = max_perplexity,
            features = n,
            "t-SNE perplexity lowered to fit the number of features"
        );
        max_perplexity
    } else {
        settings.perplexity
    };
    let rng = StdRng::seed_from_u64(settings.seed);
    // bhtsne's Barnes-Hut tree (theta > 0) recurses until the stack overflows on some inputs
    // with few points per neighbourhood (seen here with 120 and 200 random features in 300
    // dimensions at perplexity 30): below EXACT_UP_TO features use the exact gradient, which
    // has no tree. Above it the tree has held in every case tried (300 to 2,000 features).
    let theta = if n <= EXACT_UP_TO { 0.0 } else { 0.5 };
    TSneParams::embedding_size_with_rng(2, rng)
        .perplexity(perplexity)
        .approx_threshold(theta)
        .max_iter(settings.iterations)
        .transform(x)
        .context("t-SNE of the features failed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn unit_rows_give_cosine_and_correlation_geometry() {
        let x = array![[3.0, 4.0], [6.0, 8.0], [1.0, 3.0]];
        let cos = unit_rows(x.clone(), Metric::Cosine);
        assert_eq!(
            cos.row(0),
            cos.row(1),
            "parallel rows coincide under cosine"
        );
        assert!((cos.row(2).dot(&cos.row(2)) - 1.0).abs() < 1e-12);
        let corr = unit_rows(x, Metric::Correlation);
        // After centring, [3, 4], [6, 8] and [1, 3] all point along (-1, 1).
        assert!((corr.row(0).dot(&corr.row(2)) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn tsne_on_high_dimensional_features_is_finite() {
        // 120 features over 300 samples with values in [0, 1] (the case that made raw
        // Euclidean affinities underflow); rows 100.. repeat rows 0.. exactly.
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let mut x = Array2::from_shape_fn((120, 300), |_| rng.random_range(0.0f32..1.0));
        for i in 100..120 {
            let copy = x.row(i - 97).to_owned();
            x.row_mut(i).assign(&copy);
        }
        let settings = EmbedSettings {
            method: EmbedMethod::Tsne,
            perplexity: 30.0,
            iterations: 250,
            metric: Metric::Cosine,
            seed: 1,
        };
        let e = embed(x.view(), &settings).unwrap();
        assert_eq!(e.dim(), (120, 2));
        assert!(e.iter().all(|v| v.is_finite()));
        let spread = e.column(0).fold(f64::MIN, |a, &b| a.max(b))
            - e.column(0).fold(f64::MAX, |a, &b| a.min(b));
        assert!(
            spread > 1e-3,
            "points were spread out, not left at the start: {spread}"
        );
        assert_eq!(e.row(3), e.row(100), "duplicated features share a position");
        assert_ne!(e.row(3), e.row(4));
    }
}
