//! deepinsight: multi-omics tables -> feature layout -> images -> ResNet18, after the
//! DeepInsight method (Sharma et al., Scientific Reports 9:11399, 2019).
//!
//! Features that behave alike across samples are placed near each other on a 2-D grid, each
//! sample becomes an image of its values, and a CNN learns from the images. The crate is the
//! `deepinsight` command's library: every command is a function here, driven by the same
//! settings as the pipeline file.
//!
//! # The stages
//!
//! | stage | module | entry point |
//! |---|---|---|
//! | load, align and normalise the omics tables | [`omics`] | [`omics::load_table`], [`omics::align`] |
//! | select features (variance, ANOVA, pathway groups) | [`select`] | [`FeatureSpace::fit`] |
//! | lay the features out on a grid (t-SNE, PCA, precomputed) | [`layout`] | [`Layout::fit`] |
//! | render samples as images | [`render`] | [`render::render_batch`] |
//! | train the ResNet18 | [`model`] | [`pipeline::run`] trains as part of a run |
//! | a whole run, written to a run folder | [`pipeline`], [`run`] | [`pipeline::run`], [`RunDir::open`] |
//! | cross-validation beside classical baselines | [`evaluate`] | [`evaluate::run`] |
//! | predict and batch-score new tables | [`score`] | [`score::predict`], [`score::run`] |
//! | attributions and class activation maps | [`explain`] | [`explain::run`] |
//! | export (Burn record, INT8, ONNX, TensorRT, Core ML) | [`export`] | [`export::run`] |
//! | serve over HTTP with dynamic batching | [`serve`] | [`serve::Server`] |
//!
//! The settings of a pipeline file are [`PipelineConfig`]: one section per stage, each owned by
//! its stage ([`DataSettings`], [`SelectSettings`], [`LayoutSettings`], [`ModelSettings`],
//! [`TrainSettings`], [`EvaluateSettings`]), every key optional.
//!
//! # Example
//!
//! Train on a small synthetic cohort, then predict the same tables with the run folder:
//!
//! ```
//! use deepinsight::{PipelineConfig, synth};
//!
//! # fn main() -> anyhow::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let data = dir.path();
//! // Four omics tables (genomics, proteomics, metabolomics, microbiome) and their labels.
//! let spec = synth::SynthSpec {
//!     samples: 60,
//!     genes: 120,
//!     proteins: 40,
//!     metabolites: 30,
//!     taxa: 20,
//!     pathways: 6,
//!     ..Default::default()
//! };
//! synth::write_cohort(&synth::generate(&spec, 7), data)?;
//!
//! let d = data.display();
//! let config = PipelineConfig::from_toml(&format!(
//!     r#"
//!     name = "example"
//!     output_dir = "{d}/models"
//!     [data]
//!     labels = "{d}/labels.parquet"
//!     [data.modalities]
//!     genomics = "{d}/genomics.parquet"
//!     proteomics = "{d}/proteomics.parquet"
//!     [layout]
//!     method = "pca"
//!     height = 16
//!     width = 16
//!     [model]
//!     width = 4
//!     [train]
//!     epochs = 1
//!     "#
//! ))?;
//! let summary = deepinsight::pipeline::run(&config)?;
//! println!("{summary}");
//! assert!(summary.run_dir.join(deepinsight::run::MODEL).exists());
//!
//! let predicted = deepinsight::score::predict(&deepinsight::score::PredictOptions {
//!     model: summary.run_dir.clone(),
//!     inputs: vec![
//!         ("genomics".into(), data.join("genomics.parquet")),
//!         ("proteomics".into(), data.join("proteomics.parquet")),
//!     ],
//!     labels: Some(data.join("labels.parquet")),
//!     output: data.join("predictions.csv"),
//!     batch_size: 32,
//! })?;
//! assert_eq!(predicted.samples, summary.samples);
//! # Ok(())
//! # }
//! ```
//!
//! The command line ([`cli`]) is a thin layer over these functions; the binary only parses
//! arguments and sets up logging.

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

pub(crate) mod artefact;
pub(crate) mod batching;
pub mod bench;
pub mod cli;
pub mod config;
pub(crate) mod crossval;
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
pub(crate) mod predictions;
pub(crate) mod progress;
pub mod render;
pub(crate) mod report;
pub mod run;
pub mod score;
pub mod select;
pub mod serve;
pub mod synth;

pub use config::{
    DataSettings, EvaluateSettings, LayoutSettings, ModelSettings, PipelineConfig, SelectSettings,
    TrainSettings,
};
pub use layout::Layout;
pub use run::RunDir;
pub use select::FeatureSpace;
