//! `[data]` and `[normalise]`: which tables make the cohort, and how their values are scaled.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// `[data]`: the input tables.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct DataSettings {
    /// Modality name -> table path (Parquet, CSV or TSV, chosen by extension).
    /// A BTreeMap keeps the modality (and so channel) order stable: alphabetical.
    pub modalities: BTreeMap<String, PathBuf>,
    /// Table holding the class of every sample.
    pub labels: PathBuf,
    pub sample_id_column: String,
    pub label_column: String,
    /// What an infinite value (+-Inf) in a table means: an error naming it, or missing.
    pub infinite_values: Infinite,
}

impl Default for DataSettings {
    fn default() -> Self {
        Self {
            modalities: BTreeMap::new(),
            labels: PathBuf::new(),
            sample_id_column: "sample_id".into(),
            label_column: "label".into(),
            infinite_values: Infinite::default(),
        }
    }
}

impl DataSettings {
    pub fn validate(&self) -> Result<()> {
        if self.modalities.is_empty() {
            bail!("data.modalities: at least one modality table is needed");
        }
        if self.labels.as_os_str().is_empty() {
            bail!("data.labels: the table with each sample's class is needed");
        }
        Ok(())
    }
}

/// What an infinite value in an input table means.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Infinite {
    /// Stop with an error naming the file, column and sample: most often a division by zero
    /// upstream that the user should see.
    #[default]
    Error,
    /// Treat it as a missing value (imputed with the training median).
    Missing,
}

/// `[normalise]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct NormaliseSettings {
    pub method: NormMethod,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum NormMethod {
    /// Per-feature min-max to [0, 1].
    #[serde(rename = "norm-1")]
    Norm1,
    /// log(x + |min| + 1) divided by the global maximum, per modality (DeepInsight's default).
    #[default]
    #[serde(rename = "norm-2")]
    Norm2,
}
