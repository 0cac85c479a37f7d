//! `deepinsight bench <stage>`: time a stage at the sizes users meet and print a table.

use std::path::PathBuf;

use crate::bench;
use crate::bench::load::Generator;
use crate::bench::serve::{Route, ServeBench};
use crate::serve::backend::BackendKind;
use anyhow::Result;
use clap::Subcommand;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    stage: Stage,
}

/// Flags every benchmark takes.
#[derive(clap::Args)]
struct Common {
    /// Small sizes, for a quick check that everything runs.
    #[arg(long)]
    quick: bool,
}

#[derive(Subcommand)]
enum Stage {
    /// PCA and t-SNE fits at the sizes of real cohorts, beside pyDeepInsight's times.
    Layout {
        #[command(flatten)]
        common: Common,
        /// Only the cases whose name contains this text, e.g. "tsne" or "assign".
        #[arg(long)]
        only: Option<String>,
    },
    /// Batch scoring of 10,000 and 100,000 synthetic samples (--quick: 1,000 and 2,000).
    Score {
        #[command(flatten)]
        common: Common,
    },
    /// ResNet18 training and inference images/s at 64x64 and 224x224, batch 1, 8 and 32
    /// (--quick: 32x32, batch 2 and 4), against PyTorch with --pytorch.
    Model {
        #[command(flatten)]
        common: Common,
        /// One image size ("64" or "224").
        #[arg(long)]
        only: Option<String>,
        /// CPU threads for Burn and PyTorch alike.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// A Python with torch and torchvision, to time the same cases in PyTorch
        /// (scripts/torch-venv.sh makes one).
        #[arg(long)]
        pytorch: Option<PathBuf>,
        /// The Burn device, as model.device in a pipeline file ("cpu", "libtorch" with
        /// `--features tch`).
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Also time Burn's own convolutions and BatchNorms (the path before model/conv's and
        /// model/norm's kernels) in the same run, as a column.
        #[arg(long)]
        burn_ops: bool,
    },
    /// ResNet18's convolutions one layer shape at a time (forward, input and weight gradient)
    /// on model/conv's kernels and on Flex's own ops, in ms per call; against PyTorch with
    /// --pytorch (--quick: 32x32, batch 2).
    Ops {
        #[command(flatten)]
        common: Common,
        /// Input image side.
        #[arg(long, default_value_t = 64)]
        size: usize,
        #[arg(long, default_value_t = 32)]
        batch: usize,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// A Python with torch, to time the same ops in PyTorch (scripts/torch-venv.sh
        /// makes one).
        #[arg(long)]
        pytorch: Option<PathBuf>,
    },
    /// One real cohort end to end (layout, then ResNet18 trained with validation every
    /// epoch: 64x64, width 64, 20 epochs, batch 16), against pyDeepInsight + torchvision on
    /// the same split with --pytorch (--quick: 32x32, width 8, 2 epochs).
    Train {
        #[command(flatten)]
        common: Common,
        /// A cohort folder in the tool's input layout (labels.parquet and one table per
        /// modality).
        #[arg(long, default_value = "../shared/datasets/tcga-kipan")]
        cohort: PathBuf,
        /// Epochs (default: 20, or 2 with --quick).
        #[arg(long)]
        epochs: Option<usize>,
        /// CPU threads for Burn and PyTorch alike.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// A Python with torch, torchvision and pyDeepInsight, to run the Python pipeline on
        /// the same split (scripts/torch-venv.sh makes one).
        #[arg(long)]
        pytorch: Option<PathBuf>,
    },
    /// `evaluate` on each cohort's pipeline as written and with each --lever on top: the
    /// CNN's macro-F1 over the folds, paired against the pipeline as written and against the
    /// best baseline (docs/accuracy.md).
    Accuracy {
        /// Pipeline files, one per cohort (default: the cohorts of ../shared/datasets).
        #[arg(default_values = ["pipelines/gse7390.toml", "pipelines/nutrimouse.toml", "pipelines/tcga-kipan.toml"])]
        pipelines: Vec<PathBuf>,
        /// A lever: NAME:KEY=VALUE[,KEY=VALUE...] with the pipeline file's dotted keys, e.g.
        /// `ema:train.ema_epochs=2` (repeatable; each is one more row per cohort).
        #[arg(long, value_parser = bench::accuracy::Lever::parse)]
        lever: Vec<bench::accuracy::Lever>,
        /// Where the evaluations are kept (`<pipeline>-<lever>-evaluation/`); a finished one
        /// with the same settings and data is read back instead of computed again.
        #[arg(long, default_value = "models/accuracy")]
        out: PathBuf,
    },
    /// ONNX Runtime latency of a run's exported ONNX forms, fp32, fp16 and INT8, interleaved,
    /// at batch 1 and 32 (needs `deepinsight export --targets server` first).
    Export {
        /// The run folder whose exported ONNX forms are timed.
        #[arg(long)]
        model: PathBuf,
        /// Timed rounds (each form once per round).
        #[arg(long, default_value_t = 30)]
        rounds: usize,
    },
    /// HTTP load with wrk or hey: batching off/on, 1 and 16 clients, 64x64 and 224x224
    /// (--quick: 32x32, a narrow network, 2 s per row; --overload: 5 min at 2x capacity).
    Serve {
        #[command(flatten)]
        common: Common,
        /// One image size ("64" or "224").
        #[arg(long)]
        only: Option<String>,
        /// Add 5 minutes at twice the measured capacity.
        #[arg(long)]
        overload: bool,
        /// What computes predictions (the ONNX ones export each trained model first).
        #[arg(long, value_enum, default_value = "burn")]
        backend: BackendKind,
        /// The server's --max-concurrent-batches (worker threads, the cores shared between
        /// them).
        #[arg(long, default_value_t = 1)]
        concurrent_batches: usize,
        /// The load generator of the table's rows (the overload run always uses hey, which
        /// can hold an offered rate).
        #[arg(long, value_enum, default_value = "wrk")]
        generator: Generator,
        /// The route loaded: raw omics on /predict, or the rendered image as bytes on
        /// KServe v2's infer (the binary data extension).
        #[arg(long, value_enum, default_value = "predict")]
        route: Route,
    },
}

