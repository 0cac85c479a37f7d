//! What every exported form is checked on: the run's validation samples and the training
//! samples INT8 calibration leaves out, rendered exactly as in training; the agreement's
//! interval; CPU latency at batch 1 and 32.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ndarray::Axis;

use crate::model::metrics::argmax;
use crate::run::RunDir;

pub struct ValidationSet {
    pub images: Vec<f32>,
    pub labels: Vec<usize>,
    pub image_len: usize,
}

/// The samples every exported form is checked on: the run's validation samples plus the
/// training samples that INT8 calibration does not use (`calibration_rows` leaves them
/// out), so that one flipped prediction is a fraction of a point rather than the 1.7 points
/// it is on 59 validation samples. Agreement with fp32 is a property of the network, not of
/// generalisation, so training samples are fair here; accuracy is reported on the
/// validation samples alone.
pub fn gate_set(run_dir: &RunDir, calibration_max: usize) -> Result<GateSet> {
    let run = run_dir
        .run_cohort()
        .context("an export is checked on the run's samples")?;
    let validation = run.rows("validation");
    if validation.is_empty() {
        bail!("the run has no validation samples");
    }
    let train = run.rows("train");
    let calibration = calibration_rows(&train, calibration_max);
    let held_back: Vec<usize> = train
        .iter()
        .copied()
        .filter(|r| calibration.binary_search(r).is_err())
        .collect();
    let values = run_dir.manifest.feature_space.transform(&run.cohort)?;
    let images = |rows: &[usize]| -> Result<ValidationSet> {
        let values = values.select(Axis(0), rows);
        Ok(ValidationSet {
            images: run_dir.render(values.view())?,
            labels: rows.iter().map(|&r| run.cohort.labels[r]).collect(),
            image_len: run_dir.plan.image_len(),
        })
    };
    let checked: Vec<usize> = validation.iter().chain(&held_back).copied().collect();
    Ok(GateSet {
        checked: images(&checked)?,
        validation: validation.len(),
        calibration: images(&calibration)?,
    })
}

/// The images of one export check.
pub struct GateSet {
    /// Validation samples first (`validation` of them), then held-back training samples.
    pub checked: ValidationSet,
    pub validation: usize,
    /// Training samples for INT8 activation ranges, none of them in `checked`.
    pub calibration: ValidationSet,
}

/// Every other training row (spread evenly, at most `max`): half the training samples
/// calibrate, the other half join the check.
fn calibration_rows(train: &[usize], max: usize) -> Vec<usize> {
    let half: Vec<usize> = train.iter().step_by(2).copied().collect();
    if half.len() <= max {
        return half;
    }
    let step = half.len() as f64 / max as f64;
    (0..max).map(|i| half[(i as f64 * step) as usize]).collect()
}

/// The 95% Wilson score interval of a proportion of `n`: honest at the edges (an agreement of
/// 100% on 60 samples is 94.0-100%, not a certainty).
pub fn wilson_interval(successes: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let (n, p) = (n as f64, successes as f64 / n as f64);
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z / (1.0 + z * z / n) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_interval_matches_hand_computed_values() {
        // 59 of 59 (100%): 93.89% to 100%.
        let (lo, hi) = wilson_interval(59, 59);
        assert!((lo - 0.93887).abs() < 1e-4 && hi == 1.0, "{lo} {hi}");
        // 56 of 59 (94.92%): 86.08% to 98.26% (statsmodels' proportion_confint, method wilson).
        let (lo, hi) = wilson_interval(56, 59);
        assert!(
            (lo - 0.86083).abs() < 1e-4 && (hi - 0.98256).abs() < 1e-4,
            "{lo} {hi}"
        );
        assert_eq!(wilson_interval(0, 0), (0.0, 1.0));
    }

    #[test]
    fn calibration_takes_every_other_training_row_up_to_its_maximum() {
        let train: Vec<usize> = (10..20).collect();
        assert_eq!(calibration_rows(&train, 100), vec![10, 12, 14, 16, 18]);
        assert_eq!(calibration_rows(&train, 2), vec![10, 14]);
    }
}
