//! The pathway-grouped layout: each group of features (a pathway) gets one rectangular block of
//! the image, and its features are laid out inside that block by their own embedding.
//!
//! - Blocks come from a treemap (see `treemap`): area in proportion to the group's size, and
//!   groups with similar mean profiles (first two principal components of the groups' mean
//!   training profiles) in neighbouring blocks.
//! - In `channels` mode the blocks are the same in every channel, so one region of the image is
//!   one pathway across all modalities; a block is sized for the channel with the most of the
//!   pathway's features.
//! - Inside a block the channel's members are embedded with the channel's method, turned to
//!   their minimum-area rectangle, turned again to match the block's orientation, and placed
//!   with the layout's collision policy restricted to the block.

use anyhow::{Context, Result, bail};
use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use super::geometry::{self, Frame};
use super::grid::{self, Displacement};
use super::settings::{Arrange, LayoutSettings};
use super::treemap::{self, Rect};
use super::{ChannelLayout, Layout, channel_groups, embed_features, pca};

/// One group's block of the image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Block {
    pub name: String,
    pub rect: Rect,
}

/// Fits a grouped layout. `blocks` gives each group's name and feature columns; every column
/// of a channel must belong to exactly one group.
pub fn fit(
    train: ArrayView2<f32>,
    groups: &[(String, Vec<usize>)],
    names: &[(String, String)],
    blocks: &[(String, Vec<usize>)],
    config: &LayoutSettings,
    seed: u64,
) -> Result<Layout> {
    if blocks.is_empty() {
        bail!("a pathway layout needs at least one pathway");
    }
    let channels = channel_groups(groups, config);
    // members[b][c]: the columns of block b shown in channel c.
    let members: Vec<Vec<Vec<usize>>> = blocks
        .iter()
        .map(|(_, cols)| {
            channels
                .iter()
                .map(|(_, channel_cols, _)| {
                    cols.iter()
                        .copied()
                        .filter(|f| channel_cols.contains(f))
                        .collect()
                })
                .collect()
        })
        .collect();
    let demand: Vec<usize> = members
        .iter()
        .map(|per_channel| per_channel.iter().map(Vec::len).max().unwrap_or(0).max(1))
        .collect();
    let position = block_positions(train, blocks, seed);
    let rects = treemap::treemap(&demand, &position, config.height, config.width)
        .context("pathway layout")?;

    let mut fitted = Vec::with_capacity(channels.len());
    for (c, (name, _, channel_config)) in channels.into_iter().enumerate() {
        let _span = tracing::info_span!("pathway layout", channel = %name).entered();
        let mut channel = ChannelLayout {
            name: name.clone(),
            method: channel_config.method,
            features: Vec::new(),
            embedding: Vec::new(),
            pixels: Vec::new(),
            frame: grid_frame(config.height, config.width),
            displacement: None,
            kl_divergence: None,
        };
        let mut moved = Moved::default();
        for (b, rect) in rects.iter().enumerate() {
            let cols = &members[b][c];
            if cols.is_empty() {
                continue;
            }
            let points = inside_block(train, cols, names, rect, &channel_config, seed)
                .with_context(|| format!("channel '{name}', block '{}'", blocks[b].0))?;
            let placement = grid::place(
                &points,
                rect.height as usize,
                rect.width as usize,
                channel_config.collisions,
            )
            .with_context(|| format!("channel '{name}', block '{}'", blocks[b].0))?;
            moved.add(placement.displacement, cols.len());
            for (&f, [r, col]) in cols.iter().zip(placement.pixels) {
                let pixel = [rect.row + r, rect.col + col];
                channel.features.push(f);
                channel.pixels.push(pixel);
                channel.embedding.push([
                    f64::from(pixel[1]) + 0.5,
                    (config.height as f64) - f64::from(pixel[0]) - 0.5,
                ]);
            }
        }
        channel.displacement = moved.total();
        fitted.push(channel);
    }
    Ok(Layout {
        height: config.height,
        width: config.width,
        method: config.method,
        mode: config.mode,
        collisions: config.collisions,
        arrange: Arrange::Pathways,
        blocks: blocks
            .iter()
            .zip(rects)
            .map(|((name, _), rect)| Block {
                name: name.clone(),
                rect,
            })
            .collect(),
        channels: fitted,
    })
}

/// 2-D positions of the groups: principal components of their mean profiles over training
/// samples, centred and scaled so that groups that rise and fall together are close.
fn block_positions(
    train: ArrayView2<f32>,
    blocks: &[(String, Vec<usize>)],
    seed: u64,
) -> Vec<[f64; 2]> {
    if blocks.len() < 3 {
        return (0..blocks.len()).map(|i| [i as f64, 0.0]).collect();
    }
    let mut profiles = Array2::<f32>::zeros((blocks.len(), train.nrows()));
    for (b, (_, cols)) in blocks.iter().enumerate() {
        let mean = train
            .select(Axis(1), cols)
            .mean_axis(Axis(1))
            .expect("a block has features");
        let centred = &mean - mean.mean().unwrap_or(0.0);
        let norm = centred.dot(&centred).sqrt();
        profiles
            .row_mut(b)
            .assign(&if norm > 0.0 { centred / norm } else { centred });
    }
    let coords = pca::pca(profiles.view(), seed);
    coords.rows().into_iter().map(|r| [r[0], r[1]]).collect()
}

/// The members' coordinates, turned so that their long side runs along the block's.
fn inside_block(
    train: ArrayView2<f32>,
    cols: &[usize],
    names: &[(String, String)],
    rect: &Rect,
    config: &LayoutSettings,
    seed: u64,
) -> Result<Array2<f64>> {
    if cols.len() < 3 {
        // One or two features: the middle of the block, or its two halves.
        return Ok(Array2::from_shape_fn((cols.len(), 2), |(i, k)| {
            if (k == 0) == (rect.width >= rect.height) {
                i as f64
            } else {
                0.0
            }
        }));
    }
    // t-SNE needs 3 x perplexity neighbours; a block's few features get a smaller perplexity
    // (as the whole-channel layout would, but without a warning for each block).
    let config = LayoutSettings {
        perplexity: config
            .perplexity
            .min((cols.len() - 1) as f64 / 3.0)
            .max(1.0),
        ..config.clone()
    };
    let embedded = embed_features(train, cols, names, &config, seed)?;
    let (_, mut rotated) = geometry::align_to_rectangle(&embedded.coordinates);
    if rect.height > rect.width {
        rotated.invert_axis(Axis(1));
        rotated = rotated.select(Axis(1), &[1, 0]);
    }
    Ok(rotated)
}

fn grid_frame(height: usize, width: usize) -> Frame {
    let (h, w) = (height as f64, width as f64);
    let corners = vec![[0.0, 0.0], [w, 0.0], [w, h], [0.0, h], [0.0, 0.0]];
    Frame {
        hull: corners.clone(),
        rectangle: corners,
        rotation: 0.0,
    }
}

/// Displacement over several blocks, weighted by their features.
#[derive(Default)]
struct Moved {
    sum: f64,
    squares: f64,
    max: f64,
    count: usize,
}

impl Moved {
    fn add(&mut self, d: Option<Displacement>, n: usize) {
        if let Some(d) = d {
            self.sum += d.mean * n as f64;
            self.squares += d.rms * d.rms * n as f64;
            self.max = self.max.max(d.max);
            self.count += n;
        }
    }

    fn total(&self) -> Option<Displacement> {
        let n = self.count as f64;
        (self.count > 0).then(|| Displacement {
            mean: self.sum / n,
            max: self.max,
            rms: (self.squares / n).sqrt(),
        })
    }
}
