//! The DeepInsight layout: features placed on an image grid so that features that behave
//! alike across training samples sit close together.
//!
//! `Layout::fit` learns the placement from training samples; `Layout::transform` turns any
//! sample's normalised feature vector into a C x H x W image with that placement.

pub(crate) mod assign;
pub(crate) mod embed;
pub(crate) mod geometry;
pub(crate) mod grid;
pub(crate) mod grouped;
pub(crate) mod linalg;
pub(crate) mod pca;
pub(crate) mod precomputed;
pub(crate) mod settings;
pub(crate) mod simd;
mod thin;
pub(crate) mod treemap;
pub(crate) mod tsne;

use std::path::Path;

use anyhow::{Context, Result};
use ndarray::{Array2, ArrayView2, CowArray, Ix2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use self::settings::{Arrange, ChannelMode, Collisions, EmbedMethod, LayoutSettings};
use embed::EmbedSettings;
use geometry::Frame;
use grid::Displacement;

/// Placement of one channel's features.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChannelLayout {
    /// "shared", or the modality this channel shows.
    pub name: String,
    pub method: EmbedMethod,
    /// Column of each placed feature in the feature vector (see `FeatureSpace::feature_list`).
    pub features: Vec<usize>,
    /// 2-D embedding of each feature, before rotation (for the feature map).
    pub embedding: Vec<[f64; 2]>,
    /// (row, column) of each feature.
    pub pixels: Vec<[u32; 2]>,
    pub frame: Frame,
    /// How far `assign` moved features off their positions.
    pub displacement: Option<Displacement>,
    /// Final KL divergence of t-SNE.
    pub kl_divergence: Option<f64>,
}

/// A channel with `features` at `pixels` and nothing else fitted, for tests elsewhere.
#[cfg(test)]
pub(crate) fn test_channel(
    name: &str,
    features: Vec<usize>,
    pixels: Vec<[u32; 2]>,
) -> ChannelLayout {
    ChannelLayout {
        name: name.into(),
        method: EmbedMethod::Pca,
        embedding: vec![[0.0, 0.0]; features.len()],
        features,
        pixels,
        frame: Frame {
            hull: vec![],
            rectangle: vec![],
            rotation: 0.0,
        },
        displacement: None,
        kl_divergence: None,
    }
}

/// A `Bin` layout of `channels` on a `height` x `width` grid, for tests elsewhere.
#[cfg(test)]
pub(crate) fn test_layout(height: usize, width: usize, channels: Vec<ChannelLayout>) -> Layout {
    Layout {
        height,
        width,
        method: EmbedMethod::Pca,
        mode: ChannelMode::Channels,
        collisions: Collisions::Bin,
        arrange: Arrange::Embedding,
        blocks: Vec::new(),
        channels,
    }
}

/// A fitted layout: the state needed to turn samples into images.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Layout {
    pub height: usize,
    pub width: usize,
    pub method: EmbedMethod,
    pub mode: ChannelMode,
    pub collisions: Collisions,
    /// `pathways`: features grouped into the `blocks` of a treemap.
    #[serde(default)]
    pub arrange: Arrange,
    #[serde(default)]
    pub blocks: Vec<grouped::Block>,
    pub channels: Vec<ChannelLayout>,
}

/// Pixels used and sharing, per channel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LayoutReport {
    pub channel: String,
    pub method: EmbedMethod,
    pub features: usize,
    pub pixels_used: usize,
    /// Mean over used pixels.
    pub mean_features_per_pixel: f64,
    pub max_features_per_pixel: usize,
    /// Fraction of features that share their pixel with another feature.
    pub shared_fraction: f64,
    /// `assign` only: displacement from the embedded position, in pixels.
    pub displacement: Option<Displacement>,
    pub kl_divergence: Option<f64>,
}

impl Layout {
    /// Fits the layout on training values (samples x features). `groups` gives, per modality,
    /// its name and its columns in the feature vector; `names` the (modality, feature) of every
    /// column (see `FeatureSpace::feature_list`).
    pub fn fit(
        train: ArrayView2<f32>,
        groups: &[(String, Vec<usize>)],
        names: &[(String, String)],
        config: &LayoutSettings,
        seed: u64,
    ) -> Result<Self> {
        let channels = channel_groups(groups, config)
            .into_iter()
            .map(|(name, features, channel_config)| {
                fit_channel(train, name, features, names, &channel_config, seed)
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            height: config.height,
            width: config.width,
            method: config.method,
            mode: config.mode,
            collisions: config.collisions,
            arrange: Arrange::Embedding,
            blocks: Vec::new(),
            channels,
        })
    }

    /// Fits a pathway-grouped layout (see `grouped`): `blocks` gives each pathway's name and
    /// feature columns.
    pub fn fit_grouped(
        train: ArrayView2<f32>,
        groups: &[(String, Vec<usize>)],
        names: &[(String, String)],
        blocks: &[(String, Vec<usize>)],
        config: &LayoutSettings,
        seed: u64,
    ) -> Result<Self> {
        grouped::fit(train, groups, names, blocks, config, seed)
    }

    pub fn n_channels(&self) -> usize {
        self.channels.len()
    }

    /// Values per image: C * H * W.
    pub fn image_len(&self) -> usize {
        self.n_channels() * self.height * self.width
    }

