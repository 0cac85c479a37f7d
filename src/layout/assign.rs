//! Collision-free placement: every feature gets its own pixel, with the least total squared
//! displacement from where the embedding put it.
//!
//! This is a rectangular linear assignment problem (features x pixels), solved on a sparse
//! graph: each feature may only move to the pixels of a square window around its position,
//! sized from the local crowding so that the window holds at least twice as many pixels as
//! features. On those windows an epsilon-scaling auction (Bertsekas) finds an assignment whose
//! total cost is within `features x epsilon` of the optimum; the phases stop once that gap is
//! provably under 0.5%.
//!
//! Two parts make it work at 20,000 clumped features:
//! - Feasibility first: a breadth-first augmenting search checks that every feature can have a
//!   pixel inside its window, doubling the windows of a search that finds none. An auction on an
//!   infeasible graph never stops bidding.
//! - More pixels than features: a forward auction alone leaves pixels that were taken in an
//!   earlier phase, then abandoned, at prices that keep features away from them, and ended 35%
//!   above the optimum on small crowded cases. After each phase a reverse auction (Bertsekas and
//!   Castanon's forward-reverse method for asymmetric problems) lowers each such free pixel to
//!   the lowest taken price or lets it win back the feature that wants it most; at the end every
//!   free pixel is priced no higher than any taken one, which is the optimality condition of the
//!   asymmetric problem.
//!
//! Each bid scans its window block by block (8 x 8 pixels), skipping blocks whose distance plus
//! lowest price cannot beat the second-best value found so far; each reverse step does the same
//! over blocks of features with their highest level. Bidding, the searches and the phases run
//! in one fixed order, so the result does not depend on the thread count. Memory is
//! O(features + pixels): window edges are never stored, their costs are computed when a feature
//! bids.

use std::collections::VecDeque;

use anyhow::{Result, bail};

/// Placement found by `assign`.
#[derive(Debug, Clone)]
pub struct Assignment {
    /// Pixel (row-major index) of each feature.
    pub pixel: Vec<u32>,
    /// Total squared displacement, in pixels^2.
    pub cost: f64,
}

const NONE: u32 = u32::MAX;

/// Ratio between the epsilons of successive auction phases.
const EPSILON_STEP: f64 = 6.0;

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
    let started = std::time::Instant::now();
    let enlarged = make_feasible(points, &grid, &mut radius);
    tracing::debug!(
        enlarged,
        ms = started.elapsed().as_millis() as u64,
        "assignment windows checked"
    );
    Ok(Auction::new(points, &grid, &radius).solve())
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

/// Enlarges windows until every feature can have its own pixel inside its window, and returns
/// how many searches had to enlarge them. Features first take their own cell where it is free;
/// each remaining one gets a breadth-first augmenting search (free pixels are reached through
/// features that would give theirs up). A search that finds no free pixel doubles the windows
/// of every feature it reached and runs again; windows only grow, so earlier matches stay valid.
fn make_feasible(points: &[[f64; 2]], grid: &Grid, radius: &mut [u32]) -> usize {
    let pixels = grid.height * grid.width;
    let limit = grid.height.max(grid.width) as u32;
    let mut owner = vec![NONE; pixels];
    let mut pixel_of = vec![NONE; points.len()];
    for (i, &p) in points.iter().enumerate() {
        let (r, c) = grid.cell(p);
        let px = r * grid.width + c;
        if owner[px] == NONE {
            owner[px] = i as u32;
            pixel_of[i] = px as u32;
        }
    }
    let mut seen = vec![0u32; pixels];
    let mut reached_from = vec![NONE; pixels];
    let mut epoch = 0u32;
    let mut enlarged = 0;
    let mut queue: Vec<u32> = Vec::new();
    for start in 0..points.len() {
        if pixel_of[start] != NONE {
            continue;
        }
        loop {
            epoch += 1;
            queue.clear();
            queue.push(start as u32);
            let mut head = 0;
            let mut free = None;
            'search: while head < queue.len() {
                let i = queue[head] as usize;
                head += 1;
                let (r0, r1, c0, c1) = grid.window(points[i], radius[i]);
                for r in r0..r1 {
                    for px in r * grid.width + c0..r * grid.width + c1 {
                        if seen[px] == epoch {
                            continue;
                        }
                        seen[px] = epoch;
                        reached_from[px] = i as u32;
                        if owner[px] == NONE {
                            free = Some(px);
                            break 'search;
                        }
                        queue.push(owner[px]);
                    }
                }
            }
            let Some(mut px) = free else {
                enlarged += 1;
                for &i in &queue {
                    radius[i as usize] = (radius[i as usize] * 2).min(limit);
                }
                continue;
            };
            // Each feature on the path moves to the pixel its scan reached.
            loop {
                let i = reached_from[px] as usize;
                let previous = pixel_of[i];
                owner[px] = i as u32;
                pixel_of[i] = px as u32;
                if i == start {
                    break;
                }
                px = previous as usize;
            }
            break;
        }
    }
    enlarged
}

