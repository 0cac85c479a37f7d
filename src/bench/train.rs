//! `deepinsight bench train`: one cohort end to end as a new user would run it (selection, a
//! t-SNE layout per modality, images, ResNet18 trained with validation after every epoch),
//! timed stage by stage; with `--pytorch`, the pipeline a user would write instead in the same
//! run: pyDeepInsight's layout (t-SNE per modality, `bin`) feeding torchvision's ResNet18
//! (scripts/bench_train_torch.py), on the same selected features, the same split, image
//! size, epochs, batch, learning rate and thread count, the best epoch chosen on the same
//! validation samples.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::config::PipelineConfig;
use crate::model::metrics::MajorityBaseline;
use crate::model::split;
use crate::model::train::{self, ImageSet, TrainOptions};
use crate::pipeline::{Stages, configure_threads, fit};

pub struct TrainBench {
    /// A folder in the tool's input layout: `labels.parquet` and one Parquet table per
    /// modality (../shared/datasets/<cohort>).
    pub cohort: PathBuf,
    pub size: usize,
    pub epochs: usize,
    pub batch: usize,
    /// ResNet18's width (64 is torchvision's).
    pub width: usize,
    pub threads: usize,
    pub seed: u64,
    pub pytorch: Option<PathBuf>,
}

impl TrainBench {
    /// The issue's case: 64x64, ResNet18 of width 64, 20 epochs, batch 16, 2 threads; `quick`
    /// is a small check that everything runs (32x32, width 8, 2 epochs).
    pub fn new(cohort: PathBuf, quick: bool) -> Self {
        Self {
            cohort,
            size: if quick { 32 } else { 64 },
            epochs: if quick { 2 } else { 20 },
            batch: 16,
            width: if quick { 8 } else { 64 },
            threads: 2,
            seed: 42,
            pytorch: None,
        }
    }
}

/// One pipeline's times (seconds) and scores.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct TrainRow {
    pub pipeline: String,
    /// Fitting the layout and rendering every sample's image.
    pub layout_s: f64,
    /// Every epoch: the training steps, anything done between epochs, the validation pass.
    pub train_s: f64,
    pub best_epoch: usize,
    pub valid_macro_f1: f64,
    pub test_macro_f1: f64,
}

/// The cohort's modalities: every Parquet table in the folder but `labels.parquet`, named by
/// file stem.
fn modalities(cohort: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(cohort)
        .with_context(|| format!("cannot read the cohort folder {}", cohort.display()))?
    {
        let path = entry?.path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if path.extension().is_some_and(|e| e == "parquet") && stem != "labels" {
            out.push((stem.to_string(), path.clone()));
        }
    }
    out.sort();
    if out.is_empty() || !cohort.join("labels.parquet").exists() {
        bail!(
            "{}: expected labels.parquet and one Parquet table per modality",
            cohort.display()
        );
    }
    Ok(out)
}

/// The pipeline the benchmark runs, as a user would write it.
fn pipeline(bench: &TrainBench, output_dir: &Path) -> Result<PipelineConfig> {
    let quote = |p: &Path| format!("{:?}", p.display().to_string());
    let modalities: String = modalities(&bench.cohort)?
        .iter()
        .map(|(name, path)| format!("{name} = {}\n", quote(path)))
        .collect();
    let text = format!(
        r#"name = "bench-train"
output_dir = {output}
seed = {seed}
[data]
labels = {labels}
[data.modalities]
{modalities}
[layout]
method = "tsne"
mode = "channels"
height = {size}
width = {size}
collisions = "assign"
[model]
width = {width}
[train]
epochs = {epochs}
batch_size = {batch}
learning_rate = 0.001
validation_fraction = 0.2
test_fraction = 0.2
threads = {threads}
"#,
        output = quote(output_dir),
        seed = bench.seed,
        labels = quote(&bench.cohort.join("labels.parquet")),
        size = bench.size,
        width = bench.width,
        epochs = bench.epochs,
        batch = bench.batch,
        threads = bench.threads,
    );
    PipelineConfig::from_toml(&text).context("the benchmark's pipeline")
}

/// The pipelines' rows, and the majority class (named) on the same split: the trivial
/// baseline the macro-F1s stand beside.
pub struct TrainReport {
    pub rows: Vec<TrainRow>,
    pub majority_class: String,
    pub majority: MajorityBaseline,
}

