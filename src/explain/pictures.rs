//! Pictures of an explanation: class activation maps laid over class-mean and sample images,
//! and the layout grid with the best-scoring features named at their pixels.

use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_rect_mut, draw_hollow_rect_mut, draw_line_segment_mut};
use imageproc::rect::Rect;

use super::attribution::ClassMaps;
use super::cam::Maps;
use crate::layout::Layout;
use crate::render::canvas::{BAR_HEIGHT, colour_bar, short};
use crate::render::pictures::{BAR_WIDTH, GAP, blit, ramp, zoom};
use crate::render::text;

const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const INK: Rgb<u8> = Rgb([0, 0, 0]);

/// The image value (grey, scaled by `top`) under the map value (viridis, on a square-root
/// scale: maps are sparse, and a linear scale leaves all but their peaks dark), half and half.
fn overlay(value: f32, top: f32, heat: f32) -> Rgb<u8> {
    let grey = (value / top).clamp(0.0, 1.0) * 255.0;
    let h = ramp(heat.max(0.0).sqrt());
    Rgb([0, 1, 2].map(|k| (0.55 * f32::from(h[k]) + 0.45 * grey).round() as u8))
}

/// One tile row: each channel of `image` with its map (`map` has one plane, or one per
/// channel) overlaid; `tops[c]` scales channel c.
fn overlay_row(
    canvas: &mut RgbImage,
    (x0, y0, scale): (u32, u32, u32),
    image: &[f32],
    map: &[f32],
    map_shape: [usize; 3],
    tops: &[f32],
) {
    let [mc, h, w] = map_shape;
    let plane = h * w;
    for (c, &top) in tops.iter().enumerate() {
        let heat = &map[if mc == 1 { 0 } else { c * plane }..][..plane];
        let values = &image[c * plane..(c + 1) * plane];
        let x = x0 + c as u32 * (w as u32 * scale + GAP);
        for p in 0..plane {
            let px = overlay(values[p], top, heat[p]);
            let (px_x, px_y) = (x + (p % w) as u32 * scale, y0 + (p / w) as u32 * scale);
            for dy in 0..scale {
                for dx in 0..scale {
                    canvas.put_pixel(px_x + dx, px_y + dy, px);
                }
            }
        }
    }
}

/// Largest value of each channel over `images` (floor: the smallest positive float).
fn channel_tops(images: &[&[f32]], channels: usize, plane: usize) -> Vec<f32> {
    (0..channels)
        .map(|c| {
            images
                .iter()
                .flat_map(|img| img[c * plane..(c + 1) * plane].iter().copied())
                .fold(f32::MIN_POSITIVE, f32::max)
        })
        .collect()
}

/// A labelled grid: one row per entry, its label on the left, its channels to the right.
fn grid(layout: &Layout, rows: &[(String, &[f32], &[f32])], map_shape: [usize; 3]) -> RgbImage {
    let (h, w, c) = (layout.height, layout.width, layout.n_channels());
    let scale = zoom(h.max(w), 96);
    let tile_w = c as u32 * (w as u32 * scale + GAP);
    let th = h as u32 * scale;
    let left = rows
        .iter()
        .map(|(l, _, _)| text::width(l))
        .max()
        .unwrap_or(0)
        + 2 * GAP;
    let heading = text::LINE + 2 * GAP;
    let n = rows.len().max(1) as u32;
    let grid_height = heading + n * (th + GAP);
    let bars = (1 + c as u32) * (BAR_WIDTH + 4 * GAP);
    let mut img = RgbImage::from_pixel(
        (left + tile_w).max(GAP + bars),
        grid_height + GAP + BAR_HEIGHT,
        WHITE,
    );
    for (k, channel) in layout.channels.iter().enumerate() {
        let x = left + k as u32 * (w as u32 * scale + GAP);
        text::draw(&mut img, (x, GAP), &channel.name, INK);
    }
    let images: Vec<&[f32]> = rows.iter().map(|r| r.1).collect();
    let tops = channel_tops(&images, c, h * w);
    for (i, (label, image, map)) in rows.iter().enumerate() {
        let y = heading + i as u32 * (th + GAP);
        text::draw(&mut img, (GAP, y + th / 2 - text::LINE / 2), label, INK);
        overlay_row(&mut img, (left, y, scale), image, map, map_shape, &tops);
    }
    // The map's scale (where the image is 0), then each channel's grey scale (where the map
    // is 0).
    let y = grid_height + GAP;
    colour_bar(
        &mut img,
        (GAP, y),
        BAR_WIDTH,
        "map (1 = its largest value)",
        &[0.0, 0.25, 0.5, 1.0].map(|t| (t, short(t))),
        |t| overlay(0.0, 1.0, t),
    );
    for (k, channel) in layout.channels.iter().enumerate() {
        let top = tops[k];
        colour_bar(
            &mut img,
            (GAP + (1 + k as u32) * (BAR_WIDTH + 4 * GAP), y),
            BAR_WIDTH,
            &format!("{} values", channel.name),
            &[(0.0, "0".into()), (1.0, short(top))],
            |t| overlay(t * top, top, 0.0),
        );
    }
    img
}

