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
}
