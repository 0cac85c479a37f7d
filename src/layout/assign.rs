//! Collision-free placement: every feature gets its own pixel, with the least total squared
//! displacement from where the embedding put it.
//!
//! This is a rectangular linear assignment problem (features x pixels), solved exactly on a
//! sparse graph: each feature may only move to the pixels of a square window around its
//! position, sized from the local crowding so that the window holds at least twice as many
//! pixels as features. Shortest augmenting paths (Dijkstra on reduced costs, as in
//! Jonker-Volgenant and scipy's `linear_sum_assignment`) then give the optimum over those
//! edges. When a search runs out of pixels the windows it touched are doubled and the solve
//! restarts, so a result is always a complete assignment. Memory is O(features + pixels):
//! window edges are never stored, their costs are computed when a feature is scanned.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use anyhow::{Result, bail};

/// Placement found by `assign`.
#[derive(Debug, Clone)]
pub struct Assignment {
    /// Pixel (row-major index) of each feature.
    pub pixel: Vec<u32>,
    /// Total squared displacement, in pixels^2.
    pub cost: f64,
}

const UNASSIGNED: u32 = u32::MAX;

/// `points` are continuous (column, row) positions in [0, width) x [0, height); pixel (r, c)
/// has its centre at (c + 0.5, r + 0.5).
pub fn assign(points: &[[f64; 2]], height: usize, width: usize) -> Result<Assignment> {
    let n = points.len();
    if n > height * width {
        bail!(
            "collisions = \"assign\" gives each feature its own pixel, but {n} features do not \
             fit in {height} x {width} = {} pixels: enlarge layout.height/layout.width, keep \
             fewer features (select.top_k) or use collisions = \"bin\"",
            height * width
        );
    }
    let grid = Grid { height, width };
    let mut radius = initial_radii(points, &grid);
    loop {
        match Solver::new(points, &grid, &radius).solve() {
            Ok(a) => return Ok(a),
            Err(stuck) => {
                tracing::debug!(rows = stuck.len(), "assignment windows enlarged");
                let limit = height.max(width) as u32;
                for i in stuck {
                    radius[i] = (radius[i] * 2).min(limit);
                }
            }
        }
    }
}

struct Grid {
    height: usize,
    width: usize,
}

impl Grid {
    fn cell(&self, p: [f64; 2]) -> (usize, usize) {
        let c = (p[0].max(0.0) as usize).min(self.width - 1);
        let r = (p[1].max(0.0) as usize).min(self.height - 1);
        (r, c)
    }

    fn cost(&self, p: [f64; 2], pixel: usize) -> f64 {
        let (r, c) = (pixel / self.width, pixel % self.width);
        let dx = p[0] - (c as f64 + 0.5);
        let dy = p[1] - (r as f64 + 0.5);
        dx * dx + dy * dy
    }

    /// Clipped square window of half-size `radius` around the cell of `p`:
    /// rows r0..r1, columns c0..c1.
    fn window(&self, p: [f64; 2], radius: u32) -> (usize, usize, usize, usize) {
        let (r, c) = self.cell(p);
        let rad = radius as usize;
        (
            r.saturating_sub(rad),
            (r + rad + 1).min(self.height),
            c.saturating_sub(rad),
            (c + rad + 1).min(self.width),
        )
    }
}

/// Smallest half-size per feature whose window has at least twice as many pixels as features
/// (counted with a summed-area table of features per cell), and at least 2.
fn initial_radii(points: &[[f64; 2]], grid: &Grid) -> Vec<u32> {
    let (h, w) = (grid.height, grid.width);
    let mut sums = vec![0u32; (h + 1) * (w + 1)];
    for &p in points {
        let (r, c) = grid.cell(p);
        sums[(r + 1) * (w + 1) + c + 1] += 1;
    }
    for r in 1..=h {
        for c in 1..=w {
            sums[r * (w + 1) + c] += sums[(r - 1) * (w + 1) + c] + sums[r * (w + 1) + c - 1]
                - sums[(r - 1) * (w + 1) + c - 1];
        }
    }
    let count = |(r0, r1, c0, c1): (usize, usize, usize, usize)| {
        let at = |r: usize, c: usize| sums[r * (w + 1) + c] as usize;
        at(r1, c1) + at(r0, c0) - at(r0, c1) - at(r1, c0)
    };
    points
        .iter()
        .map(|&p| {
            let mut radius = 2u32;
            loop {
                let win = grid.window(p, radius);
                let pixels = (win.1 - win.0) * (win.3 - win.2);
                if pixels >= 2 * count(win) || pixels == h * w {
                    return radius;
                }
                radius += 1;
            }
        })
        .collect()
}

