//! Pictures of a fitted layout and of the images it makes: the density map (features per
//! pixel) and, per class, the class-mean image and example images. Values use a viridis-like
//! ramp (dark = 0, yellow = high), which stays readable in greyscale and to colour-blind eyes.

use image::{Rgb, RgbImage};

use super::canvas::{BAR_HEIGHT, colour_bar, short};
use super::text;
use crate::layout::Layout;

/// Control points of the viridis colour map at 0, 0.25, 0.5, 0.75 and 1.
const VIRIDIS: [[f32; 3]; 5] = [
    [68.0, 1.0, 84.0],
    [59.0, 82.0, 139.0],
    [33.0, 145.0, 140.0],
    [94.0, 201.0, 98.0],
    [253.0, 231.0, 37.0],
];
pub(crate) const GAP: u32 = 6;
/// Width of a colour bar under a picture.
pub(crate) const BAR_WIDTH: u32 = 160;

pub fn ramp(t: f32) -> Rgb<u8> {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    } * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f32;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    Rgb([0, 1, 2].map(|k| (a[k] + (b[k] - a[k]) * f).round() as u8))
}

/// Integer zoom that makes an image side at least `target` pixels.
pub(crate) fn zoom(side: usize, target: usize) -> u32 {
    target.div_ceil(side.max(1)).max(1) as u32
}

/// Copies an H x W plane into `canvas` at (x0, y0), `scale` pixels per cell; `colour` maps a
/// value to a pixel colour.
pub(crate) fn blit(
    canvas: &mut RgbImage,
    plane: &[f32],
    (height, width): (usize, usize),
    (x0, y0, scale): (u32, u32, u32),
    colour: impl Fn(f32) -> Rgb<u8>,
) {
    for r in 0..height {
        for c in 0..width {
            let px = colour(plane[r * width + c]);
            for dy in 0..scale {
                for dx in 0..scale {
                    canvas.put_pixel(x0 + c as u32 * scale + dx, y0 + r as u32 * scale + dy, px);
                }
            }
        }
    }
}

/// Features per pixel, one panel per channel: white where no feature lies, then the ramp up
/// to the busiest pixel of the layout, with its colour bar.
pub fn density_map(layout: &Layout) -> RgbImage {
    let (h, w) = (layout.height, layout.width);
    let scale = zoom(h.max(w), 400);
    let n = layout.channels.len().max(1) as u32;
    let (pw, ph) = (w as u32 * scale, h as u32 * scale);
    let mut img = RgbImage::from_pixel(
        (n * pw + (n - 1) * GAP).max(BAR_WIDTH + 2 * GAP),
        ph + 2 * GAP + BAR_HEIGHT,
        Rgb([255, 255, 255]),
    );
    let counts: Vec<Vec<f32>> = layout
        .channels
        .iter()
        .map(|ch| {
            let mut count = vec![0.0f32; h * w];
            for &[r, c] in &ch.pixels {
                count[r as usize * w + c as usize] += 1.0;
            }
            count
        })
        .collect();
    let busiest = counts.iter().flatten().copied().fold(1.0f32, f32::max);
    for (c, count) in counts.iter().enumerate() {
        let x0 = c as u32 * (pw + GAP);
        blit(&mut img, count, (h, w), (x0, 0, scale), |v| {
            if v == 0.0 {
                Rgb([255, 255, 255])
            } else if busiest == 1.0 {
                ramp(0.5)
            } else {
                ramp((v - 1.0) / (busiest - 1.0))
            }
        });
    }
    let ticks = if busiest == 1.0 {
        vec![(0.5, "1".to_string())]
    } else {
        vec![(0.0, "1".to_string()), (1.0, short(busiest))]
    };
    colour_bar(
        &mut img,
        (GAP, ph + 2 * GAP),
        BAR_WIDTH,
        "features per pixel (white: none)",
        &ticks,
        |t| if busiest == 1.0 { ramp(0.5) } else { ramp(t) },
    );
    img
}

/// Mean image of each class (N x C x H x W `images`, class index per image).
pub fn class_means(
    images: &[f32],
    labels: &[usize],
    n_classes: usize,
    image_len: usize,
) -> Vec<Vec<f32>> {
    let mut sums = vec![vec![0.0f64; image_len]; n_classes];
    let mut counts = vec![0usize; n_classes];
    for (image, &label) in images.chunks(image_len).zip(labels) {
        counts[label] += 1;
        for (s, &v) in sums[label].iter_mut().zip(image) {
            *s += f64::from(v);
        }
    }
    sums.into_iter()
        .zip(counts)
        .map(|(s, n)| {
            s.into_iter()
                .map(|v| (v / n.max(1) as f64) as f32)
                .collect()
        })
        .collect()
}

