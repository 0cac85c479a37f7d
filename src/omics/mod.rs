//! Omics tables: loading, sample alignment across modalities, imputation and normalisation.

pub(crate) mod align;
pub(crate) mod normalise;
pub(crate) mod settings;
pub(crate) mod table;

pub use align::{Cohort, DroppedSample, Modality, align};
pub use normalise::Normaliser;
pub use table::{Table, load_labels, load_table, read_frame};

use anyhow::Result;

use self::settings::DataSettings;

/// Loads every modality and the labels, and aligns the samples.
pub fn load_cohort(data: &DataSettings) -> Result<Cohort> {
    let mut tables = Vec::with_capacity(data.modalities.len());
    for (name, path) in &data.modalities {
        let table = load_table(path, &data.sample_id_column, data.infinite_values)
            .map_err(|e| e.context(format!("modality '{name}'")))?;
        tracing::info!(
            modality = %name,
            samples = table.sample_ids.len(),
            features = table.feature_names.len(),
            "loaded {}",
            path.display()
        );
        tables.push((name.clone(), table));
    }
    let labels = load_labels(&data.labels, &data.sample_id_column, &data.label_column)?;
    let cohort = align(tables, &labels, &data.labels)?;
    for d in &cohort.dropped {
        tracing::info!(
            sample = %d.sample_id,
            missing_from = %d.missing_from.join(", "),
            "sample dropped: not present in every modality"
        );
    }
    Ok(cohort)
}
