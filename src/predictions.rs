//! predictions.parquet: one row per sample with its split, true and predicted class and the
//! class probabilities, written with arrow + parquet so any Arrow reader takes it as is.

use std::sync::Arc;

use anyhow::Result;
use arrow::array::{ArrayRef, Float32Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

pub struct PredictionRow<'a> {
    pub sample_id: &'a str,
    pub split: &'a str,
    pub label: &'a str,
    pub probabilities: &'a [f32],
}

/// Encodes the rows as Parquet bytes; `classes` names the probability columns `prob_<class>`.
pub fn to_parquet(rows: &[PredictionRow], classes: &[String]) -> Result<Vec<u8>> {
    let predicted =
        |r: &PredictionRow| classes[crate::model::metrics::argmax(r.probabilities)].as_str();
    let mut fields = vec![
        Field::new("sample_id", DataType::Utf8, false),
        Field::new("split", DataType::Utf8, false),
        Field::new("label", DataType::Utf8, false),
        Field::new("predicted", DataType::Utf8, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.sample_id),
        )),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.split))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.label))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(predicted))),
    ];
    for (k, class) in classes.iter().enumerate() {
        fields.push(Field::new(
            format!("prob_{class}"),
            DataType::Float32,
            false,
        ));
        columns.push(Arc::new(Float32Array::from_iter_values(
            rows.iter().map(|r| r.probabilities[k]),
        )));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), Some(props))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(bytes)
}
