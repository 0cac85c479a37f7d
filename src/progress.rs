//! Progress of long work for jobs without a terminal (Slurm, Kubernetes, CI, `> log`): there a
//! progress bar draws nothing until the work ends, so each epoch, stage, scoring part and
//! explanation batch also prints one plain line on stdout. On a terminal the bars alone show
//! progress. The commands that do long work switch the lines on (`enable`); library callers
//! and benchmarks, whose stdout is a table, do not get them.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

static LINES: AtomicBool = AtomicBool::new(false);

/// Prints progress lines from now on, when stdout is not a terminal.
pub fn enable() {
    LINES.store(!std::io::stdout().is_terminal(), Ordering::Relaxed);
}

/// Whether progress lines are printed.
pub fn lines() -> bool {
    LINES.load(Ordering::Relaxed)
}

/// One line of progress (`format_args!`), when lines are on.
pub fn line(args: std::fmt::Arguments) {
    if lines() {
        crate::outln!("{args}");
    }
}
