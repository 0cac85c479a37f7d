//! Reading one wide omics table (rows = samples, columns = a sample-id column + features).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::settings::Infinite;
use ndarray::Array2;
use polars::prelude::{
    Column, CsvParseOptions, CsvReadOptions, DataFrame, DataType, ParquetReader, SerReader,
};

/// A table of numeric features with their sample ids; missing values are NaN.
#[derive(Debug, Clone)]
pub struct Table {
    pub path: PathBuf,
    pub sample_ids: Vec<String>,
    pub feature_names: Vec<String>,
    /// samples x features
    pub values: Array2<f32>,
}

/// Reads a Parquet, CSV or TSV file into a DataFrame, chosen by extension.
pub fn read_frame(path: &Path) -> Result<DataFrame> {
    if !path.exists() {
        bail!("file not found: {}", path.display());
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let frame = match ext.as_str() {
        "parquet" | "pq" => {
            let file =
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            ParquetReader::new(file).finish()
        }
        "csv" | "tsv" | "txt" => {
            let separator = if ext == "csv" { b',' } else { b'\t' };
            CsvReadOptions::default()
                .with_has_header(true)
                .with_infer_schema_length(None)
                .with_parse_options(CsvParseOptions::default().with_separator(separator))
                .try_into_reader_with_file_path(Some(path.to_path_buf()))
                .and_then(|reader| reader.finish())
        }
        _ => bail!(
            "{}: unknown table format '.{ext}' (expected .parquet, .csv or .tsv)",
            path.display()
        ),
    };
    frame.with_context(|| {
        format!(
            "cannot read table {} (unreadable or truncated?)",
            path.display()
        )
    })
}

/// Sample ids as strings, checked for presence, nulls and duplicates.
pub fn sample_ids(frame: &DataFrame, column: &str, path: &Path) -> Result<Vec<String>> {
    let Ok(col) = frame.column(column) else {
        let names: Vec<String> = frame
            .get_column_names()
            .iter()
            .take(5)
            .map(|n| n.to_string())
            .collect();
        bail!(
            "{}: no sample-id column '{column}' (first columns: {})",
            path.display(),
            names.join(", ")
        );
    };
    let as_text = col.cast(&DataType::String).with_context(|| {
        format!(
            "{}: column '{column}' cannot be read as text",
            path.display()
        )
    })?;
    let mut ids = Vec::with_capacity(frame.height());
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(frame.height());
    for (row, id) in as_text.str()?.iter().enumerate() {
        let Some(id) = id else {
            bail!(
                "{}: row {}: empty sample id in column '{column}'",
                path.display(),
                row + 1
            );
        };
        if let Some(first) = seen.insert(id.to_string(), row) {
            bail!(
                "{}: duplicate sample id '{id}' in column '{column}' (rows {} and {})",
                path.display(),
                first + 1,
                row + 1
            );
        }
        ids.push(id.to_string());
    }
    Ok(ids)
}

/// Loads a modality table: every column but the sample id must be numeric and not all missing;
/// an infinite value is an error naming its column and sample unless `infinite` says missing.
pub fn load_table(path: &Path, sample_id_column: &str, infinite: Infinite) -> Result<Table> {
    let frame = read_frame(path)?;
    let sample_ids = sample_ids(&frame, sample_id_column, path)?;
    let features: Vec<&Column> = frame
        .columns()
        .iter()
        .filter(|c| c.name().as_str() != sample_id_column)
        .collect();
    if features.is_empty() {
        bail!(
            "{}: no feature columns besides '{sample_id_column}'",
            path.display()
        );
    }
    let n = frame.height();
    if n == 0 {
        bail!(
            "{}: no rows: the table has its columns but no samples",
            path.display()
        );
    }
    let mut values = Array2::<f32>::zeros((n, features.len()));
    let mut feature_names = Vec::with_capacity(features.len());
    for (j, col) in features.iter().enumerate() {
        let name = col.name().as_str();
        let dtype = col.dtype();
        // A column that is entirely null is typed Null by CSV readers, and one of empty cells
        // (a one-row table with a gap) String: report both as all-missing.
        let blank = dtype == &DataType::String
            && col
                .str()?
                .iter()
                .all(|v| v.is_none_or(|t| t.trim().is_empty()));
        if blank {
            bail!(
                "{}: column '{name}' has no values: all {n} row(s) are missing (empty)",
                path.display()
            );
        }
        if !dtype.is_primitive_numeric() && !dtype.is_null() {
            bail!(
                "{}: column '{name}' is not numeric (type {dtype}); every column but '{sample_id_column}' must hold numbers",
                path.display()
            );
        }
        // Cast from f64 where the column has it, so a value beyond f32's range shows up as
        // infinite here rather than being named as one the user never wrote.
        let floats = col.cast(&DataType::Float64)?;
        let mut observed = 0usize;
        for (i, v) in floats.f64()?.iter().enumerate() {
            let v = v.unwrap_or(f64::NAN);
            if v.is_infinite() && infinite == Infinite::Error {
                bail!(
                    "{}: column '{name}', sample '{}' (row {}): infinite value ({v}); fix the \
                     table, or set data.infinite_values = \"missing\" to impute it",
                    path.display(),
                    sample_ids[i],
                    i + 1
                );
            }
            let v = v as f32;
            observed += usize::from(v.is_finite());
            values[[i, j]] = if v.is_finite() { v } else { f32::NAN };
        }
        if observed == 0 {
            bail!(
                "{}: column '{name}' has no values: all {n} row(s) are missing (null or NaN{})",
                path.display(),
                if infinite == Infinite::Missing {
                    " or infinite"
                } else {
                    ""
                }
            );
        }
        feature_names.push(name.to_string());
    }
    Ok(Table {
        path: path.to_path_buf(),
        sample_ids,
        feature_names,
        values,
    })
}

/// Labels by sample id, from a table with a sample-id column and a label column.
pub fn load_labels(
    path: &Path,
    sample_id_column: &str,
    label_column: &str,
) -> Result<HashMap<String, Option<String>>> {
    let frame = read_frame(path)?;
    let ids = sample_ids(&frame, sample_id_column, path)?;
    let col = frame
        .column(label_column)
        .map_err(|_| anyhow::anyhow!("{}: no label column '{label_column}'", path.display()))?;
    let text = col.cast(&DataType::String)?;
    let labels = text.str()?;
    Ok(ids
        .into_iter()
        .zip(labels.iter())
        .map(|(id, label)| {
            let label = label
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from);
            (id, label)
        })
        .collect())
}
