//! `deepinsight predict`: a cohort that fits in memory (Parquet, CSV or TSV tables, one per
//! modality) scored with a trained run, predictions written as Parquet or CSV, and metrics when
//! labels are given. `deepinsight score` is the streaming, sharded form for large datasets.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use polars::prelude::{Column, DataFrame};

use crate::artefact::{self, guard};
use crate::mapping::{csv_bytes, parquet_bytes};
use crate::model::Metrics;
use crate::model::metrics::argmax;
use crate::omics::{self, DroppedSample};
use crate::run::RunDir;

pub struct PredictOptions {
    pub model: PathBuf,
    /// (modality, table path), one per modality of the model.
    pub inputs: Vec<(String, PathBuf)>,
    /// A table of true classes (sample id + label column of the training run) for metrics.
    pub labels: Option<PathBuf>,
    /// `.parquet` or `.csv`.
    pub output: PathBuf,
    pub batch_size: usize,
}

#[derive(Debug)]
pub struct PredictSummary {
    pub output: PathBuf,
    pub samples: usize,
    pub dropped: Vec<DroppedSample>,
    /// With labels: metrics over the samples whose class the model knows.
    pub metrics: Option<Metrics>,
}

enum Format {
    Parquet,
    Csv,
}

fn output_format(path: &Path) -> Result<Format> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("parquet") => Ok(Format::Parquet),
        Some("csv") => Ok(Format::Csv),
        _ => bail!("--output {}: must end in .parquet or .csv", path.display()),
    }
}

pub fn run(options: &PredictOptions) -> Result<PredictSummary> {
    let format = output_format(&options.output)?;
    let mut inputs: Vec<&Path> = vec![&options.model];
    inputs.extend(options.inputs.iter().map(|(_, p)| p.as_path()));
    inputs.extend(options.labels.as_deref());
    guard::check_file(
        "--output",
        &options.output,
        &inputs,
        super::output::written_by_deepinsight,
    )?;
    let run_dir = RunDir::open(&options.model)?;
    let joined = load_inputs(&run_dir, &options.inputs)?;
    let space = &run_dir.manifest.feature_space;
    let raw = space.select_raw(&joined.modalities)?;
    let views: Vec<_> = raw.iter().map(|b| b.view()).collect();
    for (modality, n) in space.far_outside(&views) {
        tracing::warn!(
            "{modality}: {n} values lie far outside the training range (more than the range \
             again beyond it) and were clipped; check units and scale"
        );
    }
    let values = space.transform_selected(&views)?;
    drop(raw);
    let images = run_dir.render(values.view())?;
    let probabilities = run_dir.predict(&images, options.batch_size.max(1));

    let classes = run_dir.classes();
    let truth = match &options.labels {
        Some(path) => Some(true_classes(path, &run_dir, &joined.sample_ids)?),
        None => None,
    };
    let metrics = truth.as_ref().map(|truth| {
        let known: Vec<usize> = (0..truth.len()).filter(|&i| truth[i].1.is_some()).collect();
        let labels: Vec<usize> = known
            .iter()
            .map(|&i| truth[i].1.expect("filtered"))
            .collect();
        let probs: Vec<Vec<f32>> = known.iter().map(|&i| probabilities[i].clone()).collect();
        Metrics::from_probabilities(&labels, &probs, classes.len())
    });

    let id_column = run_dir.sample_id_column();
    let mut columns = vec![Column::new(id_column.into(), &joined.sample_ids)];
    if let Some(truth) = &truth {
        let labels: Vec<&str> = truth.iter().map(|(l, _)| l.as_str()).collect();
        columns.push(Column::new("label".into(), labels));
    }
    let predicted: Vec<&str> = probabilities
        .iter()
        .map(|p| classes[argmax(p)].as_str())
        .collect();
    columns.push(Column::new("predicted".into(), predicted));
    for (k, class) in classes.iter().enumerate() {
        let p: Vec<f32> = probabilities.iter().map(|p| p[k]).collect();
        columns.push(Column::new(format!("prob_{class}").into(), p));
    }
    columns.push(Column::new(
        "model_sha256".into(),
        vec![run_dir.model_sha256.as_str(); joined.sample_ids.len()],
    ));
    let mut frame = DataFrame::new_infer_height(columns)?;
    let bytes = match format {
        Format::Parquet => parquet_bytes(&mut frame)?,
        Format::Csv => csv_bytes(&mut frame)?,
    };
    artefact::write_atomic(&options.output, &bytes)
        .with_context(|| format!("cannot write {}", options.output.display()))?;
    Ok(PredictSummary {
        output: options.output.clone(),
        samples: joined.sample_ids.len(),
        dropped: joined.dropped,
        metrics,
    })
}

/// The tables of a new cohort (one per modality of the model, given as (modality, path)),
/// joined on the run's sample-id column.
pub fn load_inputs(run_dir: &RunDir, inputs: &[(String, PathBuf)]) -> Result<omics::align::Joined> {
    let id_column = run_dir.sample_id_column().to_string();
    let wanted: Vec<&str> = run_dir
        .manifest
        .feature_space
        .modalities
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    for (name, path) in inputs {
        if !wanted.contains(&name.as_str()) {
            bail!(
                "--input {name}={}: the model has no modality '{name}' (it has {})",
                path.display(),
                wanted.join(", ")
            );
        }
    }
    let mut tables = Vec::with_capacity(wanted.len());
    for name in &wanted {
        let Some((_, path)) = inputs.iter().find(|(n, _)| n == name) else {
            bail!(
                "no --input for modality '{name}' (the model needs {})",
                wanted.join(", ")
            );
        };
        let infinite = run_dir.manifest.config.data.infinite_values;
        let table = omics::load_table(path, &id_column, infinite)
            .map_err(|e| e.context(format!("modality '{name}'")))?;
        tables.push((name.to_string(), table));
    }
    omics::align::join(tables)
}

/// Each scored sample's label and its class index in the model (None for a class the model
/// was not trained on: such samples are predicted but left out of the metrics).
pub fn true_classes(
    path: &Path,
    run_dir: &RunDir,
    ids: &[String],
) -> Result<Vec<(String, Option<usize>)>> {
    let data = &run_dir.manifest.config.data;
    let labels = omics::load_labels(path, &data.sample_id_column, &data.label_column)?;
    ids.iter()
        .map(|id| match labels.get(id) {
            Some(Some(label)) => Ok((
                label.clone(),
                run_dir.classes().iter().position(|c| c == label),
            )),
            Some(None) => bail!("{}: sample '{id}' has an empty label", path.display()),
            None => bail!("{}: sample '{id}' has no label", path.display()),
        })
        .collect()
}
