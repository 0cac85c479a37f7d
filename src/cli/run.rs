//! `deepinsight run PIPELINE`.

use std::path::PathBuf;

use crate::PipelineConfig;
use crate::pipeline::{self, RunOptions};
use anyhow::Result;

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
    crate::outln!("{}", pipeline::run_with(&config, &options)?);
    Ok(())
}
