//! evaluation.png: each model's macro-F1 on every test fold (one point per fold), its mean (a
//! black bar) and the corrected 95% interval of the mean (a black line), on a labelled 0-1
//! axis. Okabe-Ito colours, the CNN first.

use image::{Rgb, RgbImage};
use imageproc::drawing::{draw_filled_circle_mut, draw_filled_rect_mut, draw_line_segment_mut};
use imageproc::rect::Rect;

use super::report::Evaluation;
use crate::crossval::stats;
use crate::render::text;

const COLOURS: [Rgb<u8>; 5] = [
    Rgb([213, 94, 0]),
    Rgb([0, 114, 178]),
    Rgb([0, 158, 115]),
    Rgb([230, 159, 0]),
    Rgb([204, 121, 167]),
];
pub(crate) const INK: Rgb<u8> = Rgb([40, 40, 40]);
const GRID: Rgb<u8> = Rgb([215, 215, 215]);
const LEFT: u32 = 64;
const TOP: u32 = 40;
const COLUMN: u32 = 120;
const HEIGHT: u32 = 300;
const BOTTOM: u32 = 50;

/// The pixel row of a macro-F1 value in [0, 1].
pub(crate) fn row_of(value: f64) -> u32 {
    TOP + ((1.0 - value.clamp(0.0, 1.0)) * HEIGHT as f64).round() as u32
}

/// The pixel column of model `i`'s centre.
pub(crate) fn column_of(i: usize) -> u32 {
    LEFT + COLUMN / 2 + i as u32 * COLUMN
}

pub fn draw(evaluation: &Evaluation, test_to_train: f64) -> RgbImage {
    let models = &evaluation.models;
    let axis = "model (points: folds; bar: mean; line: 95% interval of the mean)";
    let width =
        (LEFT + COLUMN * models.len().max(1) as u32 + 20).max(LEFT + text::width(axis, 1) + 10);
    let mut img = RgbImage::from_pixel(width, TOP + HEIGHT + BOTTOM, Rgb([255, 255, 255]));
    let title = format!(
        "macro-F1 on each test fold ({} folds x {} repeat(s))",
        evaluation.settings.folds, evaluation.settings.repeats
    );
    text::draw(&mut img, (LEFT, 12), &title, 1, INK);
    // The y axis: ticks, labels and grid lines every 0.25.
    for k in 0..=4 {
        let value = k as f64 / 4.0;
        let y = row_of(value);
        draw_line_segment_mut(
            &mut img,
            (LEFT as f32, y as f32),
            ((width - 20) as f32, y as f32),
            GRID,
        );
        let label = format!("{value:.2}");
        text::draw(
            &mut img,
            (LEFT - 8 - text::width(&label, 1), y - 4),
            &label,
            1,
            INK,
        );
    }
    draw_line_segment_mut(
        &mut img,
        (LEFT as f32, TOP as f32),
        (LEFT as f32, (TOP + HEIGHT) as f32),
        INK,
    );
    for (i, model) in models.iter().enumerate() {
        let x = column_of(i);
        let colour = COLOURS[i % COLOURS.len()];
        let scores: Vec<f64> = evaluation
            .per_fold
            .iter()
            .filter(|s| s.model == model.model)
            .map(|s| s.macro_f1)
            .collect();
        // Folds spread sideways so that equal scores stay visible.
        let spread = scores.len().max(1) as i32;
        for (k, &score) in scores.iter().enumerate() {
            let dx = (k as i32 - spread / 2) * 6;
            draw_filled_circle_mut(&mut img, (x as i32 + dx, row_of(score) as i32), 4, colour);
        }
        if scores.len() > 1 {
            let interval = stats::corrected_interval(&scores, test_to_train);
            draw_line_segment_mut(
                &mut img,
                (x as f32 + 36.0, row_of(interval.low) as f32),
                (x as f32 + 36.0, row_of(interval.high) as f32),
                INK,
            );
        }
        let mean = row_of(model.macro_f1.mean) as i32;
        draw_filled_rect_mut(
            &mut img,
            Rect::at(x as i32 + 24, mean - 1).of_size(25, 3),
            INK,
        );
        let name = model.model.as_str();
        text::draw(
            &mut img,
            (
                x.saturating_sub(text::width(name, 1) / 2),
                TOP + HEIGHT + 10,
            ),
            name,
            1,
            INK,
        );
    }
    text::draw(&mut img, (LEFT, TOP + HEIGHT + 30), axis, 1, INK);
    img
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

    #[test]
    fn points_and_means_sit_where_their_values_are() {
        let img = draw(
            &evaluation(&[("cnn", [0.2, 0.3, 0.4]), ("forest", [0.9, 0.9, 0.9])]),
            0.5,
        );
        // Each fold's point: the model's colour at (its column, its value's row).
        assert_eq!(*img.get_pixel(column_of(0) - 6, row_of(0.2)), COLOURS[0]);
        assert_eq!(*img.get_pixel(column_of(0) + 6, row_of(0.4)), COLOURS[0]);
        assert_eq!(*img.get_pixel(column_of(1), row_of(0.9)), COLOURS[1]);
        // Nothing of the forest's colour where its points are not.
        assert_ne!(*img.get_pixel(column_of(1), row_of(0.5)), COLOURS[1]);
        // The mean bars.
        assert_eq!(*img.get_pixel(column_of(0) + 30, row_of(0.3)), INK);
        assert_eq!(*img.get_pixel(column_of(1) + 30, row_of(0.9)), INK);
        // The tick labels are drawn left of the axis.
        let ink_left = (0..LEFT)
            .flat_map(|x| (TOP..TOP + HEIGHT).map(move |y| (x, y)))
            .filter(|&(x, y)| *img.get_pixel(x, y) == INK)
            .count();
        assert!(ink_left > 50, "{ink_left} ink pixels for the axis labels");
    }
}
