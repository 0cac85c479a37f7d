//! `deepinsight synth`: the synthetic cohort, reproducible from its seed.

use std::path::PathBuf;

use crate::synth::{self, SynthSpec};
use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Samples to generate (the bundled cohort has 300).
    #[arg(long, default_value_t = 300)]
    samples: usize,
    #[arg(long, default_value = "data")]
    out: PathBuf,
    /// Write a second cohort of --samples new patients from the study of --seed (the
    /// bundled 300-sample study for seed 7): same features, pathways and class signal, new
    /// samples drawn from this seed, ids N0001....
    #[arg(long)]
    new_cohort: Option<u64>,
}

pub fn execute(args: Args) -> Result<()> {
    let cohort = match args.new_cohort {
        Some(cohort_seed) => {
            synth::generate_new_cohort(&SynthSpec::default(), args.seed, cohort_seed, args.samples)
        }
        None => synth::generate(
            &SynthSpec {
                samples: args.samples,
                ..SynthSpec::default()
            },
            args.seed,
        ),
    };
    for path in synth::write_cohort(&cohort, &args.out)? {
        crate::outln!("wrote {}", path.display());
    }
    let signal: Vec<&str> = cohort
        .signal_pathways
        .iter()
        .map(|&p| cohort.pathways[p].name.as_str())
        .collect();
    crate::outln!("class signal in: {}", signal.join(", "));
    Ok(())
}
