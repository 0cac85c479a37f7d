//! report.html: one self-contained page per run folder. Pictures are inline (PNG data URIs),
//! the style sheet is in the page, and there is no script, so the page opens from `file://`
//! on a machine with no network and stays readable when mailed or archived.
//!
//! `run`/`train` write the run's page into the run folder (`run_page`); `explain` and
//! `evaluate` write a page into their own output folders with the run's (or the pipeline's)
//! sections followed by theirs. Each section is an `<section id=...>`, so a reader (or a test)
//! can find it.

mod html;
mod run;

pub use html::{Page, Section, escape, png, table};
pub use run::{artefacts, dropped, pipeline, run_page, run_sections};

/// The page's file name, in every folder that has one.
pub const FILE: &str = "report.html";
