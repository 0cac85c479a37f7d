//! Summaries over folds: mean and standard deviation, and the corrected resampled t-test of a
//! paired difference (Nadeau and Bengio, 2003).

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Mean and sample standard deviation (n - 1), over `values`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Spread {
    pub mean: f64,
    pub sd: f64,
}

pub fn spread(values: &[f64]) -> Spread {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = if values.len() > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    Spread { mean, sd }
}

/// A paired difference over folds with its 95% interval.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Difference {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

/// The corrected resampled t interval of the mean of `differences`, one per fold (of every
/// repeat): k-fold's training sets overlap, so the folds' differences are correlated and the
/// plain t interval is too narrow. Nadeau and Bengio widen the variance of the mean from
/// s^2 / J to (1 / J + n_test / n_train) s^2, with J - 1 degrees of freedom.
pub fn corrected_interval(differences: &[f64], test_to_train: f64) -> Difference {
    let j = differences.len() as f64;
    let Spread { mean, sd } = spread(differences);
    let se = ((1.0 / j + test_to_train) * sd * sd).sqrt();
    let t = StudentsT::new(0.0, 1.0, j - 1.0)
        .map(|d| d.inverse_cdf(0.975))
        .unwrap_or(f64::NAN);
    Difference {
        mean,
        low: mean - t * se,
        high: mean + t * se,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corrected_interval_matches_a_hand_computation() {
        // Five folds of 20 test and 80 training samples.
        let d = [0.02, -0.01, 0.05, 0.00, 0.04];
        // mean 0.02; s^2 = (0 + 0.0009 + 0.0009 + 0.0004 + 0.0004) / 4 = 0.00065;
        // se = sqrt((1/5 + 20/80) * 0.00065) = sqrt(0.0002925) = 0.0171026...;
        // t(0.975, 4) = 2.7764451...; half width = 0.0474840...
        let i = corrected_interval(&d, 20.0 / 80.0);
        assert!((i.mean - 0.02).abs() < 1e-12);
        let half = 2.776_445_105_197_8 * 0.000_292_5_f64.sqrt();
        assert!((i.high - (0.02 + half)).abs() < 1e-9, "{i:?}");
        assert!((i.low - (0.02 - half)).abs() < 1e-9, "{i:?}");
        // Without the correction the interval would be narrower.
        let plain = 2.776_445_105_197_8 * (0.000_65_f64 / 5.0).sqrt();
        assert!(i.high - i.mean > plain);
    }

    #[test]
    fn spread_is_the_sample_standard_deviation() {
        let s = spread(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(s.mean, 2.5);
        assert!((s.sd - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }
}
