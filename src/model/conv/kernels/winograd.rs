//! 3x3 stride-1 convolutions by Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray,
//! "Fast Algorithms for Convolutional Neural Networks", CVPR 2016): forward and input gradient.
//!
//! Why: 13 of ResNet18's 20 convolutions are 3x3 with stride 1, and they held most of the
//! forward and input-gradient time. Unfolding spends 9 multiply-adds per output pixel and
//! channel pair, many of them on zero padding in the deep layers (4x4 and 2x2 outputs at
//! 64x64 input); F(2x2, 3x3) spends 16 per 2x2 tile, 4 per pixel (2.25x fewer), and its
//! transformed input is 16/4 = 4 values per input value where unfolding writes 9.
//!
//! How: each tile of 2x2 output pixels reads a 4x4 input patch `d` (zeros outside the image);
//! with the kernel `k`, `y = Aᵀ [(G k Gᵀ) ⊙ (Bᵀ d B)] A`. The 16 products of a tile are 16
//! independent channel sums, so for each point ξ of the 4x4 transformed tile the layer is one
//! GEMM: (out channels x in channels) . (in channels x tiles). The transforms use only 0, ±1
//! and ±1/2, so the results round about as the direct sums do (tests compare to 1e-4).
//!
//! The input gradient of a stride-1 3x3 convolution is itself one: the output gradient
//! correlated with the kernel turned by 180 degrees, channels swapped, padded by 2 - p. The
//! turned kernel's transform is the kernel's with the points permuted (`G J = P G`, where `J`
//! reverses 3 entries and `P` swaps rows 0 and 3), so one transform serves both directions.
//!
//! Blocks of images (`BLOCK_TILES` tiles) keep the transformed buffers small; their boundaries,
//! and the GEMMs' tiles, follow the shapes, never the thread count (the same bits on any
//! number of threads).

use rayon::prelude::*;

use super::scratch::Scratch;
use super::{Geometry, matmul};

/// Tiles a block of images aims for.
const BLOCK_TILES: usize = 256;

/// The fewest tiles (batch x tiles per image) a call must have. The kernels' transform writes
/// 16 values per channel pair, once per call, and only enough tiles pay it back: ResNet18's
/// last stage at 64x64 input (one tile per image) measured 2.5x slower than unfolded at batch
/// 8, 1.5x at 16 and 1.35x faster at 32 (`bench ops`).
const MIN_TILES: usize = 32;

/// Points of a transformed tile.
const POINTS: usize = 16;

/// Whether the convolution is one this module computes.
pub(super) fn applies(g: &Geometry) -> bool {
    g.kernel == [3, 3]
        && g.stride == [1, 1]
        && g.dilation == [1, 1]
        && g.pad[0] <= 2
        && g.pad[1] <= 2
        && g.in_channels > 0
        && g.out_channels > 0
        && g.batch * Tiling::of(g).per_image() >= MIN_TILES
}

/// The kernels of a layer in the transformed domain: for each point ξ, an
/// (out channels x in channels) plane of `G k Gᵀ`.
pub(super) struct Filters {
    u: Scratch,
    out_channels: usize,
    in_channels: usize,
}

