//! Barnes-Hut quadtree over the 2-D embedding: far groups of points act as one point at their
//! centre of mass when the cell is small seen from the point (width / distance < theta).

/// Cells deeper than this keep all their points in one leaf: identical positions would
/// otherwise split forever.
const MAX_DEPTH: usize = 48;

#[derive(Debug, Clone, Copy)]
struct Node {
    cx: f64,
    cy: f64,
    mass: f64,
    width: f64,
    /// Index of the first of this node's children (stored together), or 0 for a leaf.
    children: u32,
    n_children: u32,
    /// Range of `order` holding the node's points.
    start: u32,
    end: u32,
}

pub struct QuadTree {
    nodes: Vec<Node>,
    /// Point indices, grouped so that each node's points are contiguous.
    order: Vec<u32>,
    xs: Vec<f64>,
    ys: Vec<f64>,
}

impl QuadTree {
    /// Builds the tree of points given as interleaved (x, y).
    pub fn new(y: &[f64]) -> Self {
        let n = y.len() / 2;
        let xs: Vec<f64> = y.iter().step_by(2).copied().collect();
        let ys: Vec<f64> = y.iter().skip(1).step_by(2).copied().collect();
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for i in 0..n {
            x0 = x0.min(xs[i]);
            x1 = x1.max(xs[i]);
            y0 = y0.min(ys[i]);
            y1 = y1.max(ys[i]);
        }
        let side = (x1 - x0).max(y1 - y0).max(f64::MIN_POSITIVE) * (1.0 + 1e-9);
        let mut tree = Self {
            nodes: Vec::with_capacity(2 * n + 1),
            order: (0..n as u32).collect(),
            xs,
            ys,
        };
        tree.nodes.push(tree.summary(0, n, side));
        tree.split(0, x0, y0, side, 0);
        tree
    }

    fn summary(&self, start: usize, end: usize, width: f64) -> Node {
        let (mut sx, mut sy) = (0.0, 0.0);
        for &p in &self.order[start..end] {
            sx += self.xs[p as usize];
            sy += self.ys[p as usize];
        }
        let mass = (end - start) as f64;
        Node {
            cx: sx / mass,
            cy: sy / mass,
            mass,
            width,
            children: 0,
            n_children: 0,
            start: start as u32,
            end: end as u32,
        }
    }

    /// Splits node `id` (cell with lower corner (x0, y0) and side `side`) into quadrants.
    fn split(&mut self, id: usize, x0: f64, y0: f64, side: f64, depth: usize) {
        let Node { start, end, .. } = self.nodes[id];
        let (start, end) = (start as usize, end as usize);
        if end - start <= 1 || depth >= MAX_DEPTH {
            return;
        }
        let half = side / 2.0;
        let (mx, my) = (x0 + half, y0 + half);
        // Partition into [left-bottom, right-bottom, left-top, right-top].
        let (xs, ys) = (&self.xs, &self.ys);
        let by_y = partition(&mut self.order[start..end], |p| ys[p as usize] < my) + start;
        let by_x_low = partition(&mut self.order[start..by_y], |p| xs[p as usize] < mx) + start;
        let by_x_high = partition(&mut self.order[by_y..end], |p| xs[p as usize] < mx) + by_y;
        let bounds = [start, by_x_low, by_y, by_x_high, end];
        let corners = [(x0, y0), (mx, y0), (x0, my), (mx, my)];
        let first = self.nodes.len();
        let mut kept = Vec::with_capacity(4);
        for q in 0..4 {
            if bounds[q + 1] > bounds[q] {
                let node = self.summary(bounds[q], bounds[q + 1], half);
                self.nodes.push(node);
                kept.push(corners[q]);
            }
        }
        self.nodes[id].children = first as u32;
        self.nodes[id].n_children = kept.len() as u32;
        for (c, (cx0, cy0)) in kept.into_iter().enumerate() {
            self.split(first + c, cx0, cy0, half, depth + 1);
        }
    }

    /// Repulsive force on point `i` (unnormalised: sum of q^2 (y_i - y_j)) and its share of
    /// the normaliser Z (sum of q over j != i), with q = 1 / (1 + d^2).
    pub fn repulsion(&self, i: usize, theta: f64, stack: &mut Vec<u32>) -> (f64, f64, f64) {
        let (px, py) = (self.xs[i], self.ys[i]);
        let theta2 = theta * theta;
        let (mut fx, mut fy, mut z) = (0.0, 0.0, 0.0);
        stack.clear();
        stack.push(0);
        while let Some(id) = stack.pop() {
            let node = &self.nodes[id as usize];
            let (dx, dy) = (px - node.cx, py - node.cy);
            let d2 = dx * dx + dy * dy;
            if node.children == 0 {
                if node.mass == 1.0 {
                    if self.order[node.start as usize] as usize != i {
                        let q = 1.0 / (1.0 + d2);
                        z += q;
                        fx += q * q * dx;
                        fy += q * q * dy;
                    }
                } else {
                    for &j in &self.order[node.start as usize..node.end as usize] {
                        if j as usize != i {
                            let (dx, dy) = (px - self.xs[j as usize], py - self.ys[j as usize]);
                            let q = 1.0 / (1.0 + dx * dx + dy * dy);
                            z += q;
                            fx += q * q * dx;
                            fy += q * q * dy;
                        }
                    }
                }
            } else if node.width * node.width < theta2 * d2 {
                let q = 1.0 / (1.0 + d2);
                let mq = node.mass * q;
                z += mq;
                fx += mq * q * dx;
                fy += mq * q * dy;
            } else {
                let first = node.children;
                stack.extend((0..node.n_children).map(|c| first + c));
            }
        }
        (fx, fy, z)
    }
}

/// Moves the items for which `left` holds to the front; returns how many there are.
fn partition(items: &mut [u32], left: impl Fn(u32) -> bool) -> usize {
    let mut split = 0;
    for k in 0..items.len() {
        if left(items[k]) {
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
    fn theta_zero_is_exact_and_half_is_close() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let mut y: Vec<f64> = (0..2 * 500)
            .map(|_| rng.random_range(-20.0..20.0))
            .collect();
        // Duplicated positions must not break the tree.
        y[2] = y[0];
        y[3] = y[1];
        let tree = QuadTree::new(&y);
        let mut stack = Vec::new();
        for i in [0, 1, 250, 499] {
            let (ex, ey, ez) = exact(&y, i);
            let (fx, fy, z) = tree.repulsion(i, 0.0, &mut stack);
            assert!((fx - ex).abs() < 1e-9 && (fy - ey).abs() < 1e-9 && (z - ez).abs() < 1e-9);
            let (fx, fy, z) = tree.repulsion(i, 0.5, &mut stack);
            let norm = ex.hypot(ey);
            assert!((fx - ex).hypot(fy - ey) < 0.05 * norm + 1e-6, "point {i}");
            assert!((z - ez).abs() < 0.02 * ez);
        }
    }
}
