//! `deepinsight run PIPELINE`.

use std::path::PathBuf;

use anyhow::Result;
use deepinsight::PipelineConfig;
use deepinsight::pipeline::{self, RunOptions};

#[derive(clap::Args)]
pub struct Args {
    /// Pipeline file (TOML), e.g. pipelines/demo.toml.
    pipeline: PathBuf,
}

pub fn execute(args: Args) -> Result<()> {
    let config = PipelineConfig::from_file(&args.pipeline)?;
    let options = RunOptions {
        also_read: vec![args.pipeline],
        ..Default::default()
    };
    deepinsight::outln!("{}", pipeline::run_with(&config, &options)?);
    Ok(())
}