impl Filters {
    /// `w` is C_out x C_in x 3 x 3.
    pub(super) fn new(w: &[f32], out_channels: usize, in_channels: usize) -> Self {
        let pairs = out_channels * in_channels;
        let mut u = Scratch::take(POINTS * pairs);
        // Rows of out channels per task: each task writes its rows of all 16 planes.
        let rows = 8;
        let mut planes: Vec<_> = u
            .chunks_mut(pairs.max(1))
            .map(|plane| plane.chunks_mut(rows * in_channels.max(1)))
            .collect();
        let tasks: Vec<[&mut [f32]; POINTS]> = (0..out_channels.div_ceil(rows))
            .map(|_| std::array::from_fn(|xi| planes[xi].next().expect("a chunk per task")))
            .collect();
        tasks
            .into_par_iter()
            .enumerate()
            .for_each(|(task, mut out)| {
                let first = task * rows;
                // One out channel at a time into a small buffer, then each point's row of it out,
                // so each plane is written as one stream (16 streams side by side made layer4's
                // forward at batch 16 take 6.5 ms, against 3.9 ms this way, `bench ops`).
                let mut local = vec![[0.0f32; POINTS]; in_channels];
                for (r, co) in (first..first + out[0].len() / in_channels).enumerate() {
                    let kernels = &w[co * in_channels * 9..][..in_channels * 9];
                    for (t, k) in local.iter_mut().zip(kernels.chunks_exact(9)) {
                        *t = kernel_transform(k);
                    }
                    for (xi, plane) in out.iter_mut().enumerate() {
                        let row = &mut plane[r * in_channels..][..in_channels];
                        for (u, t) in row.iter_mut().zip(&local) {
                            *u = t[xi];
                        }
                    }
                }
            });
        Self {
            u,
            out_channels,
            in_channels,
        }
    }

    /// Point `xi`'s plane for the forward convolution: (data, column stride, row stride) of an
    /// out x in matrix.
    fn forward(&self, xi: usize) -> (&[f32], usize, usize) {
        (self.plane(xi), 1, self.in_channels)
    }

    /// Point `xi`'s plane for the input gradient (the kernel turned, channels swapped): the
    /// forward plane of the permuted point, transposed to in x out.
    fn turned(&self, xi: usize) -> (&[f32], usize, usize) {
        let swap = |v: usize| match v {
            0 => 3,
            3 => 0,
            v => v,
        };
        (
            self.plane(4 * swap(xi / 4) + swap(xi % 4)),
            self.in_channels,
            1,
        )
    }

    fn plane(&self, xi: usize) -> &[f32] {
        let pairs = self.out_channels * self.in_channels;
        &self.u[xi * pairs..][..pairs]
    }
}

/// The input gradient, given the output gradient `dy` (`applies(g)` must hold).
pub(super) fn backward_input(g: &Geometry, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    backward_input_with(g, &Filters::new(w, g.out_channels, g.in_channels), dy, dx);
}

/// `y` = `x` convolved with the layer's transformed kernels (`applies(g)` must hold).
pub(super) fn forward_with(g: &Geometry, x: &[f32], filters: &Filters, y: &mut [f32]) {
    convolve(g, x, |xi| filters.forward(xi), y);
}

/// `backward_input` with the transformed kernels the forward pass made.
pub(super) fn backward_input_with(g: &Geometry, filters: &Filters, dy: &[f32], dx: &mut [f32]) {
    convolve(&turned(g), dy, |xi| filters.turned(xi), dx);
}

/// The convolution whose output is `g`'s input gradient: over the output gradient, channels
/// swapped, padded by 2 - p before (the size after follows from the input's size).
fn turned(g: &Geometry) -> Geometry {
    Geometry {
        batch: g.batch,
        in_channels: g.out_channels,
        height: g.out_height,
        width: g.out_width,
        out_channels: g.in_channels,
        kernel: [3, 3],
        stride: [1, 1],
        pad: [2 - g.pad[0], 2 - g.pad[1]],
        dilation: [1, 1],
        out_height: g.height,
        out_width: g.width,
    }
}

/// Tiles of 2x2 output pixels per image, along each axis.
#[derive(Debug, Clone, Copy)]
struct Tiling {
    rows: usize,
    cols: usize,
}

impl Tiling {
    fn of(g: &Geometry) -> Self {
        Self {
            rows: g.out_height.div_ceil(2),
            cols: g.out_width.div_ceil(2),
        }
    }

    fn per_image(&self) -> usize {
        self.rows * self.cols
    }
}

