//! Plotters on an `RgbImage`: charts draw into a white canvas of a given size, and pictures
//! made pixel by pixel get colour bars with their scales.

use anyhow::{Result, anyhow};
use image::{Rgb, RgbImage};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::text;

pub type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

pub const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
pub const INK: Rgb<u8> = Rgb([40, 40, 40]);

/// Plotters' colour for an image colour.
pub fn rgb(c: Rgb<u8>) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

/// Plotters' errors carry the backend's type; the callers only need the message.
pub fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("cannot draw the chart: {e}")
}

/// A `width` x `height` white picture, drawn by `paint` with plotters.
pub fn chart(width: u32, height: u32, paint: impl FnOnce(&Area) -> Result<()>) -> Result<RgbImage> {
    text::register();
    let mut img = RgbImage::from_pixel(width, height, WHITE);
    {
        let root = BitMapBackend::with_buffer(img.as_mut(), (width, height)).into_drawing_area();
        paint(&root)?;
        root.present().map_err(plot_error)?;
    }
    Ok(img)
}

/// Height of a colour bar with its labels.
pub const BAR_HEIGHT: u32 = 12 + 2 * text::LINE;

/// A horizontal colour bar at (x, y), `width` pixels wide: `title` above it, and under it the
/// values at `ticks` (fractions of the bar in [0, 1], each with its label).
pub fn colour_bar(
    img: &mut RgbImage,
    (x, y): (u32, u32),
    width: u32,
    title: &str,
    ticks: &[(f32, String)],
    colour: impl Fn(f32) -> Rgb<u8>,
) {
    text::draw(img, (x, y), title, INK);
    let top = y + text::LINE;
    for dx in 0..width {
        let px = colour(dx as f32 / (width.max(2) - 1) as f32);
        for dy in 0..12 {
            put(img, x + dx, top + dy, px);
        }
    }
    for (at, label) in ticks {
        let tx = x + (at.clamp(0.0, 1.0) * (width.max(1) - 1) as f32).round() as u32;
        for dy in 12..15 {
            put(img, tx, top + dy, INK);
        }
        let half = text::width(label) / 2;
        let lx = tx.saturating_sub(half).max(x.saturating_sub(half));
        text::draw(img, (lx, top + 15), label, INK);
    }
}

fn put(img: &mut RgbImage, x: u32, y: u32, px: Rgb<u8>) {
    if x < img.width() && y < img.height() {
        img.put_pixel(x, y, px);
    }
}

/// A value for a colour bar's label: short, and plain for the usual ranges of omics values.
pub fn short(value: f32) -> String {
    let a = value.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e4).contains(&a) {
        format!("{value:.1e}")
    } else if a >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_colour_bar_runs_its_ramp_and_prints_its_ticks() {
        let mut img = RgbImage::from_pixel(200, BAR_HEIGHT + 4, WHITE);
        let grey = |t: f32| Rgb([(t * 255.0) as u8; 3]);
        colour_bar(
            &mut img,
            (10, 0),
            100,
            "scale",
            &[(0.0, "0".into()), (1.0, "7.5".into())],
            grey,
        );
        let bar_y = text::LINE + 6;
        assert_eq!(*img.get_pixel(10, bar_y), Rgb([0, 0, 0]));
        assert_eq!(*img.get_pixel(109, bar_y), Rgb([255, 255, 255]));
        assert!(img.get_pixel(60, bar_y)[0] > 100 && img.get_pixel(60, bar_y)[0] < 155);
        let labels = (0..200)
            .flat_map(|x| (text::LINE + 15..img.height()).map(move |y| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y)[0] < 128)
            .count();
        assert!(labels > 10, "{labels} ink pixels of tick labels");
    }

    #[test]
    fn short_values_read_plainly() {
        assert_eq!(short(0.0), "0");
        assert_eq!(short(0.25), "0.25");
        assert_eq!(short(12.5), "12.5");
        assert_eq!(short(1234.0), "1234");
        assert_eq!(short(0.00002), "2.0e-5");
    }
}
