//! Classification metrics: accuracy, balanced accuracy, macro-F1, one-vs-rest AUROC and the
//! confusion matrix, with scikit-learn's definitions.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Metrics {
    pub accuracy: f64,
    /// Mean recall over the classes present in the truth.
    #[serde(default)]
    pub balanced_accuracy: f64,
    pub macro_f1: f64,
    /// Macro average of the one-vs-rest AUROCs over classes that have both positives and
    /// negatives; None when no class has (or without probabilities).
    #[serde(default)]
    pub auroc: Option<f64>,
    /// One-vs-rest AUROC per class, None where it is undefined.
    #[serde(default)]
    pub class_auroc: Vec<Option<f64>>,
    /// `confusion[true][predicted]`
    pub confusion: Vec<Vec<usize>>,
}

/// One line: accuracy, balanced accuracy, macro-F1 and AUROC ("-" when undefined).
impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auroc = self.auroc.map_or("-".to_string(), |a| format!("{a:.3}"));
        write!(
            f,
            "accuracy {:.3}, balanced accuracy {:.3}, macro-F1 {:.3}, AUROC {auroc}",
            self.accuracy, self.balanced_accuracy, self.macro_f1
        )
    }
}

/// The trivial baseline a model must beat: always the most common class of the training
/// samples, scored on the same validation (and test) samples as the model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MajorityBaseline {
    /// Index of the class it always predicts.
    pub class: usize,
    pub validation: Metrics,
    pub test: Option<Metrics>,
}

impl MajorityBaseline {
    /// The most common class of `train` (the lowest index on a tie), scored on `validation`
    /// and, when not empty, `test`; each a list of class indices.
    pub fn new(train: &[usize], validation: &[usize], test: &[usize], n_classes: usize) -> Self {
        let mut counts = vec![0usize; n_classes];
        for &c in train {
            counts[c] += 1;
        }
        let class = (0..n_classes)
            .max_by_key(|&c| (counts[c], std::cmp::Reverse(c)))
            .unwrap_or(0);
        let score = |truth: &[usize]| Metrics::compute(truth, &vec![class; truth.len()], n_classes);
        Self {
            class,
            validation: score(validation),
            test: (!test.is_empty()).then(|| score(test)),
        }
    }
}

/// The mean, 0 for no values. A float sum of nothing is -0.0 in Rust, which would print as
/// "-0.000".
fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.iter().fold(0.0, |a, b| a + b) / values.len() as f64
}

impl Metrics {
    /// Metrics from hard predictions only (no AUROC).
    pub fn compute(truth: &[usize], predicted: &[usize], n_classes: usize) -> Self {
        let mut confusion = vec![vec![0usize; n_classes]; n_classes];
        for (&t, &p) in truth.iter().zip(predicted) {
            confusion[t][p] += 1;
        }
        let correct: usize = (0..n_classes).map(|c| confusion[c][c]).sum();
        let accuracy = correct as f64 / truth.len().max(1) as f64;
        // Macro-F1 over the classes present in truth or predictions (as scikit-learn does).
        let mut f1s = Vec::new();
        let mut recalls = Vec::new();
        for c in 0..n_classes {
            let tp = confusion[c][c] as f64;
            let actual: usize = confusion[c].iter().sum();
            let predicted: usize = confusion.iter().map(|row| row[c]).sum();
            if actual > 0 {
                recalls.push(tp / actual as f64);
            }
            if actual + predicted == 0 {
                continue;
            }
            f1s.push(2.0 * tp / (actual + predicted) as f64);
        }
        let macro_f1 = mean(&f1s);
        let balanced_accuracy = mean(&recalls);
        Self {
            accuracy,
            balanced_accuracy,
            macro_f1,
            auroc: None,
            class_auroc: Vec::new(),
            confusion,
        }
    }

    /// Metrics from class probabilities: the prediction is the most probable class.
    pub fn from_probabilities(
        truth: &[usize],
        probabilities: &[Vec<f32>],
        n_classes: usize,
    ) -> Self {
        let predicted: Vec<usize> = probabilities.iter().map(|p| argmax(p)).collect();
        let mut metrics = Self::compute(truth, &predicted, n_classes);
        metrics.class_auroc = (0..n_classes)
            .map(|c| {
                let scores: Vec<f32> = probabilities.iter().map(|p| p[c]).collect();
                let positive: Vec<bool> = truth.iter().map(|&t| t == c).collect();
                auroc(&scores, &positive)
            })
            .collect();
        let defined: Vec<f64> = metrics.class_auroc.iter().flatten().copied().collect();
        metrics.auroc = (!defined.is_empty()).then(|| mean(&defined));
        metrics
    }
}

