//! Median imputation and DeepInsight's normalisations, fitted on training samples only.

use anyhow::{Result, bail};
use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use super::settings::NormMethod;

/// The fitted state that maps one modality's raw values into [0, 1].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Normaliser {
    pub method: NormMethod,
    /// Training median per feature, used for missing values.
    pub medians: Vec<f32>,
    /// norm-1: per-feature training minimum; norm-2: per-feature training minimum (the shift).
    pub mins: Vec<f32>,
    /// norm-1: per-feature training maximum; norm-2: unused (empty).
    pub maxs: Vec<f32>,
    /// norm-2: the largest log-shifted training value over all features.
    pub global_max: f32,
}

/// Median of the finite values, or None when there are none.
fn median(values: impl Iterator<Item = f32>) -> Option<f32> {
    let mut v: Vec<f32> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f32::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

/// Training medians per feature; a feature never observed in training is an error naming it.
pub fn fit_medians(train: ArrayView2<f32>, names: &[String], modality: &str) -> Result<Vec<f32>> {
    train
        .axis_iter(Axis(1))
        .zip(names)
        .map(|(col, name)| match median(col.iter().copied()) {
            Some(m) => Ok(m),
            None => bail!(
                "modality '{modality}', column '{name}': no observed value among training samples"
            ),
        })
        .collect()
}

/// Replaces NaN by the feature's median.
pub fn impute(values: &mut Array2<f32>, medians: &[f32]) {
    for (mut col, &m) in values.axis_iter_mut(Axis(1)).zip(medians) {
        col.mapv_inplace(|x| if x.is_nan() { m } else { x });
    }
}

impl Normaliser {
    /// Fits on imputed training values (samples x features).
    pub fn fit(method: NormMethod, train: ArrayView2<f32>, medians: Vec<f32>) -> Self {
        let mins: Vec<f32> = train
            .axis_iter(Axis(1))
            .map(|c| c.iter().copied().fold(f32::INFINITY, f32::min))
            .collect();
        match method {
            NormMethod::Norm1 => {
                let maxs = train
                    .axis_iter(Axis(1))
                    .map(|c| c.iter().copied().fold(f32::NEG_INFINITY, f32::max))
                    .collect();
                Self {
                    method,
                    medians,
                    mins,
                    maxs,
                    global_max: 0.0,
                }
            }
            NormMethod::Norm2 => {
                let mut global_max = f32::NEG_INFINITY;
                for row in train.axis_iter(Axis(0)) {
                    for (&x, &min) in row.iter().zip(&mins) {
                        global_max = global_max.max(log_shift(x, min));
                    }
                }
                Self {
                    method,
                    medians,
                    mins,
                    maxs: Vec::new(),
                    global_max,
                }
            }
        }
    }

    /// Imputes, then scales into [0, 1]; values outside the training range are clipped.
    pub fn transform(&self, raw: ArrayView2<f32>) -> Array2<f32> {
        let mut out = Array2::zeros(raw.raw_dim());
        for (src, mut dst) in raw.rows().into_iter().zip(out.rows_mut()) {
            self.transform_row(
                src,
                dst.as_slice_mut().expect("a fresh array is contiguous"),
            );
        }
        out
    }

    /// One sample's values imputed and scaled into `out` (same length), in one pass. The
    /// method is matched once per row, not per value: this is the inner loop of batch scoring.
    pub fn transform_row(&self, raw: ndarray::ArrayView1<f32>, out: &mut [f32]) {
        let impute = |j: usize, x: f32| if x.is_nan() { self.medians[j] } else { x };
        match self.method {
            NormMethod::Norm1 => {
                for (j, (&x, o)) in raw.iter().zip(out.iter_mut()).enumerate() {
                    let (lo, hi) = (self.mins[j], self.maxs[j]);
                    let v = if hi > lo {
                        (impute(j, x) - lo) / (hi - lo)
                    } else {
                        0.0
                    };
                    *o = v.clamp(0.0, 1.0);
                }
            }
            NormMethod::Norm2 => {
                let top = self.global_max;
                for (j, (&x, o)) in raw.iter().zip(out.iter_mut()).enumerate() {
                    let v = log_shift(impute(j, x), self.mins[j]).max(0.0);
                    *o = if top > 0.0 { v / top } else { 0.0 }.clamp(0.0, 1.0);
                }
            }
        }
    }

    /// How many values (missing ones aside) lie more than one training range beyond it:
    /// normalised below -1 or above 2 before clipping (for norm-2, in its log scale).
    pub fn far_outside(&self, raw: ArrayView2<f32>) -> usize {
        // The limits in raw units, once per feature: batch scoring calls this on every
        // bucket, so the values are compared, not transformed.
        let limits: Vec<(f64, f64)> = (0..self.mins.len()).map(|j| self.raw_limits(j)).collect();
        raw.rows()
            .into_iter()
            .flat_map(|row| row.into_iter().zip(&limits))
            .filter(|&(&x, &(lo, hi))| !x.is_nan() && !(lo..=hi).contains(&f64::from(x)))
            .count()
    }

    /// The raw values of feature `j` that normalise (before clipping) to -1 and 2.
    fn raw_limits(&self, j: usize) -> (f64, f64) {
        let min = f64::from(self.mins[j]);
        match self.method {
            NormMethod::Norm1 => {
                let max = f64::from(self.maxs[j]);
                let range = max - min;
                if range > 0.0 {
                    (min - range, max + range)
                } else {
                    (f64::NEG_INFINITY, f64::INFINITY)
                }
            }
            NormMethod::Norm2 => {
                // log(x + |min| + 1) / top lies in [-1, 2] for x + |min| + 1 in
                // [e^-top, e^2top]; undefined below 0, which counts as far below.
                let shift = min.abs() + 1.0;
                let top = f64::from(self.global_max);
                if top > 0.0 {
                    ((-top).exp() - shift, (2.0 * top).exp() - shift)
                } else {
                    (-shift, f64::INFINITY)
                }
            }
        }
    }

    /// Keeps the statistics of the given features only, in that order.
    pub fn subset(&self, keep: &[usize]) -> Self {
        let pick = |v: &Vec<f32>| {
            if v.is_empty() {
                Vec::new()
            } else {
                keep.iter().map(|&j| v[j]).collect()
            }
        };
        Self {
            method: self.method,
            medians: pick(&self.medians),
            mins: pick(&self.mins),
            maxs: pick(&self.maxs),
            global_max: self.global_max,
        }
    }
}

/// pyDeepInsight's LogScaler: log(x + |min| + 1) with the feature's training minimum.
fn log_shift(x: f32, min: f32) -> f32 {
    (x + min.abs() + 1.0).ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn median_ignores_missing_values() {
        assert_eq!(median([3.0, f32::NAN, 1.0, 2.0].into_iter()), Some(2.0));
        assert_eq!(median([4.0, 1.0].into_iter()), Some(2.5));
        assert_eq!(median([f32::NAN].into_iter()), None);
    }

    #[test]
    fn norm1_maps_training_range_to_unit_interval_and_clips() {
        let train = array![[0.0f32, 10.0], [5.0, 20.0], [10.0, 30.0]];
        let n = Normaliser::fit(NormMethod::Norm1, train.view(), vec![5.0, 20.0]);
        let out = n.transform(array![[5.0f32, 40.0], [f32::NAN, 0.0]].view());
        assert_eq!(out, array![[0.5, 1.0], [0.5, 0.0]]);
    }

    #[test]
    fn values_beyond_a_training_range_of_the_range_are_counted() {
        let train = array![[0.0f32, 10.0], [10.0, 20.0]];
        let n1 = Normaliser::fit(NormMethod::Norm1, train.view(), vec![5.0, 15.0]);
        // -10 and 30 are one range beyond (kept); -11 and 31 further (counted); NaN is missing.
        let raw = array![[-10.0f32, 30.0], [-11.0, 31.0], [f32::NAN, 15.0]];
        assert_eq!(n1.far_outside(raw.view()), 2);
        let n2 = Normaliser::fit(NormMethod::Norm2, train.view(), vec![5.0, 15.0]);
        assert_eq!(n2.far_outside(array![[5.0f32, 15.0]].view()), 0);
        assert_eq!(n2.far_outside(array![[-5.0f32, 1e9]].view()), 2);
    }

    #[test]
    fn norm2_divides_log_shift_by_global_max() {
        let train = array![[0.0f32, 1.0], [3.0, 7.0]];
        let n = Normaliser::fit(NormMethod::Norm2, train.view(), vec![0.0, 0.0]);
        // mins are 0 and 1; the largest log-shift is ln(7 + 1 + 1) = ln 9
        assert!((n.global_max - 9f32.ln()).abs() < 1e-6);
        let out = n.transform(array![[3.0f32, 7.0]].view());
        assert!((out[[0, 0]] - 4f32.ln() / 9f32.ln()).abs() < 1e-6);
        assert!((out[[0, 1]] - 1.0).abs() < 1e-6);
    }
}
