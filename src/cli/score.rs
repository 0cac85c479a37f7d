//! `deepinsight score`: streamed, sharded, resumable batch scoring of Parquet datasets.

use std::path::PathBuf;

use crate::score::{self, Policy, ScoreOptions, Shard};
use anyhow::Result;

use super::ModelInputs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    run: ModelInputs,
    /// Output Parquet file; written under a temporary name and renamed when complete.
    #[arg(long)]
    output: PathBuf,
    /// Score only shard K of N (0-based: K/N with 0 <= K < N), chosen by a hash of the
    /// sample id: the shards of a job are disjoint and together cover every sample.
    #[arg(long, default_value = "0/1")]
    shard: Shard,
    /// Keep the finished parts of an interrupted run of the same job; do nothing if the
    /// output is already complete.
    #[arg(long)]
    resume: bool,
    /// Missing values (null, NaN, absent column): impute (training medians), skip or fail.
    #[arg(long, default_value = "impute")]
    missing_values: Policy,
    /// Samples absent from some modality's input: skip (as training does), impute or fail.
    #[arg(long, default_value = "skip")]
    missing_samples: Policy,
    /// Target rows per bucket: bounds the memory of the join and scoring step.
    #[arg(long, default_value_t = 16384)]
    bucket_rows: usize,
    /// Images per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Score at most N parts, then stop; `--resume` continues (for time-limited jobs).
    #[arg(long)]
    max_parts: Option<usize>,
}

pub fn execute(args: Args) -> Result<()> {
    let options = ScoreOptions {
        shard: args.shard,
        resume: args.resume,
        missing_values: args.missing_values,
        missing_samples: args.missing_samples,
        bucket_rows: args.bucket_rows,
        batch_size: args.batch_size,
        max_parts: args.max_parts,
        ..ScoreOptions::new(args.run.model, args.run.inputs, args.output)
    };
    let summary = score::run(&options)?;
    crate::outln!("{summary}");
    for (modality, n) in &summary.counts.far_outside {
        tracing::warn!(
            "{modality}: {n} values lie far outside the training range (more than the range \
             again beyond it) and were clipped; check units and scale"
        );
    }
    Ok(())
}