pub fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// Area under the ROC curve by the Mann-Whitney rank sum, ties counted half; None when the
/// positives or the negatives are empty.
pub fn auroc(scores: &[f32], positive: &[bool]) -> Option<f64> {
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average 1-based ranks over runs of equal scores.
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_pos += mean_rank * order[i..=j].iter().filter(|&&k| positive[k]).count() as f64;
        i = j + 1;
    }
    let u = rank_sum_pos - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos * n_neg) as f64)
}

/// One epoch of training: losses, validation metrics, the rate and the time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochStats {
    pub epoch: usize,
    pub train_loss: f64,
    /// Accuracy on the training batches as they were seen (weights changing in between).
    #[serde(default)]
    pub train_accuracy: f64,
    pub valid_loss: f64,
    pub valid_accuracy: f64,
    pub valid_macro_f1: f64,
    #[serde(default)]
    pub valid_balanced_accuracy: f64,
    #[serde(default)]
    pub valid_auroc: Option<f64>,
    /// The head's learning rate at the epoch's last step.
    #[serde(default)]
    pub learning_rate: f64,
    /// Whether the backbone was frozen.
    #[serde(default)]
    pub frozen: bool,
    pub seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_majority_baseline_predicts_the_commonest_training_class_everywhere() {
        // Training: class 1 most common. Validation: 3 of 5 are class 1.
        let b = MajorityBaseline::new(&[1, 1, 0, 1, 2], &[1, 0, 1, 2, 1], &[], 3);
        assert_eq!(b.class, 1);
        assert_eq!(b.validation.accuracy, 0.6);
        // Recall 1 for class 1, 0 for the others.
        assert!((b.validation.balanced_accuracy - 1.0 / 3.0).abs() < 1e-12);
        assert!(b.test.is_none());
        // A tie goes to the lower class; a test split is scored too.
        let b = MajorityBaseline::new(&[0, 1], &[1], &[0, 0, 1], 2);
        assert_eq!(b.class, 0);
        assert!((b.test.unwrap().accuracy - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn metrics_of_nothing_are_zero_not_negative_zero() {
        let m = Metrics::compute(&[], &[], 2);
        for v in [m.accuracy, m.balanced_accuracy, m.macro_f1] {
            assert_eq!(format!("{v:.3}"), "0.000");
        }
    }

    #[test]
    fn accuracy_and_macro_f1_match_hand_computation() {
        let truth = [0, 0, 0, 1, 1, 2];
        let pred = [0, 0, 1, 1, 2, 2];
        let m = Metrics::compute(&truth, &pred, 3);
        assert!((m.accuracy - 4.0 / 6.0).abs() < 1e-12);
        // F1: class0 = 2*2/(3+2) = 0.8, class1 = 2*1/(2+2) = 0.5, class2 = 2*1/(1+2) = 2/3
        assert!((m.macro_f1 - (0.8 + 0.5 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        // Recalls 2/3, 1/2, 1/1.
        assert!((m.balanced_accuracy - (2.0 / 3.0 + 0.5 + 1.0) / 3.0).abs() < 1e-12);
        assert_eq!(m.confusion[1], vec![0, 1, 1]);
    }

    #[test]
    fn auroc_matches_scikit_learn() {
        // sklearn.metrics.roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
        let a = auroc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
        assert!((a - 0.75).abs() < 1e-12);
        // A tie between a positive and a negative counts half:
        // roc_auc_score([0, 1, 1], [0.5, 0.5, 0.9]) == 0.75
        let a = auroc(&[0.5, 0.5, 0.9], &[false, true, true]).unwrap();
        assert!((a - 0.75).abs() < 1e-12);
        assert_eq!(auroc(&[0.2, 0.3], &[true, true]), None);
    }

    #[test]
    fn one_vs_rest_auroc_is_the_macro_mean_over_defined_classes() {
        let truth = [0, 1, 2, 2];
        let probs = vec![
            vec![0.8, 0.1, 0.1],
            vec![0.2, 0.3, 0.5],
            vec![0.2, 0.2, 0.6],
            vec![0.5, 0.1, 0.4],
        ];
        let m = Metrics::from_probabilities(&truth, &probs, 3);
        // class 0: positive 0.8 over negatives 0.2, 0.2, 0.5 -> 1.0
        // class 1: positive 0.3 over 0.1, 0.2, 0.1 -> 1.0
        // class 2: positives 0.6, 0.4 over 0.1, 0.5 -> 3 of 4 pairs ordered -> 0.75
        assert_eq!(m.class_auroc, vec![Some(1.0), Some(1.0), Some(0.75)]);
        assert!((m.auroc.unwrap() - 2.75 / 3.0).abs() < 1e-12);
        assert!((m.accuracy - 0.5).abs() < 1e-12);
        let absent = Metrics::from_probabilities(&[0, 0], &[vec![0.9, 0.1], vec![0.2, 0.8]], 2);
        assert_eq!(absent.class_auroc, vec![None, None]);
        assert_eq!(absent.auroc, None);
    }
}