/// One row per class, named on the left: its mean image, then up to `examples` of its images
/// (columns headed "mean", "example 1"...); within each tile the channels sit side by side.
/// Each channel has one colour scale over all tiles, 0 to its largest value shown, drawn as a
/// colour bar under the grid.
pub fn class_images(
    layout: &Layout,
    images: &[f32],
    labels: &[usize],
    classes: &[String],
    examples: usize,
) -> RgbImage {
    let n_classes = classes.len();
    let (h, w, c) = (layout.height, layout.width, layout.n_channels());
    let len = layout.image_len();
    let scale = zoom(h.max(w), 96);
    let (tw, th) = (c as u32 * w as u32 * scale, h as u32 * scale);
    let means = class_means(images, labels, n_classes, len);
    let rows: Vec<Vec<&[f32]>> = (0..n_classes)
        .map(|k| {
            let picks = images
                .chunks(len)
                .zip(labels)
                .filter(|&(_, &l)| l == k)
                .map(|(img, _)| img)
                .take(examples);
            std::iter::once(means[k].as_slice()).chain(picks).collect()
        })
        .collect();
    // One scale per channel: modalities differ in range (relative abundances are small).
    let plane = h * w;
    let top: Vec<f32> = (0..c)
        .map(|ch| {
            rows.iter()
                .flatten()
                .flat_map(|t| t[ch * plane..(ch + 1) * plane].iter().copied())
                .fold(f32::MIN_POSITIVE, f32::max)
        })
        .collect();
    let cols = 1 + examples as u32;
    let left = classes.iter().map(|n| text::width(n)).max().unwrap_or(0) + 2 * GAP;
    let heading_height = text::LINE + 2 * GAP;
    let ink = Rgb([0, 0, 0]);
    let grid_height =
        heading_height + n_classes as u32 * th + (n_classes as u32).saturating_sub(1) * GAP;
    let bars = c as u32 * (BAR_WIDTH + 4 * GAP);
    let mut img = RgbImage::from_pixel(
        (left + cols * tw + (cols - 1) * 2 * GAP).max(left + bars),
        grid_height + 2 * GAP + BAR_HEIGHT,
        Rgb([255, 255, 255]),
    );
    for t in 0..cols {
        let heading = if t == 0 {
            "mean".to_string()
        } else {
            format!("example {t}")
        };
        text::draw(&mut img, (left + t * (tw + 2 * GAP), GAP), &heading, ink);
    }
    for (k, tiles) in rows.iter().enumerate() {
        let y_row = heading_height + k as u32 * (th + GAP);
        text::draw(
            &mut img,
            (GAP, y_row + th / 2 - text::LINE / 2),
            &classes[k],
            ink,
        );
        for (t, tile) in tiles.iter().enumerate() {
            for ch in 0..c {
                let x0 = left + t as u32 * (tw + 2 * GAP) + ch as u32 * w as u32 * scale;
                let y0 = y_row;
                let values = &tile[ch * plane..(ch + 1) * plane];
                blit(&mut img, values, (h, w), (x0, y0, scale), |v| {
                    ramp(v / top[ch])
                });
            }
        }
    }
    for (ch, channel) in layout.channels.iter().enumerate() {
        colour_bar(
            &mut img,
            (
                left + ch as u32 * (BAR_WIDTH + 4 * GAP),
                grid_height + 2 * GAP,
            ),
            BAR_WIDTH,
            &channel.name,
            &[
                (0.0, "0".into()),
                (0.5, short(top[ch] / 2.0)),
                (1.0, short(top[ch])),
            ],
            ramp,
        );
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn means_average_each_class() {
        let images = [1.0, 3.0, 3.0, 5.0, 10.0, 10.0];
        let means = class_means(&images, &[0, 0, 1], 2, 2);
        assert_eq!(means, vec![vec![2.0, 4.0], vec![10.0, 10.0]]);
    }

    #[test]
    fn ramp_runs_dark_to_bright() {
        let luma =
            |p: Rgb<u8>| 0.3 * f32::from(p[0]) + 0.59 * f32::from(p[1]) + 0.11 * f32::from(p[2]);
        let steps: Vec<f32> = (0..=10).map(|i| luma(ramp(i as f32 / 10.0))).collect();
        assert!(steps.windows(2).all(|w| w[1] > w[0]), "{steps:?}");
        assert_eq!(ramp(f32::NAN), ramp(0.0));
    }
}