/// The convolution of `x` by the transformed kernels `plane(ξ)` (each out x in, as
/// (data, column stride, row stride)) into `y`.
fn convolve<'a>(
    g: &Geometry,
    x: &[f32],
    plane: impl Fn(usize) -> (&'a [f32], usize, usize) + Sync,
    y: &mut [f32],
) {
    let tiling = Tiling::of(g);
    let per_image = tiling.per_image();
    if g.batch == 0 || per_image == 0 {
        return;
    }
    let images = BLOCK_TILES.div_ceil(per_image).clamp(1, g.batch);
    y.par_chunks_mut(images * g.out_image_len())
        .zip(x.par_chunks(images * g.image_len()))
        .for_each(|(y_block, x_block)| {
            let images = y_block.len() / g.out_image_len();
            let tiles = images * per_image;
            let v = transform_input(g, tiling, x_block, images);
            let (c_in, c_out) = (g.in_channels, g.out_channels);
            let mut m = Scratch::take(POINTS * c_out * tiles);
            m.par_chunks_mut(c_out * tiles)
                .enumerate()
                .for_each(|(xi, m_xi)| {
                    let (u, u_cs, u_rs) = plane(xi);
                    // m_ξ (out x tiles) = u_ξ (out x in) . v_ξ (in x tiles)
                    matmul(
                        [c_out, tiles, c_in],
                        (m_xi, tiles),
                        (u, u_cs, u_rs),
                        (&v[xi * c_in * tiles..][..c_in * tiles], 1, tiles),
                    );
                });
            transform_output(g, tiling, &m, y_block, tiles);
        });
}

/// `Bᵀ d B` of every 4x4 input patch of `images` images: 16 planes of (in channels x tiles),
/// tiles in image-major, row-major order.
///
/// A row of tiles reads a band of 4 input rows; `Bᵀ` runs down the band's columns and `B`
/// along its rows, each a loop over a whole row (the compiler vectorises both). A patch at a
/// time, the input transform took 0.8 ms of a layer1 block whose 16 GEMMs took 0.4 ms; with
/// this and the output transform done the same way, layer1's forward went from 3.6 ms to
/// 1.7 ms at batch 16 (`bench ops`).
fn transform_input(g: &Geometry, tiling: Tiling, x: &[f32], images: usize) -> Scratch {
    let (c_in, per_image, cols) = (g.in_channels, tiling.per_image(), tiling.cols);
    let tiles = images * per_image;
    let mut v = Scratch::take(POINTS * c_in * tiles);
    let mut planes: Vec<_> = v
        .chunks_mut(c_in * tiles)
        .map(|p| p.chunks_mut(tiles))
        .collect();
    let channels: Vec<[&mut [f32]; POINTS]> = (0..c_in)
        .map(|_| std::array::from_fn(|xi| planes[xi].next().expect("a row per channel")))
        .collect();
    // A band's columns: those the row of tiles reads, from input column -pad.
    let width = 2 * cols + 2;
    let pad_h = g.pad[0] as isize;
    let inside = g.width.min(width.saturating_sub(g.pad[1]));
    channels
        .into_par_iter()
        .enumerate()
        .for_each(|(channel, mut out)| {
            let mut band = vec![0.0f32; 4 * width];
            let mut t = vec![0.0f32; 4 * width];
            for image in 0..images {
                let plane =
                    &x[(image * c_in + channel) * g.height * g.width..][..g.height * g.width];
                for tr in 0..tiling.rows {
                    for (i, row) in band.chunks_mut(width).enumerate() {
                        let r = 2 * tr as isize - pad_h + i as isize;
                        row.fill(0.0);
                        if (0..g.height as isize).contains(&r) {
                            let line = &plane[r as usize * g.width..][..inside];
                            row[g.pad[1]..][..inside].copy_from_slice(line);
                        }
                    }
                    // Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], down the columns.
                    let (d0, rest) = band.split_at(width);
                    let (d1, rest) = rest.split_at(width);
                    let (d2, d3) = rest.split_at(width);
                    let (t0, rest) = t.split_at_mut(width);
                    let (t1, rest) = rest.split_at_mut(width);
                    let (t2, t3) = rest.split_at_mut(width);
                    for c in 0..width {
                        t0[c] = d0[c] - d2[c];
                        t1[c] = d1[c] + d2[c];
                        t2[c] = d2[c] - d1[c];
                        t3[c] = d1[c] - d3[c];
                    }
                    // B along the rows: tile tc reads columns 2 tc .. 2 tc + 3.
                    let first = (image * tiling.rows + tr) * cols;
                    for (i, ti) in t.chunks(width).enumerate() {
                        let [o0, o1, o2, o3] = &mut out[4 * i..4 * i + 4] else {
                            unreachable!("four points per row")
                        };
                        let o0 = &mut o0[first..first + cols];
                        let o1 = &mut o1[first..first + cols];
                        let o2 = &mut o2[first..first + cols];
                        let o3 = &mut o3[first..first + cols];
                        for tc in 0..cols {
                            let a = &ti[2 * tc..2 * tc + 4];
                            o0[tc] = a[0] - a[2];
                            o1[tc] = a[1] + a[2];
                            o2[tc] = a[2] - a[1];
                            o3[tc] = a[1] - a[3];
                        }
                    }
                }
            }
        });
    v
}

