//! Classification metrics.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Metrics {
    pub accuracy: f64,
    pub macro_f1: f64,
    /// confusion[true][predicted]
    pub confusion: Vec<Vec<usize>>,
}

impl Metrics {
    pub fn compute(truth: &[usize], predicted: &[usize], n_classes: usize) -> Self {
        let mut confusion = vec![vec![0usize; n_classes]; n_classes];
        for (&t, &p) in truth.iter().zip(predicted) {
            confusion[t][p] += 1;
        }
        let correct: usize = (0..n_classes).map(|c| confusion[c][c]).sum();
        let accuracy = correct as f64 / truth.len().max(1) as f64;
        // Macro-F1 over the classes present in truth or predictions (as scikit-learn does).
        let mut f1s = Vec::new();
        for c in 0..n_classes {
            let tp = confusion[c][c] as f64;
            let actual: usize = confusion[c].iter().sum();
            let predicted: usize = confusion.iter().map(|row| row[c]).sum();
            if actual + predicted == 0 {
                continue;
            }
            f1s.push(2.0 * tp / (actual + predicted) as f64);
        }
        let macro_f1 = f1s.iter().sum::<f64>() / f1s.len().max(1) as f64;
        Self {
            accuracy,
            macro_f1,
            confusion,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_and_macro_f1_match_hand_computation() {
        let truth = [0, 0, 0, 1, 1, 2];
        let pred = [0, 0, 1, 1, 2, 2];
        let m = Metrics::compute(&truth, &pred, 3);
        assert!((m.accuracy - 4.0 / 6.0).abs() < 1e-12);
        // F1: class0 = 2*2/(3+2) = 0.8, class1 = 2*1/(2+2) = 0.5, class2 = 2*1/(1+2) = 2/3
        assert!((m.macro_f1 - (0.8 + 0.5 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        assert_eq!(m.confusion[1], vec![0, 1, 1]);
    }
}
