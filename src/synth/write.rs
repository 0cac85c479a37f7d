//! Writing the synthetic cohort as Parquet tables and a GMT file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use polars::prelude::*;

use super::{SynthCohort, SynthTable, Values};
use crate::artefact;

fn frame(table: &SynthTable) -> Result<DataFrame> {
    let mut columns = vec![Column::new("sample_id".into(), &table.sample_ids)];
    for (j, name) in table.feature_names.iter().enumerate() {
        let column = match &table.values {
            Values::Counts(rows) => {
                Column::new(name.into(), rows.iter().map(|r| r[j]).collect::<Vec<i32>>())
            }
            Values::Floats(rows) => Column::new(
                name.into(),
                rows.iter().map(|r| r[j]).collect::<Vec<Option<f32>>>(),
            ),
            Values::Fractions(rows) => {
                Column::new(name.into(), rows.iter().map(|r| r[j]).collect::<Vec<f64>>())
            }
        };
        columns.push(column);
    }
    Ok(DataFrame::new_infer_height(columns)?)
}

/// Encodes a frame as zstd-compressed Parquet bytes.
pub fn parquet_bytes(df: &mut DataFrame) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes)
        .with_compression(ParquetCompression::Zstd(None))
        .finish(df)?;
    Ok(bytes)
}

fn gmt(cohort: &SynthCohort) -> String {
    cohort
        .pathways
        .iter()
        .map(|p| format!("{}\t{}\t{}\n", p.name, p.description, p.members.join("\t")))
        .collect()
}

/// Writes each modality's table as `<modality><suffix>.parquet` into `dir`.
pub fn write_tables(cohort: &SynthCohort, dir: &Path, suffix: &str) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    for table in &cohort.tables {
        let path = dir.join(format!("{}{suffix}.parquet", table.modality));
        artefact::write_atomic(&path, &parquet_bytes(&mut frame(table)?)?)?;
        written.push(path);
    }
    Ok(written)
}

/// Writes `<modality>.parquet`, `labels.parquet` and `pathways.gmt` into `dir`; returns the
/// paths written.
pub fn write_cohort(cohort: &SynthCohort, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = write_tables(cohort, dir, "")?;
    let mut labels = DataFrame::new_infer_height(vec![
        Column::new("sample_id".into(), &cohort.sample_ids),
        Column::new(
            "label".into(),
            cohort
                .labels
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>(),
        ),
    ])?;
    let path = dir.join("labels.parquet");
    artefact::write_atomic(&path, &parquet_bytes(&mut labels)?)?;
    written.push(path);
    let path = dir.join("pathways.gmt");
    artefact::write_atomic(&path, gmt(cohort).as_bytes())?;
    written.push(path);
    Ok(written)
}
