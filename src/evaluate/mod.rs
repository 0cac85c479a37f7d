//! `deepinsight evaluate`: stratified k-fold cross-validation of a pipeline, the CNN beside
//! simple baselines on the same folds. Inside each fold everything that is fitted (imputation,
//! normalisation, selection, layout, network) is fitted on the fold's training samples only:
//! an inner stratified split of them trains the network and picks its epoch, and the test
//! fold is scored once, with the kept model. The baselines are fitted on the whole training
//! fold, in the same fitted feature space.
//!
//! Each finished fold is kept in a work folder beside the output, so an interrupted
//! evaluation resumes from its last finished fold (and inside a fold from the training
//! checkpoint); the result folder is staged and renamed into place once every fold is done.

pub(crate) mod oof;
mod page;
mod plot;
pub(crate) mod report;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ndarray::Axis;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::artefact::{self, StagedDir, guard};
use crate::config::PipelineConfig;
use crate::crossval::settings::Baseline;
use crate::crossval::{baselines, folds};
use crate::model::train::{TrainOptions, predict_proba};
use crate::model::{self, Metrics, split};
use crate::omics::{self, Cohort};
use crate::pipeline::{self, Stages};
use crate::select::FeatureSpace;
pub use report::Evaluation;

/// The file that marks a folder `evaluate` wrote.
pub const FILE: &str = "evaluation.json";
pub const CSV: &str = "evaluation.csv";
pub const OOF: &str = "oof_predictions.parquet";
pub const PLOT: &str = "evaluation.png";
/// The CNN's name in the reports.
pub const CNN: &str = "cnn";

/// How one `evaluate` runs beyond the pipeline file.
#[derive(Debug, Clone, Default)]
pub struct EvaluateOptions {
    /// Stop after this many folds have been computed in this invocation; run again to go on.
    pub max_folds: Option<usize>,
    /// Files read besides the pipeline's inputs (the pipeline file): the output may not be
    /// one of them.
    pub also_read: Vec<PathBuf>,
    /// Score the baselines only, without training the CNN (a quick look, or to compare the
    /// baselines with other implementations).
    pub baselines_only: bool,
    /// Write each fold's fitted features (training and test samples) here as Parquet, to fit
    /// other models on exactly the same folds and features.
    pub fold_features: Option<PathBuf>,
    /// Compute only this fold (repeat, fold; 0-based) into the work folder, as one task of a
    /// Slurm array or Kubernetes indexed Job; `collect` then writes the report.
    pub only: Option<(usize, usize)>,
    /// Write the report from the folds finished in the work folder, computing none.
    pub collect: bool,
}

/// What one fold leaves in the work folder: enough to build the report without it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FoldResult {
    /// The settings and data the fold was computed with.
    pub fingerprint: String,
    pub repeat: usize,
    pub fold: usize,
    pub train: usize,
    pub test: usize,
    /// The epoch the inner validation split kept.
    pub best_epoch: usize,
    /// Each model's test-fold metrics, the CNN first.
    pub scores: Vec<(String, Metrics)>,
    /// Test-fold rows (cohort order) and each model's probabilities for them.
    pub rows: Vec<usize>,
    pub probabilities: Vec<(String, Vec<Vec<f32>>)>,
}

/// Where an evaluation of `config` goes, and its work folder.
pub fn output_dir(config: &PipelineConfig) -> PathBuf {
    config
        .output_dir
        .join(format!("{}-evaluation", config.name))
}

fn work_dir(config: &PipelineConfig) -> PathBuf {
    config
        .output_dir
        .join(format!(".{}-evaluation.work", config.name))
}

/// How the evaluation went: done, stopped after `max_folds` with folds left, or the one fold
/// asked for finished.
pub enum Outcome {
    Done(Box<Evaluation>, PathBuf),
    Stopped { finished: usize, total: usize },
    FoldDone { repeat: usize, fold: usize },
}