pub fn execute(args: Args) -> Result<()> {
    match args.stage {
        Stage::Layout { common, only } => {
            bench::print(&bench::layout(common.quick, only.as_deref())?);
        }
        Stage::Score { common } => bench::score::print(&bench::score::run(common.quick)?),
        Stage::Model {
            common,
            only,
            threads,
            pytorch,
            device,
            burn_ops,
        } => {
            let mut model = bench::model::ModelBench::new(common.quick, threads);
            if let Some(size) = only {
                model.sizes.retain(|s| s.to_string() == size);
            }
            model.pytorch = pytorch;
            model.burn_ops = burn_ops;
            model.device = crate::model::device(&device)?;
            model.device_name = device;
            let rows = bench::model::run(&model)?;
            bench::model::print(&rows, threads, &model.device_name);
        }
        Stage::Ops {
            common,
            size,
            batch,
            threads,
            pytorch,
        } => {
            let ops = bench::ops::OpsBench {
                size: if common.quick { 32 } else { size },
                batch: if common.quick { 2 } else { batch },
                threads,
                min_seconds: if common.quick { 0.05 } else { 0.5 },
                pytorch,
            };
            bench::ops::print(&bench::ops::run(&ops)?, &ops);
        }
        Stage::Train {
            common,
            cohort,
            epochs,
            threads,
            pytorch,
        } => {
            let mut train = bench::train::TrainBench::new(cohort, common.quick);
            train.epochs = epochs.unwrap_or(train.epochs);
            train.threads = threads;
            train.pytorch = pytorch;
            bench::train::print(&bench::train::run(&train)?, &train);
        }
        Stage::Accuracy {
            pipelines,
            lever,
            out,
        } => {
            // Hours of evaluations: their progress lines come before the table.
            crate::progress::enable();
            let bench = bench::accuracy::AccuracyBench {
                pipelines,
                levers: lever,
                out,
            };
            bench::accuracy::print(&bench::accuracy::run(&bench)?);
        }
        Stage::Export { model, rounds } => {
            bench::export::print(&bench::export::run(&model, rounds)?, rounds);
        }
        Stage::Serve {
            common,
            only,
            overload,
            backend,
            concurrent_batches,
            generator,
            route,
        } => {
            let report = bench::serve::run(&ServeBench {
                quick: common.quick,
                overload,
                only,
                backend,
                concurrent_batches,
                generator,
                route,
            })?;
            bench::serve::print(&report);
        }
    }
    Ok(())
}
