//! Per-feature scores on training samples: the supervised ANOVA F statistic.

use ndarray::{ArrayView2, Axis};

/// Largest F reported: a feature constant within every class but not across them would be
/// infinite, which JSON cannot hold; this keeps it first in any ranking.
pub const F_MAX: f64 = 1e12;

/// One-way ANOVA F of each column across the classes in `labels` (one per row, < `n_classes`),
/// as scikit-learn's `f_classif`: between-class over within-class mean squares. Columns with
/// no variation at all score 0; fewer than two classes or no within-class degrees of freedom
/// give 0 for every column.
pub fn anova_f(values: ArrayView2<f32>, labels: &[usize], n_classes: usize) -> Vec<f64> {
    assert_eq!(values.nrows(), labels.len(), "one label per row");
    let mut counts = vec![0usize; n_classes];
    for &l in labels {
        counts[l] += 1;
    }
    let groups = counts.iter().filter(|&&c| c > 0).count();
    let n = labels.len();
    if groups < 2 || n <= groups {
        return vec![0.0; values.ncols()];
    }
    let (df_between, df_within) = ((groups - 1) as f64, (n - groups) as f64);
    values
        .axis_iter(Axis(1))
        .map(|col| {
            let mut sums = vec![0.0f64; n_classes];
            for (&v, &l) in col.iter().zip(labels) {
                sums[l] += f64::from(v);
            }
            let grand = sums.iter().sum::<f64>() / n as f64;
            let between: f64 = sums
                .iter()
                .zip(&counts)
                .filter(|&(_, &c)| c > 0)
                .map(|(&s, &c)| c as f64 * (s / c as f64 - grand).powi(2))
                .sum();
            let within: f64 = col
                .iter()
                .zip(labels)
                .map(|(&v, &l)| (f64::from(v) - sums[l] / counts[l] as f64).powi(2))
                .sum();
            if between <= 1e-12 * (between + within).max(f64::MIN_POSITIVE) {
                0.0
            } else if within <= 0.0 {
                F_MAX
            } else {
                ((between / df_between) / (within / df_within)).min(F_MAX)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn matches_the_textbook_one_way_anova() {
        // Column 0: groups {1, 2, 3} and {4, 5, 6}: SSB = 13.5 on 1 df, SSW = 4 on 4 df, F = 13.5.
        // Column 1: same means in both groups, F = 0. Column 2: separated, no spread within.
        let x = array![
            [1.0f32, 1.0, 0.0],
            [2.0, 5.0, 0.0],
            [3.0, 3.0, 0.0],
            [4.0, 3.0, 1.0],
            [5.0, 1.0, 1.0],
            [6.0, 5.0, 1.0]
        ];
        let f = anova_f(x.view(), &[0, 0, 0, 1, 1, 1], 2);
        assert!((f[0] - 13.5).abs() < 1e-9, "{f:?}");
        assert_eq!(f[1], 0.0);
        assert_eq!(f[2], F_MAX);
        // An absent class (index 2) changes nothing.
        assert_eq!(anova_f(x.view(), &[0, 0, 0, 1, 1, 1], 3), f);
        assert_eq!(anova_f(x.view(), &[0; 6], 1), vec![0.0; 3]);
    }
}
