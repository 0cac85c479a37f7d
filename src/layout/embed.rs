//! 2-D embeddings of features: each feature is a point whose coordinates are its values over
//! the training samples.

use anyhow::{Result, bail};
use std::collections::HashMap;

use ndarray::{Array2, ArrayView2, Axis};

use super::pca;
use super::settings::{EmbedMethod, LayoutSettings, Metric, TsneInit};
use super::tsne::{self, Init, TsneParams};

/// Settings of the embedding, copied from the layout config.
#[derive(Debug, Clone, Copy)]
pub struct EmbedSettings {
    pub method: EmbedMethod,
    pub perplexity: f64,
    pub iterations: usize,
    pub metric: Metric,
    pub learning_rate: Option<f64>,
    pub init: TsneInit,
    pub gamma: Option<f64>,
    pub seed: u64,
}

impl EmbedSettings {
    pub fn new(config: &LayoutSettings, seed: u64) -> Self {
        Self {
            method: config.method,
            perplexity: config.perplexity,
            iterations: config.iterations,
            metric: config.metric,
            learning_rate: config.learning_rate,
            init: config.init,
            gamma: config.gamma,
            seed: config.seed.unwrap_or(seed),
        }
    }
}

/// An embedding and what the method reports about its quality.
pub struct Embedded {
    pub coordinates: Array2<f64>,
    /// Final KL divergence of t-SNE.
    pub kl_divergence: Option<f64>,
}

/// Embeds the rows of `points` (features x samples) in 2-D.
pub fn embed(points: ArrayView2<f32>, settings: &EmbedSettings) -> Result<Embedded> {
    let n = points.nrows();
    if n < 3 {
        bail!("a layout needs at least 3 features, got {n}");
    }
    let plain = |coordinates| Embedded {
        coordinates,
        kl_divergence: None,
    };
    match settings.method {
        EmbedMethod::Pca => Ok(plain(pca::pca(points, settings.seed))),
        EmbedMethod::Kpca => {
            let gamma = settings
                .gamma
                .unwrap_or_else(|| pca::default_gamma(points.ncols()));
            Ok(plain(pca::kernel_pca(points, gamma, settings.seed)?))
        }
        EmbedMethod::Tsne => Ok(tsne_embed(points, settings)),
        EmbedMethod::Precomputed => bail!("precomputed coordinates are read, not embedded"),
    }
}

/// Scales each row to unit length, after centring it for the correlation metric. The squared
/// Euclidean distance between such rows is 2 x the cosine (or correlation) distance, and t-SNE's
/// perplexity search is blind to a constant factor on distances: the affinities are exactly
/// those of scikit-learn's `metric="cosine"`, which pyDeepInsight uses.
fn unit_rows(x: ArrayView2<f32>, metric: Metric) -> Array2<f32> {
    // Row-major whatever the input's order: every later stage reads whole rows.
    let mut x = x.as_standard_layout().into_owned();
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

/// Distinct rows and, for each input row, the index of its distinct row.
fn distinct_rows(x: &Array2<f32>) -> (Array2<f32>, Vec<usize>) {
    let mut index: HashMap<Vec<u32>, usize> = HashMap::new();
    let mut keep = Vec::new();
    let map = x
        .rows()
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            let key: Vec<u32> = row.iter().map(|v| v.to_bits()).collect();
            *index.entry(key).or_insert_with(|| {
                keep.push(i);
                keep.len() - 1
            })
        })
        .collect();
    (x.select(Axis(0), &keep), map)
}

/// t-SNE of the distinct profiles; features with the same profile share its position (they
/// carry the same information, and a zero distance says nothing about where to put them).
fn tsne_embed(x: ArrayView2<f32>, settings: &EmbedSettings) -> Embedded {
    let (distinct, map) = distinct_rows(&unit_rows(x, settings.metric));
    let n = distinct.nrows();
    if n < 3 {
        // One or two profiles: nothing to optimise; put them on a line.
        return Embedded {
            coordinates: Array2::from_shape_fn((map.len(), 2), |(i, k)| {
                if k == 0 { map[i] as f64 } else { 0.0 }
            }),
            kl_divergence: None,
        };
    }
    // Each point needs 3 x perplexity neighbours: small layouts get a smaller perplexity.
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
    let params = TsneParams {
        perplexity,
        iterations: settings.iterations,
        learning_rate: settings.learning_rate,
        init: match settings.init {
            TsneInit::Pca => Init::Pca,
            TsneInit::Random => Init::Random,
        },
        seed: settings.seed,
        ..TsneParams::default()
    };
    let fitted = tsne::fit(distinct.view(), &params);
    Embedded {
        coordinates: fitted.coordinates.select(Axis(0), &map),
        kl_divergence: Some(fitted.kl_divergence),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn unit_rows_give_cosine_and_correlation_geometry() {
        let x = array![[3.0f32, 4.0], [6.0, 8.0], [1.0, 3.0]];
        let cos = unit_rows(x.view(), Metric::Cosine);
        assert_eq!(
            cos.row(0),
            cos.row(1),
            "parallel rows coincide under cosine"
        );
        assert!((cos.row(2).dot(&cos.row(2)) - 1.0).abs() < 1e-6);
        let corr = unit_rows(x.view(), Metric::Correlation);
        // After centring, [3, 4], [6, 8] and [1, 3] all point along (-1, 1).
        assert!((corr.row(0).dot(&corr.row(2)) - 1.0).abs() < 1e-6);
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
            iterations: 250,
            ..EmbedSettings::new(&LayoutSettings::default(), 1)
        };
        let e = embed(x.view(), &settings).unwrap().coordinates;
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
