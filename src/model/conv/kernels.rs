//! 2-D convolution on contiguous NCHW `f32` buffers, forward and both gradients, as one GEMM
//! per block of images over their unfolded input (im2col).
//!
//! Why blocks: deep in the network an image has few output pixels (2 x 2 at 64x64 input), and
//! a GEMM per image would stream the whole weight matrix once per image for a rank-4 update.
//! Putting several images side by side as columns gives the GEMM a healthy shape. Block
//! boundaries depend only on the shapes, never on the thread count, so the sums are added in
//! the same order on any number of threads.

use std::borrow::Cow;

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

mod scratch;
mod winograd;

/// Output pixels a block aims for: enough columns for the GEMM to run near its peak, few
/// enough that blocks still spread over the threads.
const BLOCK_COLUMNS: usize = 512;

/// Rows or columns of a GEMM's output per task.
const TILE: usize = 128;

/// The shapes of one convolution (groups 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub batch: usize,
    pub in_channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Padding before the first row and column; the padding after only changes the output
    /// size, which is given.
    pub pad: [usize; 2],
    pub dilation: [usize; 2],
    pub out_height: usize,
    pub out_width: usize,
}

impl Geometry {
    /// `x` is N x C x H x W, `w` is C_out x C x kh x kw; `padding` is (before, after) per axis.
    pub fn new(
        x: [usize; 4],
        w: [usize; 4],
        stride: [usize; 2],
        padding: [(usize, usize); 2],
        dilation: [usize; 2],
    ) -> Self {
        let out = |axis: usize, size: usize| {
            let span = dilation[axis] * (w[2 + axis] - 1) + 1;
            (size + padding[axis].0 + padding[axis].1).saturating_sub(span) / stride[axis] + 1
        };
        Self {
            batch: x[0],
            in_channels: x[1],
            height: x[2],
            width: x[3],
            out_channels: w[0],
            kernel: [w[2], w[3]],
            stride,
            pad: [padding[0].0, padding[1].0],
            dilation,
            out_height: out(0, x[2]),
            out_width: out(1, x[3]),
        }
    }

    /// Rows of the unfolded input: one per (input channel, kernel row, kernel column).
    fn taps(&self) -> usize {
        self.in_channels * self.kernel[0] * self.kernel[1]
    }

    /// Output pixels per image.
    fn pixels(&self) -> usize {
        self.out_height * self.out_width
    }

    fn image_len(&self) -> usize {
        self.in_channels * self.height * self.width
    }

    fn out_image_len(&self) -> usize {
        self.out_channels * self.pixels()
    }

    pub fn output_len(&self) -> usize {
        self.batch * self.out_image_len()
    }

    pub fn output_shape(&self) -> [usize; 4] {
        [
            self.batch,
            self.out_channels,
            self.out_height,
            self.out_width,
        ]
    }

    /// Images per block.
    fn block(&self) -> usize {
        BLOCK_COLUMNS
            .div_ceil(self.pixels().max(1))
            .clamp(1, self.batch.max(1))
    }
}

/// `y` (N x C_out x Ho x Wo) = `x` convolved with `w`: by Winograd's F(2x2, 3x3) where it
/// applies (3x3, stride 1), otherwise unfolded.
pub fn forward(g: &Geometry, x: &[f32], w: &[f32], y: &mut [f32]) {
    drop(forward_keeping(g, x, w, y));
}

/// What the input gradient needs of a layer's weights beyond the weights, kept from the
/// forward pass: the Winograd path's transformed kernels, so that a training step transforms
/// them once, not twice.
pub struct Prepared(Option<winograd::Filters>);

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.0.is_some() {
            "winograd"
        } else {
            "unfolded"
        };
        write!(f, "Prepared({kind})")
    }
}

/// `forward`, keeping what `backward_input_with` reuses.
pub fn forward_keeping(g: &Geometry, x: &[f32], w: &[f32], y: &mut [f32]) -> Prepared {
    if winograd::applies(g) {
        let filters = winograd::Filters::new(w, g.out_channels, g.in_channels);
        winograd::forward_with(g, x, &filters, y);
        Prepared(Some(filters))
    } else {
        forward_unfolded(g, x, w, y);
        Prepared(None)
    }
}

