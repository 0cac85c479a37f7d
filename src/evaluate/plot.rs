//! evaluation.png: each model's macro-F1 on every test fold (one point per fold), its mean (a
//! black bar) and the corrected 95% interval of the mean (a black line), on a 0-1 axis with
//! ticks and titles, drawn with plotters. Okabe-Ito colours, the CNN first.

use anyhow::Result;
use image::{Rgb, RgbImage};
use plotters::prelude::*;

use super::report::Evaluation;
use crate::crossval::stats;
use crate::render::canvas::{self, plot_error, rgb};
use crate::render::text;

const COLOURS: [Rgb<u8>; 5] = [
    Rgb([213, 94, 0]),
    Rgb([0, 114, 178]),
    Rgb([0, 158, 115]),
    Rgb([230, 159, 0]),
    Rgb([204, 121, 167]),
];
pub(crate) const INK: Rgb<u8> = Rgb([40, 40, 40]);
const COLUMN: u32 = 130;
const HEIGHT: u32 = 420;

/// Where values land: the pixels of (model 0, macro-F1 0) and (model 1, macro-F1 1).
// Only the tests read it: they find where a value was drawn.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame {
    zero: (i32, i32),
    one: (i32, i32),
}

#[cfg(test)]
impl Frame {
    /// The pixel of macro-F1 `value` at horizontal position `model` (model index, plus an
    /// offset in model widths).
    pub(crate) fn pixel(&self, model: f64, value: f64) -> (u32, u32) {
        let x = f64::from(self.zero.0) + model * f64::from(self.one.0 - self.zero.0);
        let y = f64::from(self.zero.1) + value * f64::from(self.one.1 - self.zero.1);
        (x.round() as u32, y.round() as u32)
    }
}

pub fn draw(evaluation: &Evaluation, test_to_train: f64) -> Result<RgbImage> {
    draw_framed(evaluation, test_to_train).map(|(img, _)| img)
}

