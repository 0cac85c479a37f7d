use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use deepinsight::PipelineConfig;
use deepinsight::pipeline::{self, RunSummary};
use deepinsight::synth::{self, SynthSpec};

/// Multi-omics tables to images to a CNN, after the DeepInsight method.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every stage of a pipeline file and write the run to <output_dir>/<name>/.
    Run {
        /// Pipeline file (TOML), e.g. pipelines/demo.toml.
        pipeline: PathBuf,
    },
    /// Generate the synthetic multi-omics cohort (exactly reproducible from the seed).
    Synth {
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, default_value = "data")]
        out: PathBuf,
    },
    /// Time a stage at the sizes users meet and print a table (targets, pyDeepInsight times).
    Bench {
        #[arg(value_enum)]
        stage: BenchStage,
        /// Small sizes, for a quick check that everything runs.
        #[arg(long)]
        quick: bool,
        /// Only the cases whose name contains this text, e.g. "tsne" or "assign".
        #[arg(long)]
        only: Option<String>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BenchStage {
    Layout,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn execute(command: Command) -> Result<()> {
    match command {
        Command::Run { pipeline } => {
            let config = PipelineConfig::from_file(&pipeline)?;
            let summary = pipeline::run(&config)?;
            print_summary(&summary);
        }
        Command::Synth { seed, out } => {
            let cohort = synth::generate(&SynthSpec::default(), seed);
            for path in synth::write_cohort(&cohort, &out)? {
                println!("wrote {}", path.display());
            }
            let signal: Vec<&str> = cohort
                .signal_pathways
                .iter()
                .map(|&p| cohort.pathways[p].name.as_str())
                .collect();
            println!("class signal in: {}", signal.join(", "));
        }
        Command::Bench {
            stage: BenchStage::Layout,
            quick,
            only,
        } => {
            let rows = deepinsight::bench::layout(quick, only.as_deref())?;
            deepinsight::bench::print(&rows);
        }
    }
    Ok(())
}

fn print_pathways(p: &deepinsight::select::pathways::PathwaySelection) {
    let c = &p.coverage;
    let covered: Vec<String> = c
        .modalities
        .iter()
        .map(|m| format!("{} {}/{}", m.modality, m.in_pathway, m.features))
        .collect();
    println!(
        "gene sets: {} in {}, {} with >= {} features, {} match nothing; features in a set: {}",
        c.gene_sets,
        p.gmt,
        c.sets_with_min_members,
        c.min_members,
        c.empty_sets.len(),
        covered.join(", ")
    );
    if c.unknown_members > 0 {
        println!(
            "  {} member names are not features (e.g. {})",
            c.unknown_members,
            c.unknown_examples.join(", ")
        );
    }
    println!(
        "{:<5} {:<24} {:>10} {:>8}",
        "rank", "pathway", "score", "features"
    );
    for g in &p.groups {
        let rank = g.rank.map_or("-".to_string(), |r| r.to_string());
        println!(
            "{rank:<5} {:<24} {:>10.2} {:>8}",
            g.name,
            g.score,
            g.features.len()
        );
    }
}

fn print_summary(s: &RunSummary) {
    println!("run written to {}", s.run_dir.display());
    println!(
        "samples: {} aligned ({} train, {} validation), {} dropped",
        s.samples,
        s.train,
        s.validation,
        s.dropped.len()
    );
    for d in &s.dropped {
        println!(
            "  dropped {}: missing from {}",
            d.sample_id,
            d.missing_from.join(", ")
        );
    }
    println!(
        "features: {} selected; classes: {}",
        s.features,
        s.classes.join(", ")
    );
    println!(
        "validation (best epoch {}): accuracy {:.3}, macro-F1 {:.3} (chance {:.3})",
        s.best_epoch,
        s.metrics.accuracy,
        s.metrics.macro_f1,
        1.0 / s.classes.len() as f64
    );
    println!(
        "{:<12} {:>8} {:>7} {:>9} {:>8} {:>7} {:>10}",
        "channel", "features", "pixels", "mean/px", "max/px", "shared", "moved(px)"
    );
    for r in &s.layout {
        let moved = r
            .displacement
            .map_or("-".to_string(), |d| format!("{:.2}/{:.1}", d.mean, d.max));
        println!(
            "{:<12} {:>8} {:>7} {:>9.2} {:>8} {:>6.1}% {:>10}",
            r.channel,
            r.features,
            r.pixels_used,
            r.mean_features_per_pixel,
            r.max_features_per_pixel,
            100.0 * r.shared_fraction,
            moved
        );
    }
    if let Some(p) = &s.pathways {
        print_pathways(p);
    }
    println!("{:<10} {:>9}", "stage", "seconds");
    for (name, secs) in &s.stages {
        println!("{name:<10} {secs:>9.2}");
    }
    let total: f64 = s.stages.iter().map(|(_, t)| t).sum();
    println!("{:<10} {:>9.2}", "total", total);
}
