//! `[select]`: which features become pixels.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SelectSettings {
    /// Keep at most this many features per modality, ranked by variance on training samples.
    pub top_k: usize,
    /// Per-modality overrides of `top_k`.
    pub top_k_per_modality: BTreeMap<String, usize>,
    /// Pathway-grouped selection from GMT gene sets; replaces `top_k` when set.
    pub pathways: Option<PathwaySettings>,
    /// A feature list (Parquet, CSV or TSV with columns `modality` and `feature`): only these
    /// features are candidates, before `top_k` or pathways choose among them. `deepinsight
    /// explain --refit` writes one from the features the model's class activation maps rank best.
    pub keep: Option<PathBuf>,
}

impl Default for SelectSettings {
    fn default() -> Self {
        Self {
            top_k: 1000,
            top_k_per_modality: BTreeMap::new(),
            pathways: None,
            keep: None,
        }
    }
}

impl SelectSettings {
    /// Features kept of `modality`.
    pub fn top_k_for(&self, modality: &str) -> usize {
        self.top_k_per_modality
            .get(modality)
            .copied()
            .unwrap_or(self.top_k)
    }

    pub fn validate(&self) -> Result<()> {
        if let Some(p) = &self.pathways {
            p.validate()?;
        }
        Ok(())
    }
}

/// How features are ranked within a pathway, and pathways against each other.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FeatureScore {
    /// One-way ANOVA F statistic of the feature across classes, on training samples.
    #[default]
    Anova,
    /// Variance of the normalised feature on training samples (unsupervised).
    Variance,
}

/// `[select.pathways]`: gene sets from a GMT file, matched to features by name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct PathwaySettings {
    /// GMT file (MSigDB/GSEA format): name, description, members, tab-separated.
    pub gmt: PathBuf,
    /// Match members to feature names ignoring case.
    pub case_insensitive: bool,
    /// Optional ID-mapping table (Parquet, CSV or TSV): its first two columns (or `id_map_columns`)
    /// are two names of one feature, e.g. Ensembl id and gene symbol; a member matches a
    /// feature under either name.
    pub id_map: Option<PathBuf>,
    pub id_map_columns: Option<[String; 2]>,
    /// Pathways with fewer matched (non-constant) features are left out.
    pub min_members: usize,
    /// Features kept per pathway, the best by `score`.
    pub top_k: usize,
    pub score: FeatureScore,
    /// Keep the best pathways by the mean score of their kept features; unset keeps all.
    pub top_pathways: Option<usize>,
    /// Features in no pathway: keep the best this many as an "unassigned" group (0 drops them).
    pub unassigned: usize,
}

impl Default for PathwaySettings {
    fn default() -> Self {
        Self {
            gmt: PathBuf::new(),
            case_insensitive: false,
            id_map: None,
            id_map_columns: None,
            min_members: 5,
            top_k: 10,
            score: FeatureScore::default(),
            top_pathways: None,
            unassigned: 0,
        }
    }
}

impl PathwaySettings {
    pub fn validate(&self) -> Result<()> {
        if self.gmt.as_os_str().is_empty() {
            bail!("select.pathways.gmt: a GMT file of gene sets is needed");
        }
        if self.top_k == 0 {
            bail!("select.pathways.top_k: must be at least 1");
        }
        if self.top_pathways == Some(0) {
            bail!("select.pathways.top_pathways: must be at least 1 (leave it out to keep all)");
        }
        Ok(())
    }
}
