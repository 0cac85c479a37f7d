//! feature_map.png: each channel's features in embedding space, coloured by modality, with the
//! convex hull (grey) and the minimum-area rectangle (red) that the layout was cut from.

use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_circle_mut, draw_hollow_polygon_mut, draw_line_segment_mut};
use imageproc::point::Point;

use crate::layout::Layout;

const PANEL: u32 = 420;
const MARGIN: f64 = 20.0;

/// Colours for modalities, in modality order (colour-blind-safe Okabe-Ito palette).
pub const PALETTE: [[u8; 3]; 7] = [
    [0, 114, 178],
    [230, 159, 0],
    [0, 158, 115],
    [204, 121, 167],
    [86, 180, 233],
    [213, 94, 0],
    [240, 228, 66],
];

/// Draws one panel per channel. `modality_of[f]` is the modality index of feature column `f`.
pub fn draw(layout: &Layout, modality_of: &[usize]) -> RgbImage {
    let n = layout.channels.len().max(1) as u32;
    let mut img = RgbImage::from_pixel(PANEL * n, PANEL, Rgb([255, 255, 255]));
    for (c, channel) in layout.channels.iter().enumerate() {
        let x0 = f64::from(c as u32 * PANEL);
        let all: Vec<[f64; 2]> = channel
            .embedding
            .iter()
            .chain(&channel.frame.rectangle)
            .copied()
            .collect();
        let to_canvas = fit_to_panel(&all, x0);
        let hull: Vec<Point<f32>> = dedup_closed(&channel.frame.hull)
            .iter()
            .map(|p| to_canvas(*p))
            .map(|(x, y)| Point::new(x, y))
            .collect();
        if hull.len() >= 3 {
            draw_hollow_polygon_mut(&mut img, &hull, Rgb([150, 150, 150]));
        }
        let rect = &channel.frame.rectangle;
        for pair in rect.windows(2) {
            draw_line_segment_mut(
                &mut img,
                to_canvas(pair[0]),
                to_canvas(pair[1]),
                Rgb([200, 30, 30]),
            );
        }
        for (&feature, &p) in channel.features.iter().zip(&channel.embedding) {
            let colour = PALETTE[modality_of.get(feature).copied().unwrap_or(0) % PALETTE.len()];
            let (x, y) = to_canvas(p);
            draw_filled_circle_mut(&mut img, (x as i32, y as i32), 2, Rgb(colour));
        }
        if c > 0 {
            draw_line_segment_mut(
                &mut img,
                (x0 as f32, 0.0),
                (x0 as f32, PANEL as f32),
                Rgb([0, 0, 0]),
            );
        }
    }
    img
}

/// A closed ring repeats its first vertex at the end; the polygon drawer wants it once.
fn dedup_closed(ring: &[[f64; 2]]) -> &[[f64; 2]] {
    match ring {
        [first, .., last] if first == last => &ring[..ring.len() - 1],
        _ => ring,
    }
}

/// Maps embedding coordinates into a square panel starting at x0, keeping the aspect ratio.
fn fit_to_panel(points: &[[f64; 2]], x0: f64) -> impl Fn([f64; 2]) -> (f32, f32) {
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for p in points {
        for k in 0..2 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    let span = (hi[0] - lo[0]).max(hi[1] - lo[1]).max(1e-12);
    let scale = (f64::from(PANEL) - 2.0 * MARGIN) / span;
    move |p: [f64; 2]| {
        let x = x0 + MARGIN + (p[0] - lo[0]) * scale;
        let y = f64::from(PANEL) - MARGIN - (p[1] - lo[1]) * scale;
        (x as f32, y as f32)
    }
}
