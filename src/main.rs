use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use deepinsight::pipeline::StoppedAsAsked;

use deepinsight::cli;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = cli::Cli::parse();
    match cli::execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        // Stopping where --stop-after asked is not a failure: the message says how to resume.
        Err(e) if e.downcast_ref::<StoppedAsAsked>().is_some() => {
            deepinsight::outln!("{e}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
