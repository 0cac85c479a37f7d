//! `deepinsight evaluate PIPELINE`: cross-validation of the CNN beside simple baselines.

use std::path::PathBuf;

use anyhow::{Context, Result};
use deepinsight::PipelineConfig;
use deepinsight::evaluate::{self, EvaluateOptions, Outcome};

use super::set;

#[derive(clap::Args)]
pub struct Args {
    /// Pipeline file (TOML), e.g. pipelines/demo.toml; its [evaluate] section sets the rest.
    pipeline: PathBuf,
    /// Override evaluate.folds (stratified outer folds, at least 2).
    #[arg(long)]
    folds: Option<usize>,
    /// Override evaluate.repeats (k-fold repeated with other folds).
    #[arg(long)]
    repeats: Option<usize>,
    /// Compute at most N folds now, then stop; running the same command again goes on from
    /// the last finished fold (for time-limited jobs).
    #[arg(long)]
    max_folds: Option<usize>,
    /// Score the baselines only, without training the CNN: a quick first look.
    #[arg(long)]
    baselines_only: bool,
    /// Write each fold's fitted features (training and test samples, `modality:feature`
    /// columns) to DIR/repeatR-foldK.parquet, to fit other models on the same folds.
    #[arg(long, value_name = "DIR")]
    fold_features: Option<PathBuf>,
}

pub fn execute(args: Args) -> Result<()> {
    let mut config = PipelineConfig::from_file(&args.pipeline)?;
    set(&mut config.evaluate.folds, args.folds);
    set(&mut config.evaluate.repeats, args.repeats);
    config.validate().with_context(|| {
        format!(
            "{} with the command-line overrides",
            args.pipeline.display()
        )
    })?;
    let options = EvaluateOptions {
        max_folds: args.max_folds,
        also_read: vec![args.pipeline.clone()],
        baselines_only: args.baselines_only,
        fold_features: args.fold_features,
    };
    match evaluate::run(&config, &options)? {
        Outcome::Done(evaluation, dir) => {
            deepinsight::outln!("{evaluation}");
            deepinsight::outln!("written to {}", dir.display());
        }
        Outcome::Stopped { finished, total } => deepinsight::outln!(
            "stopped with {finished} of {total} folds finished; run the same command again to \
             go on"
        ),
    }
    Ok(())
}
