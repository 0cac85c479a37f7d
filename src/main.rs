use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use deepinsight::PipelineConfig;
use deepinsight::pipeline::{self, RunSummary};
use deepinsight::serve::{ModelSpec, ServeConfig, Server};
use deepinsight::synth::{self, SynthSpec};

/// Multi-omics tables to images to a CNN, after the DeepInsight method.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every stage of a pipeline file and write the run to <output_dir>/<name>/
    /// (the same as `train` without its options).
    Run {
        /// Pipeline file (TOML), e.g. pipelines/demo.toml.
        pipeline: PathBuf,
    },
    /// Train a pipeline: every stage of `run`, with training overrides, fine-tuning from
    /// torchvision weights, and resuming from the checkpoint an interrupted run left in
    /// <output_dir>/.<name>.checkpoint/.
    Train {
        /// Pipeline file (TOML), e.g. pipelines/demo.toml.
        pipeline: PathBuf,
        /// Continue an interrupted run from its checkpoint (same data and options).
        #[arg(long)]
        resume: bool,
        /// Stop after this epoch, keeping the checkpoint (for time-limited jobs); `--resume`
        /// continues.
        #[arg(long)]
        stop_after: Option<usize>,
        /// Override train.epochs.
        #[arg(long)]
        epochs: Option<usize>,
        /// Override train.batch_size.
        #[arg(long)]
        batch_size: Option<usize>,
        /// Override train.threads (CPU threads; 0 = all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Override model.pretrained: torchvision ResNet18 weights (.pth/.pt/.safetensors).
        #[arg(long)]
        pretrained: Option<PathBuf>,
    },
    /// Predict a cohort that fits in memory with a trained run: one table per modality
    /// (Parquet, CSV or TSV), predictions out as Parquet or CSV; with --labels, metrics too.
    Predict {
        /// Run folder written by `deepinsight run`/`train`, e.g. models/demo.
        #[arg(long)]
        model: PathBuf,
        /// MODALITY=FILE, once per modality of the model (repeatable).
        #[arg(long = "input", value_parser = parse_input, required = true)]
        inputs: Vec<(String, String)>,
        /// True classes (the training run's sample-id and label columns) to report metrics.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Output file: .parquet or .csv.
        #[arg(long)]
        output: PathBuf,
        /// Images per forward pass.
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
    },
    /// Which features (and pathways) drive the model's predictions: class activation maps
    /// (Grad-CAM or saliency) taken back through the layout to a ranked feature table, pictures,
    /// and optionally DeepFeature's refit on the best features.
    Explain {
        /// Run folder written by `deepinsight run`/`train`, e.g. models/demo.
        #[arg(long)]
        model: PathBuf,
        /// train, validation, test or all (of the run's samples, or of --input tables), or
        /// comma-separated sample ids.
        #[arg(long, default_value = "train")]
        samples: deepinsight::explain::Samples,
        /// A new cohort instead of the run's own tables: MODALITY=FILE, once per modality.
        #[arg(long = "input", value_parser = parse_input)]
        inputs: Vec<(String, String)>,
        /// True classes of the --input samples (optional).
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Output folder (replaced as a whole).
        #[arg(long)]
        out: PathBuf,
        /// saliency (|gradient| per pixel and channel, exact per feature), gradcam or hirescam
        /// (on a residual stage, region-level).
        #[arg(long, value_enum, default_value = "saliency")]
        method: deepinsight::explain::cam::Method,
        /// Grad-CAM's residual stage, 1 to 4 (4 = the last convolutional stage; lower stages
        /// give finer maps).
        #[arg(long, default_value_t = 4)]
        stage: usize,
        /// Class each map explains: label (true class, else predicted), predicted, or a class name.
        #[arg(long, default_value = "label")]
        target: deepinsight::explain::Target,
        /// Features whose score divided by the best score reaches this are `selected`.
        #[arg(long, default_value_t = 0.5)]
        threshold: f32,
        /// Features named on top_features.png.
        #[arg(long, default_value_t = 20)]
        top: usize,
        /// Gene sets (GMT) to report pathways from, when the run did not select by pathway.
        #[arg(long)]
        gmt: Option<PathBuf>,
        /// Match --gmt members to feature names ignoring case.
        #[arg(long)]
        case_insensitive: bool,
        #[arg(long, default_value_t = 16)]
        batch_size: usize,
        /// DeepFeature's loop: keep the best features, fit the layout and train again, and
        /// report validation accuracy before and after (refit_report.json).
        #[arg(long)]
        refit: bool,
        /// With --refit: keep the best N features (default: the `selected` ones).
        #[arg(long)]
        keep_top: Option<usize>,
        /// With --refit: rounds of explain, keep, refit.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
    },
    /// Write a starter pipeline file for your own tables into DIR/pipeline.toml: modalities
    /// from --input, feature counts read from the files, the image size fitted to them, the
    /// sample-id and label columns checked, every key commented.
    Init {
        /// Folder for pipeline.toml (created if needed); runs go to DIR/models.
        dir: PathBuf,
        /// The table with each sample's class.
        #[arg(long)]
        label_table: PathBuf,
        /// MODALITY=FILE, once per modality (Parquet, CSV or TSV).
        #[arg(long = "input", value_parser = parse_input, required = true)]
        inputs: Vec<(String, String)>,
        #[arg(long, default_value = "sample_id")]
        sample_id_column: String,
        #[arg(long, default_value = "label")]
        label_column: String,
    },
    /// Generate the synthetic multi-omics cohort (exactly reproducible from the seed).
    Synth {
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Samples to generate (the bundled cohort has 300).
        #[arg(long, default_value_t = 300)]
        samples: usize,
        #[arg(long, default_value = "data")]
        out: PathBuf,
        /// Write a second cohort of --samples new patients from the study of --seed (the
        /// bundled 300-sample study for seed 7): same features, pathways and class signal, new
        /// samples drawn from this seed, ids N0001....
        #[arg(long)]
        new_cohort: Option<u64>,
    },
    /// Score Parquet datasets with a trained run: streamed, joined on sample id in bounded
    /// memory, sharded and resumable. Writes sample_id, predicted, prob_<class>, reason and
    /// model_sha256.
    Score {
        /// Run folder written by `deepinsight run`, e.g. models/demo.
        #[arg(long)]
        model: PathBuf,
        /// MODALITY=FILE_OR_GLOB, once per modality of the model (repeatable), e.g.
        /// --input genomics='data/genomics-*.parquet'.
        #[arg(long = "input", value_parser = parse_input, required = true)]
        inputs: Vec<(String, String)>,
        /// Output Parquet file; written under a temporary name and renamed when complete.
        #[arg(long)]
        output: PathBuf,
        /// Score only shard K of N (0-based: K/N with 0 <= K < N), chosen by a hash of the
        /// sample id: the shards of a job are disjoint and together cover every sample.
        #[arg(long, default_value = "0/1")]
        shard: deepinsight::score::Shard,
        /// Keep the finished parts of an interrupted run of the same job; do nothing if the
        /// output is already complete.
        #[arg(long)]
        resume: bool,
        /// Missing values (null, NaN, absent column): impute (training medians), skip or fail.
        #[arg(long, default_value = "impute")]
        missing_values: deepinsight::score::Policy,
        /// Samples absent from some modality's input: skip (as training does), impute or fail.
        #[arg(long, default_value = "skip")]
        missing_samples: deepinsight::score::Policy,
        /// Target rows per bucket: bounds the memory of the join and scoring step.
        #[arg(long, default_value_t = 16384)]
        bucket_rows: usize,
        /// Images per forward pass.
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        /// Score at most N parts, then stop; `--resume` continues (for time-limited jobs).
        #[arg(long)]
        max_parts: Option<usize>,
    },
    /// Export a trained run's network to other forms, each checked against fp32 on the run's
    /// validation samples, and write export_report.json (size, accuracy, agreement, latency).
    Export {
        /// Run folder written by `deepinsight run`, e.g. models/demo.
        #[arg(long)]
        model: PathBuf,
        /// Where the model goes (comma-separated): batch (Burn INT8 record), server
        /// (ONNX fp32/fp16/INT8 QDQ for ONNX Runtime and TensorRT, and tensorrt/ with the
        /// engine build plan), mobile (model.mlpackage for Core ML).
        #[arg(long, value_delimiter = ',', required = true)]
        targets: Vec<deepinsight::export::Target>,
        /// A form whose predicted class agrees with fp32 on fewer of the checked samples
        /// (validation, and training samples calibration does not use) than this share is not
        /// written, and the command exits non-zero after writing the others.
        #[arg(long, default_value_t = 0.99, value_parser = parse_share)]
        min_agreement: f64,
        /// Training images the ONNX INT8 activation ranges are calibrated on, at most.
        #[arg(long, default_value_t = 256)]
        calibration_samples: usize,
        /// How ONNX INT8 activation ranges are calibrated.
        #[arg(long, value_enum, default_value = "percentile")]
        calibration: deepinsight::export::onnx_int8::Calibration,
        /// The serving batcher's max batch size: the TensorRT profile's max (default 32).
        #[arg(long)]
        max_batch_size: Option<usize>,
        /// The serving batcher's preferred batch sizes: the largest is the profile's opt.
        #[arg(long, value_delimiter = ',')]
        preferred_batch_sizes: Option<Vec<usize>>,
        /// Build the TensorRT engines now, with trtexec from PATH (needs an NVIDIA GPU).
        #[arg(long)]
        build: bool,
        /// Store the Core ML package's convolution and linear weights in 8 bits (mobile).
        #[arg(long)]
        coreml_8bit: bool,
        /// How model-int8.bpk's weights are quantised (batch): block (stage convolutions with
        /// a scale per block of input channels, stem and head in fp32), tensor-inner (one
        /// scale per tensor, stem and head in fp32) or tensor (every weight, one scale each).
        #[arg(long, value_enum, default_value = "block")]
        int8_scheme: deepinsight::export::int8::Int8Scheme,
    },
    /// Serve trained runs over HTTP: KServe v2 (/v2/...), raw omics (/predict), the
    /// optimisation API, /metrics and /openapi.json, each model behind a dynamic batcher.
    /// SIGTERM or Ctrl-C stops accepting, answers what is queued, and exits 0.
    Serve {
        /// DIR or NAME=DIR of a run folder (repeatable); the name defaults to the folder's.
        #[arg(long = "model")]
        models: Vec<String>,
        /// A serve file (TOML: addr, max_body_bytes, [batching], [[model]] name/dir/batching);
        /// --model entries are added to its models.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on (port 0 picks a free one). Default 127.0.0.1:8080.
        #[arg(long)]
        addr: Option<String>,
        /// Request bodies larger than this are refused with 413.
        #[arg(long)]
        max_body_bytes: Option<usize>,
        /// Most samples per batch (1 turns batching off).
        #[arg(long)]
        max_batch_size: Option<usize>,
        /// Longest a request waits for companions, from its arrival.
        #[arg(long)]
        max_queue_delay_ms: Option<u64>,
        /// Batch sizes that leave at once, e.g. 8,16.
        #[arg(long, value_delimiter = ',')]
        preferred_batch_sizes: Option<Vec<usize>>,
        /// Most samples waiting; beyond it requests get 503 with Retry-After.
        #[arg(long)]
        queue_capacity: Option<usize>,
        /// Batches computed at once, one worker thread each.
        #[arg(long)]
        max_concurrent_batches: Option<usize>,
        /// Priority levels (1 = most urgent; requests default to the last).
        #[arg(long)]
        priority_levels: Option<u8>,
        /// Deadline of requests that set none; past it the answer is 504.
        #[arg(long)]
        request_timeout_ms: Option<u64>,
        /// What computes predictions: burn (model.bpk, default), onnx (ONNX Runtime on
        /// model.onnx) or onnx-int8 (ONNX Runtime on model-int8.onnx, the fastest on CPU); the
        /// ONNX ones need `deepinsight export --targets server` first.
        #[arg(long, value_enum)]
        backend: Option<deepinsight::serve::backend::BackendKind>,
        /// A request's headers must arrive within this, and an idle keep-alive connection is
        /// closed after it (default 30000).
        #[arg(long)]
        header_timeout_ms: Option<u64>,
        /// A request's body must arrive within this, else 408 (default 60000).
        #[arg(long)]
        body_timeout_ms: Option<u64>,
        /// Open connections at most; more wait until one closes (default 1024).
        #[arg(long)]
        max_connections: Option<usize>,
    },
    /// Time a stage at the sizes users meet and print a table (targets, pyDeepInsight times).
    Bench {
        #[arg(value_enum)]
        stage: BenchStage,
        /// Small sizes, for a quick check that everything runs.
        #[arg(long)]
        quick: bool,
        /// Only the cases whose name contains this text, e.g. "tsne" or "assign"; for serve
        /// and model, one image size ("64" or "224").
        #[arg(long)]
        only: Option<String>,
        /// serve: add 5 minutes at twice the measured capacity.
        #[arg(long)]
        overload: bool,
        /// model: CPU threads for Burn and PyTorch alike.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// model: a Python with torch and torchvision, to time the same cases in PyTorch
        /// (scripts/bench-vs-pytorch.sh makes one).
        #[arg(long)]
        pytorch: Option<PathBuf>,
        /// model: the Burn device, as model.device in a pipeline file ("cpu", "libtorch" with
        /// `--features tch`).
        #[arg(long, default_value = "cpu")]
        device: String,
        /// export: the run folder whose exported ONNX forms are timed.
        #[arg(long)]
        model: Option<PathBuf>,
        /// export: timed rounds (each form once per round).
        #[arg(long, default_value_t = 30)]
        rounds: usize,
        /// serve: what computes predictions (the ONNX ones export each trained model first).
        #[arg(long, value_enum, default_value = "burn")]
        backend: deepinsight::serve::backend::BackendKind,
        /// serve: the server's --max-concurrent-batches (worker threads, the cores shared
        /// between them).
        #[arg(long, default_value_t = 1)]
        concurrent_batches: usize,
        /// serve: the load generator of the table's rows (the overload run always uses hey,
        /// which can hold an offered rate).
        #[arg(long, value_enum, default_value = "wrk")]
        generator: deepinsight::bench::load::Generator,
        /// serve: the route loaded: raw omics on /predict, or the rendered image as bytes on
        /// KServe v2's infer (the binary data extension).
        #[arg(long, value_enum, default_value = "predict")]
        route: deepinsight::bench::serve::Route,
    },
}