/// The grid cut into square blocks of cells. The auction keeps one bound per block (lowest
/// price of its pixels, highest level of the features in it) so that a bid or a reverse step
/// can skip whole blocks that cannot hold its best two candidates.
struct Blocks {
    wide: usize,
    high: usize,
}

impl Blocks {
    const SIZE: usize = 8;

    fn new(grid: &Grid) -> Self {
        Self {
            wide: grid.width.div_ceil(Self::SIZE),
            high: grid.height.div_ceil(Self::SIZE),
        }
    }

    fn len(&self) -> usize {
        self.wide * self.high
    }

    fn of(&self, r: usize, c: usize) -> usize {
        (r / Self::SIZE) * self.wide + c / Self::SIZE
    }

    /// Blocks overlapping rows r0..r1 and columns c0..c1 (non-empty), each with its part of
    /// that range: (block, rows, columns).
    fn over(
        &self,
        (r0, r1, c0, c1): (usize, usize, usize, usize),
    ) -> impl Iterator<Item = (usize, (usize, usize), (usize, usize))> + '_ {
        let b = Self::SIZE;
        (r0 / b..=(r1 - 1) / b).flat_map(move |br| {
            (c0 / b..=(c1 - 1) / b).map(move |bc| {
                (
                    br * self.wide + bc,
                    (r0.max(br * b), r1.min(br * b + b)),
                    (c0.max(bc * b), c1.min(bc * b + b)),
                )
            })
        })
    }
}

/// Squared distance from `x` to the interval [lo, hi].
fn gap2(x: f64, lo: f64, hi: f64) -> f64 {
    let d = (lo - x).max(x - hi).max(0.0);
    d * d
}

/// For each block, the non-empty blocks holding a feature whose window may reach one of its
/// cells (Chebyshev distance in cells within that block's largest radius), sorted by distance:
/// CSR offsets and entries.
fn reaching_blocks(blocks: &Blocks, radius: &[u32], start: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let size = Blocks::SIZE;
    let mut offsets = vec![0u32];
    let mut entries = Vec::new();
    let mut near: Vec<(usize, u32)> = Vec::new();
    for target in 0..blocks.len() {
        let (tr, tc) = (target / blocks.wide, target % blocks.wide);
        near.clear();
        for b in 0..blocks.len() {
            if start[b] == start[b + 1] {
                continue;
            }
            let (br, bc) = (b / blocks.wide, b % blocks.wide);
            let apart = br.abs_diff(tr).max(bc.abs_diff(tc));
            // Cells of blocks `apart` blocks away are at least (apart - 1) * size + 1 apart.
            if apart <= 1 || (apart - 1) * size < radius[b] as usize {
                near.push((apart, b as u32));
            }
        }
        near.sort_unstable();
        entries.extend(near.iter().map(|&(_, b)| b));
        offsets.push(entries.len() as u32);
    }
    (offsets, entries)
}

/// Forward-reverse auction in minimisation form: a feature pays its squared displacement plus
/// the pixel's price, and `level` is what it pays for the pixel it holds. Epsilon-complementary
/// slackness: no pixel in a feature's window is cheaper than its level by more than epsilon.
struct Auction<'a> {
    points: &'a [[f64; 2]],
    grid: &'a Grid,
    radius: &'a [u32],
    cells: Vec<(u16, u16)>,
    price: Vec<f64>,
    owner: Vec<u32>,
    pixel_of: Vec<u32>,
    level: Vec<f64>,
    /// Pixel each feature tries first: the last one it held, whose block is likely still good.
    hint: Vec<u32>,
    blocks: Blocks,
    /// Per block, at most the lowest price of its pixels: computed when a forward phase
    /// starts and still a bound while it runs, since bids only raise prices (only the forward
    /// phase reads it; the reverse phase lowers prices freely).
    price_floor: Vec<f64>,
    /// Features by the block of their cell (offsets into `block_features`).
    block_start: Vec<u32>,
    block_features: Vec<u32>,
    /// Per block, at least the highest level of its features.
    level_ceiling: Vec<f64>,
    /// Per block of pixels (offsets into `reach`), the feature blocks whose windows may cover
    /// it, nearest first.
    reach_start: Vec<u32>,
    reach: Vec<u32>,
}

