//! Variance-based feature selection on training samples.

use ndarray::{ArrayView2, Axis};

/// Sample variance (n - 1) of each column.
pub fn column_variances(values: ArrayView2<f32>) -> Vec<f64> {
    let n = values.nrows() as f64;
    values
        .axis_iter(Axis(1))
        .map(|col| {
            if n < 2.0 {
                return 0.0;
            }
            let mean = col.iter().map(|&x| x as f64).sum::<f64>() / n;
            col.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0)
        })
        .collect()
}

/// Indices of the columns whose variance is above zero (up to float noise).
pub fn non_constant(values: ArrayView2<f32>) -> Vec<usize> {
    column_variances(values)
        .into_iter()
        .enumerate()
        .filter(|&(_, v)| v > 1e-12)
        .map(|(j, _)| j)
        .collect()
}

/// The `k` candidates with the largest variance, returned in ascending index order so the
/// feature order of the table is kept. Ties go to the earlier column.
pub fn top_k(values: ArrayView2<f32>, candidates: &[usize], k: usize) -> Vec<usize> {
    let variances = column_variances(values);
    let mut ranked: Vec<usize> = candidates.to_vec();
    ranked.sort_by(|&a, &b| variances[b].total_cmp(&variances[a]).then(a.cmp(&b)));
    ranked.truncate(k);
    ranked.sort_unstable();
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn constant_columns_are_removed_and_top_k_ranks_by_variance() {
        let x = array![
            [1.0f32, 5.0, 0.0, 2.0],
            [1.0, 7.0, 10.0, 2.5],
            [1.0, 9.0, 20.0, 3.0]
        ];
        let kept = non_constant(x.view());
        assert_eq!(kept, vec![1, 2, 3]);
        assert_eq!(top_k(x.view(), &kept, 2), vec![1, 2]);
        assert_eq!(top_k(x.view(), &kept, 10), vec![1, 2, 3]);
    }
}
