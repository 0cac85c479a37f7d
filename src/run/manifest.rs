//! manifest.json: everything needed to know what a run did and to score new samples exactly
//! as its training samples were scored.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::{Baseline, PipelineConfig};
use crate::layout::LayoutReport;
use crate::model::Metrics;
use crate::model::metrics::EpochStats;
use crate::model::metrics::MajorityBaseline;
use crate::model::pretrained::PretrainedReport;
use crate::omics::DroppedSample;
use crate::select::FeatureSpace;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputFile {
    /// Modality name, or "labels".
    pub role: String,
    pub path: PathBuf,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SampleCounts {
    pub aligned: usize,
    pub train: usize,
    pub validation: usize,
    #[serde(default)]
    pub test: usize,
    pub dropped: Vec<DroppedSample>,
    /// Samples of each class in each split, in class order (empty in runs written before it).
    #[serde(default)]
    pub per_class: Vec<ClassCount>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClassCount {
    pub class: String,
    pub train: usize,
    pub validation: usize,
    pub test: usize,
}

impl ClassCount {
    /// Counts of each class in each split; `labels` holds class indices by cohort row.
    pub fn tally(
        classes: &[String],
        labels: &[usize],
        (train, validation, test): (&[usize], &[usize], &[usize]),
    ) -> Vec<Self> {
        let count = |rows: &[usize], k: usize| rows.iter().filter(|&&r| labels[r] == k).count();
        classes
            .iter()
            .enumerate()
            .map(|(k, class)| Self {
                class: class.clone(),
                train: count(train, k),
                validation: count(validation, k),
                test: count(test, k),
            })
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureEntry {
    pub modality: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelSummary {
    pub architecture: String,
    pub record: String,
    pub config_file: String,
    pub parameters: usize,
    pub best_epoch: usize,
    pub history: Vec<EpochStats>,
    /// The epoch after which early stopping ended training.
    #[serde(default)]
    pub stopped_early: Option<usize>,
    /// The checkpoint epoch a resumed run continued from.
    #[serde(default)]
    pub resumed_from: Option<usize>,
    /// The torchvision weights training started from.
    #[serde(default)]
    pub pretrained: Option<PretrainedReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest format (`run::FORMAT` when written; 0 when absent, before it existed).
    #[serde(default)]
    pub format: u32,
    pub tool: String,
    pub version: String,
    pub config: PipelineConfig,
    pub inputs: Vec<InputFile>,
    pub samples: SampleCounts,
    pub classes: Vec<String>,
    /// Columns of the feature vector, in order: the layout's feature indices refer to these.
    pub features: Vec<FeatureEntry>,
    /// Imputation, normalisation and selection, fitted on training samples.
    pub feature_space: FeatureSpace,
    pub layout_file: String,
    pub layout: Vec<LayoutReport>,
    pub model: ModelSummary,
    /// Validation metrics of the kept (best) epoch.
    pub metrics: Metrics,
    /// Metrics of the kept model on the test split (with `train.test_fraction` > 0).
    #[serde(default)]
    pub test_metrics: Option<Metrics>,
    /// The trivial baseline on the same splits: the most common training class, always.
    #[serde(default)]
    pub baseline: Option<MajorityBaseline>,
    /// The learned baselines on the test split, fitted on the training and validation
    /// samples' features (with `train.test_fraction` > 0).
    #[serde(default)]
    pub test_baselines: Vec<(Baseline, Metrics)>,
    pub stage_seconds: BTreeMap<String, f64>,
    /// sha256 of every other file of the run.
    pub files: BTreeMap<String, String>,
}
