//! `[layout]`: how features are placed on the image.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum EmbedMethod {
    Pca,
    /// Kernel PCA with an RBF kernel.
    Kpca,
    #[default]
    Tsne,
    /// Coordinates read from `layout.coordinates`.
    Precomputed,
}

/// What happens when several features land on one pixel.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Collisions {
    /// Each feature goes to the pixel its position falls in; features sharing a pixel are
    /// averaged (pyDeepInsight's behaviour).
    #[default]
    Bin,
    /// Each axis first replaced by its quantiles (ranks), which spreads crowded regions, then
    /// binned.
    Quantile,
    /// One feature per pixel, with the least total squared displacement.
    Assign,
}

/// Starting point of the t-SNE optimisation.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum TsneInit {
    /// First two principal components (scikit-learn's default): the same layout for any seed.
    #[default]
    Pca,
    /// Gaussian noise drawn from the seed.
    Random,
}

/// Distance between features for t-SNE.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// pyDeepInsight's default.
    #[default]
    Cosine,
    /// Cosine of the centred profiles: features that rise and fall together.
    Correlation,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ChannelMode {
    /// One layout over all modalities, one image channel.
    Shared,
    /// One layout per modality, each in its own channel.
    #[default]
    Channels,
}

/// What decides where a feature goes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Arrange {
    /// One embedding of all the channel's features (DeepInsight).
    #[default]
    Embedding,
    /// Each pathway of `select.pathways` gets one rectangular block (a treemap, area in
    /// proportion to its features); its features are embedded inside the block.
    Pathways,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LayoutSettings {
    pub method: EmbedMethod,
    pub mode: ChannelMode,
    pub arrange: Arrange,
    pub height: usize,
    pub width: usize,
    pub perplexity: f64,
    pub iterations: usize,
    pub metric: Metric,
    pub collisions: Collisions,
    /// t-SNE step size; unset means scikit-learn's "auto", max(features / 48, 50).
    pub learning_rate: Option<f64>,
    pub init: TsneInit,
    /// RBF width of kernel PCA; unset means 1 / training samples (scikit-learn's default).
    pub gamma: Option<f64>,
    /// Table of feature coordinates for `method = "precomputed"`: columns `feature`, `x`, `y`
    /// and optionally `modality`.
    pub coordinates: Option<PathBuf>,
    /// Seed of the layout; unset means the pipeline's seed.
    pub seed: Option<u64>,
    /// Per-modality settings in `channels` mode, e.g. `[layout.modality.microbiome]`.
    pub modality: BTreeMap<String, ChannelOverride>,
}

/// Settings that may differ between channels.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct ChannelOverride {
    pub method: Option<EmbedMethod>,
    pub perplexity: Option<f64>,
    pub metric: Option<Metric>,
}

impl Default for LayoutSettings {
    fn default() -> Self {
        Self {
            method: EmbedMethod::default(),
            mode: ChannelMode::default(),
            arrange: Arrange::default(),
            // DeepInsight's images are 224 x 224, the size ImageNet networks take.
            height: 224,
            width: 224,
            perplexity: 30.0,
            iterations: 1000,
            metric: Metric::default(),
            collisions: Collisions::default(),
            learning_rate: None,
            init: TsneInit::default(),
            gamma: None,
            coordinates: None,
            seed: None,
            modality: BTreeMap::new(),
        }
    }
}

impl LayoutSettings {
    /// The settings of one modality's channel: the overrides of `[layout.modality.<name>]`
    /// over the layout's own.
    pub fn for_modality(&self, name: &str) -> LayoutSettings {
        let mut out = self.clone();
        if let Some(o) = self.modality.get(name) {
            out.method = o.method.unwrap_or(self.method);
            out.perplexity = o.perplexity.unwrap_or(self.perplexity);
            out.metric = o.metric.unwrap_or(self.metric);
        }
        out
    }

    /// Checks the section on its own; `modalities` are the names of `[data.modalities]`.
    pub fn validate(&self, modalities: &BTreeMap<String, PathBuf>) -> Result<()> {
        if self.height < 8 || self.width < 8 {
            bail!(
                "layout.height/layout.width: images must be at least 8x8, got {}x{}",
                self.height,
                self.width
            );
        }
        if self.perplexity.is_nan() || self.perplexity <= 0.0 {
            bail!(
                "layout.perplexity: must be positive, got {}",
                self.perplexity
            );
        }
        if let Some(rate) = self.learning_rate
            && !(rate > 0.0 && rate.is_finite())
        {
            bail!("layout.learning_rate: must be positive, got {rate}");
        }
        if let Some(gamma) = self.gamma
            && !(gamma > 0.0 && gamma.is_finite())
        {
            bail!("layout.gamma: must be positive, got {gamma}");
        }
        let precomputed = self.method == EmbedMethod::Precomputed
            || self
                .modality
                .values()
                .any(|o| o.method == Some(EmbedMethod::Precomputed));
        if precomputed && self.coordinates.is_none() {
            bail!("layout.coordinates: method = \"precomputed\" needs a coordinates table");
        }
        for (key, o) in &self.modality {
            if !modalities.contains_key(key) {
                bail!("layout.modality.{key}: no modality of that name in data.modalities");
            }
            if self.mode == ChannelMode::Shared {
                bail!("layout.modality.{key}: per-modality settings need mode = \"channels\"");
            }
            if let Some(p) = o.perplexity
                && (p.is_nan() || p <= 0.0)
            {
                bail!("layout.modality.{key}.perplexity: must be positive, got {p}");
            }
        }
        Ok(())
    }
}