pub(crate) fn draw_framed(
    evaluation: &Evaluation,
    test_to_train: f64,
) -> Result<(RgbImage, Frame)> {
    let models = &evaluation.models;
    let n = models.len().max(1);
    let width = (120 + COLUMN * n as u32).max(560);
    let title = format!(
        "macro-F1 on each test fold ({} folds x {} repeat(s))",
        evaluation.settings.folds, evaluation.settings.repeats
    );
    let mut frame = None;
    let img = canvas::chart(width, HEIGHT, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (text::FONT, 16))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5..n as f64 - 0.5, 0.0..1.0)
            .map_err(plot_error)?;
        let name_of = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                models
                    .get(i as usize)
                    .map_or(String::new(), |m| m.model.clone())
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n + 1)
            .x_label_formatter(&name_of)
            .y_labels(11)
            .y_desc("macro-F1")
            .x_desc("model (points: folds; bar: mean; line: 95% interval of the mean)")
            .label_style((text::FONT, 12))
            .axis_desc_style((text::FONT, 13))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(plot_error)?;
        for (i, model) in models.iter().enumerate() {
            let colour = rgb(COLOURS[i % COLOURS.len()]);
            let scores: Vec<f64> = evaluation
                .per_fold
                .iter()
                .filter(|s| s.model == model.model)
                .map(|s| s.macro_f1)
                .collect();
            // Folds spread sideways so that equal scores stay visible.
            let spread = scores.len() as f64;
            let x = i as f64;
            chart
                .draw_series(scores.iter().enumerate().map(|(k, &score)| {
                    let dx = (k as f64 - (spread - 1.0) / 2.0) * 0.25 / spread.max(1.0);
                    Circle::new((x - 0.12 + dx, score), 4, colour.filled())
                }))
                .map_err(plot_error)?;
            let mean = model.macro_f1.mean;
            chart
                .draw_series([Rectangle::new(
                    [(x + 0.12, mean - 0.004), (x + 0.3, mean + 0.004)],
                    rgb(INK).filled(),
                )])
                .map_err(plot_error)?;
            if scores.len() > 1 {
                let interval = stats::corrected_interval(&scores, test_to_train);
                chart
                    .draw_series([PathElement::new(
                        [
                            (x + 0.21, interval.low.max(0.0)),
                            (x + 0.21, interval.high.min(1.0)),
                        ],
                        rgb(INK).stroke_width(2),
                    )])
                    .map_err(plot_error)?;
            }
        }
        frame = Some(Frame {
            zero: chart.backend_coord(&(0.0, 0.0)),
            one: chart.backend_coord(&(1.0, 1.0)),
        });
        Ok(())
    })?;
    let frame = frame.ok_or_else(|| anyhow::anyhow!("the evaluation chart has no axes"))?;
    Ok((img, frame))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crossval::settings::EvaluateSettings;
    use crate::crossval::stats::Spread;
    use crate::evaluate::report::{FoldScore, ModelSummary};

    fn evaluation(scores: &[(&str, [f64; 3])]) -> Evaluation {
        let spread = |v: &[f64]| stats::spread(v);
        Evaluation {
            pipeline: "t".into(),
            fingerprint: String::new(),
            samples: 30,
            classes: vec!["a".into(), "b".into()],
            settings: EvaluateSettings {
                folds: 3,
                ..EvaluateSettings::default()
            },
            models: scores
                .iter()
                .map(|(name, v)| ModelSummary {
                    model: name.to_string(),
                    accuracy: spread(v),
                    balanced_accuracy: spread(v),
                    macro_f1: spread(v),
                    auroc: None::<Spread>,
                })
                .collect(),
            comparison: None,
            best_epochs: vec![1, 1, 1],
            per_fold: scores
                .iter()
                .flat_map(|(name, v)| {
                    v.iter().enumerate().map(move |(k, &f1)| FoldScore {
                        model: name.to_string(),
                        repeat: 1,
                        fold: k + 1,
                        train: 20,
                        test: 10,
                        accuracy: f1,
                        balanced_accuracy: f1,
                        macro_f1: f1,
                        auroc: None,
                    })
                })
                .collect(),
        }
    }

    fn near(img: &RgbImage, colour: Rgb<u8>, (x, y): (u32, u32)) -> bool {
        (x.saturating_sub(2)..=x + 2)
            .any(|px| (y.saturating_sub(2)..=y + 2).any(|py| *img.get_pixel(px, py) == colour))
    }

    #[test]
    fn points_and_means_sit_where_their_values_are() {
        let (img, frame) = draw_framed(
            &evaluation(&[("cnn", [0.2, 0.3, 0.4]), ("forest", [0.9, 0.9, 0.9])]),
            0.5,
        )
        .unwrap();
        // Each fold's point: the model's colour left of its column's centre, at its value.
        assert!(near(&img, COLOURS[0], frame.pixel(-0.12 - 0.0833, 0.2)));
        assert!(near(&img, COLOURS[0], frame.pixel(-0.12 + 0.0833, 0.4)));
        assert!(near(&img, COLOURS[1], frame.pixel(1.0 - 0.12, 0.9)));
        // Nothing of the forest's colour where its points are not.
        assert!(!near(&img, COLOURS[1], frame.pixel(1.0 - 0.12, 0.5)));
        // The mean bars.
        assert!(near(&img, INK, frame.pixel(0.2, 0.3)));
        assert!(near(&img, INK, frame.pixel(1.2, 0.9)));
        // The tick labels are drawn left of the axis, the model names under it.
        let (x0, y0) = frame.pixel(-0.5, 0.0);
        let (_, y1) = frame.pixel(-0.5, 1.0);
        let dark = |xs: std::ops::Range<u32>, ys: std::ops::Range<u32>| {
            xs.flat_map(|x| ys.clone().map(move |y| (x, y)))
                .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|&v| v < 140))
                .count()
        };
        let values = dark(x0.saturating_sub(40)..x0 - 6, y1..y0);
        let names = dark(x0..frame.pixel(1.5, 0.0).0, y0 + 6..y0 + 24);
        assert!(values > 50, "{values} ink pixels for the value labels");
        assert!(names > 30, "{names} ink pixels for the model names");
    }
}