pub fn run(bench: &TrainBench) -> Result<TrainReport> {
    let scratch = tempfile::tempdir().context("cannot make a scratch folder")?;
    let config = pipeline(bench, scratch.path())?;
    configure_threads(bench.threads);
    let device = crate::model::device(&config.model.device)?;
    let cohort = crate::omics::load_cohort(&config.data)?;
    let splits = split::stratified3(
        &cohort.labels,
        config.train.validation_fraction,
        config.train.test_fraction,
        config.seed,
    );
    let options = TrainOptions::new(config.train.clone(), config.model.clone(), config.seed);
    let mut stages = Stages { times: Vec::new() };
    let fitted = fit(
        &config,
        &cohort,
        &splits.train,
        &splits.validation,
        &options,
        &device,
        &mut stages,
    )?;
    let seconds = |names: &[&str]| -> f64 {
        stages
            .times
            .iter()
            .filter(|(n, _)| names.contains(&n.as_str()))
            .map(|(_, s)| s)
            .sum()
    };
    let (test_images, test_labels) = fitted.pick(&splits.test, &cohort.labels);
    let test = ImageSet {
        images: &test_images,
        labels: &test_labels,
        shape: fitted.shape(),
    };
    let trained = &fitted.trained;
    let mut rows = vec![TrainRow {
        pipeline: "deepinsight (Burn, cpu)".into(),
        layout_s: seconds(&["layout", "render"]),
        train_s: seconds(&["train"]),
        best_epoch: trained.best_epoch,
        valid_macro_f1: trained.metrics.macro_f1,
        test_macro_f1: train::evaluate(&trained.model, test, bench.batch, &device)
            .metrics
            .macro_f1,
    }];
    if let Some(python) = &bench.pytorch {
        let features = scratch.path().join("features.parquet");
        let parts = [
            ("train", splits.train.as_slice()),
            ("validation", &splits.validation),
            ("test", &splits.test),
        ];
        let bytes = crate::evaluate::oof::fold_features(
            &cohort,
            &fitted.values,
            &fitted.space.feature_list(),
            &parts,
        )?;
        std::fs::write(&features, bytes)
            .with_context(|| format!("cannot write {}", features.display()))?;
        let args = [
            "--features".into(),
            features.display().to_string(),
            "--size".into(),
            bench.size.to_string(),
            "--epochs".into(),
            bench.epochs.to_string(),
            "--batch".into(),
            bench.batch.to_string(),
            "--threads".into(),
            bench.threads.to_string(),
            "--seed".into(),
            bench.seed.to_string(),
        ];
        rows.extend(super::python_json_lines::<TrainRow>(
            python,
            "bench_train_torch.py",
            &args,
        )?);
    }
    let labels =
        |rows: &[usize]| -> Vec<usize> { rows.iter().map(|&r| cohort.labels[r]).collect() };
    let majority = MajorityBaseline::new(
        &labels(&splits.train),
        &labels(&splits.validation),
        &labels(&splits.test),
        cohort.classes.len(),
    );
    Ok(TrainReport {
        rows,
        majority_class: cohort.classes[majority.class].clone(),
        majority,
    })
}

pub fn print(report: &TrainReport, bench: &TrainBench) {
    let rows = &report.rows;
    crate::outln!(
        "{}: {}x{} images, ResNet18 width {}, {} epochs, batch {}, {} threads; seconds",
        bench.cohort.display(),
        bench.size,
        bench.size,
        bench.width,
        bench.epochs,
        bench.batch,
        bench.threads
    );
    crate::outln!(
        "{:<42} {:>9} {:>9} {:>12} {:>11} {:>15} {:>14}",
        "pipeline",
        "layout",
        "train",
        "train/ours",
        "best epoch",
        "valid macro-F1",
        "test macro-F1"
    );
    let majority = &report.majority;
    let ours = rows.first().map_or(f64::NAN, |r| r.train_s);
    for r in rows {
        crate::outln!(
            "{:<42} {:>9.2} {:>9.2} {:>12.2} {:>11} {:>15.3} {:>14.3}",
            r.pipeline,
            r.layout_s,
            r.train_s,
            r.train_s / ours,
            r.best_epoch,
            r.valid_macro_f1,
            r.test_macro_f1
        );
    }
    crate::outln!(
        "{:<42} {:>9} {:>9} {:>12} {:>11} {:>15.3} {:>14}",
        format!("always '{}' (trivial baseline)", report.majority_class),
        "-",
        "-",
        "-",
        "-",
        majority.validation.macro_f1,
        majority
            .test
            .as_ref()
            .map_or_else(|| "-".to_string(), |m| format!("{:.3}", m.macro_f1))
    );
    crate::outln!(
        "valid macro-F1: the samples that chose each pipeline's epoch (optimistic); test \
         macro-F1: samples no choice saw"
    );
    if bench.width != 64 && rows.len() > 1 {
        crate::outln!(
            "note: torchvision's ResNet18 has width 64 whatever --quick sets here: the times \
             are not the same work"
        );
    }
    crate::outln!(
        "goal (issue 28): deepinsight's train time at most PyTorch's (train/ours >= 1.0 on the \
         PyTorch row); one split: the macro-F1 columns show both learned, not which is better"
    );
}