impl<'a> Auction<'a> {
    fn new(points: &'a [[f64; 2]], grid: &'a Grid, radius: &'a [u32]) -> Self {
        let pixels = grid.height * grid.width;
        let cells: Vec<(u16, u16)> = points
            .iter()
            .map(|&p| {
                let (r, c) = grid.cell(p);
                (r as u16, c as u16)
            })
            .collect();
        let blocks = Blocks::new(grid);
        let block_of: Vec<usize> = cells
            .iter()
            .map(|&(r, c)| blocks.of(r as usize, c as usize))
            .collect();
        let mut block_start = vec![0u32; blocks.len() + 1];
        let mut block_radius = vec![0u32; blocks.len()];
        for (i, &b) in block_of.iter().enumerate() {
            block_start[b + 1] += 1;
            block_radius[b] = block_radius[b].max(radius[i]);
        }
        for b in 1..block_start.len() {
            block_start[b] += block_start[b - 1];
        }
        let mut fill = block_start.clone();
        let mut block_features = vec![0u32; cells.len()];
        for (i, &b) in block_of.iter().enumerate() {
            block_features[fill[b] as usize] = i as u32;
            fill[b] += 1;
        }
        let (reach_start, reach) = reaching_blocks(&blocks, &block_radius, &block_start);
        let hint = cells
            .iter()
            .map(|&(r, c)| (r as usize * grid.width + c as usize) as u32)
            .collect();
        Self {
            points,
            grid,
            radius,
            cells,
            price: vec![0.0; pixels],
            owner: vec![NONE; pixels],
            pixel_of: vec![NONE; points.len()],
            level: vec![0.0; points.len()],
            hint,
            price_floor: vec![0.0; blocks.len()],
            level_ceiling: vec![f64::INFINITY; blocks.len()],
            block_start,
            block_features,
            blocks,
            reach_start,
            reach,
        }
    }

    fn solve(mut self) -> Assignment {
        let n = self.points.len();
        // Each phase ends within n x epsilon of the optimum. Each feature's own cell is its
        // nearest pixel centre, so the sum of those costs bounds the optimum from below, and
        // an epsilon of `last` keeps the gap under 0.5% of it. The phases usually stop sooner:
        // once n x epsilon is under 0.5% of (cost - n x epsilon), itself at most the optimum.
        let lower: f64 = self
            .points
            .iter()
            .zip(&self.cells)
            .map(|(&p, &(r, c))| self.grid.cost(p, r as usize * self.grid.width + c as usize))
            .sum();
        let last = (0.005 * lower / n.max(1) as f64).max(1e-6);
        // The first epsilon follows the windows' size, a proxy for how far crowded features must
        // move (tuned on the benchmark's clumps: 20x faster than starting at the largest cost).
        let mean_square_radius = self
            .radius
            .iter()
            .map(|&r| f64::from(r).powi(2))
            .sum::<f64>()
            / n.max(1) as f64;
        let mut epsilon = (mean_square_radius / 32.0).max(last);
        let mut phases = 0;
        loop {
            let started = std::time::Instant::now();
            let bids = self.forward(epsilon);
            let bid_time = started.elapsed();
            let (moves, lowered) = self.reverse(epsilon);
            tracing::debug!(
                epsilon,
                bids,
                moves,
                lowered,
                bid_ms = bid_time.as_millis() as u64,
                total_ms = started.elapsed().as_millis() as u64,
                "assignment auction phase"
            );
            phases += 1;
            let slack = n as f64 * epsilon;
            if epsilon <= last || slack <= 0.005 * (self.total_cost() - slack) {
                break;
            }
            epsilon = (epsilon / EPSILON_STEP).max(last);
        }
        let cost = self.total_cost();
        tracing::debug!(phases, epsilon, cost, "assignment auction done");
        Assignment {
            pixel: self.pixel_of,
            cost,
        }
    }