pub fn run(config: &PipelineConfig, options: &EvaluateOptions) -> Result<Outcome> {
    let settings = &config.evaluate;
    settings.validate()?;
    let out = output_dir(config);
    let mut inputs = config.input_paths();
    inputs.extend(options.also_read.iter().map(PathBuf::as_path));
    guard::check_folder("the evaluation folder", &out, FILE, &inputs)?;
    pipeline::configure_threads(config.train.threads);
    let cohort = omics::load_cohort(&config.data)?;
    let fingerprint = fingerprint(config, options.baselines_only)?;
    if let Some(dir) = &options.fold_features {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let assignments: Vec<Vec<usize>> = (0..settings.repeats)
        .map(|r| folds::assign(&cohort.labels, settings.folds, fold_seed(config, r)))
        .collect();
    for a in &assignments {
        folds::check(&cohort.labels, &cohort.classes, a, settings.folds)?;
    }
    if let Some((repeat, fold)) = options.only
        && (repeat >= settings.repeats || fold >= settings.folds)
    {
        bail!(
            "--repeat {} --fold {}: the evaluation has {} repeat(s) of {} folds",
            repeat + 1,
            fold + 1,
            settings.repeats,
            settings.folds
        );
    }
    let work = work_dir(config);
    std::fs::create_dir_all(&work)
        .with_context(|| format!("cannot create the work folder {}", work.display()))?;
    let total = settings.repeats * settings.folds;
    let mut results = Vec::with_capacity(total);
    let mut computed = 0;
    let mut missing = Vec::new();
    for (repeat, assignment) in assignments.iter().enumerate() {
        for fold in 0..settings.folds {
            if options.only.is_some_and(|only| only != (repeat, fold)) {
                continue;
            }
            let path = work.join(fold_file(repeat, fold));
            if let Some(done) = read_fold(&path, &fingerprint)? {
                results.push(done);
                continue;
            }
            if options.collect {
                missing.push(format!("--repeat {} --fold {}", repeat + 1, fold + 1));
                continue;
            }
            if options.max_folds.is_some_and(|m| computed >= m) {
                return Ok(Outcome::Stopped {
                    finished: results.len(),
                    total,
                });
            }
            crate::progress::set_context(if settings.repeats > 1 {
                format!(
                    "repeat {}/{}, fold {}/{}",
                    repeat + 1,
                    settings.repeats,
                    fold + 1,
                    settings.folds
                )
            } else {
                format!("fold {}/{}", fold + 1, settings.folds)
            });
            let result = run_fold(
                config,
                &cohort,
                Fold {
                    assignment,
                    repeat,
                    fold,
                },
                &fingerprint,
                &work,
                options,
            )?;
            crate::progress::line(format_args!("done"));
            crate::progress::set_context(String::new());
            artefact::write_atomic(&path, &serde_json::to_vec(&result)?)?;
            results.push(result);
            computed += 1;
        }
    }
    if let Some((repeat, fold)) = options.only {
        return Ok(Outcome::FoldDone { repeat, fold });
    }
    if !missing.is_empty() {
        bail!(
            "{} of {total} folds are not finished in {}: run them first ({})",
            missing.len(),
            work.display(),
            missing.join("; ")
        );
    }
    let evaluation = Evaluation::new(config, &cohort, &results)?;
    let staged = StagedDir::new(&out)?;
    let mut files = BTreeMap::new();
    let mut put = |name: &str, bytes: &[u8]| -> Result<()> {
        staged.write(name, bytes)?;
        files.insert(name.to_string(), artefact::sha256_hex(bytes));
        Ok(())
    };
    put(CSV, &evaluation.csv()?)?;
    put(OOF, &oof::parquet(&cohort, &results)?)?;
    let mut png = Vec::new();
    plot::draw(&evaluation, test_to_train(&results))?
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    put(PLOT, &png)?;
    put(FILE, &serde_json::to_vec_pretty(&evaluation)?)?;
    let html = page::page(config, &cohort, &evaluation, &png, &files);
    staged.write(crate::report::FILE, html.as_bytes())?;
    let written = staged
        .commit()
        .context("cannot move the evaluation into place")?;
    std::fs::remove_dir_all(&work)
        .with_context(|| format!("cannot remove the work folder {}", work.display()))?;
    Ok(Outcome::Done(Box::new(evaluation), written))
}

/// Mean test fold size over mean training fold size: the corrected t-test's n2 / n1.
pub fn test_to_train(results: &[FoldResult]) -> f64 {
    let mean = |f: fn(&FoldResult) -> usize| {
        results.iter().map(|r| f(r) as f64).sum::<f64>() / results.len() as f64
    };
    mean(|r| r.test) / mean(|r| r.train)
}

/// Repeat `r`'s folds are drawn from the pipeline's seed plus `r`.
fn fold_seed(config: &PipelineConfig, repeat: usize) -> u64 {
    config.seed.wrapping_add(repeat as u64)
}

fn fold_file(repeat: usize, fold: usize) -> String {
    format!("repeat{}-fold{}.json", repeat + 1, fold + 1)
}

/// sha256 of the settings (but the thread count and device, which do not change what is
/// computed, and the run's name and output folder), of whether the CNN is trained, and of the
/// input tables' bytes.
pub(crate) fn fingerprint(config: &PipelineConfig, baselines_only: bool) -> Result<String> {
    let mut settings = config.clone();
    settings.train.threads = 0;
    settings.model.device = String::new();
    settings.output_dir = PathBuf::new();
    settings.name = String::new();
    // `auto` as what it comes to, so that an evaluation under `auto` and one naming the same
    // stem are the same computation.
    settings.model.stem = config
        .model
        .stem_for(config.layout.height, config.layout.width)
        .into();
    let mut hash = Sha256::new();
    hash.update(serde_json::to_vec(&settings)?);
    hash.update([u8::from(baselines_only)]);
    for path in config.input_paths() {
        hash.update(artefact::sha256_file(path)?);
    }
    Ok(hex::encode(hash.finalize()))
}

/// A finished fold of this evaluation, or None; one from other settings or data is refused.
fn read_fold(path: &Path, fingerprint: &str) -> Result<Option<FoldResult>> {
    let Ok(bytes) = std::fs::read(path) else {
        return Ok(None);
    };
    let result: FoldResult = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not a finished fold", path.display()))?;
    if result.fingerprint != fingerprint {
        bail!(
            "{}: computed with other settings or data than this evaluation; remove {} to start \
             again",
            path.display(),
            path.parent().unwrap_or(path).display()
        );
    }
    Ok(Some(result))
}

/// The training fold's rows split into the rows the network trains on and the rows that pick
/// its epoch, stratified, from the fold's seed.
pub fn inner_split(
    cohort: &Cohort,
    train_rows: &[usize],
    validation_fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let labels: Vec<usize> = train_rows.iter().map(|&r| cohort.labels[r]).collect();
    let (inner_train, inner_valid) = split::stratified(&labels, validation_fraction, seed);
    let rows = |idx: Vec<usize>| idx.into_iter().map(|i| train_rows[i]).collect();
    (rows(inner_train), rows(inner_valid))
}

/// One fold of one repeat: the fold index of every sample, and which fold is the test fold.
struct Fold<'a> {
    assignment: &'a [usize],
    repeat: usize,
    fold: usize,
}

