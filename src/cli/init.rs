//! `deepinsight init DIR`: a starter pipeline file for the user's own tables.

use std::path::PathBuf;

use crate::init::{self, InitOptions};
use anyhow::Result;

use super::{input_paths, parse_input};

#[derive(clap::Args)]
pub struct Args {
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
}

pub fn execute(args: Args) -> Result<()> {
    let s = init::run(&InitOptions {
        dir: args.dir,
        labels: args.label_table,
        inputs: input_paths(args.inputs),
        sample_id_column: args.sample_id_column,
        label_column: args.label_column,
    })?;
    let features: Vec<String> = s.features.iter().map(|(m, n)| format!("{m} {n}")).collect();
    let classes: Vec<String> = s.classes.iter().map(|(c, n)| format!("{c} {n}")).collect();
    crate::outln!("wrote {}", s.file.display());
    crate::outln!(
        "{} samples in every table with a label; classes: {}",
        s.samples,
        classes.join(", ")
    );
    crate::outln!(
        "features: {}; images {side}x{side}; test split {}",
        features.join(", "),
        s.test_fraction,
        side = s.image_side
    );
    crate::outln!("next: deepinsight run {}", s.file.display());
    Ok(())
}
