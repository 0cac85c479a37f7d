//! Inner join of samples across modalities, with labels.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{Result, bail};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::table::Table;

/// One modality's features over the aligned samples.
#[derive(Debug, Clone)]
pub struct Modality {
    pub name: String,
    pub feature_names: Vec<String>,
    /// aligned samples x features; NaN = missing
    pub values: Array2<f32>,
}

/// A sample present in some tables but not all, and so left out of the cohort.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DroppedSample {
    pub sample_id: String,
    pub missing_from: Vec<String>,
}

/// Samples present in every modality, in sorted id order, with their classes.
#[derive(Debug, Clone)]
pub struct Cohort {
    pub sample_ids: Vec<String>,
    /// class index per sample, into `classes`
    pub labels: Vec<usize>,
    /// class names, sorted
    pub classes: Vec<String>,
    pub modalities: Vec<Modality>,
    pub dropped: Vec<DroppedSample>,
}

/// Samples present in every modality, without labels (for scoring).
#[derive(Debug, Clone)]
pub struct Joined {
    pub sample_ids: Vec<String>,
    pub modalities: Vec<Modality>,
    pub dropped: Vec<DroppedSample>,
}

/// Keeps the samples found in every table (sorted by id, so the result does not depend on row
/// order), reports the others, and attaches labels. A kept sample without a label is an error.
pub fn align(
    tables: Vec<(String, Table)>,
    labels: &HashMap<String, Option<String>>,
    labels_path: &std::path::Path,
) -> Result<Cohort> {
    let joined = join(tables)?;
    let mut sample_labels = Vec::with_capacity(joined.sample_ids.len());
    for id in &joined.sample_ids {
        match labels.get(id) {
            Some(Some(label)) => sample_labels.push(label.clone()),
            Some(None) => bail!(
                "{}: sample '{id}' has an empty label",
                labels_path.display()
            ),
            None => bail!("{}: sample '{id}' has no label", labels_path.display()),
        }
    }
    let classes: Vec<String> = sample_labels
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if classes.len() < 2 {
        bail!(
            "{}: the aligned samples have only {} class(es); a classifier needs at least 2",
            labels_path.display(),
            classes.len()
        );
    }
    let labels = sample_labels
        .iter()
        .map(|l| {
            classes
                .binary_search(l)
                .expect("class list built from these labels")
        })
        .collect();
    Ok(Cohort {
        sample_ids: joined.sample_ids,
        labels,
        classes,
        modalities: joined.modalities,
        dropped: joined.dropped,
    })
}

/// The inner join of the tables on sample id, sorted by id; samples missing from some table
/// are reported in `dropped`.
pub fn join(tables: Vec<(String, Table)>) -> Result<Joined> {
    let mut presence: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, table) in &tables {
        for id in &table.sample_ids {
            presence.entry(id.as_str()).or_default().push(name.as_str());
        }
    }
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for (id, found_in) in &presence {
        if found_in.len() == tables.len() {
            kept.push(id.to_string());
        } else {
            let missing_from = tables
                .iter()
                .map(|(name, _)| name.clone())
                .filter(|name| !found_in.contains(&name.as_str()))
                .collect();
            dropped.push(DroppedSample {
                sample_id: id.to_string(),
                missing_from,
            });
        }
    }
    if kept.is_empty() {
        bail!("no sample id is present in every modality table: check the sample-id columns");
    }
    let modalities = tables
        .into_iter()
        .map(|(name, table)| {
            let row_of: HashMap<&str, usize> = table
                .sample_ids
                .iter()
                .enumerate()
                .map(|(i, id)| (id.as_str(), i))
                .collect();
            let rows: Vec<usize> = kept.iter().map(|id| row_of[id.as_str()]).collect();
            let values = table.values.select(ndarray::Axis(0), &rows);
            Modality {
                name,
                feature_names: table.feature_names,
                values,
            }
        })
        .collect();
    Ok(Joined {
        sample_ids: kept,
        modalities,
        dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn table(ids: &[&str], value: f32) -> Table {
        Table {
            path: PathBuf::from("t.parquet"),
            sample_ids: ids.iter().map(|s| s.to_string()).collect(),
            feature_names: vec!["f".into()],
            values: Array2::from_shape_fn((ids.len(), 1), |(i, _)| value + i as f32),
        }
    }

    /// Labels alternate between two classes over the ids in reverse order.
    fn labels(ids: &[&str]) -> HashMap<String, Option<String>> {
        ids.iter()
            .rev()
            .enumerate()
            .map(|(i, id)| (id.to_string(), Some(format!("c{}", i % 2))))
            .collect()
    }

    #[test]
    fn sample_missing_from_one_modality_is_dropped_and_reported() {
        let tables = vec![
            ("genomics".to_string(), table(&["s3", "s1", "s2"], 0.0)),
            ("proteomics".to_string(), table(&["s1", "s3"], 10.0)),
        ];
        let cohort = align(tables, &labels(&["s1", "s3", "s2"]), Path::new("l")).unwrap();
        assert_eq!(cohort.sample_ids, vec!["s1", "s3"]);
        assert_eq!(
            cohort.dropped,
            vec![DroppedSample {
                sample_id: "s2".into(),
                missing_from: vec!["proteomics".into()]
            }]
        );
        // rows follow the ids, not the file order: s1 is row 1 of genomics, row 0 of proteomics
        assert_eq!(cohort.modalities[0].values[[0, 0]], 1.0);
        assert_eq!(cohort.modalities[1].values[[0, 0]], 10.0);
        assert_eq!(cohort.modalities[0].values[[1, 0]], 0.0);
    }

    #[test]
    fn kept_sample_without_label_is_an_error() {
        let tables = vec![("genomics".to_string(), table(&["s1", "s2", "s3"], 0.0))];
        let err = align(tables, &labels(&["s1", "s2"]), Path::new("labels.csv")).unwrap_err();
        assert!(err.to_string().contains("'s3' has no label"), "{err}");
    }
}
