//! The parts of cross-validation that need no pipeline: stratified folds, the baseline models,
//! the statistics over folds, and the `[evaluate]` settings. `evaluate/` runs them on a
//! pipeline.

pub mod baselines;
pub mod folds;
pub mod settings;
pub mod stats;
