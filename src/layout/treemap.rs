//! A spatial treemap on the pixel grid: one rectangle per item, with area in proportion to the
//! item's demand and never below it, and items that are close in a 2-D embedding placed next to
//! each other.
//!
//! Recursive bisection: the items are sorted along their embedding's wider axis, split where
//! the demand is halved, and the rectangle is cut across its longer side in the same proportion,
//! so neighbours in the embedding become neighbouring rectangles. Cuts are whole rows or columns,
//! which keeps every rectangle a solid (4-connected) block of pixels. When rounding leaves one
//! side too small, other split points (and then the other axis) are tried.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// A block of pixels: rows `row..row + height`, columns `col..col + width`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rect {
    pub row: u32,
    pub col: u32,
    pub height: u32,
    pub width: u32,
}

impl Rect {
    pub fn area(&self) -> usize {
        self.height as usize * self.width as usize
    }

    pub fn contains(&self, [r, c]: [u32; 2]) -> bool {
        (self.row..self.row + self.height).contains(&r)
            && (self.col..self.col + self.width).contains(&c)
    }
}

/// Bounds the search when tight demands make many cuts fail.
const MAX_ATTEMPTS: usize = 100_000;

/// One rectangle per item of `demand` (pixels needed, each at least 1), tiling the
/// `height` x `width` grid.
pub fn treemap(
    demand: &[usize],
    position: &[[f64; 2]],
    height: usize,
    width: usize,
) -> Result<Vec<Rect>> {
    assert_eq!(demand.len(), position.len());
    let total: usize = demand.iter().sum();
    if demand.is_empty() {
        bail!("a treemap needs at least one block");
    }
    if total > height * width {
        bail!(
            "the blocks need {total} pixels but a {height}x{width} image has {}",
            height * width
        );
    }
    let mut search = Search {
        demand,
        position,
        out: vec![None; demand.len()],
        attempts: 0,
    };
    let items: Vec<usize> = (0..demand.len()).collect();
    let whole = Rect {
        row: 0,
        col: 0,
        height: height as u32,
        width: width as u32,
    };
    if !search.split(items, whole) {
        bail!(
            "cannot cut a {height}x{width} image into blocks of {total} pixels in all without \
             splitting one; raise layout.height/layout.width or keep fewer features per block"
        );
    }
    Ok(search
        .out
        .into_iter()
        .map(|r| r.expect("every item placed"))
        .collect())
}

struct Search<'a> {
    demand: &'a [usize],
    position: &'a [[f64; 2]],
    out: Vec<Option<Rect>>,
    attempts: usize,
}

impl Search<'_> {
    fn split(&mut self, mut items: Vec<usize>, rect: Rect) -> bool {
        self.attempts += 1;
        if self.attempts > MAX_ATTEMPTS {
            return false;
        }
        let need: usize = items.iter().map(|&i| self.demand[i]).sum();
        if need > rect.area() {
            return false;
        }
        if let [only] = items[..] {
            self.out[only] = Some(rect);
            return true;
        }
        // The embedding's wider axis among these items runs along the rectangle's longer side.
        let spread = |k: usize| {
            let (lo, hi) = items
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &i| {
                    (lo.min(self.position[i][k]), hi.max(self.position[i][k]))
                });
            hi - lo
        };
        let axis = usize::from(spread(1) > spread(0));
        items.sort_by(|&a, &b| {
            self.position[a][axis]
                .total_cmp(&self.position[b][axis])
                .then(a.cmp(&b))
        });
        let prefix: Vec<usize> = items
            .iter()
            .scan(0, |acc, &i| {
                *acc += self.demand[i];
                Some(*acc)
            })
            .collect();
        // Split points, the most balanced first.
        let mut points: Vec<usize> = (1..items.len()).collect();
        points.sort_by_key(|&k| (2 * prefix[k - 1]).abs_diff(need));
        let across_columns = rect.width >= rect.height;
        for columns in [across_columns, !across_columns] {
            for &k in &points {
                let Some((first, second)) = cut(rect, prefix[k - 1], need, columns) else {
                    continue;
                };
                let snapshot = self.out.clone();
                if self.split(items[..k].to_vec(), first) && self.split(items[k..].to_vec(), second)
                {
                    return true;
                }
                self.out = snapshot;
                if self.attempts > MAX_ATTEMPTS {
                    return false;
                }
            }
        }
        false
    }
}

