//! Feature selection: the selected features of each modality with their fitted normalisation.

pub(crate) mod anova;
pub(crate) mod gmt;
pub(crate) mod pathways;
pub(crate) mod settings;
pub(crate) mod variance;

pub use pathways::UNASSIGNED;

use anyhow::{Result, bail};
use ndarray::parallel::prelude::*;
use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use self::settings::{FeatureScore, PathwaySettings, SelectSettings};
use crate::omics::normalise::{Normaliser, fit_medians, impute};
use crate::omics::settings::NormaliseSettings;
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
    /// Pathway groups of the kept features, when selected by pathway.
    #[serde(default)]
    pub pathways: Option<pathways::PathwaySelection>,
}

impl FeatureSpace {
    /// Fits imputation, normalisation and selection on the training rows of the cohort.
    pub fn fit(
        cohort: &Cohort,
        train_rows: &[usize],
        select: &SelectSettings,
        normalise: &NormaliseSettings,
    ) -> Result<Self> {
        let keep = match &select.keep {
            Some(path) => Some(keep_list(cohort, path)?),
            None => None,
        };
        let prepared: Vec<Prepared> = cohort
            .modalities
            .iter()
            .map(|m| {
                let mut p = prepare(m, train_rows, normalise)?;
                if let Some(keep) = &keep {
                    let allowed = &keep[&m.name];
                    p.non_constant
                        .retain(|&j| allowed.contains(m.feature_names[j].as_str()));
                }
                Ok(p)
            })
            .collect::<Result<_>>()?;
        match &select.pathways {
            None => {
                let modalities = prepared
                    .into_iter()
                    .map(|p| {
                        let keep = variance::top_k(
                            p.normalised.view(),
                            &p.non_constant,
                            select.top_k_for(&p.modality.name),
                        );
                        p.keep(keep, select)
                    })
                    .collect::<Result<_>>()?;
                Ok(Self {
                    modalities,
                    pathways: None,
                })
            }
            Some(pathway_config) => {
                let labels: Vec<usize> = train_rows.iter().map(|&r| cohort.labels[r]).collect();
                fit_by_pathway(prepared, &labels, cohort.classes.len(), pathway_config)
            }
        }
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

    /// Each pathway group's name and feature columns, in rank order (the unassigned group
    /// last); `None` without pathway selection.
    pub fn pathway_blocks(&self) -> Option<Vec<(String, Vec<usize>)>> {
        let selection = self.pathways.as_ref()?;
        let column: std::collections::HashMap<(String, String), usize> = self
            .feature_list()
            .into_iter()
            .enumerate()
            .map(|(j, key)| (key, j))
            .collect();
        Some(
            selection
                .groups
                .iter()
                .map(|g| {
                    let cols = g
                        .features
                        .iter()
                        .map(|f| column[&(f.modality.clone(), f.name.clone())])
                        .collect();
                    (g.name.clone(), cols)
                })
                .collect(),
        )
    }

    /// Normalised, selected values of every cohort sample: samples x `n_features()`.
    pub fn transform(&self, cohort: &Cohort) -> Result<Array2<f32>> {
        self.transform_modalities(&cohort.modalities)
    }

    /// Normalised, selected values from aligned modality tables, found by name; feature
    /// columns are found by name too, so their order and any extra columns do not matter.
    pub fn transform_modalities(&self, modalities: &[Modality]) -> Result<Array2<f32>> {
        let raw = self.select_raw(modalities)?;
        let views: Vec<_> = raw.iter().map(|b| b.view()).collect();
        self.transform_selected(&views)
    }

    /// The raw values of the kept features, one block per modality in this space's order,
    /// found by modality and column name.
    pub fn select_raw(&self, modalities: &[Modality]) -> Result<Vec<Array2<f32>>> {
        let mut raw = Vec::with_capacity(self.modalities.len());
        for selected in &self.modalities {
            let Some(m) = modalities.iter().find(|m| m.name == selected.name) else {
                bail!("modality '{}' is missing from the input", selected.name);
            };
            let columns = column_indices(m, &selected.features)?;
            raw.push(m.values.select(Axis(1), &columns));
        }
        Ok(raw)
    }

    /// Per modality (with any), how many raw values lie far outside the training range
    /// ([`Normaliser::far_outside`]): they are clipped, and usually mean another unit or
    /// scale than the model was trained on.
    pub fn far_outside(&self, raw: &[ArrayView2<f32>]) -> Vec<(String, usize)> {
        self.modalities
            .iter()
            .zip(raw)
            .map(|(m, values)| (m.name.clone(), m.normaliser.far_outside(*values)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Normalised values from the raw values of the kept features: one block per modality in
    /// `modalities` order, rows aligned, columns in `features` order. NaN is imputed with the
    /// training median.
    pub fn transform_selected(&self, raw: &[ArrayView2<f32>]) -> Result<Array2<f32>> {
        if raw.len() != self.modalities.len() {
            bail!(
                "{} modality blocks given, the feature space has {}",
                raw.len(),
                self.modalities.len()
            );
        }
        let n = raw.first().map_or(0, |v| v.nrows());
        for (selected, values) in self.modalities.iter().zip(raw) {
            if values.ncols() != selected.features.len() {
                bail!(
                    "modality '{}': {} columns given, {} features kept",
                    selected.name,
                    values.ncols(),
                    selected.features.len()
                );
            }
            if values.nrows() != n {
                bail!(
                    "modality '{}': {} rows given, the first modality has {n}",
                    selected.name,
                    values.nrows()
                );
            }
        }
        // Each modality is written straight into its columns of the output (no per-modality
        // arrays to concatenate), rows in parallel: batch scoring normalises every sample here.
        const ROWS: usize = 64;
        let mut out = Array2::<f32>::zeros((n, self.n_features()));
        out.axis_chunks_iter_mut(Axis(0), ROWS)
            .into_par_iter()
            .enumerate()
            .for_each(|(chunk, mut rows)| {
                for (r, mut row) in rows.rows_mut().into_iter().enumerate() {
                    let row = row
                        .as_slice_mut()
                        .expect("rows of a fresh array are contiguous");
                    let mut offset = 0;
                    for (selected, values) in self.modalities.iter().zip(raw) {
                        let width = selected.features.len();
                        selected.normaliser.transform_row(
                            values.row(chunk * ROWS + r),
                            &mut row[offset..offset + width],
                        );
                        offset += width;
                    }
                }
            });
        Ok(out)
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

/// `select.keep`: the features each modality may keep. Every listed feature must exist, and
/// every modality must list some.
fn keep_list(
    cohort: &Cohort,
    path: &std::path::Path,
) -> Result<std::collections::HashMap<String, std::collections::HashSet<String>>> {
    let pairs = pathways::read_pairs(path, Some(&["modality".into(), "feature".into()]))
        .map_err(|e| e.context("select.keep"))?;
    let mut keep: std::collections::HashMap<String, std::collections::HashSet<String>> = cohort
        .modalities
        .iter()
        .map(|m| (m.name.clone(), Default::default()))
        .collect();
    for (modality, feature) in pairs {
        let Some(m) = cohort.modalities.iter().find(|m| m.name == modality) else {
            bail!(
                "select.keep {}: modality '{modality}' (feature '{feature}') is not in data.modalities",
                path.display()
            );
        };
        if !m.feature_names.contains(&feature) {
            bail!(
                "select.keep {}: modality '{modality}' has no feature '{feature}'",
                path.display()
            );
        }
        keep.get_mut(&modality)
            .expect("every modality has an entry")
            .insert(feature);
    }
    if let Some((name, _)) = keep.iter().find(|(_, f)| f.is_empty()) {
        bail!(
            "select.keep {}: no feature of modality '{name}' is listed",
            path.display()
        );
    }
    Ok(keep)
}

/// A modality's training values imputed and normalised, before any feature is dropped.
struct Prepared<'a> {
    modality: &'a Modality,
    normaliser: Normaliser,
    normalised: Array2<f32>,
    non_constant: Vec<usize>,
}

fn prepare<'a>(
    m: &'a Modality,
    train_rows: &[usize],
    normalise: &NormaliseSettings,
) -> Result<Prepared<'a>> {
    let mut train = m.values.select(Axis(0), train_rows);
    let medians = fit_medians(train.view(), &m.feature_names, &m.name)?;
    impute(&mut train, &medians);
    let non_constant = variance::non_constant(train.view());
    let normaliser = Normaliser::fit(normalise.method, train.view(), medians);
    let normalised = normaliser.transform(train.view());
    Ok(Prepared {
        modality: m,
        normaliser,
        normalised,
        non_constant,
    })
}

impl Prepared<'_> {
    fn dropped_constant(&self) -> usize {
        self.modality.feature_names.len() - self.non_constant.len()
    }

    /// Keeps the columns `keep` (ascending) after top-k selection by variance.
    fn keep(self, keep: Vec<usize>, select: &SelectSettings) -> Result<SelectedModality> {
        let m = self.modality;
        if keep.len() < MIN_FEATURES {
            let k = select.top_k_for(&m.name);
            bail!(
                "modality '{}': only {} feature(s) left after selection ({} constant on training samples, select.top_k = {k}); \
                 at least {MIN_FEATURES} are needed: raise select.top_k (or select.top_k_per_modality.{}) or provide more varying features",
                m.name,
                keep.len(),
                self.dropped_constant(),
                m.name
            );
        }
        tracing::info!(
            modality = %m.name,
            kept = keep.len(),
            constant = self.dropped_constant(),
            "selected features by variance"
        );
        Ok(self.subset(keep))
    }

    fn subset(self, keep: Vec<usize>) -> SelectedModality {
        SelectedModality {
            name: self.modality.name.clone(),
            dropped_constant: self.dropped_constant(),
            features: keep
                .iter()
                .map(|&j| self.modality.feature_names[j].clone())
                .collect(),
            normaliser: self.normaliser.subset(&keep),
        }
    }
}

/// Selection by pathway over all modalities at once; a modality none of whose features is
/// kept drops out of the feature space (and so out of the images).
fn fit_by_pathway(
    prepared: Vec<Prepared>,
    labels: &[usize],
    n_classes: usize,
    config: &PathwaySettings,
) -> Result<FeatureSpace> {
    let sets = gmt::read(&config.gmt)?;
    let matcher = pathways::Matcher::new(config)?;
    let candidates: Vec<pathways::Candidates> = prepared
        .iter()
        .map(|p| {
            let n = p.modality.feature_names.len();
            let mut usable = vec![false; n];
            for &j in &p.non_constant {
                usable[j] = true;
            }
            let variance = variance::column_variances(p.normalised.view());
            let score = match config.score {
                FeatureScore::Variance => variance.clone(),
                FeatureScore::Anova => anova::anova_f(p.normalised.view(), labels, n_classes),
            };
            pathways::Candidates {
                modality: &p.modality.name,
                names: &p.modality.feature_names,
                usable,
                score,
                variance,
            }
        })
        .collect();
    let selection = pathways::select(
        &candidates,
        &sets,
        &matcher,
        config,
        &config.gmt.display().to_string(),
    );
    drop(candidates);
    report_coverage(&selection);
    if selection.groups.is_empty() {
        bail!(
            "{}: no gene set has {} or more features of the data (of {} sets, {} match no feature; \
             first unknown members: {}); check the names, set case_insensitive = true, add an id_map, \
             or lower select.pathways.min_members",
            config.gmt.display(),
            config.min_members,
            selection.coverage.gene_sets,
            selection.coverage.empty_sets.len(),
            selection.coverage.unknown_examples.join(", ")
        );
    }
    let mut modalities = Vec::new();
    for p in prepared {
        let index: std::collections::HashMap<&str, usize> = p
            .modality
            .feature_names
            .iter()
            .enumerate()
            .map(|(j, n)| (n.as_str(), j))
            .collect();
        let mut keep: Vec<usize> = selection
            .groups
            .iter()
            .flat_map(|g| &g.features)
            .filter(|f| f.modality == p.modality.name)
            .map(|f| index[f.name.as_str()])
            .collect();
        keep.sort_unstable();
        if keep.is_empty() {
            tracing::warn!(modality = %p.modality.name, "no feature kept by pathway selection: the modality is left out");
            continue;
        }
        tracing::info!(modality = %p.modality.name, kept = keep.len(), "selected features by pathway");
        modalities.push(p.subset(keep));
    }
    Ok(FeatureSpace {
        modalities,
        pathways: Some(selection),
    })
}

fn report_coverage(selection: &pathways::PathwaySelection) {
    let c = &selection.coverage;
    for m in &c.modalities {
        tracing::info!(modality = %m.modality, features = m.features, in_pathway = m.in_pathway, "gene-set coverage");
    }
    if !c.empty_sets.is_empty() {
        tracing::warn!(
            count = c.empty_sets.len(),
            first = %c.empty_sets.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
            "gene sets with no member among the features"
        );
    }
    if c.unknown_members > 0 {
        tracing::warn!(
            count = c.unknown_members,
            first = %c.unknown_examples.join(", "),
            "gene-set members that are not features of the data"
        );
    }
}
