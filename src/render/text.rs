//! Text on pictures: plotters draws it with DejaVu Sans, committed under assets/fonts/ (with its
//! licence), so every label renders the same on any machine, offline, with no system font.

use std::sync::Once;

use image::{Rgb, RgbImage};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

/// The family name the charts ask plotters for.
pub const FONT: &str = "sans-serif";
/// Text size of labels on pictures, in pixels.
pub const SIZE: f64 = 13.0;
/// Height of one line of text at `SIZE`, with its spacing.
pub const LINE: u32 = 16;

static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Registers the bundled font with plotters, once per process; every chart calls it first.
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are compiled in, and a unit test parses them: this cannot fail at run time.
        if register_font(FONT, FontStyle::Normal, DEJAVU_SANS).is_err() {
            unreachable!("assets/fonts/DejaVuSans.ttf is a valid font");
        }
    });
}

/// The style of labels on pictures, in `colour`.
pub fn style(colour: Rgb<u8>) -> TextStyle<'static> {
    register();
    (FONT, SIZE)
        .into_font()
        .color(&RGBColor(colour[0], colour[1], colour[2]))
}

/// Pixel width of `text` at `SIZE`.
pub fn width(text: &str) -> u32 {
    register();
    (FONT, SIZE)
        .into_font()
        .box_size(text)
        .map_or(text.chars().count() as u32 * 8, |(w, _)| w)
}

/// Draws `text` with its top-left corner at (x, y); what falls off the picture is clipped.
pub fn draw(img: &mut RgbImage, (x, y): (u32, u32), text: &str, colour: Rgb<u8>) {
    let (w, h) = img.dimensions();
    let root = BitMapBackend::with_buffer(img.as_mut(), (w, h)).into_drawing_area();
    // Text outside the buffer is skipped by the backend; an error here would only mean that.
    let _ = root.draw_text(text, &style(colour), (x as i32, y as i32));
    let _ = root.present();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_leave_distinct_marks() {
        let ink = |text: &str| {
            let mut img = RgbImage::from_pixel(80, 20, Rgb([255, 255, 255]));
            draw(&mut img, (1, 1), text, Rgb([0, 0, 0]));
            img.pixels().filter(|p| p[0] < 128).count()
        };
        assert_eq!(ink(" "), 0);
        assert!(ink("I") > 0);
        assert_ne!(ink("I"), ink("W"));
        assert!(ink("AB") > ink("A"));
        assert!(width("abcdef") > width("abc"));
        assert!(width("abc") > 10);
        // Text running off the picture is clipped, not a panic.
        let mut small = RgbImage::new(4, 4);
        draw(&mut small, (2, 2), "long text", Rgb([9, 9, 9]));
    }
}
