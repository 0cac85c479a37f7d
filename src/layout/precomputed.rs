//! Feature coordinates supplied by the user (`method = "precomputed"`): a table with columns
//! `feature`, `x`, `y` and, when feature names repeat across modalities, `modality`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use ndarray::Array2;
use polars::prelude::{DataFrame, DataType};

use crate::omics::table::read_frame;

/// Coordinates (n x 2) of the given (modality, feature) pairs, in their order.
pub fn read(path: &Path, features: &[(String, String)]) -> Result<Array2<f64>> {
    let frame = read_frame(path)?;
    let text = |name: &str| -> Result<Option<Vec<Option<String>>>> {
        let Ok(col) = frame.column(name) else {
            return Ok(None);
        };
        let col = col
            .cast(&DataType::String)
            .with_context(|| format!("{}: column '{name}' is not text", path.display()))?;
        Ok(Some(
            col.str()?.iter().map(|v| v.map(str::to_string)).collect(),
        ))
    };
    let Some(names) = text("feature")? else {
        bail!(
            "{}: no 'feature' column (expected feature, x, y)",
            path.display()
        );
    };
    let modalities = text("modality")?;
    let xs = numbers(&frame, "x", path)?;
    let ys = numbers(&frame, "y", path)?;
    let mut at: HashMap<(Option<String>, String), usize> = HashMap::new();
    for (row, name) in names.iter().enumerate() {
        let Some(name) = name else {
            bail!("{}: row {}: empty feature name", path.display(), row + 1);
        };
        if !(xs[row].is_finite() && ys[row].is_finite()) {
            bail!(
                "{}: row {}: coordinates of '{name}' are not finite",
                path.display(),
                row + 1
            );
        }
        let modality = modalities.as_ref().and_then(|m| m[row].clone());
        if let Some(first) = at.insert((modality, name.clone()), row) {
            bail!(
                "{}: feature '{name}' appears twice (rows {} and {})",
                path.display(),
                first + 1,
                row + 1
            );
        }
    }
    let mut out = Array2::zeros((features.len(), 2));
    for (i, (modality, feature)) in features.iter().enumerate() {
        let key = (
            modalities.as_ref().map(|_| modality.clone()),
            feature.clone(),
        );
        let Some(&row) = at.get(&key) else {
            bail!(
                "{}: no coordinates for feature '{feature}' of modality '{modality}'",
                path.display()
            );
        };
        out[[i, 0]] = xs[row];
        out[[i, 1]] = ys[row];
    }
    Ok(out)
}

fn numbers(frame: &DataFrame, name: &str, path: &Path) -> Result<Vec<f64>> {
    let col = frame
        .column(name)
        .map_err(|_| {
            anyhow::anyhow!(
                "{}: no '{name}' column (expected feature, x, y)",
                path.display()
            )
        })?
        .cast(&DataType::Float64)
        .with_context(|| format!("{}: column '{name}' is not numeric", path.display()))?;
    Ok(col.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}
