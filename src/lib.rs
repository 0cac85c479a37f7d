//! deepinsight: multi-omics tables -> feature layout -> images -> ResNet18, after the
//! DeepInsight method (Sharma et al., Scientific Reports 9:11399, 2019).
//!
//! Each stage is a module; `pipeline` runs them in order from a pipeline file.

/// `println!` for reports on stdout: when the reader has gone (`deepinsight predict ... | head`)
/// the rest of the report is dropped quietly instead of panicking on a broken pipe; the work
/// itself is already done and written by then.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stdout().lock(), $($arg)*);
    }};
}

/// `print!` with `outln!`'s handling of a closed stdout.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::write!(::std::io::stdout().lock(), $($arg)*);
    }};
}

pub mod artefact;
pub mod batching;
pub mod bench;
pub mod config;
pub mod crossval;
pub mod evaluate;
pub mod explain;
pub mod export;
pub mod init;
pub mod layout;

pub mod mapping;
pub mod model;
pub mod omics;
pub mod onnxrt;
pub mod pipeline;
pub mod predictions;
pub mod progress;
pub mod render;
pub mod run;
pub mod score;
pub mod select;
pub mod serve;
pub mod synth;

pub use config::PipelineConfig;