/// `backward_input` with what `forward_keeping` kept for the same `g` and `w`.
pub fn backward_input_with(g: &Geometry, w: &[f32], kept: &Prepared, dy: &[f32], dx: &mut [f32]) {
    match &kept.0 {
        Some(filters) => winograd::backward_input_with(g, filters, dy, dx),
        None => backward_input(g, w, dy, dx),
    }
}

/// Whether `forward` and `backward_input` take Winograd's F(2x2, 3x3) for this shape.
pub fn uses_winograd(g: &Geometry) -> bool {
    winograd::applies(g)
}

/// `forward` through the unfolded input, whatever the shape.
pub fn forward_unfolded(g: &Geometry, x: &[f32], w: &[f32], y: &mut [f32]) {
    let (k, p, block) = (g.taps(), g.pixels(), g.block());
    y.par_chunks_mut(block * g.out_image_len())
        .zip(x.par_chunks(block * g.image_len()))
        .for_each(|(y_block, x_block)| {
            let images = x_block.len() / g.image_len();
            let cols = unfold(g, x_block, images);
            let columns = images * p;
            // out (C_out x columns) = w (C_out x k) . cols (k x columns); a block of one image
            // is already in the output's layout.
            let product = |out: &mut [f32]| {
                matmul(
                    [g.out_channels, columns, k],
                    (out, columns),
                    (w, 1, k),
                    (&cols, 1, columns),
                );
            };
            if images == 1 {
                product(y_block);
            } else {
                let mut out = vec![0.0; g.out_channels * columns];
                product(&mut out);
                scatter_images(&out, y_block, g.out_channels, p, images);
            }
        });
}

/// The gradient of the input, given the gradient `dy` of the output (by Winograd's F(2x2,
/// 3x3) where it applies).
pub fn backward_input(g: &Geometry, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    if winograd::applies(g) {
        winograd::backward_input(g, w, dy, dx)
    } else {
        backward_input_unfolded(g, w, dy, dx)
    }
}

/// `backward_input` through the unfolded matrix, whatever the shape.
pub fn backward_input_unfolded(g: &Geometry, w: &[f32], dy: &[f32], dx: &mut [f32]) {
    let (k, p, block) = (g.taps(), g.pixels(), g.block());
    dx.par_chunks_mut(block * g.image_len())
        .zip(dy.par_chunks(block * g.out_image_len()))
        .for_each(|(dx_block, dy_block)| {
            let images = dx_block.len() / g.image_len();
            let columns = images * p;
            let grad_out = gather_images(dy_block, g.out_channels, p, images);
            let mut cols = vec![0.0; k * columns];
            // cols (k x columns) = w^T (k x C_out) . dy (C_out x columns)
            matmul(
                [k, columns, g.out_channels],
                (&mut cols, columns),
                (w, k, 1),
                (&grad_out, 1, columns),
            );
            dx_block.fill(0.0);
            fold(g, &cols, dx_block, images);
        });
}

/// The gradient of the weight (C_out x C x kh x kw), given the gradient `dy` of the output.
pub fn backward_weight(g: &Geometry, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    let block = g.block();
    // One block (the deep layers at small batches) writes straight into `dw`: a partial of
    // the weight's size would cost an allocation, its page faults and an extra pass.
    if block >= g.batch {
        weight_of_block(g, x, dy, dw);
        return;
    }
    let partials: Vec<Vec<f32>> = x
        .par_chunks(block * g.image_len())
        .zip(dy.par_chunks(block * g.out_image_len()))
        .map(|(x_block, dy_block)| {
            let mut part = vec![0.0; dw.len()];
            weight_of_block(g, x_block, dy_block, &mut part);
            part
        })
        .collect();
    // Summed in block order, so the bits do not depend on which thread finished first.
    dw.fill(0.0);
    for part in &partials {
        for (d, v) in dw.iter_mut().zip(part) {
            *d += v;
        }
    }
}

/// One block's share of the weight gradient, written over `out` (C_out x k).
fn weight_of_block(g: &Geometry, x_block: &[f32], dy_block: &[f32], out: &mut [f32]) {
    let (k, p) = (g.taps(), g.pixels());
    let images = x_block.len() / g.image_len();
    let columns = images * p;
    let cols = unfold(g, x_block, images);
    let grad_out = gather_images(dy_block, g.out_channels, p, images);
    // out (C_out x k) = dy (C_out x columns) . cols^T (columns x k)
    matmul(
        [g.out_channels, k, columns],
        (out, k),
        (&grad_out, 1, columns),
        (&cols, columns, 1),
    );
}

