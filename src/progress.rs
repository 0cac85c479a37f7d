//! Progress of long work for jobs without a terminal (Slurm, Kubernetes, CI, `> log`): there a
//! progress bar draws nothing until the work ends, so each epoch, stage, scoring part and
//! explanation batch also prints one plain line on stdout. On a terminal the bars alone show
//! progress. The commands that do long work switch the lines on (`enable`); library callers
//! and benchmarks, whose stdout is a table, do not get them.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static LINES: AtomicBool = AtomicBool::new(false);
/// What the lines are part of, e.g. "fold 2/5": printed before each, so that an epoch's line
/// in a cross-validation log says which fold it belongs to.
static CONTEXT: Mutex<String> = Mutex::new(String::new());

/// Prints progress lines from now on, when stdout is not a terminal.
pub fn enable() {
    LINES.store(!std::io::stdout().is_terminal(), Ordering::Relaxed);
}

/// Whether progress lines are printed.
pub fn lines() -> bool {
    LINES.load(Ordering::Relaxed)
}

/// One line of progress (`format_args!`), when lines are on, after the context if one is set.
pub fn line(args: std::fmt::Arguments) {
    if lines() {
        let context = CONTEXT.lock().unwrap_or_else(|p| p.into_inner());
        if context.is_empty() {
            crate::outln!("{args}");
        } else {
            crate::outln!("{context}: {args}");
        }
    }
}

/// Sets the context later lines are printed in (empty: none).
pub fn set_context(context: String) {
    *CONTEXT.lock().unwrap_or_else(|p| p.into_inner()) = context;
}
