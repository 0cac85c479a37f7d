//! Runs the stages in order on one pipeline file: load -> select -> layout -> render -> train
//! -> write. Nothing is written until every stage has succeeded.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::module::Module;
use ndarray::{Array2, Axis};

use crate::artefact::{self, guard};
use crate::config::{Baseline, PipelineConfig};
use crate::crossval;
use crate::layout::LayoutReport;
use crate::mapping;
use crate::model::metrics::MajorityBaseline;
use crate::model::train::{ImageSet, TrainOptions, predict_proba};
use crate::model::{self, Metrics, split};
use crate::omics::{self, Cohort, DroppedSample};
use crate::predictions::{self, PredictionRow};
use crate::render;
use crate::report;
use crate::run::manifest::{ClassCount, FeatureEntry, InputFile, ModelSummary, SampleCounts};
use crate::run::{self, Manifest, RunDir};

mod fit;
mod stages;
mod summary;

pub(crate) use fit::fit;

pub(crate) use stages::Stages;

/// What a run did, for the summary printed at the end.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_dir: PathBuf,
    pub stages: Vec<(String, f64)>,
    pub samples: usize,
    pub train: usize,
    pub validation: usize,
    pub test: usize,
    pub dropped: Vec<DroppedSample>,
    pub features: usize,
    pub classes: Vec<String>,
    pub best_epoch: usize,
    pub metrics: Metrics,
    pub test_metrics: Option<Metrics>,
    /// The majority class, scored on the same splits.
    pub baseline: MajorityBaseline,
    /// The learned baselines of `[evaluate]` on the test split, fitted on the training and
    /// validation samples' features (empty without a test split).
    pub test_baselines: Vec<(Baseline, Metrics)>,
    /// Epochs the kept one was chosen from (on the validation samples).
    pub epochs_run: usize,
    pub stopped_early: Option<usize>,
    pub resumed_from: Option<usize>,
    pub layout: Vec<LayoutReport>,
    pub pathways: Option<crate::select::pathways::PathwaySelection>,
}

fn png_bytes(img: &image::RgbImage) -> Result<Vec<u8>> {
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    Ok(png)
}

/// How `deepinsight train` runs a pipeline beyond its file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Continue from the checkpoint of an interrupted run of the same pipeline and data.
    pub resume: bool,
    /// End training after this epoch, as an interruption would: nothing is written but the
    /// checkpoint, and the run fails with a message saying how to resume.
    pub stop_after: Option<usize>,
    /// Files read besides the pipeline's own inputs (the pipeline file itself): the run
    /// folder may not be, hold or lie inside them either.
    pub also_read: Vec<PathBuf>,
}

/// Training ended at `stop_after`, as asked: the checkpoint holds it, and nothing else was
/// written. Not a failure; the command says so and exits 0.
#[derive(Debug, thiserror::Error)]
#[error(
    "training stopped after epoch {epoch} as asked; the checkpoint is in {}: run again with \
     --resume to continue",
    checkpoint.display()
)]
pub struct StoppedAsAsked {
    pub epoch: usize,
    pub checkpoint: PathBuf,
}

/// The checkpoint folder of a pipeline: hidden, beside its run folder.
pub fn checkpoint_dir(config: &PipelineConfig) -> PathBuf {
    config
        .output_dir
        .join(format!(".{}.checkpoint", config.name))
}

pub fn run(config: &PipelineConfig) -> Result<RunSummary> {
    run_with(config, &RunOptions::default())
}

/// Sizes rayon's global pool (Burn's Flex backend computes on it) once per process.
pub(crate) fn configure_threads(threads: usize) {
    if threads == 0 {
        return;
    }
    if rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .is_err()
        && rayon::current_num_threads() != threads
    {
        tracing::warn!(
            threads,
            running = rayon::current_num_threads(),
            "train.threads: the thread pool was already started with another size"
        );
    }
}