/// `dst` = `lhs` . `rhs`, row-major `dst` with the given row stride; `lhs` and `rhs` as (data,
/// column stride, row stride) in elements.
///
/// The product goes out in tiles along its longer side (`TILE` rows or columns each), one
/// single-threaded GEMM per tile, over rayon's pool. Tiles of a fixed size (not one per thread)
/// keep every entry computed the same way on any number of threads; and they spread a block's
/// GEMM over the threads far better than the gemm crate's own threading did on these shapes
/// (measured with `bench ops`). Along the longer side, so a tile packs a slice of the larger
/// operand and all of the smaller one, not all of the larger one again.
fn matmul(
    [m, n, k]: [usize; 3],
    (dst, dst_row): (&mut [f32], usize),
    (lhs, lhs_cs, lhs_rs): (&[f32], usize, usize),
    (rhs, rhs_cs, rhs_rs): (&[f32], usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(dst_row >= n && dst.len() >= (m - 1) * dst_row + n);
    assert!(k == 0 || lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs);
    assert!(k == 0 || rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    let by_rows = m >= n;
    let tiles = if by_rows { m } else { n }.div_ceil(TILE);
    let out = Shared(dst.as_mut_ptr());
    (0..tiles).into_par_iter().for_each(|tile| {
        let first = tile * TILE;
        let ([rows, cols], dst_at, lhs_at, rhs_at) = if by_rows {
            let rows = TILE.min(m - first);
            ([rows, n], first * dst_row, first * lhs_rs, 0)
        } else {
            let cols = TILE.min(n - first);
            ([m, cols], first, 0, first * rhs_cs)
        };
        // SAFETY: the asserts above keep every index the strides reach inside the slices;
        // tiles cover disjoint rows (or columns) of `dst`, so no two tasks write one entry;
        // `dst` is borrowed mutably for the whole call, so it aliases neither input.
        unsafe {
            gemm(
                rows,
                cols,
                k,
                out.at(dst_at),
                1,
                dst_row as isize,
                false,
                lhs.as_ptr().add(lhs_at),
                lhs_cs as isize,
                lhs_rs as isize,
                rhs.as_ptr().add(rhs_at),
                rhs_cs as isize,
                rhs_rs as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            );
        }
    });
}

/// The output pointer, shared by the tasks of `matmul`, which write disjoint entries.
#[derive(Clone, Copy)]
struct Shared(*mut f32);

// SAFETY: only `matmul` makes one, and its tasks write disjoint entries of a buffer it borrows
// mutably for as long as they run.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// # Safety
    /// `offset` must lie inside the buffer.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        unsafe { self.0.add(offset) }
    }
}

/// The unfolded input of `images` images: a (C kh kw) x (images Ho Wo) matrix whose column
/// holds what the kernel sees at one output pixel (zeros in the padding).
fn unfold(g: &Geometry, x: &[f32], images: usize) -> Vec<f32> {
    let p = g.pixels();
    let columns = images * p;
    let mut cols = vec![0.0; g.taps() * columns];
    for image in 0..images {
        let x_img = &x[image * g.image_len()..][..g.image_len()];
        for_each_tap_row(g, |row, channel, ky, kx| {
            let dst = &mut cols[row * columns + image * p..][..p];
            let plane = &x_img[channel * g.height * g.width..][..g.height * g.width];
            for_each_run(g, ky, kx, |oh, ow, iw, len, ih| {
                let out = &mut dst[oh * g.out_width + ow..][..len];
                if g.stride[1] == 1 {
                    out.copy_from_slice(&plane[ih * g.width + iw..][..len]);
                } else {
                    for (i, o) in out.iter_mut().enumerate() {
                        *o = plane[ih * g.width + iw + i * g.stride[1]];
                    }
                }
            });
        });
    }
    cols
}

