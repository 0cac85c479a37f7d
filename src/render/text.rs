//! Text on pictures with the public-domain 8x8 bitmap font of the `font8x8` crate: no font
//! file to ship, and labels stay crisp at integer zoom.

use font8x8::legacy::BASIC_LEGACY;
use image::{Rgb, RgbImage};

/// Width of one character cell at zoom 1.
pub const CELL: u32 = 8;

/// Pixel width of `text` at `zoom`.
pub fn width(text: &str, zoom: u32) -> u32 {
    text.chars().count() as u32 * CELL * zoom
}

/// Draws `text` with its top-left corner at (x, y); pixels off the image are skipped and
/// characters outside ASCII print as '?'.
pub fn draw(img: &mut RgbImage, (x, y): (u32, u32), text: &str, zoom: u32, colour: Rgb<u8>) {
    for (i, ch) in text.chars().enumerate() {
        let glyph = BASIC_LEGACY[if ch.is_ascii() {
            ch as usize
        } else {
            '?' as usize
        }];
        let x0 = x + i as u32 * CELL * zoom;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8u32 {
                if bits >> col & 1 == 0 {
                    continue;
                }
                for dy in 0..zoom {
                    for dx in 0..zoom {
                        let (px, py) = (x0 + col * zoom + dx, y + row as u32 * zoom + dy);
                        if px < img.width() && py < img.height() {
                            img.put_pixel(px, py, colour);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_leave_distinct_marks() {
        let ink = |text: &str| {
            let mut img = RgbImage::from_pixel(40, 10, Rgb([255, 255, 255]));
            draw(&mut img, (1, 1), text, 1, Rgb([0, 0, 0]));
            img.pixels().filter(|p| p[0] == 0).count()
        };
        assert_eq!(ink(" "), 0);
        assert!(ink("I") > 0);
        assert_ne!(ink("I"), ink("W"));
        assert_eq!(ink("AB"), ink("A") + ink("B"));
        assert_eq!(width("abc", 2), 48);
        // Text running off the picture is clipped, not a panic.
        let mut small = RgbImage::new(4, 4);
        draw(&mut small, (2, 2), "long text", 3, Rgb([9, 9, 9]));
    }
}
