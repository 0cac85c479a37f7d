//! The command line: one file per command, each an `Args` struct and the `execute` that runs
//! it. The library does the work and its reports print themselves (`Display`).

// The doc comments of the commands and flags are their --help text, read as plain text: there
// `<name>` is a placeholder, not HTML, and a link would print as brackets.
#![allow(
    rustdoc::invalid_html_tags,
    rustdoc::broken_intra_doc_links,
    rustdoc::private_intra_doc_links
)]

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod bench;
mod evaluate;
mod explain;
mod export;
mod init;
mod predict;
mod run;
mod score;
mod serve;
mod synth;
mod train;

/// Multi-omics tables to images to a CNN, after the DeepInsight method.
#[derive(Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run every stage of a pipeline file and write the run to <output_dir>/<name>/
    /// (the same as `train` without its options).
    Run(run::Args),
    /// Train a pipeline: every stage of `run`, with training overrides, fine-tuning from
    /// torchvision weights, and resuming from the checkpoint an interrupted run left in
    /// <output_dir>/.<name>.checkpoint/.
    Train(train::Args),
    /// Cross-validate a pipeline: stratified k-fold, everything fitted inside each training
    /// fold, the CNN beside a majority-class, logistic-regression and random-forest baseline on
    /// the same folds, with a corrected interval for the difference (see [evaluate] in the
    /// pipeline file). Writes <output_dir>/<name>-evaluation/.
    Evaluate(evaluate::Args),
    /// Predict a cohort that fits in memory with a trained run: one table per modality
    /// (Parquet, CSV or TSV), predictions out as Parquet or CSV; with --labels, metrics too.
    Predict(predict::Args),
    /// Which features (and pathways) drive the model's predictions: class activation maps
    /// (Grad-CAM or saliency) taken back through the layout to a ranked feature table, pictures,
    /// and optionally DeepFeature's refit on the best features.
    Explain(explain::Args),
    /// Write a starter pipeline file for your own tables into DIR/pipeline.toml: modalities
    /// from --input, feature counts read from the files, the image size fitted to them, the
    /// sample-id and label columns checked, every key commented.
    Init(init::Args),
    /// Generate the synthetic multi-omics cohort (exactly reproducible from the seed).
    Synth(synth::Args),
    /// Score Parquet datasets with a trained run: streamed, joined on sample id in bounded
    /// memory, sharded and resumable. Writes sample_id, predicted, prob_<class>, reason and
    /// model_sha256.
    Score(score::Args),
    /// Export a trained run's network to other forms, each checked against fp32 on the run's
    /// validation samples, and write export_report.json (size, accuracy, agreement, latency).
    Export(export::Args),
    /// Serve trained runs over HTTP: KServe v2 (/v2/...), raw omics (/predict), the
    /// optimisation API, /metrics and /openapi.json, each model behind a dynamic batcher.
    /// SIGTERM or Ctrl-C stops accepting, answers what is queued, and exits 0.
    Serve(serve::Args),
    /// Time a stage at the sizes users meet and print a table (targets, pyDeepInsight times).
    Bench(bench::Args),
}

pub fn execute(command: Command) -> Result<()> {
    // Long work prints a line per epoch, stage, part or batch when stdout is not a terminal;
    // the benchmarks' stdout is their table, and the server's its address.
    if !matches!(command, Command::Bench(_) | Command::Serve(_)) {
        crate::progress::enable();
    }
    match command {
        Command::Run(args) => run::execute(args),
        Command::Train(args) => train::execute(args),
        Command::Evaluate(args) => evaluate::execute(args),
        Command::Predict(args) => predict::execute(args),
        Command::Explain(args) => explain::execute(args),
        Command::Init(args) => init::execute(args),
        Command::Synth(args) => synth::execute(args),
        Command::Score(args) => score::execute(args),
        Command::Export(args) => export::execute(args),
        Command::Serve(args) => serve::execute(args),
        Command::Bench(args) => bench::execute(args),
    }
}

/// `--input MODALITY=FILE`.
fn parse_input(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((m, p)) if !m.is_empty() && !p.is_empty() => Ok((m.to_string(), p.to_string())),
        _ => Err(format!(
            "'{s}': expected MODALITY=FILE_OR_GLOB, e.g. genomics=data/genomics.parquet"
        )),
    }
}

/// The flags of the commands that put new tables through a trained run (`predict`, `score`).
#[derive(clap::Args)]
struct ModelInputs {
    /// Run folder written by `deepinsight run` or `train`, e.g. models/demo.
    #[arg(long)]
    model: PathBuf,
    /// MODALITY=FILE, once per modality of the model (repeatable); `score` also takes a glob,
    /// e.g. --input genomics='data/genomics-*.parquet'.
    #[arg(long = "input", value_parser = parse_input, required = true)]
    inputs: Vec<(String, String)>,
}

/// `--input` pairs with their file as a path.
fn input_paths(inputs: Vec<(String, String)>) -> Vec<(String, PathBuf)> {
    inputs
        .into_iter()
        .map(|(m, p)| (m, PathBuf::from(p)))
        .collect()
}

/// A share between 0 and 1.
fn parse_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "'{s}': expected a share between 0 and 1, e.g. 0.99"
        )),
    }
}

/// An override from the command line, where one was given.
fn set<T>(target: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *target = v;
    }
}
