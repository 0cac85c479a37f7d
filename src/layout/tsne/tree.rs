//! Barnes-Hut quadtree over the 2-D embedding: far groups of points act as one point at their
//! centre of mass when the cell is small seen from the point (width / distance < theta).

use rayon::prelude::*;

/// Cells deeper than this keep all their points in one leaf: identical positions would
/// otherwise split forever.
const MAX_DEPTH: usize = 48;
/// Cells with at most this many points are leaves: splitting them further costs more in the
/// build than their points cost as direct interactions.
const LEAF_SIZE: usize = 32;

/// A cell. Nodes are stored in depth-first preorder, so a node's first child is the next node
/// and `next` is the first node after its subtree: a walk is one forward pass over the array.
#[derive(Debug, Clone, Copy)]
struct Node {
    cx: f64,
    cy: f64,
    mass: f64,
    /// Side of the cell, squared.
    width2: f64,
    next: u32,
    leaf: bool,
    /// Range of `order` (and of `px`, `py`) holding the node's points.
    start: u32,
    end: u32,
}

pub struct QuadTree {
    nodes: Vec<Node>,
    /// Point indices in tree order, so that each node's points are contiguous.
    order: Vec<u32>,
    /// Coordinates in tree order.
    px: Vec<f64>,
    py: Vec<f64>,
}

impl QuadTree {
    /// Builds the tree of points given as interleaved (x, y).
    pub fn new(y: &[f64]) -> Self {
        let n = y.len() / 2;
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for p in y.chunks_exact(2) {
            x0 = x0.min(p[0]);
            x1 = x1.max(p[0]);
            y0 = y0.min(p[1]);
            y1 = y1.max(p[1]);
        }
        let side = (x1 - x0).max(y1 - y0).max(f64::MIN_POSITIVE) * (1.0 + 1e-9);
        let mut points: Vec<Point> = y
            .chunks_exact(2)
            .zip(0..)
            .map(|(p, index)| Point {
                x: p[0],
                y: p[1],
                index,
            })
            .collect();
        let mut nodes = Vec::with_capacity(2 * n + 1);
        build(&mut points, 0, (x0, y0, side), 0, &mut nodes);
        let order = points.iter().map(|p| p.index).collect();
        let px = points.iter().map(|p| p.x).collect();
        let py = points.iter().map(|p| p.y).collect();
        Self {
            nodes,
            order,
            px,
            py,
        }
    }

    /// Repulsive force on every point (unnormalised: sum of q^2 (y_i - y_j)) and its share of
    /// the normaliser Z (sum of q over j != i), with q = 1 / (1 + d^2), indexed by point.
    ///
    /// Points are walked in groups (Barnes 1990): the maximal cells holding at most `GROUP`
    /// points share one walk, whose far-field test uses the distance from a cell's centre of
    /// mass to the group's bounding box, never larger than to any of its points. So every
    /// point gets an approximation at least as close as its own walk would give, and each
    /// group's interaction list is evaluated in a tight loop the compiler vectorises, instead
    /// of one pointer-chasing walk per point. Groups run in parallel; each point's sums are
    /// taken in list order, so the result is the same at any thread count.
    pub fn repulsion(&self, theta: f64) -> Vec<(f64, f64, f64)> {
        let groups = self.groups();
        let per_group: Vec<Vec<(f64, f64, f64)>> = groups
            .par_iter()
            .map_init(Interactions::default, |list, &g| {
                self.group_repulsion(g, theta, list)
            })
            .collect();
        let mut out = vec![(0.0, 0.0, 0.0); self.order.len()];
        for (&g, forces) in groups.iter().zip(per_group) {
            let node = &self.nodes[g as usize];
            for (&p, f) in self.order[node.start as usize..node.end as usize]
                .iter()
                .zip(forces)
            {
                out[p as usize] = f;
            }
        }
        out
    }

    /// The maximal nodes with at most `GROUP` points, in tree order.
    fn groups(&self) -> Vec<u32> {
        let mut groups = Vec::new();
        let mut id = 0;
        while id < self.nodes.len() {
            let node = &self.nodes[id];
            if node.end - node.start <= GROUP || node.leaf {
                groups.push(id as u32);
                id = node.next as usize;
            } else {
                id += 1;
            }
        }
        groups
    }

