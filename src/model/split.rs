//! Stratified train/validation/test splits from a seed.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Row indices (train, validation), each sorted. Every class with at least two samples puts
/// round(n * fraction) of them, and at least one, into validation.
pub fn stratified(labels: &[usize], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let s = stratified3(labels, fraction, 0.0, seed);
    (s.train, s.validation)
}

/// Train, validation and test rows, each sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splits {
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
    pub test: Vec<usize>,
}

/// A stratified three-way split from a seed. Per class: round(n * valid_fraction) samples (at
/// least one when the class has two) go to validation, then round(n * test_fraction) (at least
/// one when asked for and the class has three) to test; at least one always stays in training.
/// With `test_fraction` 0 the split equals the two-way one of the same seed.
pub fn stratified3(labels: &[usize], valid_fraction: f64, test_fraction: f64, seed: u64) -> Splits {
    let n_classes = labels.iter().max().map_or(0, |m| m + 1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Splits {
        train: Vec::new(),
        validation: Vec::new(),
        test: Vec::new(),
    };
    for class in 0..n_classes {
        let mut rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        rows.shuffle(&mut rng);
        let share = |fraction: f64, room: usize| -> usize {
            if fraction <= 0.0 || room < 2 {
                0
            } else {
                ((rows.len() as f64 * fraction).round() as usize).clamp(1, room - 1)
            }
        };
        let n_valid = share(valid_fraction, rows.len());
        let n_test = share(test_fraction, rows.len() - n_valid);
        out.validation.extend_from_slice(&rows[..n_valid]);
        out.test.extend_from_slice(&rows[n_valid..n_valid + n_test]);
        out.train.extend_from_slice(&rows[n_valid + n_test..]);
    }
    out.train.sort_unstable();
    out.validation.sort_unstable();
    out.test.sort_unstable();
    out
}

/// Refuses, before any training, a cohort whose split would leave a class out of training,
/// validation or (when asked) test: with fewer samples than that, the metrics that choose and
/// report the model are computed on nothing. `classes` names the class indices of `labels`.
pub fn check(labels: &[usize], classes: &[String], test_fraction: f64) -> anyhow::Result<()> {
    let needed = if test_fraction > 0.0 { 3 } else { 2 };
    let counts: Vec<usize> = (0..classes.len())
        .map(|c| labels.iter().filter(|&&l| l == c).count())
        .collect();
    if counts.iter().all(|&n| n >= needed) {
        return Ok(());
    }
    let per_class: Vec<String> = classes
        .iter()
        .zip(&counts)
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    let parts = if needed == 3 {
        "training, validation and test"
    } else {
        "training and validation"
    };
    anyhow::bail!(
        "cannot split {} aligned samples into {parts}: every class needs at least {needed} \
         samples, and the samples per class are: {}",
        labels.len(),
        per_class.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_class_is_split_in_proportion_and_seed_is_reproducible() {
        let labels: Vec<usize> = (0..100).map(|i| usize::from(i >= 60)).collect();
        let (train, valid) = stratified(&labels, 0.2, 7);
        assert_eq!(valid.iter().filter(|&&i| labels[i] == 0).count(), 12);
        assert_eq!(valid.iter().filter(|&&i| labels[i] == 1).count(), 8);
        assert_eq!(train.len() + valid.len(), 100);
        assert!(train.iter().all(|i| !valid.contains(i)));
        assert_eq!(stratified(&labels, 0.2, 7), (train, valid.clone()));
        assert_ne!(stratified(&labels, 0.2, 8).1, valid);
    }

    #[test]
    fn three_way_split_is_stratified_disjoint_and_extends_the_two_way_one() {
        let labels: Vec<usize> = (0..100).map(|i| usize::from(i >= 60)).collect();
        let s = stratified3(&labels, 0.2, 0.1, 7);
        assert_eq!(s.test.iter().filter(|&&i| labels[i] == 0).count(), 6);
        assert_eq!(s.test.iter().filter(|&&i| labels[i] == 1).count(), 4);
        assert_eq!(s.validation.len(), 20);
        assert_eq!(s.train.len() + s.validation.len() + s.test.len(), 100);
        let mut all: Vec<usize> = [&s.train[..], &s.validation, &s.test].concat();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        // The validation rows are those of the two-way split: adding a test set moves only
        // training samples.
        assert_eq!(stratified(&labels, 0.2, 7).1, s.validation);
        // A class of two keeps one for training and gives one to validation, none to test.
        let tiny = stratified3(&[0, 0, 1, 1, 1, 1, 1], 0.3, 0.3, 1);
        assert_eq!(tiny.test.iter().filter(|&&i| i < 2).count(), 0);
        assert_eq!(tiny.train.iter().filter(|&&i| i < 2).count(), 1);
    }

    #[test]
    fn a_class_too_small_for_a_split_is_refused_with_the_counts() {
        let classes = ["a".to_string(), "b".to_string()];
        check(&[0, 0, 1, 1], &classes, 0.0).unwrap();
        let err = check(&[0, 1], &classes, 0.0).unwrap_err().to_string();
        assert!(
            err.contains("at least 2") && err.contains("a 1, b 1"),
            "{err}"
        );
        let err = check(&[0, 0, 1, 1, 1], &classes, 0.2)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("training, validation and test") && err.contains("a 2, b 3"),
            "{err}"
        );
        check(&[0, 0, 0, 1, 1, 1], &classes, 0.2).unwrap();
    }
}
