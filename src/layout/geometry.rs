//! Convex hull, minimum-area bounding rectangle and the rotation that makes it axis-aligned
//! with the long side horizontal (Sharma et al. 2019).

use geo::{ConvexHull, CoordsIter, MinimumRotatedRect, MultiPoint, Point};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

/// The geometry found in embedding space; kept for the feature-map picture.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Frame {
    /// Convex hull vertices, in embedding coordinates.
    pub hull: Vec<[f64; 2]>,
    /// Corners of the minimum-area rectangle, in embedding coordinates.
    pub rectangle: Vec<[f64; 2]>,
    /// Angle (radians) by which points are rotated so that the rectangle's long side is
    /// horizontal.
    pub rotation: f64,
}

/// Finds the hull and rectangle of the points (n x 2) and returns the rotated points.
pub fn align_to_rectangle(points: &Array2<f64>) -> (Frame, Array2<f64>) {
    let multi: MultiPoint<f64> = points
        .rows()
        .into_iter()
        .map(|r| Point::new(r[0], r[1]))
        .collect();
    let hull: Vec<[f64; 2]> = multi
        .convex_hull()
        .exterior()
        .coords_iter()
        .map(|c| [c.x, c.y])
        .collect();
    let rectangle: Vec<[f64; 2]> = multi
        .minimum_rotated_rect()
        .map(|r| r.exterior().coords_iter().map(|c| [c.x, c.y]).collect())
        .unwrap_or_default();
    let rotation = long_side_angle(&rectangle).map_or(0.0, |angle| -angle);
    let (sin, cos) = rotation.sin_cos();
    let mut rotated = points.clone();
    for mut r in rotated.rows_mut() {
        let (x, y) = (r[0], r[1]);
        r[0] = x * cos - y * sin;
        r[1] = x * sin + y * cos;
    }
    (
        Frame {
            hull,
            rectangle,
            rotation,
        },
        rotated,
    )
}

/// Angle of the rectangle's longer side, or None for a degenerate rectangle.
fn long_side_angle(rect: &[[f64; 2]]) -> Option<f64> {
    if rect.len() < 3 {
        return None;
    }
    let side = |a: [f64; 2], b: [f64; 2]| (b[0] - a[0], b[1] - a[1]);
    let (e1, e2) = (side(rect[0], rect[1]), side(rect[1], rect[2]));
    let len = |e: (f64, f64)| e.0.hypot(e.1);
    let long = if len(e1) >= len(e2) { e1 } else { e2 };
    (len(long) > 0.0).then(|| long.1.atan2(long.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilted_rectangle_is_turned_long_side_horizontal() {
        // Points of a 4 x 1 rectangle tilted by 30 degrees.
        let angle = 30f64.to_radians();
        let corners = [[0.0, 0.0], [4.0, 0.0], [4.0, 1.0], [0.0, 1.0], [2.0, 0.5]];
        let pts = Array2::from_shape_fn((corners.len(), 2), |(i, k)| {
            let [x, y] = corners[i];
            if k == 0 {
                x * angle.cos() - y * angle.sin()
            } else {
                x * angle.sin() + y * angle.cos()
            }
        });
        let (frame, rotated) = align_to_rectangle(&pts);
        let span = |k: usize| {
            let c = rotated.column(k);
            c.fold(f64::MIN, |a, &b| a.max(b)) - c.fold(f64::MAX, |a, &b| a.min(b))
        };
        assert!((span(0) - 4.0).abs() < 1e-9, "width {}", span(0));
        assert!((span(1) - 1.0).abs() < 1e-9, "height {}", span(1));
        assert_eq!(frame.hull.len(), 5, "closed hull of 4 corners");
    }
}