/// The inverse of `unfold` for gradients: adds each column entry back onto the input pixel it
/// came from. `dx` must be zeroed.
fn fold(g: &Geometry, cols: &[f32], dx: &mut [f32], images: usize) {
    let p = g.pixels();
    let columns = images * p;
    for image in 0..images {
        let dx_img = &mut dx[image * g.image_len()..][..g.image_len()];
        for_each_tap_row(g, |row, channel, ky, kx| {
            let src = &cols[row * columns + image * p..][..p];
            let plane = &mut dx_img[channel * g.height * g.width..][..g.height * g.width];
            for_each_run(g, ky, kx, |oh, ow, iw, len, ih| {
                let from = &src[oh * g.out_width + ow..][..len];
                if g.stride[1] == 1 {
                    for (d, v) in plane[ih * g.width + iw..][..len].iter_mut().zip(from) {
                        *d += v;
                    }
                } else {
                    for (i, v) in from.iter().enumerate() {
                        plane[ih * g.width + iw + i * g.stride[1]] += v;
                    }
                }
            });
        });
    }
}

/// Calls `f(row, channel, ky, kx)` for every row of the unfolded matrix.
fn for_each_tap_row(g: &Geometry, mut f: impl FnMut(usize, usize, usize, usize)) {
    let mut row = 0;
    for channel in 0..g.in_channels {
        for ky in 0..g.kernel[0] {
            for kx in 0..g.kernel[1] {
                f(row, channel, ky, kx);
                row += 1;
            }
        }
    }
}

/// For kernel tap (`ky`, `kx`): each output row's run of output pixels that read inside the
/// input, as `f(out_row, first_out_col, first_in_col, len, in_row)`. Pixels outside every run
/// read padding.
fn for_each_run(
    g: &Geometry,
    ky: usize,
    kx: usize,
    mut f: impl FnMut(usize, usize, usize, usize, usize),
) {
    let [sh, sw] = g.stride;
    let [dh, dw] = g.dilation;
    let [ph, pw] = g.pad;
    // Input column of output column ow: ow * sw + kx * dw - pw; the valid ow form a range.
    let shift = kx * dw;
    let first = pw.saturating_sub(shift).div_ceil(sw);
    let last = if g.width + pw > shift {
        ((g.width + pw - shift - 1) / sw + 1).min(g.out_width)
    } else {
        0
    };
    if first >= last {
        return;
    }
    let first_in = first * sw + shift - pw;
    for oh in 0..g.out_height {
        let ih = oh * sh + ky * dh;
        if ih < ph || ih - ph >= g.height {
            continue;
        }
        f(oh, first, first_in, last - first, ih - ph);
    }
}

/// Rows of `images` images (each `rows` x `p`) side by side: a `rows` x (images p) matrix.
fn gather_images(src: &[f32], rows: usize, p: usize, images: usize) -> Cow<'_, [f32]> {
    if images == 1 {
        return Cow::Borrowed(&src[..rows * p]);
    }
    let columns = images * p;
    let mut out = vec![0.0; rows * columns];
    for image in 0..images {
        for r in 0..rows {
            out[r * columns + image * p..][..p]
                .copy_from_slice(&src[(image * rows + r) * p..][..p]);
        }
    }
    Cow::Owned(out)
}