fn parse_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "'{s}': expected a share between 0 and 1, e.g. 0.99"
        )),
    }
}

fn parse_input(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((m, p)) if !m.is_empty() && !p.is_empty() => Ok((m.to_string(), p.to_string())),
        _ => Err(format!(
            "'{s}': expected MODALITY=FILE_OR_GLOB, e.g. genomics=data/genomics.parquet"
        )),
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BenchStage {
    Layout,
    /// Batch scoring of 10,000 and 100,000 synthetic samples (--quick: 1,000 and 2,000).
    Score,
    /// ResNet18 training and inference images/s at 64x64 and 224x224, batch 1, 8 and 32
    /// (--quick: 32x32, batch 2 and 4), against PyTorch with --pytorch.
    Model,
    /// ONNX Runtime latency of a run's exported ONNX forms, fp32, fp16 and INT8, interleaved,
    /// at batch 1 and 32 (needs --model and `deepinsight export --targets server` first).
    Export,
    /// HTTP load with `hey`: batching off/on, 1 and 16 clients, 64x64 and 224x224
    /// (--quick: 32x32, a narrow network, 2 s per row; --overload: 5 min at 2x capacity).
    Serve,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<pipeline::StoppedAsAsked>().is_some() => {
            deepinsight::outln!("{e}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn execute(command: Command) -> Result<()> {
    // Long work prints a line per epoch, stage, part or batch when stdout is not a terminal;
    // the benchmarks' stdout is their table.
    if !matches!(command, Command::Bench { .. } | Command::Serve { .. }) {
        deepinsight::progress::enable();
    }
    match command {
        Command::Run { pipeline } => {
            let config = PipelineConfig::from_file(&pipeline)?;
            let options = pipeline::RunOptions {
                also_read: vec![pipeline.clone()],
                ..Default::default()
            };
            let summary = pipeline::run_with(&config, &options)?;
            print_summary(&summary);
        }
        Command::Train {
            pipeline,
            resume,
            stop_after,
            epochs,
            batch_size,
            threads,
            pretrained,
        } => {
            let mut config = PipelineConfig::from_file(&pipeline)?;
            set(&mut config.train.epochs, epochs);
            set(&mut config.train.batch_size, batch_size);
            set(&mut config.train.threads, threads);
            if pretrained.is_some() {
                config.model.pretrained = pretrained;
            }
            // Overrides go through the same checks as the file.
            config.validate().with_context(|| {
                format!("{} with the command-line overrides", pipeline.display())
            })?;
            let options = pipeline::RunOptions {
                resume,
                stop_after,
                also_read: vec![pipeline.clone()],
            };
            print_summary(&pipeline::run_with(&config, &options)?);
        }
        Command::Predict {
            model,
            inputs,
            labels,
            output,
            batch_size,
        } => {
            let options = deepinsight::score::predict::PredictOptions {
                model,
                inputs: inputs
                    .into_iter()
                    .map(|(m, p)| (m, PathBuf::from(p)))
                    .collect(),
                labels,
                output,
                batch_size,
            };
            let s = deepinsight::score::predict::run(&options)?;
            deepinsight::outln!("{} samples predicted -> {}", s.samples, s.output.display());
            for d in &s.dropped {
                deepinsight::outln!(
                    "  dropped {}: missing from {}",
                    d.sample_id,
                    d.missing_from.join(", ")
                );
            }
            if let Some(m) = &s.metrics {
                print_metrics("labelled samples", m);
            }
        }
        Command::Explain {
            model,
            samples,
            inputs,
            labels,
            out,
            method,
            stage,
            target,
            threshold,
            top,
            gmt,
            case_insensitive,
            batch_size,
            refit,
            keep_top,
            rounds,
        } => {
            use deepinsight::explain::{self, refit as deepfeature};
            let options = explain::ExplainOptions {
                model,
                samples,
                inputs: inputs
                    .into_iter()
                    .map(|(m, p)| (m, PathBuf::from(p)))
                    .collect(),
                labels,
                out,
                cam: explain::cam::CamOptions {
                    method,
                    stage,
                    batch_size,
                },
                target,
                threshold,
                top,
                gmt,
                case_insensitive,
            };
            if !refit && keep_top.is_some() {
                anyhow::bail!("--keep-top goes with --refit");
            }
            let refit = refit.then(|| deepfeature::RefitOptions {
                keep: keep_top.map_or(deepfeature::Keep::Selected, deepfeature::Keep::Top),
                rounds,
            });
            if let Some(refit) = &refit {
                deepfeature::check(&options, refit)?;
            }
            let e = explain::run(&options)?;
            let r = &e.report;
            deepinsight::outln!(
                "explained {} samples ({:?}, stage {}) -> {}",
                r.samples,
                r.method,
                r.stage,
                e.out.display()
            );
            if let Some(a) = r.accuracy {
                deepinsight::outln!("accuracy on them: {a:.3}");
            }
            deepinsight::outln!(
                "{} of {} features selected (normalised score >= {})",
                r.selected,
                r.features,
                r.threshold
            );
            for (i, (m, f, s)) in r.top.iter().take(10).enumerate() {
                deepinsight::outln!("  {:>2}. {m}:{f}  {s:.3}", i + 1);
            }
            if let Some(refit) = &refit {
                let report = deepfeature::run(&options, &e.features, refit)?;
                let b = &report.before;
                deepinsight::outln!(
                    "before: {} features, validation accuracy {:.3}, macro-F1 {:.3}",
                    b.features,
                    b.accuracy,
                    b.macro_f1
                );
                for (k, s) in report.rounds.iter().enumerate() {
                    deepinsight::outln!(
                        "round {}: {} features, validation accuracy {:.3}, macro-F1 {:.3} ({})",
                        k + 1,
                        s.features,
                        s.accuracy,
                        s.macro_f1,
                        s.run.display()
                    );
                }
            }
        }
        Command::Init {
            dir,
            label_table,
            inputs,
            sample_id_column,
            label_column,
        } => {
            let s = deepinsight::init::run(&deepinsight::init::InitOptions {
                dir,
                labels: label_table,
                inputs: inputs
                    .into_iter()
                    .map(|(m, p)| (m, PathBuf::from(p)))
                    .collect(),
                sample_id_column,
                label_column,
            })?;
            let features: Vec<String> =
                s.features.iter().map(|(m, n)| format!("{m} {n}")).collect();
            let classes: Vec<String> = s.classes.iter().map(|(c, n)| format!("{c} {n}")).collect();
            deepinsight::outln!("wrote {}", s.file.display());
            deepinsight::outln!(
                "{} samples in every table with a label; classes: {}",
                s.samples,
                classes.join(", ")
            );
            deepinsight::outln!(
                "features: {}; images {side}x{side}; test split {}",
                features.join(", "),
                s.test_fraction,
                side = s.image_side
            );
            deepinsight::outln!("next: deepinsight run {}", s.file.display());
        }
        Command::Synth {
            seed,
            samples,
            out,
            new_cohort,
        } => {
            let cohort = match new_cohort {
                Some(cohort_seed) => {
                    synth::generate_new_cohort(&SynthSpec::default(), seed, cohort_seed, samples)
                }
                None => synth::generate(
                    &SynthSpec {
                        samples,
                        ..SynthSpec::default()
                    },
                    seed,
                ),
            };
            for path in synth::write_cohort(&cohort, &out)? {
                deepinsight::outln!("wrote {}", path.display());
            }
            let signal: Vec<&str> = cohort
                .signal_pathways
                .iter()
                .map(|&p| cohort.pathways[p].name.as_str())
                .collect();
            deepinsight::outln!("class signal in: {}", signal.join(", "));
        }
        Command::Score {
            model,
            inputs,
            output,
            shard,
            resume,
            missing_values,
            missing_samples,
            bucket_rows,
            batch_size,
            max_parts,
        } => {
            let options = deepinsight::score::ScoreOptions {
                shard,
                resume,
                missing_values,
                missing_samples,
                bucket_rows,
                batch_size,
                max_parts,
                ..deepinsight::score::ScoreOptions::new(model, inputs, output)
            };
            print_score_summary(&deepinsight::score::run(&options)?);
        }
        Command::Export {
            model,
            targets,
            min_agreement,
            calibration_samples,
            calibration,
            max_batch_size,
            preferred_batch_sizes,
            build,
            coreml_8bit,
            int8_scheme,
        } => {
            let mut options = deepinsight::export::ExportOptions {
                min_agreement,
                calibration_samples,
                calibration,
                build_tensorrt: build,
                coreml_8bit,
                int8_scheme,
                ..deepinsight::export::ExportOptions::new(model, targets)
            };
            set(&mut options.batching.max_batch_size, max_batch_size);
            set(
                &mut options.batching.preferred_batch_sizes,
                preferred_batch_sizes,
            );
            options
                .batching
                .validate()
                .map_err(|e| anyhow::anyhow!(e))?;
            let report = deepinsight::export::run(&options)?;
            print_export_report(&report);
            if !report.rejected.is_empty() {
                let names: Vec<&str> = report.rejected.iter().map(|f| f.format.as_str()).collect();
                anyhow::bail!(
                    "{} form(s) rejected and not written: {}; the others were written (see \
                     export_report.json)",
                    names.len(),
                    names.join(", ")
                );
            }
        }
        Command::Serve {
            models,
            config,
            addr,
            max_body_bytes,
            max_batch_size,
            max_queue_delay_ms,
            preferred_batch_sizes,
            queue_capacity,
            max_concurrent_batches,
            priority_levels,
            request_timeout_ms,
            backend,
            header_timeout_ms,
            body_timeout_ms,
            max_connections,
        } => {
            let mut serve = match config {
                Some(path) => ServeConfig::from_file(&path)?,
                None => ServeConfig::default(),
            };
            set(&mut serve.backend, backend);
            let b = &mut serve.batching;
            set(&mut b.max_batch_size, max_batch_size);
            set(&mut b.max_queue_delay_ms, max_queue_delay_ms);
            set(&mut b.preferred_batch_sizes, preferred_batch_sizes);
            set(&mut b.queue_capacity, queue_capacity);
            set(&mut b.max_concurrent_batches, max_concurrent_batches);
            set(&mut b.priority_levels, priority_levels);
            set(&mut b.request_timeout_ms, request_timeout_ms);
            set(&mut serve.addr, addr);
            set(&mut serve.max_body_bytes, max_body_bytes);
            let c = &mut serve.connections;
            set(&mut c.header_timeout_ms, header_timeout_ms);
            set(&mut c.body_timeout_ms, body_timeout_ms);
            set(&mut c.max_connections, max_connections);
            for m in &models {
                serve.models.push(ModelSpec::parse(m)?);
            }
            serve_until_signal(serve)?;
        }
        Command::Bench {
            stage: BenchStage::Layout,
            quick,
            only,
            ..
        } => {
            let rows = deepinsight::bench::layout(quick, only.as_deref())?;
            deepinsight::bench::print(&rows);
        }
        Command::Bench {
            stage: BenchStage::Export,
            model,
            rounds,
            ..
        } => {
            let Some(model) = model else {
                anyhow::bail!(
                    "bench export needs --model DIR, a run folder exported with --targets server"
                );
            };
            let rows = deepinsight::bench::export::run(&model, rounds)?;
            deepinsight::bench::export::print(&rows, rounds);
        }
        Command::Bench {
            stage: BenchStage::Score,
            quick,
            ..
        } => {
            let rows = deepinsight::bench::score::run(quick)?;
            deepinsight::bench::score::print(&rows);
        }
        Command::Bench {
            stage: BenchStage::Model,
            quick,
            threads,
            pytorch,
            device,
            only,
            ..
        } => {
            let mut bench = deepinsight::bench::model::ModelBench::new(quick, threads);
            if let Some(size) = only {
                bench.sizes.retain(|s| s.to_string() == size);
            }
            bench.pytorch = pytorch;
            bench.device = deepinsight::model::device(&device)?;
            bench.device_name = device;
            let rows = deepinsight::bench::model::run(&bench)?;
            deepinsight::bench::model::print(&rows, threads, &bench.device_name);
        }
        Command::Bench {
            stage: BenchStage::Serve,
            quick,
            overload,
            only,
            backend,
            concurrent_batches,
            generator,
            route,
            ..
        } => {
            let report = deepinsight::bench::serve::run(
                quick,
                overload,
                only.as_deref(),
                backend,
                concurrent_batches,
                generator,
                route,
            )?;
            deepinsight::bench::serve::print(&report);
        }
    }
    Ok(())
}

fn print_export_report(r: &deepinsight::export::ExportReport) {
    deepinsight::outln!(
        "{:<20} {:>22} {:>10} {:>7} {:>9} {:>9} {:>10} {:>10}",
        "format",
        "runtime",
        "bytes",
        "ratio",
        "accuracy",
        "agreement",
        "ms @1",
        "ms @32"
    );
    let ms = |l: &deepinsight::export::Latency, b: &str| l.get(b).copied().unwrap_or(f64::NAN);
    deepinsight::outln!(
        "{:<20} {:>22} {:>10} {:>7} {:>9.3} {:>9} {:>10.1} {:>10.1}",
        "fp32",
        "burn-flex",
        r.fp32.bytes,
        "1.00",
        r.fp32.accuracy,
        "-",
        ms(&r.fp32.latency_ms, "1"),
        ms(&r.fp32.latency_ms, "32")
    );
    for f in &r.formats {
        deepinsight::outln!(
            "{:<20} {:>22} {:>10} {:>7.2} {:>9.3} {:>9.3} {:>10.1} {:>10.1}",
            f.format,
            f.runtime,
            f.bytes,
            f.size_ratio,
            f.accuracy,
            f.agreement,
            ms(&f.latency_ms, "1"),
            ms(&f.latency_ms, "32")
        );
    }
    deepinsight::outln!(
        "accuracy on {} validation samples; agreement with fp32 on {} (validation and training \
         samples not used for calibration), at least {:.2}% required",
        r.validation_samples,
        r.checked_samples,
        r.min_agreement * 100.0
    );
    if let Some(why) = &r.too_few_to_judge {
        deepinsight::outln!("note: {why}");
    }
    for f in &r.rejected {
        deepinsight::outln!(
            "REJECTED {}: agrees with fp32 on {:.2}% (95% interval {:.2}-{:.2}%), accuracy {:.3}; \
             {} not written",
            f.format,
            f.agreement * 100.0,
            f.agreement_interval.0 * 100.0,
            f.agreement_interval.1 * 100.0,
            f.accuracy,
            f.file
        );
    }
    for f in &r.structure_checked {
        deepinsight::outln!(
            "{:<12} {:>12} bytes  {} ({})",
            f.format,
            f.bytes,
            f.file,
            f.checked
        );
    }
    for s in &r.skipped {
        deepinsight::outln!("skipped {}: {}", s.format, s.reason);
    }
    if let Some(t) = &r.tensorrt {
        deepinsight::outln!(
            "TensorRT plan {} (engines: {})",
            t.plan,
            t.engines.join(", ")
        );
        for file in &t.built {
            deepinsight::outln!("TensorRT engine {file}");
        }
    }
}

fn set<T>(target: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *target = v;
    }
}

fn serve_until_signal(config: ServeConfig) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let server = Server::start(config).await?;
        // Scripts (and the tests) read the bound address from this line.
        deepinsight::outln!("listening on http://{}", server.addr);
        use std::io::Write;
        std::io::stdout().flush()?;
        server.run_until_signal().await?;
        deepinsight::outln!("stopped");
        Ok(())
    })
}

