//! The parts of cross-validation that need no pipeline: stratified folds, the baseline models,
//! the statistics over folds, and the `[evaluate]` settings. `evaluate/` runs them on a
//! pipeline.

pub(crate) mod baselines;
pub(crate) mod folds;
pub(crate) mod settings;
pub(crate) mod stats;
