//! The DeepInsight layout: features placed on an image grid so that features that behave
//! alike across training samples sit close together.
//!
//! `Layout::fit` learns the placement from training samples; `Layout::transform` turns any
//! sample's normalised feature vector into a C x H x W image with that placement.

pub mod embed;
pub mod geometry;
pub mod grid;

use std::path::Path;

use anyhow::{Context, Result};
use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::config::{ChannelMode, EmbedMethod, LayoutConfig};
use embed::EmbedSettings;
use geometry::Frame;

/// Placement of one channel's features.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChannelLayout {
    /// "shared", or the modality this channel shows.
    pub name: String,
    /// Column of each placed feature in the feature vector (see `FeatureSpace::feature_list`).
    pub features: Vec<usize>,
    /// 2-D embedding of each feature, before rotation (for the feature map).
    pub embedding: Vec<[f64; 2]>,
    /// (row, column) of each feature.
    pub pixels: Vec<[u32; 2]>,
    pub frame: Frame,
}

/// A fitted layout: the state needed to turn samples into images.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Layout {
    pub height: usize,
    pub width: usize,
    pub method: EmbedMethod,
    pub mode: ChannelMode,
    pub channels: Vec<ChannelLayout>,
}

/// Pixels used and sharing, per channel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LayoutReport {
    pub channel: String,
    pub features: usize,
    pub pixels_used: usize,
    pub max_features_per_pixel: usize,
    /// Fraction of features that share their pixel with another feature.
    pub shared_fraction: f64,
}

impl Layout {
    /// Fits the layout on training values (samples x features). `groups` gives, per modality,
    /// its name and its columns in the feature vector.
    pub fn fit(
        train: ArrayView2<f32>,
        groups: &[(String, Vec<usize>)],
        config: &LayoutConfig,
        seed: u64,
    ) -> Result<Self> {
        let settings = EmbedSettings {
            method: config.method,
            perplexity: config.perplexity,
            iterations: config.iterations,
            metric: config.metric,
            seed,
        };
        let channel_groups: Vec<(String, Vec<usize>)> = match config.mode {
            ChannelMode::Shared => {
                vec![(
                    "shared".into(),
                    groups.iter().flat_map(|(_, c)| c.clone()).collect(),
                )]
            }
            ChannelMode::Channels => groups.to_vec(),
        };
        let channels = channel_groups
            .into_iter()
            .map(|(name, features)| {
                fit_channel(
                    train,
                    name,
                    features,
                    &settings,
                    config.height,
                    config.width,
                )
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            height: config.height,
            width: config.width,
            method: config.method,
            mode: config.mode,
            channels,
        })
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
                    features: c.features.len(),
                    pixels_used: per_pixel.len(),
                    max_features_per_pixel: per_pixel.values().copied().max().unwrap_or(0),
                    shared_fraction: sharing as f64 / c.features.len().max(1) as f64,
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

fn fit_channel(
    train: ArrayView2<f32>,
    name: String,
    features: Vec<usize>,
    settings: &EmbedSettings,
    height: usize,
    width: usize,
) -> Result<ChannelLayout> {
    // Features are the points: one row per feature, one column per training sample.
    let points = train.select(Axis(1), &features).reversed_axes();
    let embedding = embed::embed(points.view(), settings)
        .with_context(|| format!("layout of channel '{name}'"))?;
    let (frame, rotated) = geometry::align_to_rectangle(&embedding);
    let pixels = grid::to_pixels(&rotated, height, width);
    Ok(ChannelLayout {
        name,
        features,
        embedding: rows_of(&embedding),
        pixels,
        frame,
    })
}

fn rows_of(a: &Array2<f64>) -> Vec<[f64; 2]> {
    a.rows().into_iter().map(|r| [r[0], r[1]]).collect()
}
