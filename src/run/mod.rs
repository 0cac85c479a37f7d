//! A run folder: what `deepinsight run`/`train` writes and every later command reads. This
//! module owns it: the file names, the manifest and its format version, writing (staged in a
//! hidden folder, renamed into place whole) and opening (each file checked against the sha256
//! the manifest recorded).
//!
//! | file | what |
//! |---|---|
//! | `manifest.json` | settings, inputs and their checksums, samples, classes, features, fitted feature space, metrics, checksums of the other files |
//! | `layout.json` | where each feature goes on the image |
//! | `model.bpk`, `model-config.json` | the network's weights (Burn record) and shape |
//! | `predictions.parquet` | every training, validation and test sample's split and probabilities |
//! | `mapping.parquet`, `mapping.csv`, `pathway_summary.csv` | feature to pixel, and pathway blocks |
//! | `training.png`, `feature_map.png`, `pathway_map.png`, `density_map.png`, `class_images.png` | pictures |

pub(crate) mod manifest;
mod open;
mod write;

// The checksums the manifest records, for those who verify a run folder themselves.
pub use crate::artefact::{sha256_file, sha256_hex};
pub use manifest::Manifest;
pub use open::{RunCohort, RunDir};
pub use write::RunWriter;

/// The manifest; its presence marks a folder the tool wrote.
pub const MANIFEST: &str = "manifest.json";
pub const LAYOUT: &str = "layout.json";
pub const MODEL: &str = "model.bpk";
pub const MODEL_CONFIG: &str = "model-config.json";
pub const PREDICTIONS: &str = "predictions.parquet";
pub const MAPPING_PARQUET: &str = "mapping.parquet";
pub const MAPPING_CSV: &str = "mapping.csv";
pub const PATHWAY_SUMMARY: &str = "pathway_summary.csv";
pub const TRAINING_CURVES: &str = "training.png";
pub const FEATURE_MAP: &str = "feature_map.png";
pub const PATHWAY_MAP: &str = "pathway_map.png";
pub const DENSITY_MAP: &str = "density_map.png";
pub const CLASS_IMAGES: &str = "class_images.png";

/// The manifest format this release writes. Runs without the field were written before it
/// existed (format 0) and still open; a run from a later format is refused with a message.
pub const FORMAT: u32 = 1;