    fn group_repulsion(&self, g: u32, theta: f64, list: &mut Interactions) -> Vec<(f64, f64, f64)> {
        let group = &self.nodes[g as usize];
        let members = group.start as usize..group.end as usize;
        let fold = |v: &[f64]| {
            v.iter()
                .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)))
        };
        let (x0, x1) = fold(&self.px[members.clone()]);
        let (y0, y1) = fold(&self.py[members.clone()]);
        let theta2 = theta * theta;
        list.clear();
        let mut id = 0;
        while id < self.nodes.len() {
            let node = &self.nodes[id];
            let dx = (x0 - node.cx).max(node.cx - x1).max(0.0);
            let dy = (y0 - node.cy).max(node.cy - y1).max(0.0);
            if node.width2 < theta2 * (dx * dx + dy * dy) {
                list.push(node.cx, node.cy, node.mass);
                id = node.next as usize;
            } else if node.leaf {
                // Near leaves give their points one by one, the group's own points included.
                let points = node.start as usize..node.end as usize;
                list.extend(&self.px[points.clone()], &self.py[points]);
                id = node.next as usize;
            } else {
                id += 1;
            }
        }
        let mut forces = list.evaluate(&self.px[members.clone()], &self.py[members]);
        // Each point is in the list once itself, at distance 0: q = 1, no force.
        for f in &mut forces {
            f.2 -= 1.0;
        }
        forces
    }
}

/// A point with its coordinates, so that partitioning reads memory in sequence.
#[derive(Clone, Copy)]
struct Point {
    x: f64,
    y: f64,
    index: u32,
}

/// Appends, in preorder, the node for `points` (those in the cell with lower corner (x0, y0)
/// and side `side`, starting at `start` in tree order) and its subtree; returns (sum x, sum y)
/// of its points.
fn build(
    points: &mut [Point],
    start: usize,
    (x0, y0, side): (f64, f64, f64),
    depth: usize,
    nodes: &mut Vec<Node>,
) -> (f64, f64) {
    let id = nodes.len();
    let count = points.len();
    nodes.push(Node {
        cx: 0.0,
        cy: 0.0,
        mass: count as f64,
        width2: side * side,
        next: 0,
        leaf: count <= LEAF_SIZE || depth >= MAX_DEPTH,
        start: start as u32,
        end: (start + count) as u32,
    });
    let (mut sx, mut sy) = (0.0, 0.0);
    if nodes[id].leaf {
        for p in points.iter() {
            sx += p.x;
            sy += p.y;
        }
    } else {
        let half = side / 2.0;
        let (mx, my) = (x0 + half, y0 + half);
        // Quadrants in the order [left-bottom, right-bottom, left-top, right-top].
        let by_y = partition(points, |p| p.y < my);
        let (low, high) = points.split_at_mut(by_y);
        let low_x = partition(low, |p| p.x < mx);
        let high_x = partition(high, |p| p.x < mx);
        let (lb, rb) = low.split_at_mut(low_x);
        let (lt, rt) = high.split_at_mut(high_x);
        let quadrants = [
            (lb, (x0, y0)),
            (rb, (mx, y0)),
            (lt, (x0, my)),
            (rt, (mx, my)),
        ];
        let mut offset = start;
        let mut parts = Vec::with_capacity(4);
        for (quadrant, (cx0, cy0)) in quadrants {
            let len = quadrant.len();
            if len > 0 {
                parts.push((quadrant, offset, (cx0, cy0, half)));
            }
            offset += len;
        }
        // Large cells build their quadrants in parallel, each into its own array, appended
        // in quadrant order: the same nodes and sums as one serial pass.
        let subtrees: Vec<(Vec<Node>, (f64, f64))> = if count >= PARALLEL_BUILD {
            parts
                .into_par_iter()
                .map(|(quadrant, offset, cell)| {
                    let mut sub = Vec::with_capacity(2 * quadrant.len());
                    let sums = build(quadrant, offset, cell, depth + 1, &mut sub);
                    (sub, sums)
                })
                .collect()
        } else {
            // Built in place; nothing left to append.
            parts
                .into_iter()
                .map(|(quadrant, offset, cell)| {
                    (Vec::new(), build(quadrant, offset, cell, depth + 1, nodes))
                })
                .collect()
        };
        for (sub, (qx, qy)) in subtrees {
            let shift = nodes.len() as u32;
            nodes.extend(sub.into_iter().map(|mut node| {
                node.next += shift;
                node
            }));
            sx += qx;
            sy += qy;
        }
    }
    let next = nodes.len() as u32;
    let node = &mut nodes[id];
    node.next = next;
    node.cx = sx / count as f64;
    node.cy = sy / count as f64;
    (sx, sy)
}

/// Cells with at least this many points build their quadrants in parallel.
const PARALLEL_BUILD: usize = 4096;

/// Most points that share one tree walk.
const GROUP: u32 = 128;

