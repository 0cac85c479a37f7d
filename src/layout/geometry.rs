//! Convex hull, minimum-area bounding rectangle and the rotation that makes it axis-aligned
//! with the long side horizontal (Sharma et al. 2019).

use geo::{ConvexHull, CoordsIter, MultiPoint, Point};
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
    let rectangle = minimum_area_rectangle(&hull);
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

/// Minimum-area enclosing rectangle of a convex polygon by rotating calipers (Toussaint
/// 1983): the best rectangle has a side on a hull edge, and as the edge advances around the
/// hull the three other extreme vertices only move forward, so all edges take O(h) in total.
/// Returns the closed corner ring; a hull of fewer than 3 distinct vertices (1 point or
/// collinear points) gives the segment between its extremes as a flat rectangle.
pub fn minimum_area_rectangle(closed_hull: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let mut hull: Vec<[f64; 2]> = closed_hull.to_vec();
    hull.dedup();
    if hull.len() > 1 && hull.first() == hull.last() {
        hull.pop();
    }
    let signed_area: f64 = (0..hull.len())
        .map(|i| {
            let (a, b) = (hull[i], hull[(i + 1) % hull.len()]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum();
    if hull.len() < 3 || signed_area == 0.0 {
        return flat_rectangle(&hull);
    }
    if signed_area < 0.0 {
        hull.reverse();
    }
    let h = hull.len();
    let dot = |a: [f64; 2], b: (f64, f64)| a[0] * b.0 + a[1] * b.1;
    let next = |i: usize| (i + 1) % h;
    let (mut right, mut top, mut left) = (0usize, 0usize, 0usize);
    // (area, long side / short side, closed corner ring) per hull edge.
    let mut candidates: Vec<(f64, f64, [[f64; 2]; 5])> = Vec::new();
    for i in 0..h {
        let (a, b) = (hull[i], hull[next(i)]);
        let len = (b[0] - a[0]).hypot(b[1] - a[1]);
        if len == 0.0 {
            continue;
        }
        let e = ((b[0] - a[0]) / len, (b[1] - a[1]) / len);
        // Inward normal of a counter-clockwise polygon.
        let n = (-e.1, e.0);
        let first = candidates.is_empty();
        if first {
            right = i;
            top = i;
            left = i;
        }
        while dot(hull[next(right)], e) >= dot(hull[right], e) && next(right) != i {
            right = next(right);
        }
        if first {
            top = right;
        }
        while dot(hull[next(top)], n) >= dot(hull[top], n) && next(top) != i {
            top = next(top);
        }
        if first {
            left = top;
        }
        // The edge's own start may be the leftmost vertex, so `left` may stop on `i`.
        while left != i && dot(hull[next(left)], e) <= dot(hull[left], e) {
            left = next(left);
        }
        let (e_lo, e_hi) = (dot(hull[left], e), dot(hull[right], e));
        let (n_lo, n_hi) = (dot(a, n), dot(hull[top], n));
        let area = (e_hi - e_lo) * (n_hi - n_lo);
        let (long, short) = (
            (e_hi - e_lo).max(n_hi - n_lo),
            (e_hi - e_lo).min(n_hi - n_lo),
        );
        let corner = |s: f64, t: f64| [s * e.0 + t * n.0, s * e.1 + t * n.1];
        let ring = [
            corner(e_lo, n_lo),
            corner(e_hi, n_lo),
            corner(e_hi, n_hi),
            corner(e_lo, n_hi),
            corner(e_lo, n_lo),
        ];
        candidates.push((area, long / short.max(f64::MIN_POSITIVE), ring));
    }
    // Rectangles whose areas differ by rounding alone (symmetric shapes have several) are
    // told apart by shape: the least elongated one, which the square grid distorts least.
    // Without this, a change in the last bits of the embedding could turn the whole frame.
    let smallest = candidates.iter().map(|c| c.0).fold(f64::INFINITY, f64::min);
    candidates
        .into_iter()
        .filter(|c| c.0 <= smallest * (1.0 + AREA_TIE))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|c| c.2.to_vec())
        .unwrap_or_default()
}

/// Relative difference in area under which two rectangles count as equally small.
pub const AREA_TIE: f64 = 1e-6;

/// The segment between the two most distant of some collinear points, as a rectangle of zero
/// height; empty for a single point.
fn flat_rectangle(points: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let mut far = None;
    let mut best = 0.0;
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            let d = (b[0] - a[0]).hypot(b[1] - a[1]);
            if d > best {
                best = d;
                far = Some((*a, *b));
            }
        }
    }
    far.map(|(a, b)| vec![a, b, b, a, a]).unwrap_or_default()
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
        let area = polygon_area(&frame.rectangle);
        assert!((area - 4.0).abs() < 1e-9, "area {area}");
    }

    fn polygon_area(ring: &[[f64; 2]]) -> f64 {
        ring.windows(2)
            .map(|w| w[0][0] * w[1][1] - w[1][0] * w[0][1])
            .sum::<f64>()
            .abs()
            / 2.0
    }

    #[test]
    fn calipers_match_the_edge_by_edge_search() {
        use geo::MinimumRotatedRect;
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        for _ in 0..50 {
            let n = rng.random_range(3..60);
            let pts: MultiPoint<f64> = (0..n)
                .map(|_| {
                    Point::new(
                        rng.random_range(-5.0..5.0),
                        rng.random_range(-1.0..1.0) * 3.0,
                    )
                })
                .collect();
            let hull: Vec<[f64; 2]> = pts
                .convex_hull()
                .exterior()
                .coords_iter()
                .map(|c| [c.x, c.y])
                .collect();
            let ours = polygon_area(&minimum_area_rectangle(&hull));
            let reference = pts.minimum_rotated_rect().unwrap();
            let theirs = polygon_area(
                &reference
                    .exterior()
                    .coords_iter()
                    .map(|c| [c.x, c.y])
                    .collect::<Vec<_>>(),
            );
            assert!(
                ours >= theirs * (1.0 - 1e-9) && ours <= theirs * (1.0 + AREA_TIE) + 1e-12,
                "{ours} vs {theirs}"
            );
        }
    }

    #[test]
    fn collinear_and_single_points_give_a_defined_frame() {
        let line = Array2::from_shape_fn(
            (5, 2),
            |(i, k)| if k == 0 { i as f64 } else { 2.0 * i as f64 },
        );
        let (frame, rotated) = align_to_rectangle(&line);
        assert!(rotated.iter().all(|v| v.is_finite()));
        let ys = rotated.column(1);
        assert!(
            ys.iter().all(|&y| (y - ys[0]).abs() < 1e-9),
            "the line is turned horizontal"
        );
        assert!(frame.rotation != 0.0);
        for n in [1, 2] {
            let pts = Array2::from_shape_fn((n, 2), |(i, _)| i as f64);
            let (_, rotated) = align_to_rectangle(&pts);
            assert!(rotated.iter().all(|v| v.is_finite()));
        }
    }

    #[test]
    fn equal_area_rectangles_go_to_the_least_elongated_whatever_the_rounding() {
        // A 3-4-5 right triangle has two minimum rectangles of area 12: on the legs (4 x 3)
        // and on the hypotenuse (5 x 2.4). A nudge far below the tie tolerance, either way,
        // must not change the choice.
        for nudge in [0.0, 1e-9, -1e-9] {
            let hull = [[0.0, 0.0], [4.0 + nudge, 0.0], [0.0, 3.0], [0.0, 0.0]];
            let ring = minimum_area_rectangle(&hull);
            let side = |a: [f64; 2], b: [f64; 2]| (a[0] - b[0]).hypot(a[1] - b[1]);
            let (s1, s2) = (side(ring[0], ring[1]), side(ring[1], ring[2]));
            let (long, short) = (s1.max(s2), s1.min(s2));
            assert!(
                (long - 4.0).abs() < 1e-6 && (short - 3.0).abs() < 1e-6,
                "{long} x {short}"
            );
        }
    }
}
