//! `deepinsight train PIPELINE`: `run` with overrides, fine-tuning and resuming.

use std::path::PathBuf;

use crate::PipelineConfig;
use crate::pipeline::{self, RunOptions};
use anyhow::{Context, Result};

use super::set;

#[derive(clap::Args)]
pub struct Args {
    /// Pipeline file (TOML), e.g. pipelines/demo.toml.
    pipeline: PathBuf,
    /// Continue an interrupted run from its checkpoint (same data and options).
    #[arg(long)]
    resume: bool,
    /// Stop after this epoch, keeping the checkpoint (for time-limited jobs); `--resume`
    /// continues.
    #[arg(long)]
    stop_after: Option<usize>,
    /// Any pipeline setting, as KEY=VALUE with the file's dotted key and a TOML value, e.g.
    /// `--set train.weight_decay=0.01 --set model.width=32` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
    #[command(flatten)]
    overrides: Overrides,
}

/// Settings of the pipeline file that the command line may replace.
#[derive(clap::Args)]
struct Overrides {
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
}

impl Overrides {
    fn apply(self, config: &mut PipelineConfig) {
        set(&mut config.train.epochs, self.epochs);
        set(&mut config.train.batch_size, self.batch_size);
        set(&mut config.train.threads, self.threads);
        if self.pretrained.is_some() {
            config.model.pretrained = self.pretrained;
        }
    }
}

pub fn execute(args: Args) -> Result<()> {
    let mut config = PipelineConfig::from_file_with(&args.pipeline, &args.settings)?;
    args.overrides.apply(&mut config);
    // Overrides go through the same checks as the file.
    config.validate().with_context(|| {
        format!(
            "{} with the command-line overrides",
            args.pipeline.display()
        )
    })?;
    let options = RunOptions {
        resume: args.resume,
        stop_after: args.stop_after,
        also_read: vec![args.pipeline],
    };
    crate::outln!("{}", pipeline::run_with(&config, &options)?);
    Ok(())
}
