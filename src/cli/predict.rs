//! `deepinsight predict`: an in-memory cohort through a trained run.

use std::path::PathBuf;

use crate::score::predict::{self, PredictOptions};
use anyhow::Result;

use super::{ModelInputs, input_paths};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    run: ModelInputs,
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
        model: args.run.model,
        inputs: input_paths(args.run.inputs),
        labels: args.labels,
        output: args.output,
        batch_size: args.batch_size,
    })?;
    crate::outln!("{} samples predicted -> {}", s.samples, s.output.display());
    for d in &s.dropped {
        crate::outln!(
            "  dropped {}: missing from {}",
            d.sample_id,
            d.missing_from.join(", ")
        );
    }
    if let Some(m) = &s.metrics {
        crate::outln!("labelled samples: {m}");
    }
    Ok(())
}