fn run_fold(
    config: &PipelineConfig,
    cohort: &Cohort,
    Fold {
        assignment,
        repeat,
        fold,
    }: Fold,
    fingerprint: &str,
    work: &Path,
    options: &EvaluateOptions,
) -> Result<FoldResult> {
    let test_rows: Vec<usize> = (0..assignment.len())
        .filter(|&i| assignment[i] == fold)
        .collect();
    let train_rows: Vec<usize> = (0..assignment.len())
        .filter(|&i| assignment[i] != fold)
        .collect();
    let seed = fold_seed(config, repeat);
    let (inner_train, inner_valid) =
        inner_split(cohort, &train_rows, config.train.validation_fraction, seed);
    let checkpoint = work.join(format!("repeat{}-fold{}.checkpoint", repeat + 1, fold + 1));
    let at = || format!("repeat {}, fold {}", repeat + 1, fold + 1);
    let mut probabilities = Vec::new();
    let mut best_epoch = 0;
    let (values, names) = if options.baselines_only {
        // The same feature space the CNN's fold would fit: on the inner training rows.
        let space = FeatureSpace::fit(cohort, &inner_train, &config.select, &config.normalise)
            .with_context(at)?;
        (
            space.transform(cohort).with_context(at)?,
            space.feature_list(),
        )
    } else {
        let device = model::device(&config.model.device)?;
        let train_options = TrainOptions {
            checkpoint: Some(checkpoint.clone()),
            resume: true,
            ..TrainOptions::new(config.train.clone(), config.model.clone(), config.seed)
        };
        let mut stages = Stages { times: Vec::new() };
        let fitted = pipeline::fit(
            config,
            cohort,
            &inner_train,
            &inner_valid,
            &train_options,
            &device,
            &mut stages,
        )
        .with_context(at)?;
        let (test_images, _) = fitted.pick(&test_rows, &cohort.labels);
        let cnn = predict_proba(
            &fitted.trained.model,
            &test_images,
            fitted.shape(),
            config.train.batch_size,
            &device,
        );
        probabilities.push((CNN.to_string(), cnn));
        best_epoch = fitted.trained.best_epoch;
        let names = fitted.space.feature_list();
        (fitted.values, names)
    };
    if let Some(dir) = &options.fold_features {
        let path = dir.join(format!("repeat{}-fold{}.parquet", repeat + 1, fold + 1));
        // The inner split is marked, so that a model fitted elsewhere can choose its epoch
        // on the same samples as the CNN; the baselines train on both.
        let parts = [
            ("train", inner_train.as_slice()),
            ("validation", &inner_valid),
            ("test", &test_rows),
        ];
        let bytes = oof::fold_features(cohort, &values, &names, &parts)?;
        artefact::write_atomic(&path, &bytes)?;
    }
    let n_classes = cohort.classes.len();
    let truth: Vec<usize> = test_rows.iter().map(|&r| cohort.labels[r]).collect();
    let train_values = values.select(Axis(0), &train_rows);
    let test_values = values.select(Axis(0), &test_rows);
    let train_labels: Vec<usize> = train_rows.iter().map(|&r| cohort.labels[r]).collect();
    for &baseline in &config.evaluate.baselines {
        let p = baselines::fit_predict(
            baseline,
            &config.evaluate,
            train_values.view(),
            &train_labels,
            test_values.view(),
            n_classes,
            seed,
        )
        .with_context(at)?;
        probabilities.push((baseline.name().to_string(), p));
    }
    let scores = probabilities
        .iter()
        .map(|(name, p)| {
            (
                name.clone(),
                Metrics::from_probabilities(&truth, p, n_classes),
            )
        })
        .collect();
    if checkpoint.exists() {
        std::fs::remove_dir_all(&checkpoint)
            .with_context(|| format!("cannot remove {}", checkpoint.display()))?;
    }
    Ok(FoldResult {
        fingerprint: fingerprint.to_string(),
        repeat,
        fold,
        train: train_rows.len(),
        test: test_rows.len(),
        best_epoch,
        scores,
        rows: test_rows,
        probabilities,
    })
}