fn print_score_summary(s: &deepinsight::score::ScoreSummary) {
    if s.already_complete {
        deepinsight::outln!(
            "{} is already complete for this job (shard {}): nothing to do",
            s.output.display(),
            s.shard
        );
        return;
    }
    let c = &s.counts;
    if s.complete {
        deepinsight::outln!(
            "scores written to {} (shard {})",
            s.output.display(),
            s.shard
        );
    } else {
        deepinsight::outln!(
            "stopped after {} part(s): {} of {} buckets done; run again with --resume to finish",
            s.parts_scored,
            s.parts_reused + s.parts_scored,
            s.buckets
        );
    }
    let read: Vec<String> = s
        .rows_read
        .iter()
        .map(|(m, n)| format!("{m} {n}"))
        .collect();
    deepinsight::outln!("rows of this shard read: {}", read.join(", "));
    deepinsight::outln!(
        "samples: {} ({} scored, {} skipped); parts: {} scored now, {} reused of {}",
        c.samples,
        c.scored,
        c.skipped.values().sum::<usize>(),
        s.parts_scored,
        s.parts_reused,
        s.buckets
    );
    for (reason, n) in &c.skipped {
        deepinsight::outln!("  skipped, {reason}: {n}");
    }
    if c.imputed_values > 0 {
        deepinsight::outln!(
            "imputed: {} values in {} samples (training medians)",
            c.imputed_values,
            c.imputed_samples
        );
    }
    for (modality, n) in &c.far_outside {
        tracing::warn!(
            "{modality}: {n} values lie far outside the training range (more than the range \
             again beyond it) and were clipped; check units and scale"
        );
    }
    let total: f64 = s.stage_seconds.iter().map(|(_, t)| t).sum();
    deepinsight::outln!("{:<20} {:>9}", "stage", "seconds");
    for (name, secs) in &s.stage_seconds {
        deepinsight::outln!("{name:<20} {secs:>9.2}");
    }
    deepinsight::outln!("{:<20} {:>9.2}", "total", total);
    if total > 0.0 && c.scored > 0 {
        deepinsight::outln!("{:.0} samples/s", c.samples as f64 / total);
    }
}