pub fn run_with(config: &PipelineConfig, run_options: &RunOptions) -> Result<RunSummary> {
    let mut inputs = config.input_paths();
    inputs.extend(run_options.also_read.iter().map(PathBuf::as_path));
    guard::check_folder("the run folder", &config.run_dir(), run::MANIFEST, &inputs)?;
    configure_threads(config.train.threads);
    let device = model::device(&config.model.device)?;
    let mut stages = Stages { times: Vec::new() };

    let cohort = stages.run("load", || omics::load_cohort(&config.data))?;
    split::check(&cohort.labels, &cohort.classes, config.train.test_fraction)?;
    let splits = split::stratified3(
        &cohort.labels,
        config.train.validation_fraction,
        config.train.test_fraction,
        config.seed,
    );
    let (train_rows, valid_rows) = (splits.train.clone(), splits.validation.clone());
    let options = train_options(config, run_options);
    let fitted = fit::fit(
        config,
        &cohort,
        &train_rows,
        &valid_rows,
        &options,
        &device,
        &mut stages,
    )?;
    let fit::Fitted {
        space,
        layout,
        images,
        resnet,
        trained,
        ..
    } = &fitted;
    if !trained.complete {
        return Err(StoppedAsAsked {
            epoch: trained.history.last().map_or(0, |s| s.epoch),
            checkpoint: checkpoint_dir(config),
        }
        .into());
    }
    let shape = fitted.shape();
    let (train_images, train_labels) = fitted.pick(&train_rows, &cohort.labels);
    let (test_images, test_labels) = fitted.pick(&splits.test, &cohort.labels);
    let test_metrics = (!splits.test.is_empty()).then(|| {
        let set = ImageSet {
            images: &test_images,
            labels: &test_labels,
            shape,
        };
        model::train::evaluate(&trained.model, set, options.train.batch_size, &device).metrics
    });

    let labels_of =
        |rows: &[usize]| -> Vec<usize> { rows.iter().map(|&r| cohort.labels[r]).collect() };
    let baseline = MajorityBaseline::new(
        &labels_of(&train_rows),
        &labels_of(&valid_rows),
        &labels_of(&splits.test),
        cohort.classes.len(),
    );
    let test_baselines = if splits.test.is_empty() {
        Vec::new()
    } else {
        stages.run("baselines", || {
            let seen: Vec<usize> = train_rows.iter().chain(&valid_rows).copied().collect();
            test_baselines(config, &cohort, &fitted.values, &seen, &splits.test)
        })?
    };

    // The manifest records the stages before writing; the write itself is timed in the summary.
    let stage_seconds: BTreeMap<String, f64> = stages.times.iter().cloned().collect();
    let run_dir = stages.run("write", || {
        let mut run = RunDir::create(&config.run_dir())?;
        run.put(run::LAYOUT, &layout.save_json()?)?;
        run.put(run::MODEL, &trained.record)?;
        run.put(run::MODEL_CONFIG, &serde_json::to_vec_pretty(&resnet)?)?;
        run.put(
            run::TRAINING_CURVES,
            &png_bytes(&render::curves::draw(&trained.history, trained.best_epoch)?)?,
        )?;

        let modality_of: Vec<usize> = space
            .modalities
            .iter()
            .enumerate()
            .flat_map(|(i, m)| std::iter::repeat_n(i, m.features.len()))
            .collect();
        run.put(
            run::FEATURE_MAP,
            &png_bytes(&render::feature_map::draw(
                layout,
                &modality_of,
                &space
                    .modalities
                    .iter()
                    .map(|m| m.name.clone())
                    .collect::<Vec<_>>(),
            )?)?,
        )?;
        let mut table = mapping::mapping_table(layout, space)?;
        run.put(run::MAPPING_PARQUET, &mapping::parquet_bytes(&mut table)?)?;
        run.put(run::MAPPING_CSV, &mapping::csv_bytes(&mut table)?)?;
        if let Some(mut summary) = mapping::pathway_summary(layout, space)? {
            run.put(run::PATHWAY_SUMMARY, &mapping::csv_bytes(&mut summary)?)?;
        }
        let block_label = |b: usize| {
            let name = &layout.blocks[b].name;
            let kept = space.pathways.as_ref().map_or(0, |s| {
                s.groups
                    .iter()
                    .find(|g| &g.name == name)
                    .map_or(0, |g| g.features.len())
            });
            format!("{} {name} ({kept})", b + 1)
        };
        if let Some(picture) = render::pathway_map::draw(layout, block_label) {
            run.put(run::PATHWAY_MAP, &png_bytes(&picture)?)?;
        }
        run.put(
            run::DENSITY_MAP,
            &png_bytes(&render::pictures::density_map(layout))?,
        )?;
        run.put(
            run::CLASS_IMAGES,
            &png_bytes(&render::pictures::class_images(
                layout,
                &train_images,
                &train_labels,
                &cohort.classes,
                3,
            ))?,
        )?;

        let probabilities = predict_proba(
            &trained.model,
            images,
            shape,
            options.train.batch_size,
            &device,
        );
        let mut split_of = vec!["train"; cohort.sample_ids.len()];
        for &r in &valid_rows {
            split_of[r] = "validation";
        }
        for &r in &splits.test {
            split_of[r] = "test";
        }
        let rows: Vec<PredictionRow> = (0..cohort.sample_ids.len())
            .map(|i| PredictionRow {
                sample_id: &cohort.sample_ids[i],
                split: split_of[i],
                label: &cohort.classes[cohort.labels[i]],
                probabilities: &probabilities[i],
            })
            .collect();
        run.put(
            run::PREDICTIONS,
            &predictions::to_parquet(&rows, &cohort.classes)?,
        )?;

        let mut inputs = Vec::new();
        for (role, path) in config.data.modalities.iter().chain(std::iter::once((
            &"labels".to_string(),
            &config.data.labels,
        ))) {
            inputs.push(InputFile {
                role: role.clone(),
                path: path.clone(),
                sha256: artefact::sha256_file(path)?,
            });
        }
        let manifest = Manifest {
            format: run::FORMAT,
            tool: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            config: config.clone(),
            inputs,
            samples: SampleCounts {
                aligned: cohort.sample_ids.len(),
                train: train_rows.len(),
                validation: valid_rows.len(),
                test: splits.test.len(),
                dropped: cohort.dropped.clone(),
                per_class: ClassCount::tally(
                    &cohort.classes,
                    &cohort.labels,
                    (&train_rows, &valid_rows, &splits.test),
                ),
            },
            classes: cohort.classes.clone(),
            features: space
                .feature_list()
                .into_iter()
                .map(|(modality, name)| FeatureEntry { modality, name })
                .collect(),
            feature_space: space.clone(),
            layout_file: run::LAYOUT.into(),
            layout: layout.report(),
            model: ModelSummary {
                architecture: "resnet18".into(),
                record: run::MODEL.into(),
                config_file: run::MODEL_CONFIG.into(),
                parameters: trained.model.num_params(),
                best_epoch: trained.best_epoch,
                history: trained.history.clone(),
                stopped_early: trained.stopped_early,
                resumed_from: trained.resumed_from,
                pretrained: trained.pretrained.clone(),
            },
            metrics: trained.metrics.clone(),
            test_metrics: test_metrics.clone(),
            baseline: Some(baseline.clone()),
            test_baselines: test_baselines.clone(),
            stage_seconds,
            files: run.files().clone(),
        };
        let page = report::run_page(&manifest, &|name| run.read(name))?;
        run.put(report::FILE, page.as_bytes())?;
        run.commit(manifest)
    })?;
    // The run is in place: the checkpoint has served its purpose.
    let checkpoint = checkpoint_dir(config);
    if checkpoint.exists() {
        std::fs::remove_dir_all(&checkpoint)
            .with_context(|| format!("cannot remove the checkpoint {}", checkpoint.display()))?;
    }

    Ok(RunSummary {
        run_dir,
        stages: stages.times,
        samples: cohort.sample_ids.len(),
        train: train_rows.len(),
        validation: valid_rows.len(),
        test: splits.test.len(),
        dropped: cohort.dropped,
        features: space.n_features(),
        classes: cohort.classes,
        best_epoch: trained.best_epoch,
        metrics: trained.metrics.clone(),
        test_metrics,
        baseline,
        test_baselines,
        epochs_run: trained.history.len(),
        stopped_early: trained.stopped_early,
        resumed_from: trained.resumed_from,
        layout: layout.report(),
        pathways: space.pathways.clone(),
    })
}

