//! Scaling rotated coordinates onto an H x W pixel grid.

use ndarray::Array2;

/// Pixel (row, column) of each point: x spans the columns, y the rows (row 0 at the top, as in
/// the image). A zero-extent axis puts every point on the middle line.
pub fn to_pixels(points: &Array2<f64>, height: usize, width: usize) -> Vec<[u32; 2]> {
    let bounds = |k: usize| {
        let c = points.column(k);
        let lo = c.fold(f64::INFINITY, |a, &b| a.min(b));
        let hi = c.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        (lo, hi)
    };
    let (x_lo, x_hi) = bounds(0);
    let (y_lo, y_hi) = bounds(1);
    let place = |v: f64, lo: f64, hi: f64, cells: usize| -> u32 {
        let last = (cells - 1) as f64;
        let cell = if hi > lo {
            ((v - lo) / (hi - lo) * last).round()
        } else {
            (last / 2.0).floor()
        };
        cell.clamp(0.0, last) as u32
    };
    points
        .rows()
        .into_iter()
        .map(|r| {
            let col = place(r[0], x_lo, x_hi, width);
            let row = height as u32 - 1 - place(r[1], y_lo, y_hi, height);
            [row, col]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn extremes_land_on_the_border() {
        let pts = array![[0.0, 0.0], [10.0, 5.0], [5.0, 2.5]];
        let px = to_pixels(&pts, 11, 21);
        assert_eq!(px, vec![[10, 0], [0, 20], [5, 10]]);
    }

    #[test]
    fn flat_axis_goes_to_the_middle() {
        let pts = array![[0.0, 1.0], [4.0, 1.0], [2.0, 1.0]];
        let px = to_pixels(&pts, 8, 5);
        assert!(px.iter().all(|p| p[0] == 4));
    }
}
