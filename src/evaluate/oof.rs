//! oof_predictions.parquet: every sample's out-of-fold prediction by every model, one row per
//! sample, repeat and model; and a fold's fitted features, for `--fold-features`.

use anyhow::Result;
use ndarray::Array2;
use polars::prelude::*;

use super::FoldResult;
use crate::model::metrics::argmax;
use crate::omics::Cohort;

pub fn parquet(cohort: &Cohort, results: &[FoldResult]) -> Result<Vec<u8>> {
    let (mut ids, mut repeats, mut folds, mut models, mut labels, mut predicted) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut probabilities: Vec<Vec<f32>> = vec![Vec::new(); cohort.classes.len()];
    for r in results {
        for (model, rows) in &r.probabilities {
            for (&row, p) in r.rows.iter().zip(rows) {
                ids.push(cohort.sample_ids[row].clone());
                repeats.push(r.repeat as u32 + 1);
                folds.push(r.fold as u32 + 1);
                models.push(model.clone());
                labels.push(cohort.classes[cohort.labels[row]].clone());
                predicted.push(cohort.classes[argmax(p)].clone());
                for (c, v) in p.iter().enumerate() {
                    probabilities[c].push(*v);
                }
            }
        }
    }
    let mut columns = vec![
        Column::new("sample_id".into(), ids),
        Column::new("repeat".into(), repeats),
        Column::new("fold".into(), folds),
        Column::new("model".into(), models),
        Column::new("label".into(), labels),
        Column::new("predicted".into(), predicted),
    ];
    for (class, values) in cohort.classes.iter().zip(probabilities) {
        columns.push(Column::new(format!("prob_{class}").into(), values));
    }
    let mut frame = DataFrame::new_infer_height(columns)?;
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes).finish(&mut frame)?;
    Ok(bytes)
}

/// A split's fitted features: `sample_id`, `split` (the part's name: train, test, ...),
/// `label`, then one column per feature named `modality:feature`, for the rows of each part.
pub fn fold_features(
    cohort: &Cohort,
    values: &Array2<f32>,
    names: &[(String, String)],
    parts: &[(&str, &[usize])],
) -> Result<Vec<u8>> {
    let rows: Vec<(usize, &str)> = parts
        .iter()
        .flat_map(|&(name, rows)| rows.iter().map(move |&r| (r, name)))
        .collect();
    let mut columns = vec![
        Column::new(
            "sample_id".into(),
            rows.iter()
                .map(|&(r, _)| cohort.sample_ids[r].clone())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "split".into(),
            rows.iter().map(|&(_, s)| s).collect::<Vec<_>>(),
        ),
        Column::new(
            "label".into(),
            rows.iter()
                .map(|&(r, _)| cohort.classes[cohort.labels[r]].clone())
                .collect::<Vec<_>>(),
        ),
    ];
    for (j, (modality, feature)) in names.iter().enumerate() {
        let column: Vec<f32> = rows.iter().map(|&(r, _)| values[[r, j]]).collect();
        columns.push(Column::new(format!("{modality}:{feature}").into(), column));
    }
    let mut frame = DataFrame::new_infer_height(columns)?;
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes).finish(&mut frame)?;
    Ok(bytes)
}
