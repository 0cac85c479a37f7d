//! DeepFeature's loop (Sharma et al. 2021): keep the features the class activation maps rank
//! best, fit the layout and train the model again on them, and compare validation accuracy
//! before and after. Each round explains the previous round's model on its training samples,
//! so the validation samples never take part in choosing features.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use polars::prelude::{Column, DataFrame};
use serde::{Deserialize, Serialize};

use super::{ExplainOptions, rank_features};
use crate::artefact;
use crate::mapping::csv_bytes;
use crate::pipeline;
use crate::run::{MANIFEST, Manifest};
use crate::select::MIN_FEATURES;

/// Which features a round keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Keep {
    /// The `selected` features (normalised score at or above the explain threshold).
    Selected,
    /// The best `n` features.
    Top(usize),
}

#[derive(Debug, Clone)]
pub struct RefitOptions {
    pub keep: Keep,
    pub rounds: usize,
}

/// Validation metrics of one model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Score {
    pub run: PathBuf,
    pub features: usize,
    pub accuracy: f64,
    pub balanced_accuracy: f64,
    pub macro_f1: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefitReport {
    pub before: Score,
    pub rounds: Vec<Score>,
    /// Features kept per modality in each round.
    pub kept: Vec<BTreeMap<String, usize>>,
}

fn read_manifest(run: &std::path::Path) -> Result<Manifest> {
    let path = run.join(MANIFEST);
    serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?,
    )
    .with_context(|| format!("{}: not a valid manifest", path.display()))
}

fn score_of(run: &std::path::Path, manifest: &Manifest) -> Score {
    Score {
        run: run.to_path_buf(),
        features: manifest.features.len(),
        accuracy: manifest.metrics.accuracy,
        balanced_accuracy: manifest.metrics.balanced_accuracy,
        macro_f1: manifest.metrics.macro_f1,
    }
}

/// The rows to keep from a ranked feature table (best first): the rule's features, then, for
/// any modality left with fewer than the layout's minimum, its next best features, so that
/// every modality (and so every sample) stays in the refitted run.
pub fn keep_rows(features: &DataFrame, keep: Keep) -> Result<Vec<(String, String)>> {
    let modality = features.column("modality")?.str()?.clone();
    let feature = features.column("feature")?.str()?.clone();
    let selected = features.column("selected")?.bool()?.clone();
    let rows: Vec<(String, String)> = (0..features.height())
        .map(|i| {
            (
                modality.get(i).unwrap_or_default().to_string(),
                feature.get(i).unwrap_or_default().to_string(),
            )
        })
        .collect();
    let mut chosen: Vec<bool> = match keep {
        Keep::Selected => (0..rows.len())
            .map(|i| selected.get(i).unwrap_or(false))
            .collect(),
        Keep::Top(n) => (0..rows.len()).map(|i| i < n).collect(),
    };
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, (m, _)) in rows.iter().enumerate() {
        *count.entry(m).or_default() += usize::from(chosen[i]);
    }
    for (i, (m, _)) in rows.iter().enumerate() {
        if !chosen[i] && count[m.as_str()] < MIN_FEATURES {
            chosen[i] = true;
            *count.get_mut(m.as_str()).expect("counted") += 1;
        }
    }
    Ok(rows
        .into_iter()
        .zip(chosen)
        .filter(|(_, c)| *c)
        .map(|(r, _)| r)
        .collect())
}

/// Refuses, before any work, a refit whose comparison would not be fair or that has no round.
pub fn check(explain: &ExplainOptions, refit: &RefitOptions) -> Result<()> {
    if refit.rounds == 0 {
        bail!("--rounds: at least 1");
    }
    if explain.samples != super::Samples::Split("train".into()) || !explain.inputs.is_empty() {
        bail!(
            "--refit chooses features from the maps of the run's training samples, so that the \
             validation accuracy before and after stays fair: leave out --samples and --input"
        );
    }
    if let Keep::Top(0) = refit.keep {
        bail!("--keep-top: at least 1");
    }
    Ok(())
}

/// Runs `refit.rounds` rounds after the explanation in `explain.out`, whose ranked table is
/// `first`. Round k writes `refit-k.features.csv` and the run `refit-k/` into `explain.out`,
/// and `refit_report.json` sums them up.
pub fn run(
    explain: &ExplainOptions,
    first: &DataFrame,
    refit: &RefitOptions,
) -> Result<RefitReport> {
    check(explain, refit)?;
    let original = read_manifest(&explain.model)?;
    let before = score_of(&explain.model, &original);
    let mut report = RefitReport {
        before,
        rounds: Vec::new(),
        kept: Vec::new(),
    };
    let mut features = first.clone();
    for round in 1..=refit.rounds {
        let kept = keep_rows(&features, refit.keep)?;
        let list = explain.out.join(format!("refit-{round}.features.csv"));
        let mut table = DataFrame::new_infer_height(vec![
            Column::new(
                "modality".into(),
                kept.iter().map(|k| k.0.clone()).collect::<Vec<_>>(),
            ),
            Column::new(
                "feature".into(),
                kept.iter().map(|k| k.1.clone()).collect::<Vec<_>>(),
            ),
        ])?;
        artefact::write_atomic(&list, &csv_bytes(&mut table)?)?;
        let mut per_modality: BTreeMap<String, usize> = BTreeMap::new();
        for (m, _) in &kept {
            *per_modality.entry(m.clone()).or_default() += 1;
        }
        let mut config = original.config.clone();
        config.name = format!("refit-{round}");
        config.output_dir = explain.out.clone();
        config.select.keep = Some(list);
        config.select.top_k = per_modality.values().copied().max().unwrap_or(1);
        config.select.top_k_per_modality.clear();
        config.validate()?;
        tracing::info!(round, features = kept.len(), "refitting layout and model");
        let summary = pipeline::run(&config)
            .with_context(|| format!("refit round {round} ({} features)", kept.len()))?;
        report.rounds.push(score_of(
            &summary.run_dir,
            &read_manifest(&summary.run_dir)?,
        ));
        report.kept.push(per_modality);
        if round < refit.rounds {
            features = rank_features(&summary.run_dir, explain)?;
        }
    }
    artefact::write_atomic(
        &explain.out.join("refit_report.json"),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: &[(&str, &str, bool)]) -> DataFrame {
        DataFrame::new_infer_height(vec![
            Column::new(
                "modality".into(),
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            ),
            Column::new(
                "feature".into(),
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            ),
            Column::new(
                "selected".into(),
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            ),
        ])
        .unwrap()
    }

    #[test]
    fn a_modality_short_of_the_minimum_is_topped_up_with_its_next_best() {
        let t = table(&[
            ("a", "a1", true),
            ("a", "a2", true),
            ("a", "a3", true),
            ("a", "a4", false),
            ("b", "b1", true),
            ("a", "a5", false),
            ("b", "b2", false),
            ("b", "b3", false),
            ("b", "b4", false),
        ]);
        let names = |k: Vec<(String, String)>| k.into_iter().map(|(_, f)| f).collect::<Vec<_>>();
        assert_eq!(
            names(keep_rows(&t, Keep::Selected).unwrap()),
            ["a1", "a2", "a3", "b1", "b2", "b3"]
        );
        assert_eq!(
            names(keep_rows(&t, Keep::Top(5)).unwrap()),
            ["a1", "a2", "a3", "a4", "b1", "b2", "b3"]
        );
    }
}
