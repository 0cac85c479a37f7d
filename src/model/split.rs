//! Stratified train/validation split from a seed.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Row indices (train, validation), each sorted. Every class with at least two samples puts
/// round(n * fraction) of them, and at least one, into validation.
pub fn stratified(labels: &[usize], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let n_classes = labels.iter().max().map_or(0, |m| m + 1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut train, mut valid) = (Vec::new(), Vec::new());
    for class in 0..n_classes {
        let mut rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        rows.shuffle(&mut rng);
        let n_valid = if rows.len() < 2 {
            0
        } else {
            ((rows.len() as f64 * fraction).round() as usize).clamp(1, rows.len() - 1)
        };
        valid.extend_from_slice(&rows[..n_valid]);
        train.extend_from_slice(&rows[n_valid..]);
    }
    train.sort_unstable();
    valid.sort_unstable();
    (train, valid)
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
}