/// One group's interaction list: positions and masses of the cells and points acting on it.
/// Stored and evaluated in f32, as scikit-learn's Barnes-Hut code does: eight lanes per AVX2
/// register, and each point's sums are still accumulated over only a few hundred terms.
#[derive(Default)]
struct Interactions {
    x: Vec<f32>,
    y: Vec<f32>,
    mass: Vec<f32>,
}

/// Lanes of the f32 evaluation: one AVX2 register.
const LANES: usize = 8;

impl Interactions {
    fn clear(&mut self) {
        self.x.clear();
        self.y.clear();
        self.mass.clear();
    }

    fn push(&mut self, x: f64, y: f64, mass: f64) {
        self.x.push(x as f32);
        self.y.push(y as f32);
        self.mass.push(mass as f32);
    }

    /// Single points, each of mass 1.
    fn extend(&mut self, x: &[f64], y: &[f64]) {
        self.x.extend(x.iter().map(|&v| v as f32));
        self.y.extend(y.iter().map(|&v| v as f32));
        self.mass.extend(std::iter::repeat_n(1.0, x.len()));
    }

    /// (sum m q^2 dx, sum m q^2 dy, sum m q) at each point (px[k], py[k]).
    fn evaluate(&self, px: &[f64], py: &[f64]) -> Vec<(f64, f64, f64)> {
        px.iter()
            .zip(py)
            .map(|(&x, &y)| {
                let (x, y) = (x as f32, y as f32);
                let mut lanes = [[0.0f32; LANES]; 3];
                let chunks = self.x.len() / LANES * LANES;
                #[cfg(target_arch = "x86_64")]
                if crate::layout::simd::avx2() {
                    // SAFETY: the CPU supports AVX2 (checked just above).
                    unsafe { self.lanes_avx2(x, y, chunks, &mut lanes) };
                } else {
                    self.lanes(x, y, chunks, &mut lanes);
                }
                #[cfg(not(target_arch = "x86_64"))]
                self.lanes(x, y, chunks, &mut lanes);
                let [mut fx, mut fy, mut z] = lanes;
                for k in chunks..self.x.len() {
                    let (tx, ty, tz) = term(x, y, self.x[k], self.y[k], self.mass[k]);
                    fx[0] += tx;
                    fy[0] += ty;
                    z[0] += tz;
                }
                let total = |v: [f32; LANES]| v.iter().map(|&t| f64::from(t)).sum::<f64>();
                (total(fx), total(fy), total(z))
            })
            .collect()
    }

    /// Lane l sums the terms k = l, l + 8, ... below `chunks`: [fx, fy, z].
    fn lanes(&self, x: f32, y: f32, chunks: usize, out: &mut [[f32; LANES]; 3]) {
        let [fx, fy, z] = out;
        for k in (0..chunks).step_by(LANES) {
            let cells = self.x[k..k + LANES]
                .iter()
                .zip(&self.y[k..k + LANES])
                .zip(&self.mass[k..k + LANES]);
            for (l, ((&cx, &cy), &m)) in cells.enumerate() {
                let (tx, ty, tz) = term(x, y, cx, cy, m);
                fx[l] += tx;
                fy[l] += ty;
                z[l] += tz;
            }
        }
    }

    /// `lanes` with AVX2 registers: the same operations in the same order, so the same bits.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn lanes_avx2(&self, x: f32, y: f32, chunks: usize, out: &mut [[f32; LANES]; 3]) {
        use std::arch::x86_64::*;
        let (one, px, py) = (_mm256_set1_ps(1.0), _mm256_set1_ps(x), _mm256_set1_ps(y));
        let (mut fx, mut fy, mut z) = (
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
        );
        for k in (0..chunks).step_by(LANES) {
            // SAFETY: k + LANES <= chunks <= the lists' length.
            let (cx, cy, m) = unsafe {
                (
                    _mm256_loadu_ps(self.x.as_ptr().add(k)),
                    _mm256_loadu_ps(self.y.as_ptr().add(k)),
                    _mm256_loadu_ps(self.mass.as_ptr().add(k)),
                )
            };
            let dx = _mm256_sub_ps(px, cx);
            let dy = _mm256_sub_ps(py, cy);
            let d = crate::layout::simd::one_plus_squares(dx, dy);
            let q = _mm256_div_ps(one, d);
            let mq = _mm256_mul_ps(m, q);
            let mqq = _mm256_mul_ps(mq, q);
            fx = _mm256_add_ps(fx, _mm256_mul_ps(mqq, dx));
            fy = _mm256_add_ps(fy, _mm256_mul_ps(mqq, dy));
            z = _mm256_add_ps(z, mq);
        }
        // SAFETY: each output row holds exactly LANES floats.
        unsafe {
            _mm256_storeu_ps(out[0].as_mut_ptr(), fx);
            _mm256_storeu_ps(out[1].as_mut_ptr(), fy);
            _mm256_storeu_ps(out[2].as_mut_ptr(), z);
        }
    }
}