/// The baselines a report compares, by name.
pub fn baseline_named(name: &str) -> Option<Baseline> {
    [
        Baseline::Majority,
        Baseline::Logistic,
        Baseline::RandomForest,
    ]
    .into_iter()
    .find(|b| b.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::omics::Modality;
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::tensor::Tensor;
    use ndarray::Array2;

    /// 30 samples of 3 classes, two modalities with a class signal in a few features.
    fn cohort() -> Cohort {
        let n = 30;
        let labels: Vec<usize> = (0..n).map(|i| i % 3).collect();
        let modality = |name: &str, features: usize, salt: usize| Modality {
            name: name.into(),
            feature_names: (0..features).map(|j| format!("{name}{j}")).collect(),
            values: Array2::from_shape_fn((n, features), |(i, j)| {
                let noise = ((i * 31 + j * 17 + salt) % 13) as f32 / 13.0;
                noise + if j < 3 { labels[i] as f32 } else { 0.0 }
            }),
        };
        let modalities = vec![modality("g", 12, 1), modality("p", 9, 5)];
        Cohort {
            sample_ids: (0..n).map(|i| format!("S{i}")).collect(),
            labels,
            classes: vec!["a".into(), "b".into(), "c".into()],
            modalities,
            dropped: Vec::new(),
        }
    }

    fn config() -> PipelineConfig {
        PipelineConfig::from_toml(
            r#"
name = "leak"
seed = 3
[data]
labels = "l.csv"
[data.modalities]
g = "g.csv"
p = "p.csv"
[layout]
method = "pca"
height = 12
width = 12
[model]
width = 4
[train]
epochs = 2
batch_size = 8
"#,
        )
        .unwrap()
    }

    fn weights(model: &crate::model::ResNet) -> Vec<f32> {
        struct Collect(Vec<f32>);
        impl ModuleVisitor for Collect {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                let data = p.val().into_data().convert::<f32>();
                self.0.extend(data.try_into_vec::<f32>().unwrap());
            }
        }
        let mut collect = Collect(Vec::new());
        model.visit(&mut collect);
        collect.0
    }

    /// Fits fold 0 of repeat 0 as `run_fold` does: selection, layout and network.
    fn fit_fold(cohort: &Cohort) -> (crate::select::FeatureSpace, crate::layout::Layout, Vec<f32>) {
        let config = config();
        let assignment = folds::assign(&cohort.labels, 3, fold_seed(&config, 0));
        let train_rows: Vec<usize> = (0..cohort.labels.len())
            .filter(|&i| assignment[i] != 0)
            .collect();
        let (inner_train, inner_valid) =
            inner_split(cohort, &train_rows, config.train.validation_fraction, 3);
        let options = TrainOptions::new(config.train.clone(), config.model.clone(), config.seed);
        let fitted = pipeline::fit(
            &config,
            cohort,
            &inner_train,
            &inner_valid,
            &options,
            &burn::tensor::Device::flex(),
            &mut Stages { times: Vec::new() },
        )
        .unwrap();
        (fitted.space, fitted.layout, weights(&fitted.trained.model))
    }

    #[test]
    fn a_test_fold_s_values_reach_nothing_its_training_fold_fits() {
        let original = cohort();
        let assignment = folds::assign(&original.labels, 3, fold_seed(&config(), 0));
        let mut changed = original.clone();
        for m in &mut changed.modalities {
            for (i, mut row) in m.values.outer_iter_mut().enumerate() {
                if assignment[i] == 0 {
                    row.mapv_inplace(|v| v * 7.0 + 100.0);
                }
            }
        }
        assert_ne!(original.modalities[0].values, changed.modalities[0].values);
        let (space, layout, weights) = fit_fold(&original);
        let (space2, layout2, weights2) = fit_fold(&changed);
        assert_eq!(
            space, space2,
            "normalisation or selection saw the test fold"
        );
        assert_eq!(layout, layout2, "the layout saw the test fold");
        assert_eq!(weights, weights2, "the network saw the test fold");
    }
}
