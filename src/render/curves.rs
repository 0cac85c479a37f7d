//! training.png: the learning curves of a run. Left panel: training and validation loss.
//! Right panel: validation accuracy, balanced accuracy and macro-F1 on a 0-1 scale. Epochs run
//! left to right; a grey vertical line marks the kept (best) epoch. Okabe-Ito colours.

use image::{Rgb, RgbImage};
use imageproc::drawing::draw_line_segment_mut;

use super::text;
use crate::model::metrics::EpochStats;

const PANEL: (u32, u32) = (420, 300);
const MARGIN: u32 = 40;
const TOP: u32 = 30;
pub const TRAIN_LOSS: Rgb<u8> = Rgb([0, 114, 178]);
pub const VALID_LOSS: Rgb<u8> = Rgb([213, 94, 0]);
pub const ACCURACY: Rgb<u8> = Rgb([0, 158, 115]);
pub const BALANCED: Rgb<u8> = Rgb([204, 121, 167]);
pub const MACRO_F1: Rgb<u8> = Rgb([230, 159, 0]);
/// Height of the legend row under each panel.
const LEGEND: u32 = 16;
const INK: Rgb<u8> = Rgb([40, 40, 40]);
const GRID: Rgb<u8> = Rgb([200, 200, 200]);

/// The pixel rectangle of panel `i` (0 left, 1 right): x0, y0, width, height of the plot area.
pub fn plot_area(i: u32) -> (u32, u32, u32, u32) {
    let x0 = MARGIN + i * (PANEL.0 + MARGIN);
    (x0, TOP, PANEL.0, PANEL.1)
}

