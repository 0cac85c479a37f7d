//! The scored table: `sample_id`, `predicted`, `prob_<class>` (null for a skipped sample),
//! `reason` (why a sample was skipped, null otherwise) and `model_sha256`. Each bucket is one
//! part file; the parts are copied into the output row group by row group at the end.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use arrow::array::{ArrayRef, Float32Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::model::metrics::argmax;

/// One output row: scored (`probabilities`) or skipped (`reason`).
pub struct Scored {
    pub sample_id: String,
    pub probabilities: Option<Vec<f32>>,
    pub reason: Option<String>,
}

pub fn schema(classes: &[String]) -> SchemaRef {
    let mut fields = vec![
        Field::new("sample_id", DataType::Utf8, false),
        Field::new("predicted", DataType::Utf8, true),
    ];
    fields.extend(
        classes
            .iter()
            .map(|c| Field::new(format!("prob_{c}"), DataType::Float32, true)),
    );
    fields.push(Field::new("reason", DataType::Utf8, true));
    fields.push(Field::new("model_sha256", DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

pub fn batch(rows: &[Scored], classes: &[String], model_sha256: &str) -> Result<RecordBatch> {
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.sample_id.as_str()),
        )),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| {
            r.probabilities
                .as_ref()
                .map(|p| classes[argmax(p)].as_str())
        }))),
    ];
    for k in 0..classes.len() {
        columns.push(Arc::new(Float32Array::from_iter(
            rows.iter().map(|r| r.probabilities.as_ref().map(|p| p[k])),
        )));
    }
    columns.push(Arc::new(StringArray::from_iter(
        rows.iter().map(|r| r.reason.as_deref()),
    )));
    columns.push(Arc::new(StringArray::from_iter_values(
        std::iter::repeat_n(model_sha256, rows.len()),
    )));
    Ok(RecordBatch::try_new(schema(classes), columns)?)
}

fn properties(metadata: &HashMap<String, String>) -> WriterProperties {
    let mut kv: Vec<KeyValue> = metadata
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect();
    kv.sort_by(|a, b| a.key.cmp(&b.key));
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_key_value_metadata(Some(kv))
        .build()
}

/// Parquet bytes of one part, with `metadata` (its identity) in the file's key-value metadata.
pub fn part_bytes(batch: &RecordBatch, metadata: &HashMap<String, String>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(properties(metadata)))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(out)
}

/// Copies the parts, in order, into `output` (through a temporary file renamed at the end);
/// each part becomes one row group. `metadata` goes into the file's key-value metadata.
pub fn merge(
    parts: &[PathBuf],
    output: &Path,
    schema: SchemaRef,
    metadata: &HashMap<String, String>,
) -> Result<()> {
    let dir = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let mut writer = ArrowWriter::try_new(tmp.as_file(), schema, Some(properties(metadata)))?;
    for part in parts {
        let file = File::open(part).with_context(|| format!("cannot open {}", part.display()))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .with_context(|| format!("{}: unreadable part", part.display()))?
            .build()?;
        for batch in reader {
            writer.write(&batch?)?;
        }
        writer.flush()?;
    }
    writer.close()?;
    tmp.as_file().sync_all()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(output)
        .with_context(|| format!("cannot rename into {}", output.display()))?;
    Ok(())
}

/// The key-value metadata and row count of a part's Parquet bytes, from its footer (the
/// caller's checksum covers the rest).
pub fn part_metadata(bytes: &[u8]) -> Result<(HashMap<String, String>, usize)> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(bytes))?;
    let metadata = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .filter_map(|e| Some((e.key.clone(), e.value.clone()?)))
                .collect()
        })
        .unwrap_or_default();
    let rows = usize::try_from(builder.metadata().file_metadata().num_rows())?;
    Ok((metadata, rows))
}

/// The key-value metadata of a Parquet file, or `None` if it is not one.
pub fn read_metadata(path: &Path) -> Option<HashMap<String, String>> {
    let file = File::open(path).ok()?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).ok()?;
    let kv = builder.metadata().file_metadata().key_value_metadata()?;
    Some(
        kv.iter()
            .filter_map(|e| Some((e.key.clone(), e.value.clone()?)))
            .collect(),
    )
}

/// Whether `path` is a scores or predictions table this tool wrote (Parquet or CSV with the
/// `predicted` and `model_sha256` columns it always writes): the only files an output may
/// replace.
pub fn written_by_deepinsight(path: &Path) -> bool {
    let columns: Vec<String> = match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("csv") => {
            let Ok(file) = File::open(path) else {
                return false;
            };
            let mut header = String::new();
            if std::io::BufRead::read_line(&mut std::io::BufReader::new(file), &mut header).is_err()
            {
                return false;
            }
            header
                .trim_end()
                .split(',')
                .map(|c| c.trim_matches('"').to_string())
                .collect()
        }
        _ => {
            let Ok(file) = File::open(path) else {
                return false;
            };
            let Ok(builder) = ParquetRecordBatchReaderBuilder::try_new(file) else {
                return false;
            };
            builder
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        }
    };
    ["predicted", "model_sha256"]
        .iter()
        .all(|want| columns.iter().any(|c| c == want))
}
