//! What every exported form is checked on: the run's validation samples, rendered exactly as
//! in training, and CPU latency at batch 1 and 32.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ndarray::Axis;

use crate::model::train::argmax;
use crate::score::bundle::Bundle;

pub struct ValidationSet {
    pub images: Vec<f32>,
    pub labels: Vec<usize>,
    pub image_len: usize,
}

/// The validation samples of the run (`split` = validation in predictions.parquet), reloaded
/// from the run's input tables and rendered with its feature space and layout.
pub fn validation_set(bundle: &Bundle) -> Result<ValidationSet> {
    split_images(bundle, "validation", usize::MAX)
        .context("an export is checked on the run's validation samples")
}

/// At most `max` samples of the run's training split, spread evenly over it: the images INT8
/// activation ranges are calibrated on.
pub fn calibration_set(bundle: &Bundle, max: usize) -> Result<ValidationSet> {
    split_images(bundle, "train", max)
        .context("INT8 activations are calibrated on the run's training samples")
}

fn split_images(bundle: &Bundle, split: &str, max: usize) -> Result<ValidationSet> {
    let run = bundle.run_cohort()?;
    let mut rows = run.rows(split);
    if rows.is_empty() {
        bail!("the run has no {split} samples");
    }
    if rows.len() > max {
        let step = rows.len() as f64 / max as f64;
        rows = (0..max).map(|i| rows[(i as f64 * step) as usize]).collect();
    }
    let values = bundle.manifest.feature_space.transform(&run.cohort)?;
    let values = values.select(Axis(0), &rows);
    Ok(ValidationSet {
        images: bundle.render(values.view())?,
        labels: rows.iter().map(|&r| run.cohort.labels[r]).collect(),
        image_len: bundle.plan.image_len(),
    })
}

pub fn accuracy(probabilities: &[Vec<f32>], labels: &[usize]) -> f64 {
    let right = probabilities
        .iter()
        .zip(labels)
        .filter(|&(p, &l)| argmax(p) == l)
        .count();
    right as f64 / labels.len().max(1) as f64
}

/// Median milliseconds of a forward pass at batch 1 (of 9) and 32 (of 3), on images taken
/// cyclically from `images`.
pub fn latency(
    images: &[f32],
    image_len: usize,
    forward: impl Fn(&[f32], usize),
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (batch, runs) in [(1usize, 9), (32, 3)] {
        let buffer = cyclic_batch(images, image_len, batch);
        forward(&buffer, batch);
        let mut ms: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                forward(&buffer, batch);
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        out.insert(batch.to_string(), ms[runs / 2]);
    }
    out
}

/// `batch` images taken in turn from `images` (repeating them when there are fewer).
pub fn cyclic_batch(images: &[f32], image_len: usize, batch: usize) -> Vec<f32> {
    let n = images.len() / image_len;
    (0..batch)
        .flat_map(|i| images[(i % n) * image_len..][..image_len].iter().copied())
        .collect()
}
