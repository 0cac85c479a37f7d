//! Runs the stages in order on one pipeline file: load -> select -> layout -> render -> train
//! -> write. Nothing is written until every stage has succeeded.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::module::Module;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::Axis;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::artefact::{self, StagedDir, guard};
use crate::config::ClassWeights;
use crate::config::{Arrange, PipelineConfig};
use crate::layout::{Layout, LayoutReport};
use crate::manifest::{self, FeatureEntry, InputFile, Manifest, ModelSummary, SampleCounts};
use crate::mapping;
use crate::model::metrics::MajorityBaseline;
use crate::model::train::{Augment, ImageSet, TrainOptions, balanced_class_weights, predict_proba};
use crate::model::{self, Metrics, ResNetConfig, split};
use crate::omics::{self, DroppedSample};
use crate::predictions::{self, PredictionRow};
use crate::render;
use crate::render::RenderPlan;
use crate::select::FeatureSpace;

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

/// Times stages and shows a spinner while each runs.
struct Stages {
    times: Vec<(String, f64)>,
}

impl Stages {
    fn run<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let spinner = ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("static template"),
        );
        spinner.set_message(name.to_string());
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
        let started = Instant::now();
        let out = f();
        spinner.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(stage = name, seconds, "stage done");
        crate::progress::line(format_args!("stage {name}: {seconds:.2} s"));
        self.times.push((name.to_string(), seconds));
        out
    }
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
fn configure_threads(threads: usize) {
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
    guard::check_folder("the run folder", &config.run_dir(), manifest::FILE, &inputs)?;
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
    let (space, values) = stages.run("select", || {
        let space = FeatureSpace::fit(&cohort, &train_rows, config)?;
        let values = space.transform(&cohort)?;
        Ok((space, values))
    })?;
    // The training samples' values: the layout is fitted on them, and noise augmentation
    // renders from them.
    let train_values = values.select(Axis(0), &train_rows);
    let layout = stages.run("layout", || {
        match (config.layout.arrange, space.pathway_blocks()) {
            (Arrange::Pathways, Some(blocks)) => Layout::fit_grouped(
                train_values.view(),
                &space.groups(),
                &space.feature_list(),
                &blocks,
                &config.layout,
                config.seed,
            ),
            _ => Layout::fit(
                train_values.view(),
                &space.groups(),
                &space.feature_list(),
                &config.layout,
                config.seed,
            ),
        }
    })?;
    let images = stages.run("render", || render::render_batch(&layout, values.view()))?;

    let shape = [layout.n_channels(), layout.height, layout.width];
    let resnet =
        ResNetConfig::new(layout.n_channels(), cohort.classes.len()).with_width(config.model.width);
    let pick = |rows: &[usize]| -> (Vec<f32>, Vec<usize>) {
        let len = layout.image_len();
        let mut out = Vec::with_capacity(rows.len() * len);
        for &r in rows {
            out.extend_from_slice(&images[r * len..(r + 1) * len]);
        }
        (out, rows.iter().map(|&r| cohort.labels[r]).collect())
    };
    let (train_images, train_labels) = pick(&train_rows);
    let (valid_images, valid_labels) = pick(&valid_rows);
    let (test_images, test_labels) = pick(&splits.test);
    let options = train_options(config, &train_labels, cohort.classes.len(), run_options);
    let plan = RenderPlan::new(&layout);
    let noise = config.train.feature_noise as f32;
    let normal = Normal::new(0.0f32, noise).context("train.feature_noise")?;
    let noisy = |rows: &[usize], rng: &mut ChaCha8Rng| -> Result<Vec<f32>> {
        let mut batch = train_values.select(Axis(0), rows);
        // Normalised values lie in [0, 1] on the training samples; noise keeps them there.
        batch.mapv_inplace(|v| (v + normal.sample(rng)).clamp(0.0, 1.0));
        plan.render_batch(batch.view())
    };
    let trained = stages.run("train", || {
        model::train::train(
            &resnet,
            ImageSet {
                images: &train_images,
                labels: &train_labels,
                shape,
            },
            ImageSet {
                images: &valid_images,
                labels: &valid_labels,
                shape,
            },
            &options,
            (noise > 0.0).then_some(&noisy as Augment),
            &device,
        )
    })?;
    if !trained.complete {
        return Err(StoppedAsAsked {
            epoch: trained.history.last().map_or(0, |s| s.epoch),
            checkpoint: checkpoint_dir(config),
        }
        .into());
    }
    let test_metrics = (!splits.test.is_empty()).then(|| {
        let set = ImageSet {
            images: &test_images,
            labels: &test_labels,
            shape,
        };
        model::train::evaluate(&trained.model, set, options.batch_size, &device).metrics
    });

    let labels_of =
        |rows: &[usize]| -> Vec<usize> { rows.iter().map(|&r| cohort.labels[r]).collect() };
    let baseline = MajorityBaseline::new(
        &labels_of(&train_rows),
        &labels_of(&valid_rows),
        &labels_of(&splits.test),
        cohort.classes.len(),
    );

    // The manifest records the stages before writing; the write itself is timed in the summary.
    let stage_seconds: BTreeMap<String, f64> = stages.times.iter().cloned().collect();
    let run_dir = stages.run("write", || {
        let staged = StagedDir::new(&config.run_dir())?;
        let mut files = BTreeMap::new();
        let mut put = |name: &str, bytes: &[u8]| -> Result<()> {
            staged.write(name, bytes)?;
            files.insert(name.to_string(), artefact::sha256_hex(bytes));
            Ok(())
        };
        put("layout.json", &layout.save_json()?)?;
        put("model.bpk", &trained.record)?;
        put("model-config.json", &serde_json::to_vec_pretty(&resnet)?)?;
        put(
            "training.png",
            &png_bytes(&render::curves::draw(&trained.history, trained.best_epoch))?,
        )?;

        let modality_of: Vec<usize> = space
            .modalities
            .iter()
            .enumerate()
            .flat_map(|(i, m)| std::iter::repeat_n(i, m.features.len()))
            .collect();
        put(
            "feature_map.png",
            &png_bytes(&render::feature_map::draw(&layout, &modality_of))?,
        )?;
        let mut table = mapping::mapping_table(&layout, &space)?;
        put("mapping.parquet", &mapping::parquet_bytes(&mut table)?)?;
        put("mapping.csv", &mapping::csv_bytes(&mut table)?)?;
        if let Some(mut summary) = mapping::pathway_summary(&layout, &space)? {
            put("pathway_summary.csv", &mapping::csv_bytes(&mut summary)?)?;
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
        if let Some(picture) = render::pathway_map::draw(&layout, block_label) {
            put("pathway_map.png", &png_bytes(&picture)?)?;
        }
        put(
            "density_map.png",
            &png_bytes(&render::pictures::density_map(&layout))?,
        )?;
        put(
            "class_images.png",
            &png_bytes(&render::pictures::class_images(
                &layout,
                &train_images,
                &train_labels,
                &cohort.classes,
                3,
            ))?,
        )?;

        let probabilities =
            predict_proba(&trained.model, &images, shape, options.batch_size, &device);
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
        put(
            predictions::FILE,
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
            },
            classes: cohort.classes.clone(),
            features: space
                .feature_list()
                .into_iter()
                .map(|(modality, name)| FeatureEntry { modality, name })
                .collect(),
            feature_space: space.clone(),
            layout_file: "layout.json".into(),
            layout: layout.report(),
            model: ModelSummary {
                architecture: "resnet18".into(),
                record: "model.bpk".into(),
                config_file: "model-config.json".into(),
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
            stage_seconds,
            files: files.clone(),
        };
        staged.write(manifest::FILE, &serde_json::to_vec_pretty(&manifest)?)?;
        staged
            .commit()
            .context("cannot move the finished run into place")
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
        metrics: trained.metrics,
        test_metrics,
        baseline,
        epochs_run: trained.history.len(),
        stopped_early: trained.stopped_early,
        resumed_from: trained.resumed_from,
        layout: layout.report(),
        pathways: space.pathways,
    })
}

/// The training options of a pipeline file.
fn train_options(
    config: &PipelineConfig,
    train_labels: &[usize],
    n_classes: usize,
    run: &RunOptions,
) -> TrainOptions {
    let t = &config.train;
    let m = &config.model;
    TrainOptions {
        epochs: t.epochs,
        batch_size: t.batch_size,
        learning_rate: t.learning_rate,
        seed: config.seed,
        optimizer: t.optimizer,
        weight_decay: t.weight_decay,
        schedule: t.schedule,
        warmup_epochs: t.warmup_epochs,
        step_epochs: t.step_epochs,
        step_gamma: t.step_gamma,
        label_smoothing: t.label_smoothing,
        class_weights: (t.class_weights == ClassWeights::Balanced)
            .then(|| balanced_class_weights(train_labels, n_classes)),
        monitor: t.monitor,
        patience: t.early_stopping_patience,
        pretrained: m.pretrained.clone(),
        freeze_backbone_epochs: m.freeze_backbone_epochs,
        backbone_lr_factor: m.backbone_lr_factor,
        checkpoint: Some(checkpoint_dir(config)),
        resume: run.resume,
        stop_after: run.stop_after,
    }
}
