//! feature_map.png: each channel's features in embedding space, drawn with plotters: one panel
//! per channel with ticks in embedding units, the features coloured by modality (legend), the
//! convex hull (grey) and the minimum-area rectangle (red) that the layout was cut from.

use anyhow::Result;
use image::{Rgb, RgbImage};
use plotters::prelude::*;

use super::canvas::{self, INK, plot_error, rgb};
use super::text;
use crate::layout::Layout;
use crate::layout::settings::EmbedMethod;

const PANEL: (u32, u32) = (520, 480);
const HULL: Rgb<u8> = Rgb([150, 150, 150]);
const FRAME: Rgb<u8> = Rgb([200, 30, 30]);

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

/// The colour of modality `m`.
pub fn colour(m: usize) -> Rgb<u8> {
    Rgb(PALETTE[m % PALETTE.len()])
}

fn axis_name(method: EmbedMethod) -> &'static str {
    match method {
        EmbedMethod::Pca => "PCA",
        EmbedMethod::Kpca => "kernel PCA",
        EmbedMethod::Tsne => "t-SNE",
        EmbedMethod::Precomputed => "given coordinate",
    }
}

/// Draws one panel per channel. `modality_of[f]` is the modality index of feature column `f`,
/// `modalities[m]` its name.
pub fn draw(layout: &Layout, modality_of: &[usize], modalities: &[String]) -> Result<RgbImage> {
    let n = layout.channels.len().max(1);
    canvas::chart(PANEL.0 * n as u32, PANEL.1, |root| {
        for (area, channel) in root.split_evenly((1, n)).iter().zip(&layout.channels) {
            let all: Vec<[f64; 2]> = channel
                .embedding
                .iter()
                .chain(&channel.frame.rectangle)
                .copied()
                .collect();
            let (xs, ys) = square_ranges(&all);
            let mut chart = ChartBuilder::on(area)
                .caption(
                    format!("{} ({} features)", channel.name, channel.features.len()),
                    (text::FONT, 16),
                )
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d(xs, ys)
                .map_err(plot_error)?;
            let method = axis_name(channel.method);
            chart
                .configure_mesh()
                .x_desc(format!("{method} 1"))
                .y_desc(format!("{method} 2"))
                .x_labels(6)
                .y_labels(6)
                .label_style((text::FONT, 12))
                .axis_desc_style((text::FONT, 13))
                .light_line_style(RGBColor(240, 240, 240))
                .draw()
                .map_err(plot_error)?;
            let ring = |points: &[[f64; 2]]| -> Vec<(f64, f64)> {
                let mut ring: Vec<(f64, f64)> = points.iter().map(|p| (p[0], p[1])).collect();
                if ring.first() != ring.last()
                    && let Some(&first) = ring.first()
                {
                    ring.push(first);
                }
                ring
            };
            chart
                .draw_series([PathElement::new(ring(&channel.frame.hull), rgb(HULL))])
                .map_err(plot_error)?
                .label("convex hull")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], rgb(HULL)));
            chart
                .draw_series([PathElement::new(
                    ring(&channel.frame.rectangle),
                    rgb(FRAME).stroke_width(2),
                )])
                .map_err(plot_error)?
                .label("image frame")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], rgb(FRAME)));
            for (m, name) in modalities.iter().enumerate() {
                let points: Vec<(f64, f64)> = channel
                    .features
                    .iter()
                    .zip(&channel.embedding)
                    .filter(|&(&f, _)| modality_of.get(f).copied().unwrap_or(0) == m)
                    .map(|(_, p)| (p[0], p[1]))
                    .collect();
                if points.is_empty() {
                    continue;
                }
                let c = rgb(colour(m));
                chart
                    .draw_series(points.into_iter().map(|p| Circle::new(p, 2, c.filled())))
                    .map_err(plot_error)?
                    .label(name.as_str())
                    .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font((text::FONT, 12))
                .background_style(WHITE.mix(0.85))
                .border_style(rgb(INK))
                .draw()
                .map_err(plot_error)?;
        }
        Ok(())
    })
}

/// Equal spans on both axes around the points' centre, so that distances read the same in
/// every direction, with a small margin.
fn square_ranges(points: &[[f64; 2]]) -> (std::ops::Range<f64>, std::ops::Range<f64>) {
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for p in points
        .iter()
        .filter(|p| p[0].is_finite() && p[1].is_finite())
    {
        for k in 0..2 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    if lo[0] > hi[0] {
        return (-1.0..1.0, -1.0..1.0);
    }
    let half = ((hi[0] - lo[0]).max(hi[1] - lo[1]) * 0.55).max(1e-9);
    let centre = |k: usize| (lo[k] + hi[k]) / 2.0;
    (
        centre(0) - half..centre(0) + half,
        centre(1) - half..centre(1) + half,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_square_and_hold_every_point() {
        let (xs, ys) = square_ranges(&[[0.0, 0.0], [10.0, 2.0], [5.0, -1.0]]);
        assert!((xs.end - xs.start - (ys.end - ys.start)).abs() < 1e-9);
        assert!(xs.start < 0.0 && xs.end > 10.0 && ys.start < -1.0 && ys.end > 2.0);
        assert_eq!(square_ranges(&[]), (-1.0..1.0, -1.0..1.0));
    }
}