/// The inverse of `gather_images`.
fn scatter_images(src: &[f32], dst: &mut [f32], rows: usize, p: usize, images: usize) {
    let columns = images * p;
    for image in 0..images {
        for r in 0..rows {
            dst[(image * rows + r) * p..][..p]
                .copy_from_slice(&src[r * columns + image * p..][..p]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The definition, one multiply-add at a time.
    fn direct(g: &Geometry, x: &[f32], w: &[f32]) -> Vec<f32> {
        let mut y = vec![0.0f64; g.output_len()];
        for n in 0..g.batch {
            for co in 0..g.out_channels {
                for oh in 0..g.out_height {
                    for ow in 0..g.out_width {
                        let mut s = 0.0f64;
                        for c in 0..g.in_channels {
                            for ky in 0..g.kernel[0] {
                                for kx in 0..g.kernel[1] {
                                    let ih = (oh * g.stride[0] + ky * g.dilation[0]) as isize
                                        - g.pad[0] as isize;
                                    let iw = (ow * g.stride[1] + kx * g.dilation[1]) as isize
                                        - g.pad[1] as isize;
                                    if ih < 0
                                        || iw < 0
                                        || ih >= g.height as isize
                                        || iw >= g.width as isize
                                    {
                                        continue;
                                    }
                                    let xi = ((n * g.in_channels + c) * g.height + ih as usize)
                                        * g.width
                                        + iw as usize;
                                    let wi = ((co * g.in_channels + c) * g.kernel[0] + ky)
                                        * g.kernel[1]
                                        + kx;
                                    s += f64::from(x[xi]) * f64::from(w[wi]);
                                }
                            }
                        }
                        y[((n * g.out_channels + co) * g.out_height + oh) * g.out_width + ow] = s;
                    }
                }
            }
        }
        y.into_iter().map(|v| v as f32).collect()
    }

    fn random(n: usize, rng: &mut impl Rng) -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    #[test]
    fn forward_equals_the_definition_on_odd_shapes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        // (batch, c, h, w, c_out, k, stride, pad before/after, dilation)
        let cases = [
            (2, 3, 9, 7, 4, [3, 3], [1, 1], [(1, 1), (1, 1)], [1, 1]),
            (3, 2, 11, 10, 5, [7, 7], [2, 2], [(3, 3), (3, 3)], [1, 1]),
            (1, 4, 8, 8, 3, [1, 1], [2, 2], [(0, 0), (0, 0)], [1, 1]),
            (2, 2, 10, 9, 2, [3, 2], [2, 3], [(2, 0), (1, 2)], [2, 1]),
            (40, 3, 3, 3, 6, [3, 3], [2, 2], [(1, 1), (1, 1)], [1, 1]),
        ];
        for (b, c, h, w, co, k, s, pad, d) in cases {
            let g = Geometry::new([b, c, h, w], [co, c, k[0], k[1]], s, pad, d);
            let x = random(b * c * h * w, &mut rng);
            let wt = random(co * c * k[0] * k[1], &mut rng);
            let mut y = vec![f32::NAN; g.output_len()];
            forward(&g, &x, &wt, &mut y);
            for (a, e) in y.iter().zip(direct(&g, &x, &wt)) {
                assert!(
                    (a - e).abs() <= 1e-4 * e.abs().max(1.0),
                    "{g:?}: {a} vs {e}"
                );
            }
        }
    }

    /// The gradients are the adjoints of the forward map, which is linear in each of x and w:
    /// <dx, v> = <dy, conv(v, w)> and <dw, u> = <dy, conv(x, u)> for any v and u. Random
    /// probes catch a wrong entry anywhere in dx or dw.
    #[test]
    fn gradients_are_the_adjoints_of_the_forward_map() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let cases = [
            (2, 3, 9, 7, 4, [3, 3], [1, 1], [(1, 1), (1, 1)], [1, 1]),
            (3, 2, 11, 10, 5, [7, 7], [2, 2], [(3, 3), (3, 3)], [1, 1]),
            (2, 2, 10, 9, 2, [3, 2], [2, 3], [(2, 0), (1, 2)], [2, 1]),
            (40, 3, 3, 3, 6, [3, 3], [2, 2], [(1, 1), (1, 1)], [1, 1]),
            // One image with 2x2 outputs: one block, a weight gradient from 4 columns.
            (1, 20, 3, 3, 7, [3, 3], [2, 2], [(1, 1), (1, 1)], [1, 1]),
        ];
        let dot = |a: &[f32], b: &[f32]| -> f64 {
            a.iter()
                .zip(b)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum()
        };
        for (b, c, h, w, co, k, s, pad, d) in cases {
            let g = Geometry::new([b, c, h, w], [co, c, k[0], k[1]], s, pad, d);
            let x = random(b * c * h * w, &mut rng);
            let wt = random(co * c * k[0] * k[1], &mut rng);
            let dy = random(g.output_len(), &mut rng);
            let mut dx = vec![f32::NAN; x.len()];
            backward_input(&g, &wt, &dy, &mut dx);
            let mut dw = vec![f32::NAN; wt.len()];
            backward_weight(&g, &x, &dy, &mut dw);
            for _ in 0..3 {
                let v = random(x.len(), &mut rng);
                let u = random(wt.len(), &mut rng);
                for (name, got, want) in [
                    ("dx", dot(&dx, &v), dot(&dy, &direct(&g, &v, &wt))),
                    ("dw", dot(&dw, &u), dot(&dy, &direct(&g, &x, &u))),
                ] {
                    assert!(
                        (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                        "{g:?} {name}: {got} vs {want}"
                    );
                }
            }
        }
    }

    /// The Winograd path (3x3, stride 1) equals the definition, and its input gradient is
    /// the forward map's adjoint: on partial tiles (odd output sizes), asymmetric padding of
    /// 0 to 2, one tile per image (ResNet18's last stage at 64x64, batch 32) and several
    /// blocks.
    #[test]
    fn winograd_equals_the_definition_and_its_adjoint() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
        let cases = [
            (2, 3, 9, 7, 4, [(1, 1), (1, 1)]),
            (3, 5, 7, 5, 6, [(0, 2), (2, 1)]),
            (32, 16, 2, 2, 8, [(1, 1), (1, 1)]),
            (40, 4, 8, 8, 3, [(1, 1), (1, 1)]),
            (16, 2, 1, 3, 2, [(2, 2), (0, 0)]),
        ];
        for (b, c, h, w, co, pad) in cases {
            let g = Geometry::new([b, c, h, w], [co, c, 3, 3], [1, 1], pad, [1, 1]);
            assert!(winograd::applies(&g), "{g:?}");
            let x = random(b * c * h * w, &mut rng);
            let wt = random(co * c * 9, &mut rng);
            let mut y = vec![f32::NAN; g.output_len()];
            let filters = winograd::Filters::new(&wt, co, c);
            winograd::forward_with(&g, &x, &filters, &mut y);
            for (a, e) in y.iter().zip(direct(&g, &x, &wt)) {
                assert!(
                    (a - e).abs() <= 1e-4 * e.abs().max(1.0),
                    "{g:?}: {a} vs {e}"
                );
            }
            let dy = random(g.output_len(), &mut rng);
            let mut dx = vec![f32::NAN; x.len()];
            winograd::backward_input(&g, &wt, &dy, &mut dx);
            for _ in 0..3 {
                let v = random(x.len(), &mut rng);
                let dot = |a: &[f32], b: &[f32]| -> f64 {
                    a.iter()
                        .zip(b)
                        .map(|(a, b)| f64::from(*a) * f64::from(*b))
                        .sum()
                };
                let (got, want) = (dot(&dx, &v), dot(&dy, &direct(&g, &v, &wt)));
                assert!(
                    (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "{g:?}: {got} vs {want}"
                );
            }
        }
        // What the network's stride-1 3x3 convolutions take; the strided ones stay unfolded,
        // and so does a call with too few tiles to pay for the kernels' transform.
        let layer = |batch, side, stride| {
            let (c, s) = (64, [stride; 2]);
            Geometry::new([batch, c, side, side], [c, c, 3, 3], s, [(1, 1); 2], [1, 1])
        };
        assert!(winograd::applies(&layer(16, 16, 1)) && !winograd::applies(&layer(16, 16, 2)));
        assert!(winograd::applies(&layer(32, 2, 1)) && !winograd::applies(&layer(16, 2, 1)));
    }

    /// Block boundaries follow the shapes, not the threads, and the weight gradient's partial
    /// sums are added in block order: the same bits on one thread and on two, on a shape with
    /// one block (the GEMM spreads over the threads) and one with many.
    #[test]
    fn the_same_bits_at_one_and_two_threads() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        for (b, c, h, co) in [(4, 64, 8, 128), (5, 3, 24, 4), (1, 200, 2, 300)] {
            let g = Geometry::new(
                [b, c, h, h],
                [co, c, 3, 3],
                [1, 1],
                [(1, 1), (1, 1)],
                [1, 1],
            );
            let x = random(b * c * h * h, &mut rng);
            let w = random(co * c * 9, &mut rng);
            let dy = random(g.output_len(), &mut rng);
            let run = |threads: usize| {
                crate::model::flex::on_threads(threads, || {
                    let mut y = vec![0.0; g.output_len()];
                    forward(&g, &x, &w, &mut y);
                    let mut dx = vec![0.0; x.len()];
                    backward_input(&g, &w, &dy, &mut dx);
                    let mut dw = vec![0.0; w.len()];
                    backward_weight(&g, &x, &dy, &mut dw);
                    [y, dx, dw].map(|v| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>())
                })
            };
            assert_eq!(run(1), run(2), "{g:?}");
        }
    }
}