    /// Number of feature columns the layout expects in a sample vector.
    pub fn n_inputs(&self) -> usize {
        self.channels
            .iter()
            .flat_map(|c| c.features.iter())
            .max()
            .map_or(0, |&m| m + 1)
    }

    pub fn report(&self) -> Vec<LayoutReport> {
        self.channels
            .iter()
            .map(|c| {
                let mut per_pixel = std::collections::HashMap::<[u32; 2], usize>::new();
                for p in &c.pixels {
                    *per_pixel.entry(*p).or_default() += 1;
                }
                let sharing: usize = per_pixel.values().filter(|&&n| n > 1).sum();
                LayoutReport {
                    channel: c.name.clone(),
                    method: c.method,
                    features: c.features.len(),
                    pixels_used: per_pixel.len(),
                    mean_features_per_pixel: c.features.len() as f64
                        / per_pixel.len().max(1) as f64,
                    max_features_per_pixel: per_pixel.values().copied().max().unwrap_or(0),
                    shared_fraction: sharing as f64 / c.features.len().max(1) as f64,
                    displacement: c.displacement,
                    kl_divergence: c.kl_divergence,
                }
            })
            .collect()
    }

    pub fn save_json(&self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(self)?)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a valid layout file", path.display()))
    }
}

/// The channels of a layout: name, feature columns and settings of each.
fn channel_groups(
    groups: &[(String, Vec<usize>)],
    config: &LayoutSettings,
) -> Vec<(String, Vec<usize>, LayoutSettings)> {
    match config.mode {
        ChannelMode::Shared => vec![(
            "shared".into(),
            groups.iter().flat_map(|(_, c)| c.clone()).collect(),
            config.clone(),
        )],
        ChannelMode::Channels => groups
            .iter()
            .map(|(name, cols)| (name.clone(), cols.clone(), config.for_modality(name)))
            .collect(),
    }
}

/// 2-D coordinates of the feature columns `features`: read from the coordinates table, or
/// embedded from their training profiles.
fn embed_features(
    train: ArrayView2<f32>,
    features: &[usize],
    names: &[(String, String)],
    config: &LayoutSettings,
    seed: u64,
) -> Result<embed::Embedded> {
    if config.method == EmbedMethod::Precomputed {
        let path = config
            .coordinates
            .as_deref()
            .context("layout.coordinates: method = \"precomputed\" needs a coordinates table")?;
        let wanted: Vec<(String, String)> = features.iter().map(|&f| names[f].clone()).collect();
        return Ok(embed::Embedded {
            coordinates: precomputed::read(path, &wanted)?,
            kl_divergence: None,
        });
    }
    // Features are the points: one row per feature, one column per training sample.
    let chosen = chosen_columns(train, features);
    embed::embed(chosen.t(), &EmbedSettings::new(config, seed))
}

/// The chosen feature columns of `train`, row-major (samples x features): the transposed
/// points of the embedding. No copy when all columns are chosen in order.
fn chosen_columns<'a>(train: ArrayView2<'a, f32>, features: &[usize]) -> CowArray<'a, f32, Ix2> {
    let all = features.len() == train.ncols() && features.iter().enumerate().all(|(i, &f)| i == f);
    if all && train.is_standard_layout() {
        return train.into();
    }
    let mut out = Array2::<f32>::zeros((train.nrows(), features.len()));
    out.as_slice_mut()
        .expect("a new array is row-major")
        .par_chunks_mut(features.len().max(1))
        .zip(train.outer_iter().into_par_iter())
        .for_each(|(dest, row)| {
            for (d, &f) in dest.iter_mut().zip(features) {
                *d = row[f];
            }
        });
    out.into()
}

fn fit_channel(
    train: ArrayView2<f32>,
    name: String,
    features: Vec<usize>,
    names: &[(String, String)],
    config: &LayoutSettings,
    seed: u64,
) -> Result<ChannelLayout> {
    let _span = tracing::info_span!("layout", channel = %name, features = features.len()).entered();
    let embedded = embed_features(train, &features, names, config, seed)
        .with_context(|| format!("layout of channel '{name}'"))?;
    let (frame, rotated) = geometry::align_to_rectangle(&embedded.coordinates);
    let placement = grid::place(&rotated, config.height, config.width, config.collisions)
        .with_context(|| format!("layout of channel '{name}'"))?;
    Ok(ChannelLayout {
        name,
        method: config.method,
        features,
        embedding: rows_of(&embedded.coordinates),
        pixels: placement.pixels,
        frame,
        displacement: placement.displacement,
        kl_divergence: embedded.kl_divergence,
    })
}

fn rows_of(a: &Array2<f64>) -> Vec<[f64; 2]> {
    a.rows().into_iter().map(|r| [r[0], r[1]]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chosen_columns_borrow_all_columns_and_gather_a_subset() {
        let train = Array2::from_shape_fn((3, 5), |(s, f)| (10 * s + f) as f32);
        let all = chosen_columns(train.view(), &[0, 1, 2, 3, 4]);
        assert!(all.is_view(), "all columns in order need no copy");
        assert_eq!(all, train);
        let some = chosen_columns(train.view(), &[4, 1]);
        assert_eq!(
            some,
            ndarray::array![[4.0, 1.0], [14.0, 11.0], [24.0, 21.0]]
        );
        // A transposed (column-major) table is gathered, not borrowed.
        let stored = train.t().as_standard_layout().into_owned();
        assert_eq!(chosen_columns(stored.t(), &[0, 1, 2, 3, 4]), train);
    }
}
