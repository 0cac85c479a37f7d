//! pathway_map.png: the image grid coloured by pathway block, with each block's rank written in
//! it and a legend (rank, pathway, features) beside it. Pixels holding a feature in any channel
//! have the full colour, empty pixels of a block a pale tint, so both the blocks and how full
//! they are can be read at a glance. The text is drawn by plotters (render/text.rs).

use image::{Rgb, RgbImage};
use imageproc::drawing::draw_hollow_rect_mut;
use imageproc::rect::Rect as Box2;

use super::pictures::zoom;
use super::text::{self, LINE};
use crate::layout::Layout;

/// Tableau's 20 categorical colours: neighbouring ranks get clearly different hues.
const COLOURS: [[u8; 3]; 20] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
    [174, 199, 232],
    [255, 187, 120],
    [152, 223, 138],
    [255, 152, 150],
    [197, 176, 213],
    [196, 156, 148],
    [247, 182, 210],
    [199, 199, 199],
    [219, 219, 141],
    [158, 218, 229],
];
const MARGIN: u32 = 10;
/// Side of a legend colour swatch, and its gap to the text.
const SWATCH: u32 = 10;

pub fn colour(block: usize) -> Rgb<u8> {
    Rgb(COLOURS[block % COLOURS.len()])
}

fn tint(c: Rgb<u8>) -> Rgb<u8> {
    Rgb(c.0.map(|v| (f32::from(v) * 0.3 + 255.0 * 0.7) as u8))
}

fn ink_on(c: Rgb<u8>) -> Rgb<u8> {
    let luma = 0.3 * f32::from(c[0]) + 0.59 * f32::from(c[1]) + 0.11 * f32::from(c[2]);
    if luma > 140.0 {
        Rgb([0, 0, 0])
    } else {
        Rgb([255, 255, 255])
    }
}

/// `None` for a layout without blocks. `label(b)` is the legend text of block `b`.
pub fn draw(layout: &Layout, label: impl Fn(usize) -> String) -> Option<RgbImage> {
    if layout.blocks.is_empty() {
        return None;
    }
    let (h, w) = (layout.height, layout.width);
    let scale = zoom(h.max(w), 512);
    let mut occupied = vec![false; h * w];
    for channel in &layout.channels {
        for &[r, c] in &channel.pixels {
            occupied[r as usize * w + c as usize] = true;
        }
    }
    let labels: Vec<String> = (0..layout.blocks.len()).map(&label).collect();
    let grid_h = h as u32 * scale;
    let per_column = ((grid_h.max(LINE * 10)) / LINE).max(1) as usize;
    let legend_columns = labels.len().div_ceil(per_column) as u32;
    let legend_width = labels
        .iter()
        .map(|l| text::width(l) + 2 * SWATCH)
        .max()
        .unwrap_or(0);
    let mut img = RgbImage::from_pixel(
        w as u32 * scale + 2 * MARGIN + legend_columns * (legend_width + MARGIN),
        grid_h.max(LINE * 10) + 2 * MARGIN,
        Rgb([255, 255, 255]),
    );

    for (b, block) in layout.blocks.iter().enumerate() {
        let full = colour(b);
        let r = block.rect;
        for row in r.row..r.row + r.height {
            for col in r.col..r.col + r.width {
                let fill = if occupied[row as usize * w + col as usize] {
                    full
                } else {
                    tint(full)
                };
                for dy in 0..scale {
                    for dx in 0..scale {
                        img.put_pixel(MARGIN + col * scale + dx, MARGIN + row * scale + dy, fill);
                    }
                }
            }
        }
        let (x, y) = (MARGIN + r.col * scale, MARGIN + r.row * scale);
        let (bw, bh) = (r.width * scale, r.height * scale);
        draw_hollow_rect_mut(
            &mut img,
            Box2::at(x as i32, y as i32).of_size(bw, bh),
            Rgb([40, 40, 40]),
        );
        let number = (b + 1).to_string();
        if text::width(&number) + 4 <= bw && bh >= LINE {
            text::draw(&mut img, (x + 2, y + 1), &number, ink_on(full));
        }
    }

    let x_legend = w as u32 * scale + 2 * MARGIN;
    for (b, l) in labels.iter().enumerate() {
        let column = (b / per_column) as u32;
        let (x, y) = (
            x_legend + column * (legend_width + MARGIN),
            MARGIN + (b % per_column) as u32 * LINE,
        );
        for dy in 0..SWATCH {
            for dx in 0..SWATCH {
                img.put_pixel(x + dx, y + 3 + dy, colour(b));
            }
        }
        text::draw(&mut img, (x + 2 * SWATCH, y), l, Rgb([0, 0, 0]));
    }
    Some(img)
}
