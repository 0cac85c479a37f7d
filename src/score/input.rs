//! Input files of a scoring job: one Parquet file or glob per modality, read in record batches
//! with only the sample-id column and the model's features decoded.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::omics::settings::Infinite;
use anyhow::{Context, Result, bail};
use arrow::array::{Array, AsArray, Float32Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float32Type};
use ndarray::Array2;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

/// The files of one modality, and the columns the model needs from them.
pub struct ModalityInput {
    pub name: String,
    pub files: Vec<PathBuf>,
    /// Kept features in the model's order.
    pub features: Vec<String>,
}

/// Expands `modality=pattern` arguments into files, one entry per model modality in the model's
/// order. A modality without an input, an input for an unknown modality or a pattern that
/// matches no file is an error.
pub fn resolve(
    specs: &[(String, String)],
    modalities: &[(String, Vec<String>)],
) -> Result<Vec<ModalityInput>> {
    for (name, _) in specs {
        if !modalities.iter().any(|(m, _)| m == name) {
            let known: Vec<&str> = modalities.iter().map(|(m, _)| m.as_str()).collect();
            bail!(
                "--input {name}=...: the model has no modality '{name}' (it has {})",
                known.join(", ")
            );
        }
    }
    modalities
        .iter()
        .map(|(name, features)| {
            let patterns: Vec<&str> = specs
                .iter()
                .filter(|(m, _)| m == name)
                .map(|(_, p)| p.as_str())
                .collect();
            if patterns.is_empty() {
                bail!("no input for modality '{name}': add --input {name}=<file.parquet or glob>");
            }
            let mut files = Vec::new();
            for pattern in patterns {
                let before = files.len();
                for entry in glob::glob(pattern)
                    .with_context(|| format!("--input {name}={pattern}: not a valid pattern"))?
                {
                    files.push(entry?);
                }
                if files.len() == before {
                    bail!("--input {name}={pattern}: no file matches");
                }
            }
            files.sort();
            files.dedup();
            Ok(ModalityInput {
                name: name.clone(),
                files,
                features: features.clone(),
            })
        })
        .collect()
}

/// Rows in the files, from their Parquet footers (nothing else is read).
pub fn count_rows(files: &[PathBuf]) -> Result<u64> {
    let mut rows = 0u64;
    for path in files {
        let builder = open(path)?;
        rows += builder.metadata().file_metadata().num_rows().max(0) as u64;
    }
    Ok(rows)
}

fn open(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    ParquetRecordBatchReaderBuilder::try_new(file).with_context(|| {
        format!(
            "{}: not a readable Parquet file (truncated or another format?)",
            path.display()
        )
    })
}

/// One decoded record batch: sample ids and the model's features (NaN = missing).
pub struct Rows {
    pub ids: Vec<String>,
    pub values: Array2<f32>,
}

/// Reads one file batch by batch.
pub struct FileRows {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    id_column: String,
    /// For each model feature, its column in the decoded batch (None: absent from the file).
    features: Vec<String>,
    rows_done: usize,
    infinite: Infinite,
}

impl FileRows {
    /// Opens `path`, checks that it has the sample-id column, and reports the model features it
    /// lacks. `allow_missing` decides whether absent feature columns are read as all-missing or
    /// are an error.
    pub fn open(
        path: &Path,
        id_column: &str,
        features: &[String],
        batch_rows: usize,
        allow_missing: bool,
        infinite: Infinite,
    ) -> Result<(Self, Vec<String>)> {
        let builder = open(path)?;
        let schema = builder.schema().clone();
        let index_of = |name: &str| schema.index_of(name).ok();
        let Some(id_index) = index_of(id_column) else {
            bail!("{}: no sample-id column '{id_column}'", path.display());
        };
        let missing: Vec<String> = features
            .iter()
            .filter(|f| index_of(f).is_none())
            .cloned()
            .collect();
        if !missing.is_empty() && !allow_missing {
            bail!(
                "{}: {} feature column(s) of the model are missing (first: {}); \
                 --missing-values impute fills them with training medians",
                path.display(),
                missing.len(),
                missing
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let mut roots: Vec<usize> = features.iter().filter_map(|f| index_of(f)).collect();
        roots.push(id_index);
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(batch_rows.max(1))
            .build()
            .with_context(|| format!("cannot read {}", path.display()))?;
        Ok((
            Self {
                path: path.to_path_buf(),
                reader,
                id_column: id_column.to_string(),
                features: features.to_vec(),
                rows_done: 0,
                infinite,
            },
            missing,
        ))
    }

    /// The next batch, or `None` at the end of the file.
    pub fn next_rows(&mut self) -> Result<Option<Rows>> {
        let Some(batch) = self.reader.next() else {
            return Ok(None);
        };
        let batch = batch.with_context(|| format!("cannot read {}", self.path.display()))?;
        let n = batch.num_rows();
        let ids_column = batch
            .column_by_name(&self.id_column)
            .expect("projected id column");
        let ids_text = cast(ids_column, &DataType::Utf8).with_context(|| {
            format!(
                "{}: column '{}' cannot be read as text",
                self.path.display(),
                self.id_column
            )
        })?;
        let ids_text = ids_text.as_string::<i32>();
        let mut ids = Vec::with_capacity(n);
        for r in 0..n {
            if ids_text.is_null(r) {
                bail!(
                    "{}: row {}: empty sample id in column '{}'",
                    self.path.display(),
                    self.rows_done + r + 1,
                    self.id_column
                );
            }
            ids.push(ids_text.value(r).to_string());
        }
        let mut columns = Vec::with_capacity(self.features.len());
        for name in &self.features {
            let Some(column) = batch.column_by_name(name) else {
                columns.push(None);
                continue;
            };
            if !column.data_type().is_numeric() && column.data_type() != &DataType::Null {
                bail!(
                    "{}: column '{name}' is not numeric (type {})",
                    self.path.display(),
                    column.data_type()
                );
            }
            columns.push(Some(cast(column, &DataType::Float32)?));
        }
        let floats: Vec<Option<&Float32Array>> = columns
            .iter()
            .map(|c| c.as_ref().map(|c| c.as_primitive::<Float32Type>()))
            .collect();
        // Blocks of 64 rows: each column is read forwards and the block being written
        // (64 rows x the features) stays in cache, where a plain column-by-column fill of a
        // row-major array would miss on every write.
        let width = self.features.len();
        let mut flat = vec![f32::NAN; n * width];
        for start in (0..n).step_by(64) {
            let end = (start + 64).min(n);
            for (j, column) in floats.iter().enumerate() {
                let Some(column) = column else { continue };
                let nulls = column.nulls().filter(|b| b.null_count() > 0);
                for (r, &v) in (start..end).zip(&column.values()[start..end]) {
                    let valid = nulls.is_none_or(|b| b.is_valid(r));
                    if v.is_finite() && valid {
                        flat[r * width + j] = v;
                    } else if v.is_infinite() && valid && self.infinite == Infinite::Error {
                        bail!(
                            "{}: column '{}', sample '{}' (row {}): infinite value ({v}); the \
                             model's data.infinite_values = \"missing\" would impute it",
                            self.path.display(),
                            self.features[j],
                            ids[r],
                            self.rows_done + r + 1
                        );
                    }
                }
            }
        }
        let values = Array2::from_shape_vec((n, width), flat).expect("n x width values");
        self.rows_done += n;
        Ok(Some(Rows { ids, values }))
    }
}