/// A panel: its title, the value at its top edge, and its curves (name, colour, one value per
/// epoch).
type Panel<'a> = (&'a str, f64, Vec<(&'a str, Rgb<u8>, Vec<f64>)>);

pub fn draw(history: &[EpochStats], best_epoch: usize) -> RgbImage {
    let width = 2 * PANEL.0 + 3 * MARGIN;
    let height = TOP + PANEL.1 + MARGIN + LEGEND;
    let mut img = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    let max_loss = history
        .iter()
        .flat_map(|s| [s.train_loss, s.valid_loss])
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let panels: [Panel; 2] = [
        (
            "loss",
            max_loss,
            vec![
                (
                    "train",
                    TRAIN_LOSS,
                    history.iter().map(|s| s.train_loss).collect(),
                ),
                (
                    "validation",
                    VALID_LOSS,
                    history.iter().map(|s| s.valid_loss).collect(),
                ),
            ],
        ),
        (
            "validation",
            1.0,
            vec![
                (
                    "accuracy",
                    ACCURACY,
                    history.iter().map(|s| s.valid_accuracy).collect(),
                ),
                (
                    "balanced acc.",
                    BALANCED,
                    history.iter().map(|s| s.valid_balanced_accuracy).collect(),
                ),
                (
                    "macro-F1",
                    MACRO_F1,
                    history.iter().map(|s| s.valid_macro_f1).collect(),
                ),
            ],
        ),
    ];
    let n = history.len();
    for (i, (title, top, series)) in panels.iter().enumerate() {
        let (x0, y0, w, h) = plot_area(i as u32);
        let x_of = |k: usize| {
            x0 as f32
                + if n > 1 {
                    k as f32 / (n - 1) as f32 * w as f32
                } else {
                    w as f32 / 2.0
                }
        };
        let y_of = |v: f64| y0 as f32 + h as f32 * (1.0 - (v / top).clamp(0.0, 1.0) as f32);
        for frac in [0.0, 0.5, 1.0] {
            let y = y_of(frac * top);
            draw_line_segment_mut(&mut img, (x0 as f32, y), ((x0 + w) as f32, y), GRID);
        }
        draw_line_segment_mut(
            &mut img,
            (x0 as f32, y0 as f32),
            (x0 as f32, (y0 + h) as f32),
            INK,
        );
        draw_line_segment_mut(
            &mut img,
            (x0 as f32, (y0 + h) as f32),
            ((x0 + w) as f32, (y0 + h) as f32),
            INK,
        );
        if let Some(k) = history.iter().position(|s| s.epoch == best_epoch) {
            let x = x_of(k);
            draw_line_segment_mut(&mut img, (x, y0 as f32), (x, (y0 + h) as f32), GRID);
        }
        let mut legend_x = x0;
        for (name, colour, values) in series {
            let legend_y = y0 + h + 24;
            for dy in 0..8 {
                for dx in 0..8 {
                    img.put_pixel(legend_x + dx, legend_y + dy, *colour);
                }
            }
            text::draw(&mut img, (legend_x + 12, legend_y), name, 1, INK);
            legend_x += 12 + text::width(name, 1) + 16;
            for k in 1..values.len() {
                draw_line_segment_mut(
                    &mut img,
                    (x_of(k - 1), y_of(values[k - 1])),
                    (x_of(k), y_of(values[k])),
                    *colour,
                );
            }
            // One point per epoch, so a single-epoch run still shows its values.
            for (k, &v) in values.iter().enumerate() {
                let (x, y) = (x_of(k).round() as i64, y_of(v).round() as i64);
                for (dx, dy) in [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)] {
                    let (px, py) = (x + dx, y + dy);
                    if px >= 0 && py >= 0 && (px as u32) < img.width() && (py as u32) < img.height()
                    {
                        img.put_pixel(px as u32, py as u32, *colour);
                    }
                }
            }
        }
        text::draw(
            &mut img,
            (x0, 8),
            &format!("{title} (max {top:.3})"),
            1,
            INK,
        );
        text::draw(&mut img, (x0, y0 + h + 8), "epoch 1", 1, INK);
        let last = format!("epoch {}", history.last().map_or(0, |s| s.epoch));
        text::draw(
            &mut img,
            (x0 + w - text::width(&last, 1), y0 + h + 8),
            &last,
            1,
            INK,
        );
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(epoch: usize, train_loss: f64, valid_loss: f64, acc: f64) -> EpochStats {
        EpochStats {
            epoch,
            train_loss,
            train_accuracy: acc,
            valid_loss,
            valid_accuracy: acc,
            valid_macro_f1: acc * 0.9,
            valid_balanced_accuracy: acc * 0.8,
            valid_auroc: None,
            learning_rate: 1e-3,
            frozen: false,
            seconds: 1.0,
        }
    }

    fn has(img: &RgbImage, colour: Rgb<u8>, x: u32, y: u32) -> bool {
        (x.saturating_sub(2)..=x + 2)
            .any(|px| (y.saturating_sub(2)..=y + 2).any(|py| img.get_pixel(px, py) == &colour))
    }

    #[test]
    fn curves_sit_where_their_values_are() {
        let history = vec![stats(1, 2.0, 1.0, 0.5), stats(2, 1.0, 0.5, 1.0)];
        let img = draw(&history, 2);
        let (x0, y0, w, h) = plot_area(0);
        // Training loss 2.0 is the panel's maximum: top-left corner; 1.0 at half height.
        assert!(has(&img, TRAIN_LOSS, x0, y0));
        assert!(has(&img, TRAIN_LOSS, x0 + w, y0 + h / 2));
        assert!(has(&img, VALID_LOSS, x0 + w, y0 + 3 * h / 4));
        assert!(!has(&img, TRAIN_LOSS, x0 + w, y0));
        let (x1, y1, w1, h1) = plot_area(1);
        assert!(has(&img, ACCURACY, x1, y1 + h1 / 2));
        assert!(has(&img, ACCURACY, x1 + w1, y1));
        assert!(has(&img, BALANCED, x1 + w1, y1 + h1 / 5));
        // Validation colours stay in the right panel.
        let left = (x0..x0 + w).any(|x| (y0..y0 + h).any(|y| img.get_pixel(x, y) == &ACCURACY));
        assert!(!left);
        // The legend under each panel starts with its first curve's colour.
        assert_eq!(img.get_pixel(x0 + 2, y0 + h + 26), &TRAIN_LOSS);
        assert_eq!(img.get_pixel(x1 + 2, y1 + h1 + 26), &ACCURACY);
    }
}
