//! From rotated 2-D coordinates to pixels of an H x W grid: scaling, then one of the collision
//! policies (`bin`, `quantile`, `assign`).

use anyhow::Result;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::assign;
use super::settings::Collisions;

/// How far `assign` moved features from their positions, in pixels.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Displacement {
    pub mean: f64,
    pub max: f64,
    /// Root of the mean squared displacement: the quantity `assign` minimises.
    pub rms: f64,
}

pub struct Placement {
    /// (row, column) of each point.
    pub pixels: Vec<[u32; 2]>,
    pub displacement: Option<Displacement>,
}

pub fn place(
    points: &Array2<f64>,
    height: usize,
    width: usize,
    collisions: Collisions,
) -> Result<Placement> {
    let xs: Vec<f64> = points.column(0).to_vec();
    let ys: Vec<f64> = points.column(1).to_vec();
    let positions = match collisions {
        Collisions::Quantile => to_grid(&quantiles(&xs), &quantiles(&ys), height, width),
        _ => to_grid(&xs, &ys, height, width),
    };
    if collisions != Collisions::Assign {
        return Ok(Placement {
            pixels: positions.iter().map(|&p| bin(p, height, width)).collect(),
            displacement: None,
        });
    }
    let solved = assign::assign(&positions, height, width)?;
    let pixels: Vec<[u32; 2]> = solved
        .pixel
        .iter()
        .map(|&p| [p / width as u32, p % width as u32])
        .collect();
    let moved: Vec<f64> = positions
        .iter()
        .zip(&pixels)
        .map(|(p, &[r, c])| (p[0] - (f64::from(c) + 0.5)).hypot(p[1] - (f64::from(r) + 0.5)))
        .collect();
    let n = moved.len().max(1) as f64;
    Ok(Placement {
        pixels,
        displacement: Some(Displacement {
            mean: moved.iter().sum::<f64>() / n,
            max: moved.iter().copied().fold(0.0, f64::max),
            rms: (solved.cost / n).sqrt(),
        }),
    })
}

/// Continuous (column, row) positions in [0, width) x [0, height): x spans the columns, y the
/// rows with the largest y at row 0 (the top of the image). A zero-extent axis puts every point
/// on the middle line (with all points at one spot, both axes are flat).
fn to_grid(xs: &[f64], ys: &[f64], height: usize, width: usize) -> Vec<[f64; 2]> {
    let span = |v: &[f64]| {
        v.iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                (lo.min(x), hi.max(x))
            })
    };
    let (x_lo, x_hi) = span(xs);
    let (y_lo, y_hi) = span(ys);
    let scale = |t: f64, cells: usize| (t * cells as f64).clamp(0.0, cells as f64 - 1e-9);
    // An axis whose extent is rounding noise next to the other's (a rotated line) is flat.
    let largest = (x_hi - x_lo).max(y_hi - y_lo);
    let flat = |lo: f64, hi: f64| hi - lo <= 1e-9 * largest;
    let (x_flat, y_flat) = (flat(x_lo, x_hi), flat(y_lo, y_hi));
    xs.iter()
        .zip(ys)
        .map(|(&x, &y)| {
            let u = if x_flat {
                0.5
            } else {
                (x - x_lo) / (x_hi - x_lo)
            };
            let v = if y_flat {
                0.5
            } else {
                (y_hi - y) / (y_hi - y_lo)
            };
            [scale(u, width), scale(v, height)]
        })
        .collect()
}

fn bin(p: [f64; 2], height: usize, width: usize) -> [u32; 2] {
    let row = (p[1] as usize).min(height - 1);
    let col = (p[0] as usize).min(width - 1);
    [row as u32, col as u32]
}

/// Mid-rank of each value (ties share their average rank), scaled to [0, 1].
fn quantiles(values: &[f64]) -> Vec<f64> {
    let n = values.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut out = vec![0.0; n];
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let rank = (start + end - 1) as f64 / 2.0;
        for &i in &order[start..end] {
            out[i] = if n > 1 { rank / (n - 1) as f64 } else { 0.5 };
        }
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn extremes_land_on_the_border() {
        let pts = array![[0.0, 0.0], [10.0, 5.0], [5.0, 2.5]];
        let px = place(&pts, 11, 21, Collisions::Bin).unwrap().pixels;
        assert_eq!(px, vec![[10, 0], [0, 20], [5, 10]]);
    }

    #[test]
    fn flat_axis_goes_to_the_middle() {
        let pts = array![[0.0, 1.0], [4.0, 1.0], [2.0, 1.0]];
        let px = place(&pts, 8, 5, Collisions::Bin).unwrap().pixels;
        assert!(px.iter().all(|p| p[0] == 4));
    }

    /// 200 points, 150 of them crowded into 1% of the area, on a 16 x 16 grid.
    fn crowded() -> Array2<f64> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        Array2::from_shape_fn((200, 2), |(i, _)| {
            if i < 150 {
                rng.random_range(0.4..0.6)
            } else {
                rng.random_range(0.0..20.0)
            }
        })
    }

    fn shared(pixels: &[[u32; 2]]) -> usize {
        let mut counts = std::collections::HashMap::new();
        for p in pixels {
            *counts.entry(*p).or_insert(0usize) += 1;
        }
        counts.values().filter(|&&c| c > 1).sum()
    }

    #[test]
    fn assign_removes_the_collisions_that_bin_and_quantile_leave() {
        let pts = crowded();
        let bin = place(&pts, 16, 16, Collisions::Bin).unwrap();
        let quantile = place(&pts, 16, 16, Collisions::Quantile).unwrap();
        let assign = place(&pts, 16, 16, Collisions::Assign).unwrap();
        assert!(
            shared(&bin.pixels) > 140,
            "bin piles the crowd up: {}",
            shared(&bin.pixels)
        );
        assert!(
            shared(&quantile.pixels) < shared(&bin.pixels),
            "quantiles spread it"
        );
        assert_eq!(shared(&assign.pixels), 0);
        let d = assign.displacement.unwrap();
        assert!(d.mean > 0.0 && d.max >= d.mean && d.rms >= d.mean - 1e-12);
        assert!(bin.displacement.is_none());
    }

    #[test]
    fn quantiles_average_ties() {
        assert_eq!(
            quantiles(&[3.0, 1.0, 3.0, 2.0]),
            vec![2.5 / 3.0, 0.0, 2.5 / 3.0, 1.0 / 3.0]
        );
    }
}