fn print_pathways(p: &deepinsight::select::pathways::PathwaySelection) {
    let c = &p.coverage;
    let covered: Vec<String> = c
        .modalities
        .iter()
        .map(|m| format!("{} {}/{}", m.modality, m.in_pathway, m.features))
        .collect();
    deepinsight::outln!(
        "gene sets: {} in {}, {} with >= {} features, {} match nothing; features in a set: {}",
        c.gene_sets,
        p.gmt,
        c.sets_with_min_members,
        c.min_members,
        c.empty_sets.len(),
        covered.join(", ")
    );
    if c.unknown_members > 0 {
        deepinsight::outln!(
            "  {} member names are not features (e.g. {})",
            c.unknown_members,
            c.unknown_examples.join(", ")
        );
    }
    deepinsight::outln!(
        "{:<5} {:<24} {:>10} {:>8}",
        "rank",
        "pathway",
        "score",
        "features"
    );
    for g in &p.groups {
        let rank = g.rank.map_or("-".to_string(), |r| r.to_string());
        deepinsight::outln!(
            "{rank:<5} {:<24} {:>10.2} {:>8}",
            g.name,
            g.score,
            g.features.len()
        );
    }
}

fn print_metrics(what: &str, m: &deepinsight::model::Metrics) {
    let auroc = m.auroc.map_or("-".to_string(), |a| format!("{a:.3}"));
    deepinsight::outln!(
        "{what}: accuracy {:.3}, balanced accuracy {:.3}, macro-F1 {:.3}, AUROC {auroc}",
        m.accuracy,
        m.balanced_accuracy,
        m.macro_f1
    );
}