/// One interaction of a point at (x, y) with mass m at (cx, cy): (m q^2 dx, m q^2 dy, m q).
#[inline(always)]
fn term(x: f32, y: f32, cx: f32, cy: f32, m: f32) -> (f32, f32, f32) {
    let dx = x - cx;
    let dy = y - cy;
    let q = 1.0 / (1.0 + dx * dx + dy * dy);
    let mq = m * q;
    let mqq = mq * q;
    (mqq * dx, mqq * dy, mq)
}

/// Moves the items for which `left` holds to the front; returns how many there are.
fn partition<T>(items: &mut [T], left: impl Fn(&T) -> bool) -> usize {
    let mut split = 0;
    for k in 0..items.len() {
        if left(&items[k]) {
            items.swap(split, k);
            split += 1;
        }
    }
    split
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn exact(y: &[f64], i: usize) -> (f64, f64, f64) {
        let (mut fx, mut fy, mut z) = (0.0, 0.0, 0.0);
        for j in 0..y.len() / 2 {
            if j != i {
                let (dx, dy) = (y[2 * i] - y[2 * j], y[2 * i + 1] - y[2 * j + 1]);
                let q = 1.0 / (1.0 + dx * dx + dy * dy);
                z += q;
                fx += q * q * dx;
                fy += q * q * dy;
            }
        }
        (fx, fy, z)
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn avx2_and_baseline_lanes_give_the_same_bits() {
        if !crate::layout::simd::avx2() {
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let mut list = Interactions::default();
        for _ in 0..203 {
            let v = rng.random_range(-30.0..30.0);
            list.push(v, rng.random_range(-30.0..30.0), rng.random_range(1.0..9.0));
        }
        let chunks = 200;
        for (x, y) in [(0.5f32, -3.25f32), (29.0, 29.0), (-7.1, 0.0)] {
            let (mut plain, mut avx) = ([[0.0; LANES]; 3], [[0.0; LANES]; 3]);
            list.lanes(x, y, chunks, &mut plain);
            // SAFETY: checked above that the CPU has AVX2.
            unsafe { list.lanes_avx2(x, y, chunks, &mut avx) };
            let bits =
                |v: [[f32; LANES]; 3]| v.concat().iter().map(|t| t.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(plain), bits(avx));
            assert!(plain[2].iter().all(|&z| z > 0.0));
        }
    }

    #[test]
    fn parallel_build_gives_the_same_tree_and_forces_at_one_and_two_threads() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let n = 3 * PARALLEL_BUILD;
        let y: Vec<f64> = (0..2 * n).map(|_| rng.random_range(-50.0..50.0)).collect();
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| {
                    let tree = QuadTree::new(&y);
                    (tree.order.clone(), tree.nodes.len(), tree.repulsion(0.5))
                })
        };
        let (one, two) = (run(1), run(2));
        assert_eq!(one.0, two.0);
        assert_eq!(one.1, two.1);
        let bits = |r: &[(f64, f64, f64)]| {
            r.iter()
                .flat_map(|f| [f.0.to_bits(), f.1.to_bits(), f.2.to_bits()])
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(&one.2), bits(&two.2));
        // Every node's `next` points past its own subtree, and the root's to the end.
        let tree = QuadTree::new(&y);
        assert_eq!(tree.nodes[0].next as usize, tree.nodes.len());
        assert!(
            tree.nodes
                .iter()
                .enumerate()
                .all(|(i, node)| node.next as usize > i)
        );
    }

    #[test]
    fn theta_zero_is_exact_and_half_is_close() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let mut y: Vec<f64> = (0..2 * 500)
            .map(|_| rng.random_range(-20.0..20.0))
            .collect();
        // Duplicated positions must not break the tree.
        y[2] = y[0];
        y[3] = y[1];
        let tree = QuadTree::new(&y);
        let (exact_walk, approximate) = (tree.repulsion(0.0), tree.repulsion(0.5));
        for i in [0, 1, 250, 499] {
            let (ex, ey, ez) = exact(&y, i);
            // Exact up to the f32 evaluation.
            let (fx, fy, z) = exact_walk[i];
            let norm = ex.hypot(ey);
            assert!((fx - ex).hypot(fy - ey) < 1e-5 * norm, "point {i}");
            assert!((z - ez).abs() < 1e-5 * ez);
            let (fx, fy, z) = approximate[i];
            assert!((fx - ex).hypot(fy - ey) < 0.05 * norm + 1e-6, "point {i}");
            assert!((z - ez).abs() < 0.02 * ez);
        }
    }
}
