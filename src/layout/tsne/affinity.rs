//! Input affinities P of t-SNE: a Gaussian around each point whose width gives the requested
//! perplexity over its nearest neighbours, then symmetrised and normalised to sum to 1
//! (van der Maaten 2014, as scikit-learn computes them).

use rayon::prelude::*;

use super::neighbours::Neighbours;

/// Symmetric sparse matrix in compressed rows.
#[derive(Debug, Clone)]
pub struct Sparse {
    pub offsets: Vec<usize>,
    pub columns: Vec<u32>,
    pub values: Vec<f64>,
}

impl Sparse {
    pub fn row(&self, i: usize) -> (&[u32], &[f64]) {
        let range = self.offsets[i]..self.offsets[i + 1];
        (&self.columns[range.clone()], &self.values[range])
    }
}

/// Conditional affinities p(j | i) for each point's neighbours, each row summing to 1.
fn conditional(nb: &Neighbours, perplexity: f64) -> Vec<f64> {
    let k = nb.k;
    let target_entropy = perplexity.ln();
    let mut p = vec![0.0; nb.distance.len()];
    p.par_chunks_mut(k)
        .zip(nb.distance.par_chunks(k))
        .for_each(|(row, dist)| search_beta(dist, target_entropy, row));
    p
}

/// Binary search on the precision beta so that the row's entropy is `target` (nats).
fn search_beta(dist: &[f32], target: f64, out: &mut [f64]) {
    const TOLERANCE: f64 = 1e-5;
    const STEPS: usize = 100;
    let (mut beta, mut lo, mut hi) = (1.0f64, f64::NEG_INFINITY, f64::INFINITY);
    // Distances relative to the nearest keep exp() away from underflow; the shift cancels
    // in the normalisation.
    let d0 = f64::from(dist[0]);
    for _ in 0..STEPS {
        let mut sum = 0.0;
        for (o, &d) in out.iter_mut().zip(dist) {
            *o = (-(f64::from(d) - d0) * beta).exp();
            sum += *o;
        }
        let mut weighted = 0.0;
        for (o, &d) in out.iter_mut().zip(dist) {
            *o /= sum;
            weighted += (f64::from(d) - d0) * *o;
        }
        let entropy = sum.ln() + beta * weighted;
        let gap = entropy - target;
        if gap.abs() <= TOLERANCE {
            break;
        }
        if gap > 0.0 {
            lo = beta;
            beta = if hi.is_finite() {
                (beta + hi) / 2.0
            } else {
                beta * 2.0
            };
        } else {
            hi = beta;
            beta = if lo.is_finite() {
                (beta + lo) / 2.0
            } else {
                beta / 2.0
            };
        }
    }
}

/// P = (P_cond + P_cond^T) / sum, as a symmetric sparse matrix.
pub fn joint(nb: &Neighbours, perplexity: f64) -> Sparse {
    let n = nb.index.len() / nb.k;
    let p = conditional(nb, perplexity);
    // Each (i, j, p) is entered in both rows; sorting by (row, column) and merging sums the
    // at most two entries of a pair, so the result does not depend on any thread schedule.
    let mut entries: Vec<(u32, u32, f64)> = Vec::with_capacity(2 * p.len());
    for (e, (&j, &v)) in nb.index.iter().zip(&p).enumerate() {
        let i = (e / nb.k) as u32;
        entries.push((i, j, v));
        entries.push((j, i, v));
    }
    entries.par_sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    let mut offsets = vec![0usize; n + 1];
    let mut columns = Vec::with_capacity(entries.len());
    let mut values: Vec<f64> = Vec::with_capacity(entries.len());
    let mut last: Option<(u32, u32)> = None;
    for (i, j, v) in entries {
        if last == Some((i, j)) {
            *values.last_mut().expect("merged into an entry") += v;
        } else {
            columns.push(j);
            values.push(v);
            offsets[i as usize + 1] += 1;
            last = Some((i, j));
        }
    }
    for i in 0..n {
        offsets[i + 1] += offsets[i];
    }
    let total: f64 = values.iter().sum();
    values
        .iter_mut()
        .for_each(|v| *v /= total.max(f64::MIN_POSITIVE));
    Sparse {
        offsets,
        columns,
        values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_reach_the_perplexity_and_p_is_symmetric() {
        // 4 points on a line, k = 3: every point sees all the others.
        let coords = [0.0f32, 1.0, 3.0, 7.0];
        let k = 3;
        let mut index = vec![];
        let mut distance = vec![];
        for i in 0..4 {
            let mut others: Vec<(f32, u32)> = (0..4)
                .filter(|&j| j != i)
                .map(|j| ((coords[i] - coords[j]).powi(2), j as u32))
                .collect();
            others.sort_by(|a, b| a.0.total_cmp(&b.0));
            index.extend(others.iter().map(|o| o.1));
            distance.extend(others.iter().map(|o| o.0));
        }
        let nb = Neighbours { k, index, distance };
        let perplexity = 2.0;
        let cond = conditional(&nb, perplexity);
        for row in cond.chunks(k) {
            let entropy: f64 = -row
                .iter()
                .filter(|&&p| p > 0.0)
                .map(|p| p * p.ln())
                .sum::<f64>();
            assert!(
                (entropy.exp() - perplexity).abs() < 1e-3,
                "perplexity {}",
                entropy.exp()
            );
        }
        let p = joint(&nb, perplexity);
        let total: f64 = p.values.iter().sum();
        assert!((total - 1.0).abs() < 1e-12);
        let get = |i: usize, j: u32| {
            let (c, v) = p.row(i);
            c.iter().position(|&x| x == j).map(|q| v[q]).unwrap()
        };
        for i in 0..4 {
            for j in 0..4u32 {
                if i as u32 != j {
                    assert_eq!(get(i, j), get(j as usize, i as u32));
                }
            }
        }
    }
}
