//! `deepinsight evaluate PIPELINE`: cross-validation of the CNN beside simple baselines.

use std::path::PathBuf;

use crate::PipelineConfig;
use crate::evaluate::{self, EvaluateOptions, Outcome};
use anyhow::{Context, Result, bail};

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
    /// Any pipeline setting, as KEY=VALUE with the file's dotted key and a TOML value, e.g.
    /// `--set train.weight_decay=0.01 --set name=\"gse7390-decay\"` (repeatable): one
    /// ablation per command, without editing the file.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// Compute at most N folds now, then stop; running the same command again goes on from
    /// the last finished fold (for time-limited jobs).
    #[arg(long)]
    max_folds: Option<usize>,
    /// Score the baselines only, without training the CNN: a quick first look.
    #[arg(long)]
    baselines_only: bool,
    /// Write each fold's fitted features (`modality:feature` columns; `split` is train,
    /// validation (the inner split that chooses the CNN's epoch) or test) to
    /// DIR/repeatR-foldK.parquet, to fit other models on the same folds.
    #[arg(long, value_name = "DIR")]
    fold_features: Option<PathBuf>,
    /// Compute only fold K (1-based) of --repeat into the shared work folder: one task of a
    /// Slurm array or Kubernetes indexed Job. `--collect` writes the report afterwards.
    #[arg(long, value_name = "K", conflicts_with_all = ["collect", "max_folds"])]
    fold: Option<usize>,
    /// With --fold: the repeat (1-based) the fold belongs to.
    #[arg(long, value_name = "R", default_value_t = 1, requires = "fold")]
    repeat: usize,
    /// Write the report from the folds that --fold tasks finished, computing none; a fold that
    /// is missing or was run with other settings is refused, naming it.
    #[arg(long)]
    collect: bool,
}

pub fn execute(args: Args) -> Result<()> {
    let mut config = PipelineConfig::from_file_with(&args.pipeline, &args.settings)?;
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
        only: match args.fold {
            Some(0) => bail!("--fold counts from 1"),
            Some(k) if args.repeat == 0 => bail!("--repeat counts from 1, got 0 for fold {k}"),
            Some(k) => Some((args.repeat - 1, k - 1)),
            None => None,
        },
        collect: args.collect,
    };
    match evaluate::run(&config, &options)? {
        Outcome::Done(evaluation, dir) => {
            crate::outln!("{evaluation}");
            crate::outln!("written to {}", dir.display());
        }
        Outcome::Stopped { finished, total } => crate::outln!(
            "stopped with {finished} of {total} folds finished; run the same command again to \
             go on"
        ),
        Outcome::FoldDone { repeat, fold } => crate::outln!(
            "fold {} of repeat {} finished; once every fold is, --collect writes the report",
            fold + 1,
            repeat + 1
        ),
    }
    Ok(())
}