    fn total_cost(&self) -> f64 {
        self.points
            .iter()
            .zip(&self.pixel_of)
            .map(|(&p, &px)| self.grid.cost(p, px as usize))
            .sum()
    }

    /// The cheapest and second cheapest pixel of feature `i`'s window at the current prices:
    /// (pixel, its value, the second value). The block of the feature's last pixel is scanned
    /// first; a block whose distance plus price floor cannot beat the second value is skipped.
    fn best_two(&self, i: usize) -> (usize, f64, f64) {
        let p = self.points[i];
        let window = self.grid.window(p, self.radius[i]);
        let mut top = (NONE as usize, f64::INFINITY, f64::INFINITY);
        let hint = self.hint[i] as usize;
        let first = self
            .blocks
            .of(hint / self.grid.width, hint % self.grid.width);
        if let Some((_, rows, cols)) = self.blocks.over(window).find(|part| part.0 == first) {
            self.scan_part(p, rows, cols, &mut top);
        }
        for (b, rows, cols) in self.blocks.over(window) {
            if b == first {
                continue;
            }
            let bound = gap2(p[0], cols.0 as f64 + 0.5, cols.1 as f64 - 0.5)
                + gap2(p[1], rows.0 as f64 + 0.5, rows.1 as f64 - 0.5)
                + self.price_floor[b];
            if bound < top.2 {
                self.scan_part(p, rows, cols, &mut top);
            }
        }
        top
    }

    fn scan_part(
        &self,
        p: [f64; 2],
        (r0, r1): (usize, usize),
        (c0, c1): (usize, usize),
        (best, v1, v2): &mut (usize, f64, f64),
    ) {
        for r in r0..r1 {
            let dy = p[1] - (r as f64 + 0.5);
            let dy2 = dy * dy;
            let row = r * self.grid.width;
            for c in c0..c1 {
                let dx = p[0] - (c as f64 + 0.5);
                let v = dx * dx + dy2 + self.price[row + c];
                if v < *v1 {
                    *v2 = *v1;
                    *v1 = v;
                    *best = row + c;
                } else if v < *v2 {
                    *v2 = v;
                }
            }
        }
    }

    /// One forward auction phase: every feature starts unassigned and bids, in queue order,
    /// for the cheapest pixel of its window, raising its price by the margin over the second
    /// cheapest plus epsilon; the holder it displaces bids again.
    fn forward(&mut self, epsilon: f64) -> usize {
        for i in 0..self.points.len() {
            let px = std::mem::replace(&mut self.pixel_of[i], NONE);
            if px != NONE {
                self.owner[px as usize] = NONE;
            }
        }
        self.price_floor.fill(f64::INFINITY);
        for (j, &price) in self.price.iter().enumerate() {
            let b = self.blocks.of(j / self.grid.width, j % self.grid.width);
            self.price_floor[b] = self.price_floor[b].min(price);
        }
        self.level_ceiling.fill(f64::NEG_INFINITY);
        let mut queue: VecDeque<u32> = (0..self.points.len() as u32).collect();
        let mut bids = 0;
        while let Some(i) = queue.pop_front() {
            bids += 1;
            let i = i as usize;
            let (best, v1, mut v2) = self.best_two(i);
            if !v2.is_finite() {
                // A one-pixel window: nothing to compare with, so the pixel is simply taken.
                v2 = v1;
            }
            self.price[best] += v2 - v1 + epsilon;
            self.level[i] = v2 + epsilon;
            let (r, c) = self.cells[i];
            let home = self.blocks.of(r as usize, c as usize);
            self.level_ceiling[home] = self.level_ceiling[home].max(self.level[i]);
            self.hint[i] = best as u32;
            let displaced = std::mem::replace(&mut self.owner[best], i as u32);
            if displaced != NONE {
                self.pixel_of[displaced as usize] = NONE;
                queue.push_back(displaced);
            }
            self.pixel_of[i] = best as u32;
        }
        bids
    }

    /// Reverse auction on the free pixels priced above the lowest taken price (`lambda`): each
    /// either wins back the feature that values it most, at a price that keeps every other
    /// feature's slackness, or drops to `lambda`. A feature that moves leaves its old pixel
    /// free, which is then settled the same way. Every feature's level only falls, by more than
    /// epsilon per move, so this ends.
    fn lowest_taken_price(&self) -> f64 {
        self.pixel_of
            .iter()
            .map(|&px| self.price[px as usize])
            .fold(f64::INFINITY, f64::min)
    }

