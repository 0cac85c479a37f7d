//! training.png: the learning curves of a run, drawn with plotters. Left panel: training and
//! validation loss. Right panel: validation accuracy, balanced accuracy and macro-F1 on a 0-1
//! scale. Both have epoch and value ticks, axis titles and a legend; a dashed grey line marks
//! the kept epoch. Okabe-Ito colours.

use anyhow::Result;
use image::{Rgb, RgbImage};
use plotters::prelude::*;

use super::canvas::{self, INK, plot_error, rgb};
use super::text;
use crate::model::metrics::EpochStats;

const PANEL: (u32, u32) = (480, 360);
pub const TRAIN_LOSS: Rgb<u8> = Rgb([0, 114, 178]);
pub const VALID_LOSS: Rgb<u8> = Rgb([213, 94, 0]);
pub const ACCURACY: Rgb<u8> = Rgb([0, 158, 115]);
pub const BALANCED: Rgb<u8> = Rgb([204, 121, 167]);
pub const MACRO_F1: Rgb<u8> = Rgb([230, 159, 0]);
const KEPT: Rgb<u8> = Rgb([120, 120, 120]);

/// Where a panel's values land: its data ranges and the pixels of their corners.
// Only the tests read it: they find where a value was drawn.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    pub epochs: (i32, i32),
    pub values: (f64, f64),
    /// Pixel of (first epoch, lowest value) and of (last epoch, highest value).
    pub low: (i32, i32),
    pub high: (i32, i32),
}

#[cfg(test)]
impl Frame {
    /// The pixel of `value` at `epoch`.
    pub fn pixel(&self, epoch: i32, value: f64) -> (u32, u32) {
        let fx = f64::from(epoch - self.epochs.0) / f64::from(self.epochs.1 - self.epochs.0);
        let fy = (value - self.values.0) / (self.values.1 - self.values.0);
        let x = f64::from(self.low.0) + fx * f64::from(self.high.0 - self.low.0);
        let y = f64::from(self.low.1) + fy * f64::from(self.high.1 - self.low.1);
        (x.round() as u32, y.round() as u32)
    }
}

/// A panel: its title, the y axis title and top, and its curves (name, colour, one value per
/// epoch).
struct Panel<'a> {
    title: &'a str,
    y_title: &'a str,
    top: f64,
    series: Vec<(&'a str, Rgb<u8>, Vec<f64>)>,
    /// Where the legend goes: the corner the curves usually leave free (losses fall, scores
    /// rise).
    legend: SeriesLabelPosition,
}

pub fn draw(history: &[EpochStats], best_epoch: usize) -> Result<RgbImage> {
    draw_framed(history, best_epoch).map(|(img, _)| img)
}