/// `Aᵀ m A` of every tile's 16 channel sums `m` (16 planes of out channels x tiles), written
/// to the 2x2 output pixels it covers (those inside the output). Row by row of tiles, as the
/// input transform.
fn transform_output(g: &Geometry, tiling: Tiling, m: &[f32], y: &mut [f32], tiles: usize) {
    let (c_out, cols) = (g.out_channels, tiling.cols);
    let (oh, ow) = (g.out_height, g.out_width);
    // Planes per task: enough work to outweigh handing it out (deep layers have 4 pixels).
    let group = (4096 / (oh * ow)).max(1);
    y.par_chunks_mut(group * oh * ow)
        .enumerate()
        .for_each(|(task, planes)| {
            let mut s = vec![0.0f32; 8 * cols];
            for (k, out) in planes.chunks_mut(oh * ow).enumerate() {
                let (image, channel) = ((task * group + k) / c_out, (task * group + k) % c_out);
                for tr in 0..tiling.rows {
                    let at = channel * tiles + (image * tiling.rows + tr) * cols;
                    let m = |xi: usize| &m[xi * c_out * tiles + at..][..cols];
                    // Aᵀ = [1 1 1 0; 0 1 -1 -1], down the columns: s[a][j] per tile.
                    for (j, pair) in s.chunks_mut(2 * cols).enumerate() {
                        let (s0, s1) = pair.split_at_mut(cols);
                        let (m0, m1, m2, m3) = (m(j), m(4 + j), m(8 + j), m(12 + j));
                        for tc in 0..cols {
                            s0[tc] = m0[tc] + m1[tc] + m2[tc];
                            s1[tc] = m1[tc] - m2[tc] - m3[tc];
                        }
                    }
                    // A along the rows, into output rows 2 tr and 2 tr + 1.
                    for a in 0..2 {
                        let r = 2 * tr + a;
                        if r >= oh {
                            break;
                        }
                        let row = &mut out[r * ow..][..ow];
                        let sj = |j: usize| &s[2 * j * cols + a * cols..][..cols];
                        let (s0, s1, s2, s3) = (sj(0), sj(1), sj(2), sj(3));
                        for tc in 0..ow / 2 {
                            row[2 * tc] = s0[tc] + s1[tc] + s2[tc];
                            row[2 * tc + 1] = s1[tc] - s2[tc] - s3[tc];
                        }
                        if ow % 2 == 1 {
                            let tc = cols - 1;
                            row[2 * tc] = s0[tc] + s1[tc] + s2[tc];
                        }
                    }
                }
            }
        });
}

/// `G k Gᵀ` of a 3x3 kernel (row-major), as 16 values (row-major 4x4).
fn kernel_transform(k: &[f32]) -> [f32; POINTS] {
    // G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
    let g = |a: f32, b: f32, c: f32| [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
    let columns = [0, 1, 2].map(|j| g(k[j], k[3 + j], k[6 + j]));
    let mut out = [0.0; POINTS];
    for i in 0..4 {
        let row = g(columns[0][i], columns[1][i], columns[2][i]);
        out[4 * i..4 * i + 4].copy_from_slice(&row);
    }
    out
}
