//! Stratified k-fold assignment, and the checks that every fold can be trained and scored.

use anyhow::{Result, bail};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// The fold (0..k) of every sample: each class's samples shuffled by `seed` and dealt round
/// the folds, continuing where the previous class stopped, so each fold's class counts are
/// within one of proportional and fold sizes within one of each other.
pub fn assign(labels: &[usize], k: usize, seed: u64) -> Vec<usize> {
    let n_classes = labels.iter().max().map_or(0, |m| m + 1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut fold = vec![0; labels.len()];
    let mut next = 0;
    for class in 0..n_classes {
        let mut rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        rows.shuffle(&mut rng);
        for r in rows {
            fold[r] = next % k;
            next += 1;
        }
    }
    fold
}

/// Refuses, before any training, folds that cannot be trained and scored: a class with fewer
/// samples than folds (some test fold would lack it), or a training fold holding fewer than
/// two of a class (its inner split needs one to train on and one to validate).
pub fn check(labels: &[usize], classes: &[String], folds: &[usize], k: usize) -> Result<()> {
    for (c, name) in classes.iter().enumerate() {
        let n = labels.iter().filter(|&&l| l == c).count();
        if n < k {
            bail!(
                "class '{name}' has {n} sample(s), fewer than the {k} folds: every fold needs \
                 one to test on; use fewer folds (--folds) or leave the class out"
            );
        }
        for f in 0..k {
            let in_training = (0..labels.len())
                .filter(|&i| labels[i] == c && folds[i] != f)
                .count();
            if in_training < 2 {
                bail!(
                    "class '{name}': fold {} leaves {in_training} of its samples for training, \
                     and the inner validation split needs at least 2",
                    f + 1
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_are_stratified_disjoint_and_cover_every_sample() {
        // 3 classes of 23, 11 and 7 samples.
        let labels: Vec<usize> = (0..41)
            .map(|i| match i % 41 {
                i if i < 23 => 0,
                i if i < 34 => 1,
                _ => 2,
            })
            .collect();
        let k = 5;
        let folds = assign(&labels, k, 3);
        assert_eq!(folds.len(), labels.len());
        assert!(folds.iter().all(|&f| f < k));
        for c in 0..3 {
            let n = labels.iter().filter(|&&l| l == c).count() as f64;
            for f in 0..k {
                let in_fold = (0..labels.len())
                    .filter(|&i| labels[i] == c && folds[i] == f)
                    .count() as f64;
                assert!(
                    (in_fold - n / k as f64).abs() < 1.0,
                    "class {c} fold {f}: {in_fold} of {n}"
                );
            }
        }
        let sizes: Vec<usize> = (0..k)
            .map(|f| folds.iter().filter(|&&x| x == f).count())
            .collect();
        assert!(
            sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
            "{sizes:?}"
        );
        assert_ne!(folds, assign(&labels, k, 4), "another seed, other folds");
        assert_eq!(
            folds,
            assign(&labels, k, 3),
            "the same seed, the same folds"
        );
    }

    #[test]
    fn a_class_too_small_for_the_folds_is_named_with_its_count() {
        let labels = [0, 0, 0, 0, 0, 1, 1, 1];
        let classes = ["big".to_string(), "rare".to_string()];
        let err = check(&labels, &classes, &assign(&labels, 4, 1), 4).unwrap_err();
        assert!(
            err.to_string()
                .contains("class 'rare' has 3 sample(s), fewer than the 4 folds"),
            "{err}"
        );
        check(&labels, &classes, &assign(&labels, 3, 1), 3).unwrap();
        let labels = [0, 0, 0, 0, 1, 1];
        let err = check(&labels, &classes, &assign(&labels, 2, 1), 2).unwrap_err();
        assert!(err.to_string().contains("needs at least 2"), "{err}");
    }
}
