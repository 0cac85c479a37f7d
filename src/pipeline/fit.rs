//! What a pipeline fits on its training rows: imputation, normalisation and selection, the
//! layout, every sample's image, and the network trained on the training rows and chosen on
//! the validation rows. `run` calls it once; `evaluate` once per fold.

use anyhow::{Context, Result};
use burn::tensor::Device;
use ndarray::{Array2, Axis};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::Stages;
use crate::config::{Arrange, PipelineConfig};
use crate::layout::Layout;
use crate::model::ResNetConfig;
use crate::model::train::{self, Augment, ImageSet, TrainOptions, Trained};
use crate::omics::Cohort;
use crate::render::{self, RenderPlan};
use crate::select::FeatureSpace;

/// A pipeline fitted on some of a cohort's rows.
pub(crate) struct Fitted {
    pub space: FeatureSpace,
    /// Every cohort sample's selected, imputed and normalised values.
    pub values: Array2<f32>,
    pub layout: Layout,
    /// Every cohort sample's image, N x C x H x W, flat.
    pub images: Vec<f32>,
    pub resnet: ResNetConfig,
    pub trained: Trained,
}

impl Fitted {
    /// [C, H, W] of one image.
    pub fn shape(&self) -> [usize; 3] {
        [
            self.layout.n_channels(),
            self.layout.height,
            self.layout.width,
        ]
    }

    /// The images of `rows`, flat, with their labels.
    pub fn pick(&self, rows: &[usize], labels: &[usize]) -> (Vec<f32>, Vec<usize>) {
        pick(&self.images, self.layout.image_len(), rows, labels)
    }
}

fn pick(images: &[f32], len: usize, rows: &[usize], labels: &[usize]) -> (Vec<f32>, Vec<usize>) {
    let mut out = Vec::with_capacity(rows.len() * len);
    for &r in rows {
        out.extend_from_slice(&images[r * len..(r + 1) * len]);
    }
    (out, rows.iter().map(|&r| labels[r]).collect())
}

/// Fits selection and layout on `train_rows` alone, renders every sample, and trains the
/// network on `train_rows`, choosing the epoch on `valid_rows`. No other row's values reach
/// anything fitted.
pub(crate) fn fit(
    config: &PipelineConfig,
    cohort: &Cohort,
    train_rows: &[usize],
    valid_rows: &[usize],
    options: &TrainOptions,
    device: &Device,
    stages: &mut Stages,
) -> Result<Fitted> {
    let (space, values) = stages.run("select", || {
        let space = FeatureSpace::fit(cohort, train_rows, &config.select, &config.normalise)?;
        let values = space.transform(cohort)?;
        Ok((space, values))
    })?;
    // The training samples' values: the layout is fitted on them, and noise augmentation
    // renders from them.
    let train_values = values.select(Axis(0), train_rows);
    let layout = stages.run("layout", || {
        match (config.layout.arrange, space.pathway_blocks()) {
            (Arrange::Pathways, Some(blocks)) => Layout::fit_grouped(
                train_values.view(),
                &space.groups(),
                &space.feature_list(),
                &blocks,
                &config.layout,
                config.seed,
            ),
            _ => Layout::fit(
                train_values.view(),
                &space.groups(),
                &space.feature_list(),
                &config.layout,
                config.seed,
            ),
        }
    })?;
    let images = stages.run("render", || render::render_batch(&layout, values.view()))?;
    let resnet = ResNetConfig::new(layout.n_channels(), cohort.classes.len())
        .with_width(config.model.width)
        .with_stem(config.model.stem_for(layout.height, layout.width))
        .with_conv_init(config.model.init);
    let shape = [layout.n_channels(), layout.height, layout.width];
    let (train_images, train_labels) =
        pick(&images, layout.image_len(), train_rows, &cohort.labels);
    let (valid_images, valid_labels) =
        pick(&images, layout.image_len(), valid_rows, &cohort.labels);
    let plan = RenderPlan::new(&layout);
    let noise = config.train.feature_noise as f32;
    let normal = Normal::new(0.0f32, noise).context("train.feature_noise")?;
    let noisy = |rows: &[usize], rng: &mut ChaCha8Rng| -> Result<Vec<f32>> {
        let mut batch = train_values.select(Axis(0), rows);
        // Normalised values lie in [0, 1] on the training samples; noise keeps them there.
        batch.mapv_inplace(|v| (v + normal.sample(rng)).clamp(0.0, 1.0));
        plan.render_batch(batch.view())
    };
    let trained: Trained = stages.run("train", || {
        train::train(
            &resnet,
            ImageSet {
                images: &train_images,
                labels: &train_labels,
                shape,
            },
            ImageSet {
                images: &valid_images,
                labels: &valid_labels,
                shape,
            },
            options,
            (noise > 0.0).then_some(&noisy as Augment),
            device,
        )
    })?;
    Ok(Fitted {
        space,
        values,
        layout,
        images,
        resnet,
        trained,
    })
}