pub fn draw_framed(history: &[EpochStats], best_epoch: usize) -> Result<(RgbImage, Vec<Frame>)> {
    let max_loss = history
        .iter()
        .flat_map(|s| [s.train_loss, s.valid_loss])
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let series = |name, colour, value: fn(&EpochStats) -> f64| {
        (name, colour, history.iter().map(value).collect::<Vec<_>>())
    };
    let panels = [
        Panel {
            title: "loss",
            y_title: "cross-entropy",
            top: max_loss * 1.05,
            series: vec![
                series("train", TRAIN_LOSS, |s| s.train_loss),
                series("validation", VALID_LOSS, |s| s.valid_loss),
            ],
            legend: SeriesLabelPosition::UpperRight,
        },
        Panel {
            title: "validation",
            y_title: "score",
            top: 1.0,
            series: vec![
                series("accuracy", ACCURACY, |s| s.valid_accuracy),
                series("balanced accuracy", BALANCED, |s| s.valid_balanced_accuracy),
                series("macro-F1", MACRO_F1, |s| s.valid_macro_f1),
            ],
            legend: SeriesLabelPosition::LowerRight,
        },
    ];
    let epochs: Vec<i32> = history.iter().map(|s| s.epoch as i32).collect();
    let first = epochs.first().copied().unwrap_or(1);
    let last = epochs.last().copied().unwrap_or(1);
    // One epoch still needs a span for the axis: centre it.
    let (lo, hi) = if last > first {
        (first, last)
    } else {
        (first - 1, first + 1)
    };
    let mut frames = Vec::new();
    let img = canvas::chart(2 * PANEL.0, PANEL.1, |root| {
        for (area, panel) in root.split_evenly((1, 2)).iter().zip(&panels) {
            let mut chart = ChartBuilder::on(area)
                .caption(panel.title, (text::FONT, 18))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d(lo..hi, 0.0..panel.top)
                .map_err(plot_error)?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .y_desc(panel.y_title)
                .x_labels(((hi - lo) as usize + 1).min(10))
                .y_labels(6)
                .label_style((text::FONT, 12))
                .axis_desc_style((text::FONT, 13))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(plot_error)?;
            let kept = best_epoch as i32;
            chart
                .draw_series(DashedLineSeries::new(
                    [(kept, 0.0), (kept, panel.top)],
                    6,
                    4,
                    rgb(KEPT).stroke_width(1),
                ))
                .map_err(plot_error)?
                .label(format!("kept epoch ({best_epoch})"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], rgb(KEPT)));
            for (name, colour, values) in &panel.series {
                let colour = rgb(*colour);
                let points: Vec<(i32, f64)> = epochs.iter().copied().zip(values.clone()).collect();
                chart
                    .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
                    .map_err(plot_error)?
                    .label(*name)
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 18, y)], colour.stroke_width(2))
                    });
                // One point per epoch, so a single-epoch run still shows its values.
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 2, colour.filled())))
                    .map_err(plot_error)?;
            }
            chart
                .configure_series_labels()
                .position(panel.legend.clone())
                .label_font((text::FONT, 12))
                .background_style(WHITE.mix(0.85))
                .border_style(rgb(INK))
                .draw()
                .map_err(plot_error)?;
            frames.push(Frame {
                epochs: (lo, hi),
                values: (0.0, panel.top),
                low: chart.backend_coord(&(lo, 0.0)),
                high: chart.backend_coord(&(hi, panel.top)),
            });
        }
        Ok(())
    })?;
    Ok((img, frames))
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

    fn has(img: &RgbImage, colour: Rgb<u8>, (x, y): (u32, u32)) -> bool {
        (x.saturating_sub(2)..=x + 2)
            .any(|px| (y.saturating_sub(2)..=y + 2).any(|py| img.get_pixel(px, py) == &colour))
    }

    fn dark_pixels(img: &RgbImage, xs: std::ops::Range<u32>, ys: std::ops::Range<u32>) -> usize {
        xs.flat_map(|x| ys.clone().map(move |y| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|&v| v < 140))
            .count()
    }

    #[test]
    fn curves_sit_where_their_values_are() {
        let history = vec![
            stats(1, 2.0, 1.0, 0.5),
            stats(2, 1.5, 0.8, 0.7),
            stats(3, 1.0, 0.5, 1.0),
        ];
        let (img, frames) = draw_framed(&history, 2).unwrap();
        let (loss, scores) = (frames[0], frames[1]);
        assert!(has(&img, TRAIN_LOSS, loss.pixel(1, 2.0)));
        assert!(has(&img, TRAIN_LOSS, loss.pixel(3, 1.0)));
        assert!(has(&img, VALID_LOSS, loss.pixel(3, 0.5)));
        assert!(!has(&img, TRAIN_LOSS, loss.pixel(1, 0.5)));
        assert!(has(&img, ACCURACY, scores.pixel(1, 0.5)));
        assert!(has(&img, ACCURACY, scores.pixel(3, 1.0)));
        assert!(has(&img, BALANCED, scores.pixel(3, 0.8)));
        // The validation scores stay in the right panel.
        assert!(loss.high.0 < scores.low.0);
        // The kept epoch's dashed line runs down the panel (within a pixel of rounding).
        let (x, _) = loss.pixel(2, 0.0);
        let marks = (loss.high.1 as u32..loss.low.1 as u32)
            .filter(|&y| {
                (x - 1..=x + 1).any(|x| {
                    let [r, g, b] = img.get_pixel(x, y).0;
                    r == g && g == b && r < 180
                })
            })
            .count();
        assert!(marks > 60, "{marks} pixels of the kept-epoch line");
    }

    #[test]
    fn both_axes_carry_tick_labels() {
        let history: Vec<EpochStats> = (1..=12)
            .map(|e| stats(e, 2.0 / e as f64, 1.5 / e as f64, 0.05 * e as f64))
            .collect();
        let (img, frames) = draw_framed(&history, 9).unwrap();
        for frame in frames {
            let (left, bottom) = (frame.low.0 as u32, frame.low.1 as u32);
            let (right, top) = (frame.high.0 as u32, frame.high.1 as u32);
            // Value labels left of the y axis, epoch labels under the x axis.
            let y_labels = dark_pixels(&img, left.saturating_sub(40)..left - 6, top..bottom);
            let x_labels = dark_pixels(&img, left..right, bottom + 6..bottom + 24);
            assert!(y_labels > 60, "{y_labels} ink pixels of value labels");
            assert!(x_labels > 60, "{x_labels} ink pixels of epoch labels");
        }
    }

    #[test]
    fn a_single_epoch_still_draws() {
        let (img, frames) = draw_framed(&[stats(1, 1.0, 1.0, 0.5)], 1).unwrap();
        assert!(has(&img, ACCURACY, frames[1].pixel(1, 0.5)));
    }
}