/// The learned baselines of `[evaluate] baselines` (the majority class has its own line),
/// fitted on the `seen` rows' fitted features and scored on the `test` rows.
fn test_baselines(
    config: &PipelineConfig,
    cohort: &Cohort,
    values: &Array2<f32>,
    seen: &[usize],
    test: &[usize],
) -> Result<Vec<(Baseline, Metrics)>> {
    let labels: Vec<usize> = seen.iter().map(|&r| cohort.labels[r]).collect();
    let truth: Vec<usize> = test.iter().map(|&r| cohort.labels[r]).collect();
    let (train, held_out) = (values.select(Axis(0), seen), values.select(Axis(0), test));
    let n = cohort.classes.len();
    let mut out = Vec::new();
    for &b in config
        .evaluate
        .baselines
        .iter()
        .filter(|&&b| b != Baseline::Majority)
    {
        let p = crossval::baselines::fit_predict(
            b,
            &config.evaluate,
            train.view(),
            &labels,
            held_out.view(),
            n,
            config.seed,
        )?;
        out.push((b, Metrics::from_probabilities(&truth, &p, n)));
    }
    Ok(out)
}

/// The training options of a pipeline file.
fn train_options(config: &PipelineConfig, run: &RunOptions) -> TrainOptions {
    TrainOptions {
        checkpoint: Some(checkpoint_dir(config)),
        resume: run.resume,
        stop_after: run.stop_after,
        ..TrainOptions::new(config.train.clone(), config.model.clone(), config.seed)
    }
}