fn print_summary(s: &RunSummary) {
    deepinsight::outln!("run written to {}", s.run_dir.display());
    deepinsight::outln!(
        "samples: {} aligned ({} train, {} validation, {} test), {} dropped",
        s.samples,
        s.train,
        s.validation,
        s.test,
        s.dropped.len()
    );
    for d in &s.dropped {
        deepinsight::outln!(
            "  dropped {}: missing from {}",
            d.sample_id,
            d.missing_from.join(", ")
        );
    }
    deepinsight::outln!(
        "features: {} selected; classes: {}",
        s.features,
        s.classes.join(", ")
    );
    if let Some(epoch) = s.resumed_from {
        deepinsight::outln!("resumed from the checkpoint of epoch {epoch}");
    }
    if let Some(epoch) = s.stopped_early {
        deepinsight::outln!("early stop after epoch {epoch}: no better validation score");
    }
    // The validation samples chose the kept epoch, so their metrics flatter the model; the
    // test split (train.test_fraction) played no part in any choice.
    print_metrics(
        &format!(
            "validation (best epoch {} of {}, chosen on these samples: optimistic)",
            s.best_epoch, s.epochs_run
        ),
        &s.metrics,
    );
    let b = &s.baseline;
    let majority = &s.classes[b.class];
    print_metrics(
        &format!("  trivial baseline, always '{majority}' (most common in training), validation"),
        &b.validation,
    );
    if let Some(m) = &s.test_metrics {
        print_metrics(
            &format!("test ({} samples, held out from every choice)", s.test),
            m,
        );
    }
    if let Some(m) = &b.test {
        print_metrics(&format!("  trivial baseline, always '{majority}', test"), m);
    }
    if s.test_metrics.is_none() {
        deepinsight::outln!(
            "no test split: set train.test_fraction (e.g. 0.2) for metrics on samples that chose nothing"
        );
    }
    deepinsight::outln!(
        "{:<12} {:>8} {:>7} {:>9} {:>8} {:>7} {:>10}",
        "channel",
        "features",
        "pixels",
        "mean/px",
        "max/px",
        "shared",
        "moved(px)"
    );
    for r in &s.layout {
        let moved = r
            .displacement
            .map_or("-".to_string(), |d| format!("{:.2}/{:.1}", d.mean, d.max));
        deepinsight::outln!(
            "{:<12} {:>8} {:>7} {:>9.2} {:>8} {:>6.1}% {:>10}",
            r.channel,
            r.features,
            r.pixels_used,
            r.mean_features_per_pixel,
            r.max_features_per_pixel,
            100.0 * r.shared_fraction,
            moved
        );
    }
    if let Some(p) = &s.pathways {
        print_pathways(p);
    }
    deepinsight::outln!("{:<10} {:>9}", "stage", "seconds");
    for (name, secs) in &s.stages {
        deepinsight::outln!("{name:<10} {secs:>9.2}");
    }
    let total: f64 = s.stages.iter().map(|(_, t)| t).sum();
    deepinsight::outln!("{:<10} {:>9.2}", "total", total);
}
