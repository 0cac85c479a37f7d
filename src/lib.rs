//! deepinsight: multi-omics tables -> feature layout -> images -> ResNet18, after the
//! DeepInsight method (Sharma et al., Scientific Reports 9:11399, 2019).
//!
//! Each stage is a module; `pipeline` runs them in order from a pipeline file.

pub mod artefact;
pub mod bench;
pub mod config;
pub mod explain;
pub mod export;
pub mod layout;
pub mod manifest;
pub mod mapping;
pub mod model;
pub mod omics;
pub mod onnxrt;
pub mod pipeline;
pub mod predictions;
pub mod render;
pub mod score;
pub mod select;
pub mod serve;
pub mod synth;

pub use config::PipelineConfig;
