//! `deepinsight predict`: an in-memory cohort through a trained run.

use std::path::PathBuf;

use anyhow::Result;
use deepinsight::score::predict::{self, PredictOptions};

use super::{input_paths, parse_input};

#[derive(clap::Args)]
pub struct Args {
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
}

pub fn execute(args: Args) -> Result<()> {
    let s = predict::run(&PredictOptions {
        model: args.model,
        inputs: input_paths(args.inputs),
        labels: args.labels,
        output: args.output,
        batch_size: args.batch_size,
    })?;
    deepinsight::outln!("{} samples predicted -> {}", s.samples, s.output.display());
    for d in &s.dropped {
        deepinsight::outln!(
            "  dropped {}: missing from {}",
            d.sample_id,
            d.missing_from.join(", ")
        );
    }
    if let Some(m) = &s.metrics {
        deepinsight::outln!("labelled samples: {m}");
    }
    Ok(())
}