/// cam_classes.png: per class with explained images, its mean image under its mean map, the
/// map stretched to its own largest value (a mean of maps is dimmer than any one of them).
pub fn class_overlays(
    layout: &Layout,
    class_means: &[Vec<f32>],
    maps: &ClassMaps,
    classes: &[String],
) -> RgbImage {
    let stretched: Vec<Vec<f32>> = maps
        .mean
        .iter()
        .map(|m| {
            let top = m.iter().copied().fold(0.0f32, f32::max);
            m.iter()
                .map(|v| if top > 0.0 { v / top } else { 0.0 })
                .collect()
        })
        .collect();
    let rows: Vec<(String, &[f32], &[f32])> = (0..classes.len())
        .filter(|&k| maps.count[k] > 0)
        .map(|k| {
            (
                format!("{} (n={})", classes[k], maps.count[k]),
                class_means[k].as_slice(),
                stretched[k].as_slice(),
            )
        })
        .collect();
    grid(layout, &rows, maps.shape)
}

/// cam_samples.png: the first `limit` explained images under their maps, labelled.
pub fn sample_overlays(
    layout: &Layout,
    images: &[f32],
    maps: &Maps,
    labels: &[String],
    limit: usize,
) -> RgbImage {
    let len = layout.image_len();
    let rows: Vec<(String, &[f32], &[f32])> = labels
        .iter()
        .take(limit)
        .enumerate()
        .map(|(i, label)| (label.clone(), &images[i * len..(i + 1) * len], maps.map(i)))
        .collect();
    grid(layout, &rows, maps.shape)
}

/// A feature to name on the map.
pub struct Named<'a> {
    pub name: &'a str,
    pub channel: usize,
    pub row: u32,
    pub column: u32,
}

/// top_features.png: per channel, the layout grid coloured by `background` (one plane, or one
/// per channel, values in [0, 1]), every placed feature as a grey dot, and the `named`
/// features boxed in red with their names beside them.
pub fn top_features(
    layout: &Layout,
    background: &[f32],
    shape: [usize; 3],
    named: &[Named],
) -> RgbImage {
    let (h, w) = (layout.height, layout.width);
    let scale = zoom(h.max(w), 480);
    let (pw, ph) = (w as u32 * scale, h as u32 * scale);
    let n = layout.channels.len().max(1) as u32;
    let heading = text::LINE + 2 * GAP;
    let mut img = RgbImage::from_pixel(
        (n * (pw + GAP)).max(BAR_WIDTH + 2 * GAP),
        heading + ph + GAP + BAR_HEIGHT,
        WHITE,
    );
    colour_bar(
        &mut img,
        (GAP, heading + ph + GAP),
        BAR_WIDTH,
        "pixel score (1 = the largest)",
        &[0.0, 0.5, 1.0].map(|t| (t, short(t))),
        ramp,
    );
    let plane = h * w;
    for (c, channel) in layout.channels.iter().enumerate() {
        let x0 = c as u32 * (pw + GAP);
        text::draw(&mut img, (x0, GAP), &channel.name, INK);
        let start = if shape[0] == 1 { 0 } else { c * plane };
        blit(
            &mut img,
            &background[start..start + plane],
            (h, w),
            (x0, heading, scale),
            ramp,
        );
        let dot = (scale / 3).max(1);
        for &[r, col] in &channel.pixels {
            let (x, y) = (
                x0 + col * scale + scale / 2,
                heading + r * scale + scale / 2,
            );
            for dy in 0..dot {
                for dx in 0..dot {
                    img.put_pixel(x - dot / 2 + dx, y - dot / 2 + dy, Rgb([90, 90, 90]));
                }
            }
        }
    }
    let red = Rgb([220, 20, 60]);
    let mut taken: Vec<Rect> = Vec::new();
    for f in named {
        let x0 = f.channel as u32 * (pw + GAP) + f.column * scale;
        let y0 = heading + f.row * scale;
        let side = scale.max(3);
        draw_hollow_rect_mut(
            &mut img,
            Rect::at(x0 as i32 - 1, y0 as i32 - 1).of_size(side + 2, side + 2),
            red,
        );
        // Names of neighbouring features would overprint each other: each goes on a white
        // tag, moved down (or up) to the nearest free place and tied to its box by a line.
        let (tw, th) = (text::width(f.name) + 2, text::LINE + 2);
        let tx = (x0 + side + 3).min(img.width().saturating_sub(tw));
        let free = |y: i64| {
            y >= i64::from(heading)
                && y + i64::from(th) <= i64::from(heading + ph)
                && !taken.iter().any(|r| {
                    r.intersect(Rect::at(tx as i32, y as i32).of_size(tw, th))
                        .is_some()
                })
        };
        let Some(ty) = (0..64i64)
            .flat_map(|k| {
                [
                    i64::from(y0) + k * i64::from(th),
                    i64::from(y0) - (k + 1) * i64::from(th),
                ]
            })
            .find(|&y| free(y))
        else {
            continue;
        };
        let tag = Rect::at(tx as i32, ty as i32).of_size(tw, th);
        if ty != i64::from(y0) {
            draw_line_segment_mut(
                &mut img,
                ((x0 + side) as f32, (y0 + side / 2) as f32),
                (tx as f32, (ty + i64::from(th) / 2) as f32),
                red,
            );
        }
        draw_filled_rect_mut(&mut img, tag, WHITE);
        text::draw(&mut img, (tx + 1, ty as u32 + 1), f.name, INK);
        taken.push(tag);
    }
    img
}
