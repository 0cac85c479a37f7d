//! Feature selection: the selected features of each modality with their fitted normalisation.

pub mod variance;

use anyhow::{Result, bail};
use ndarray::{Array2, Axis, concatenate};
use serde::{Deserialize, Serialize};

use crate::config::PipelineConfig;
use crate::omics::normalise::{Normaliser, fit_medians, impute};
use crate::omics::{Cohort, Modality};

/// Smallest number of features a modality may keep: a layout needs a 2-D hull.
pub const MIN_FEATURES: usize = 3;

/// One modality after selection: which raw columns are kept, and how they are normalised.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SelectedModality {
    pub name: String,
    /// Kept feature names, in table order.
    pub features: Vec<String>,
    /// Normalisation statistics of the kept features, fitted on training samples.
    pub normaliser: Normaliser,
    pub dropped_constant: usize,
}

/// The fitted feature space: applies to any sample with the same raw columns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeatureSpace {
    pub modalities: Vec<SelectedModality>,
}

impl FeatureSpace {
    /// Fits imputation, normalisation and selection on the training rows of the cohort.
    pub fn fit(cohort: &Cohort, train_rows: &[usize], config: &PipelineConfig) -> Result<Self> {
        let modalities = cohort
            .modalities
            .iter()
            .map(|m| fit_modality(m, train_rows, config))
            .collect::<Result<_>>()?;
        Ok(Self { modalities })
    }

    pub fn n_features(&self) -> usize {
        self.modalities.iter().map(|m| m.features.len()).sum()
    }

    /// Each modality with its columns in the feature vector, for the layout.
    pub fn groups(&self) -> Vec<(String, Vec<usize>)> {
        let mut offset = 0;
        self.modalities
            .iter()
            .map(|m| {
                let columns = (offset..offset + m.features.len()).collect();
                offset += m.features.len();
                (m.name.clone(), columns)
            })
            .collect()
    }

    /// (modality, feature) for every column of `transform`'s output, in order.
    pub fn feature_list(&self) -> Vec<(String, String)> {
        self.modalities
            .iter()
            .flat_map(|m| m.features.iter().map(|f| (m.name.clone(), f.clone())))
            .collect()
    }

    /// Normalised, selected values of every cohort sample: samples x `n_features()`.
    pub fn transform(&self, cohort: &Cohort) -> Result<Array2<f32>> {
        let mut blocks = Vec::with_capacity(self.modalities.len());
        for selected in &self.modalities {
            let Some(m) = cohort.modalities.iter().find(|m| m.name == selected.name) else {
                bail!("modality '{}' is missing from the input", selected.name);
            };
            let columns = column_indices(m, &selected.features)?;
            let raw = m.values.select(Axis(1), &columns);
            blocks.push(selected.normaliser.transform(raw.view()));
        }
        let views: Vec<_> = blocks.iter().map(|b| b.view()).collect();
        Ok(concatenate(Axis(1), &views)?)
    }
}

fn column_indices(m: &Modality, features: &[String]) -> Result<Vec<usize>> {
    let index: std::collections::HashMap<&str, usize> = m
        .feature_names
        .iter()
        .enumerate()
        .map(|(j, n)| (n.as_str(), j))
        .collect();
    features
        .iter()
        .map(|f| match index.get(f.as_str()) {
            Some(&j) => Ok(j),
            None => bail!("modality '{}': feature column '{f}' is missing", m.name),
        })
        .collect()
}

fn fit_modality(
    m: &Modality,
    train_rows: &[usize],
    config: &PipelineConfig,
) -> Result<SelectedModality> {
    let mut train = m.values.select(Axis(0), train_rows);
    let medians = fit_medians(train.view(), &m.feature_names, &m.name)?;
    impute(&mut train, &medians);
    let non_constant = variance::non_constant(train.view());
    let normaliser = Normaliser::fit(config.normalise.method, train.view(), medians);
    let normalised = normaliser.transform(train.view());
    let k = config.top_k_for(&m.name);
    let keep = variance::top_k(normalised.view(), &non_constant, k);
    if keep.len() < MIN_FEATURES {
        bail!(
            "modality '{}': only {} feature(s) left after selection ({} constant on training samples, select.top_k = {k}); \
             at least {MIN_FEATURES} are needed: raise select.top_k (or select.top_k_per_modality.{}) or provide more varying features",
            m.name,
            keep.len(),
            m.feature_names.len() - non_constant.len(),
            m.name
        );
    }
    tracing::info!(
        modality = %m.name,
        kept = keep.len(),
        constant = m.feature_names.len() - non_constant.len(),
        "selected features by variance"
    );
    Ok(SelectedModality {
        name: m.name.clone(),
        features: keep.iter().map(|&j| m.feature_names[j].clone()).collect(),
        normaliser: normaliser.subset(&keep),
        dropped_constant: m.feature_names.len() - non_constant.len(),
    })
}