/// Heap entry: tentative distance to a pixel; the smallest distance (then pixel) pops first.
#[derive(PartialEq)]
struct Entry(f64, u32);
impl Eq for Entry {}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.total_cmp(&self.0).then(other.1.cmp(&self.1))
    }
}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

struct Solver<'a> {
    points: &'a [[f64; 2]],
    grid: &'a Grid,
    radius: &'a [u32],
    /// Dual variables of features and pixels.
    u: Vec<f64>,
    v: Vec<f64>,
    pixel_of: Vec<u32>,
    feature_of: Vec<u32>,
    // Per-search scratch, reset through the `touched` list.
    dist: Vec<f64>,
    pred: Vec<u32>,
    done: Vec<bool>,
    touched: Vec<u32>,
}

impl<'a> Solver<'a> {
    fn new(points: &'a [[f64; 2]], grid: &'a Grid, radius: &'a [u32]) -> Self {
        let pixels = grid.height * grid.width;
        Self {
            points,
            grid,
            radius,
            u: vec![0.0; points.len()],
            v: vec![0.0; pixels],
            pixel_of: vec![UNASSIGNED; points.len()],
            feature_of: vec![UNASSIGNED; pixels],
            dist: vec![f64::INFINITY; pixels],
            pred: vec![UNASSIGNED; pixels],
            done: vec![false; pixels],
            touched: Vec::new(),
        }
    }

    /// The optimal assignment over the windows, or the features whose search found no free
    /// pixel within reach.
    fn solve(mut self) -> Result<Assignment, Vec<usize>> {
        // Each feature's own cell is its cheapest pixel: u_i = that cost keeps every reduced
        // cost >= 0, and a feature whose cell is still free is optimally placed there.
        let mut pending = Vec::new();
        for (i, &p) in self.points.iter().enumerate() {
            let (r, c) = self.grid.cell(p);
            let pixel = r * self.grid.width + c;
            self.u[i] = self.grid.cost(p, pixel);
            if self.feature_of[pixel] == UNASSIGNED {
                self.feature_of[pixel] = i as u32;
                self.pixel_of[i] = pixel as u32;
            } else {
                pending.push(i);
            }
        }
        for i in pending {
            self.augment_from(i)?;
        }
        let cost = self
            .points
            .iter()
            .zip(&self.pixel_of)
            .map(|(&p, &px)| self.grid.cost(p, px as usize))
            .sum();
        Ok(Assignment {
            pixel: self.pixel_of,
            cost,
        })
    }

    /// One shortest augmenting path from the free feature `start` (Dijkstra over pixels).
    fn augment_from(&mut self, start: usize) -> Result<(), Vec<usize>> {
        let mut heap = BinaryHeap::new();
        let mut scanned: Vec<(usize, f64)> = Vec::new();
        let mut row = start;
        let mut label = 0.0;
        let sink = loop {
            scanned.push((row, label));
            self.scan(row, label, &mut heap);
            let pixel = loop {
                match heap.pop() {
                    None => {
                        self.reset();
                        return Err(scanned.iter().map(|s| s.0).collect());
                    }
                    Some(Entry(d, px))
                        if !self.done[px as usize] && d == self.dist[px as usize] =>
                    {
                        break px as usize;
                    }
                    Some(_) => {}
                }
            };
            self.done[pixel] = true;
            if self.feature_of[pixel] == UNASSIGNED {
                break pixel;
            }
            row = self.feature_of[pixel] as usize;
            label = self.dist[pixel];
        };
        // Duals: scanned features and finalised pixels move by how much shorter their path
        // was than the one found, which keeps reduced costs >= 0 and zero along assignments.
        let total = self.dist[sink];
        for &(i, l) in &scanned {
            self.u[i] += total - l;
        }
        for &px in &self.touched {
            let px = px as usize;
            if self.done[px] {
                self.v[px] -= total - self.dist[px];
            }
        }
        let mut pixel = sink;
        loop {
            let i = self.pred[pixel] as usize;
            self.feature_of[pixel] = i as u32;
            let previous = std::mem::replace(&mut self.pixel_of[i], pixel as u32);
            if i == start {
                break;
            }
            pixel = previous as usize;
        }
        self.reset();
        Ok(())
    }