    /// Among the features whose window covers pixel `j`, the one that would pay the most for
    /// it beyond its level, as a price (beta), and the second most (omega). Feature blocks go
    /// nearest first; one whose level ceiling minus its distance cannot beat omega is skipped.
    fn best_two_features(&self, j: usize) -> (u32, f64, f64) {
        let (r, c) = (j / self.grid.width, j % self.grid.width);
        let (x, y) = (c as f64 + 0.5, r as f64 + 0.5);
        let size = Blocks::SIZE;
        let home = self.blocks.of(r, c);
        let mut top = (NONE, f64::NEG_INFINITY, f64::NEG_INFINITY);
        let list = self.reach_start[home] as usize..self.reach_start[home + 1] as usize;
        for &b in &self.reach[list] {
            let b = b as usize;
            let (r0, c0) = ((b / self.blocks.wide) * size, (b % self.blocks.wide) * size);
            let bound = self.level_ceiling[b]
                - gap2(x, c0 as f64, (c0 + size) as f64)
                - gap2(y, r0 as f64, (r0 + size) as f64);
            if bound <= top.2 {
                continue;
            }
            let members = self.block_start[b] as usize..self.block_start[b + 1] as usize;
            for &i in &self.block_features[members] {
                let (ri, ci) = self.cells[i as usize];
                let rad = self.radius[i as usize] as usize;
                if r.abs_diff(ri as usize) > rad || c.abs_diff(ci as usize) > rad {
                    continue;
                }
                let value = self.level[i as usize] - self.grid.cost(self.points[i as usize], j);
                if value > top.1 {
                    top = (i, value, top.1);
                } else if value > top.2 {
                    top.2 = value;
                }
            }
        }
        top
    }

    /// Returns (features moved, pixels lowered to `lambda`).
    fn reverse(&mut self, epsilon: f64) -> (usize, usize) {
        let lambda = self.lowest_taken_price();
        let mut work: Vec<u32> = (0..self.price.len() as u32)
            .filter(|&j| self.owner[j as usize] == NONE && self.price[j as usize] > lambda)
            .rev()
            .collect();
        let (mut moves, mut lowered) = (0, 0);
        while let Some(j) = work.pop() {
            let j = j as usize;
            let (wanted_by, beta, omega) = self.best_two_features(j);
            if wanted_by == NONE || beta - epsilon <= lambda {
                self.price[j] = lambda;
                lowered += 1;
                continue;
            }
            moves += 1;
            let i = wanted_by as usize;
            self.price[j] = lambda.max(omega - epsilon);
            let old = self.pixel_of[i] as usize;
            self.owner[old] = NONE;
            self.owner[j] = i as u32;
            self.pixel_of[i] = j as u32;
            self.hint[i] = j as u32;
            self.level[i] = self.grid.cost(self.points[i], j) + self.price[j];
            if self.price[old] > lambda {
                work.push(old as u32);
            }
        }
        (moves, lowered)
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
    fn clumped_case_with_abandoned_pixels_stays_within_one_percent() {
        // 300 features on 400 pixels, most in three overlapping clumps: the auction's phases
        // take and abandon many pixels, which the reverse auction must re-price.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let (h, w) = (20, 20);
        let centres = [[5.0, 6.0], [8.0, 8.0], [15.0, 12.0]];
        let points: Vec<[f64; 2]> = (0..300)
            .map(|i| {
                if i % 5 == 4 {
                    [rng.random_range(0.0..20.0), rng.random_range(0.0..20.0)]
                } else {
                    let c = centres[i % 3];
                    let at = |v: f64, jitter: f64| (v + jitter).clamp(0.0, 19.999);
                    [
                        at(c[0], rng.random_range(-2.0..2.0)),
                        at(c[1], rng.random_range(-2.0..2.0)),
                    ]
                }
            })
            .collect();
        let got = assign(&points, h, w).unwrap();
        let mut seen = std::collections::HashSet::new();
        assert!(got.pixel.iter().all(|&p| seen.insert(p)));
        let exact = hungarian(
            &points,
            &Grid {
                height: h,
                width: w,
            },
        );
        assert!(got.cost <= exact * 1.01, "{} vs exact {exact}", got.cost);
        assert!(got.cost >= exact - 1e-3);
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
