//! Timing the stages of a job, with a spinner on a terminal and a line per stage without one.

use std::time::Instant;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

/// Times stages and shows a spinner while each runs.
pub(crate) struct Stages {
    pub(crate) times: Vec<(String, f64)>,
}

impl Stages {
    pub(crate) fn run<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let spinner = ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("static template"),
        );
        spinner.set_message(name.to_string());
        spinner.enable_steady_tick(std::time::Duration::from_millis(120));
        let started = Instant::now();
        let out = f();
        spinner.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(stage = name, seconds, "stage done");
        crate::progress::line(format_args!("stage {name}: {seconds:.2} s"));
        self.times.push((name.to_string(), seconds));
        out
    }
}