    fn scan(&mut self, row: usize, label: f64, heap: &mut BinaryHeap<Entry>) {
        let p = self.points[row];
        let (r0, r1, c0, c1) = self.grid.window(p, self.radius[row]);
        for r in r0..r1 {
            for c in c0..c1 {
                let px = r * self.grid.width + c;
                if self.done[px] {
                    continue;
                }
                let reduced = (self.grid.cost(p, px) - self.u[row] - self.v[px]).max(0.0);
                let d = label + reduced;
                if d < self.dist[px] {
                    if self.dist[px] == f64::INFINITY {
                        self.touched.push(px as u32);
                    }
                    self.dist[px] = d;
                    self.pred[px] = row as u32;
                    heap.push(Entry(d, px as u32));
                }
            }
        }
    }

    fn reset(&mut self) {
        for &px in &self.touched {
            self.dist[px as usize] = f64::INFINITY;
            self.done[px as usize] = false;
            self.pred[px as usize] = UNASSIGNED;
        }
        self.touched.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pathfinding::prelude::{Matrix, kuhn_munkres_min};
    use rand::{Rng, SeedableRng};

    /// Exact optimum by the Hungarian method over all pixels (integer costs scaled by 1e6).
    fn hungarian(points: &[[f64; 2]], grid: &Grid) -> f64 {
        let pixels = grid.height * grid.width;
        let weights = Matrix::from_fn(points.len(), pixels, |(i, j)| {
            (grid.cost(points[i], j) * 1e6).round() as i64
        });
        kuhn_munkres_min(&weights).0 as f64 / 1e6
    }

    #[test]
    fn within_one_percent_of_hungarian_and_no_pixel_shared() {
        for seed in 0..6u64 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let (h, w) = (8, 10);
            let n = 30 + 8 * seed as usize; // up to 70 of 80 pixels: crowded
            // Half the points in a tight clump, the rest anywhere.
            let points: Vec<[f64; 2]> = (0..n)
                .map(|i| {
                    if i % 2 == 0 {
                        [rng.random_range(2.0..3.0), rng.random_range(2.0..3.5)]
                    } else {
                        [
                            rng.random_range(0.0..w as f64),
                            rng.random_range(0.0..h as f64),
                        ]
                    }
                })
                .collect();
            let grid = Grid {
                height: h,
                width: w,
            };
            let got = assign(&points, h, w).unwrap();
            let mut seen = std::collections::HashSet::new();
            assert!(
                got.pixel
                    .iter()
                    .all(|&p| (p as usize) < h * w && seen.insert(p))
            );
            let exact = hungarian(&points, &grid);
            assert!(
                got.cost <= exact * 1.01 + 1e-6,
                "seed {seed}: {} vs exact {exact}",
                got.cost
            );
            assert!(got.cost >= exact - 1e-3, "cannot beat the optimum");
        }
    }

    #[test]
    fn all_points_on_one_spot_still_fill_distinct_pixels() {
        let points = vec![[0.1, 0.1]; 64];
        let a = assign(&points, 8, 8).unwrap();
        let mut px = a.pixel.clone();
        px.sort_unstable();
        px.dedup();
        assert_eq!(px.len(), 64);
        let err = assign(&vec![[0.0, 0.0]; 65], 8, 8).unwrap_err().to_string();
        assert!(
            err.contains("65 features") && err.contains("64 pixels"),
            "{err}"
        );
    }
}