/// Cuts `rect` across columns (or rows) so the first part gets about `part / whole` of it and
/// both parts hold their demand; `None` if no whole-line cut does.
fn cut(rect: Rect, part: usize, whole: usize, columns: bool) -> Option<(Rect, Rect)> {
    let (length, breadth) = if columns {
        (rect.width as usize, rect.height as usize)
    } else {
        (rect.height as usize, rect.width as usize)
    };
    let lowest = part.div_ceil(breadth);
    let highest = length.checked_sub((whole - part).div_ceil(breadth))?;
    if lowest > highest || lowest == 0 || highest == length {
        return None;
    }
    let ideal = (length as f64 * part as f64 / whole as f64).round() as usize;
    let at = ideal.clamp(lowest, highest) as u32;
    Some(if columns {
        (
            Rect { width: at, ..rect },
            Rect {
                col: rect.col + at,
                width: rect.width - at,
                ..rect
            },
        )
    } else {
        (
            Rect { height: at, ..rect },
            Rect {
                row: rect.row + at,
                height: rect.height - at,
                ..rect
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_tiling(rects: &[Rect], demand: &[usize], height: usize, width: usize) {
        let mut owner = vec![usize::MAX; height * width];
        for (i, r) in rects.iter().enumerate() {
            assert!(
                r.area() >= demand[i],
                "block {i}: {r:?} holds fewer than {}",
                demand[i]
            );
            for row in r.row..r.row + r.height {
                for col in r.col..r.col + r.width {
                    let cell = &mut owner[row as usize * width + col as usize];
                    assert_eq!(*cell, usize::MAX, "blocks overlap at ({row}, {col})");
                    *cell = i;
                }
            }
        }
        assert!(
            owner.iter().all(|&o| o != usize::MAX),
            "the blocks tile the grid"
        );
    }

    #[test]
    fn areas_follow_demand_and_neighbours_stay_together() {
        let demand = [40, 10, 10, 20, 120];
        // Items 0 and 3 sit together far left, the rest to the right.
        let position = [
            [-5.0, 0.0],
            [5.0, 1.0],
            [5.0, -1.0],
            [-5.0, 0.5],
            [6.0, 0.0],
        ];
        let rects = treemap(&demand, &position, 32, 32).unwrap();
        check_tiling(&rects, &demand, 32, 32);
        let scale = 1024.0 / 200.0;
        for (r, &d) in rects.iter().zip(&demand) {
            let ratio = r.area() as f64 / (d as f64 * scale);
            assert!(
                (0.7..1.4).contains(&ratio),
                "{r:?} for demand {d}: ratio {ratio}"
            );
        }
        // Item 4, half the demand and furthest right, gets the right part of the grid; the
        // close pair 0 and 3 share an edge.
        for r in [0, 1, 2, 3] {
            assert!(rects[r].col + rects[r].width <= rects[4].col, "{rects:?}");
        }
        assert!(touch(&rects[0], &rects[3]), "{rects:?}");
    }

    fn touch(a: &Rect, b: &Rect) -> bool {
        let overlap = |a0: u32, a1: u32, b0: u32, b1: u32| a0 < b1 && b0 < a1;
        let rows = overlap(a.row, a.row + a.height, b.row, b.row + b.height);
        let cols = overlap(a.col, a.col + a.width, b.col, b.col + b.width);
        (rows && (a.col + a.width == b.col || b.col + b.width == a.col))
            || (cols && (a.row + a.height == b.row || b.row + b.height == a.row))
    }

    #[test]
    fn tight_demands_still_fit_or_fail_clearly() {
        // 9 blocks of 7 pixels in an 8x8 grid (63 of 64): only a few cuts work.
        let demand = [7; 9];
        let position: Vec<[f64; 2]> = (0..9).map(|i| [i as f64, (i * 7 % 5) as f64]).collect();
        let rects = treemap(&demand, &position, 8, 8).unwrap();
        check_tiling(&rects, &demand, 8, 8);

        let err = treemap(&[40, 30], &[[0.0, 0.0], [1.0, 0.0]], 8, 8).unwrap_err();
        assert!(err.to_string().contains("need 70 pixels"), "{err}");
        // 3 blocks of 3 in a 3x3 grid fit; 2 blocks of 4 and one of 1 do not without
        // splitting a block across lines.
        check_tiling(
            &treemap(&[3, 3, 3], &[[0.0, 0.0]; 3], 3, 3).unwrap(),
            &[3, 3, 3],
            3,
            3,
        );
        assert!(treemap(&[4, 4, 1], &[[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]], 3, 3).is_err());
    }
}
