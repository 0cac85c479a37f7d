//! evaluation.json, evaluation.csv and the printed table: each model's metrics per fold and
//! as mean ± sd, and the CNN's paired difference from the best baseline with its corrected
//! 95% interval.

use std::fmt;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{CNN, FoldResult, baseline_named, test_to_train};
use crate::config::PipelineConfig;
use crate::crossval::settings::EvaluateSettings;
use crate::crossval::stats::{self, Difference, Spread};
use crate::omics::Cohort;

/// One model's scores on one test fold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FoldScore {
    pub model: String,
    pub repeat: usize,
    pub fold: usize,
    pub train: usize,
    pub test: usize,
    pub accuracy: f64,
    pub balanced_accuracy: f64,
    pub macro_f1: f64,
    /// Macro one-vs-rest AUROC; None when no class has positives and negatives in the fold.
    pub auroc: Option<f64>,
}

/// One model over every fold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelSummary {
    pub model: String,
    pub accuracy: Spread,
    pub balanced_accuracy: Spread,
    pub macro_f1: Spread,
    /// Over the folds where it is defined.
    pub auroc: Option<Spread>,
}

/// The CNN against the best baseline (by mean macro-F1), fold by fold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Comparison {
    pub baseline: String,
    pub metric: String,
    /// CNN minus baseline, in points (x 100), with the corrected resampled t 95% interval.
    pub difference_points: Difference,
    /// Mean test fold size over mean training fold size, the correction's n2 / n1.
    pub test_to_train: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Evaluation {
    pub pipeline: String,
    /// What the folds were computed from (settings and input bytes), as each fold records it:
    /// a later run with the same fingerprint would compute the same report.
    #[serde(default)]
    pub fingerprint: String,
    pub samples: usize,
    pub classes: Vec<String>,
    pub settings: EvaluateSettings,
    pub models: Vec<ModelSummary>,
    pub comparison: Option<Comparison>,
    /// The epoch each fold's inner validation split kept, fold by fold.
    pub best_epochs: Vec<usize>,
    pub per_fold: Vec<FoldScore>,
}

impl Evaluation {
    pub fn new(config: &PipelineConfig, cohort: &Cohort, results: &[FoldResult]) -> Result<Self> {
        let mut per_fold = Vec::new();
        for r in results {
            for (model, m) in &r.scores {
                per_fold.push(FoldScore {
                    model: model.clone(),
                    repeat: r.repeat + 1,
                    fold: r.fold + 1,
                    train: r.train,
                    test: r.test,
                    accuracy: m.accuracy,
                    balanced_accuracy: m.balanced_accuracy,
                    macro_f1: m.macro_f1,
                    auroc: m.auroc,
                });
            }
        }
        let names: Vec<String> = results
            .first()
            .map(|r| r.scores.iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default();
        let models: Vec<ModelSummary> = names.iter().map(|name| summary(name, &per_fold)).collect();
        let comparison = compare(&models, &per_fold, results);
        Ok(Self {
            pipeline: config.name.clone(),
            fingerprint: results
                .first()
                .map(|r| r.fingerprint.clone())
                .unwrap_or_default(),
            samples: cohort.sample_ids.len(),
            classes: cohort.classes.clone(),
            settings: config.evaluate.clone(),
            models,
            comparison,
            best_epochs: results.iter().map(|r| r.best_epoch).collect(),
            per_fold,
        })
    }

    /// One row per model and fold.
    pub fn csv(&self) -> Result<Vec<u8>> {
        let mut out = String::from(
            "model,repeat,fold,train,test,accuracy,balanced_accuracy,macro_f1,auroc\n",
        );
        for s in &self.per_fold {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{}\n",
                s.model,
                s.repeat,
                s.fold,
                s.train,
                s.test,
                s.accuracy,
                s.balanced_accuracy,
                s.macro_f1,
                s.auroc.map_or(String::new(), |a| a.to_string())
            ));
        }
        Ok(out.into_bytes())
    }
}

fn summary(model: &str, per_fold: &[FoldScore]) -> ModelSummary {
    let rows: Vec<&FoldScore> = per_fold.iter().filter(|s| s.model == model).collect();
    let of =
        |f: fn(&FoldScore) -> f64| stats::spread(&rows.iter().map(|s| f(s)).collect::<Vec<_>>());
    let aurocs: Vec<f64> = rows.iter().filter_map(|s| s.auroc).collect();
    ModelSummary {
        model: model.to_string(),
        accuracy: of(|s| s.accuracy),
        balanced_accuracy: of(|s| s.balanced_accuracy),
        macro_f1: of(|s| s.macro_f1),
        auroc: (!aurocs.is_empty()).then(|| stats::spread(&aurocs)),
    }
}

fn compare(
    models: &[ModelSummary],
    per_fold: &[FoldScore],
    results: &[FoldResult],
) -> Option<Comparison> {
    let best = models
        .iter()
        .filter(|m| m.model != CNN)
        .max_by(|a, b| a.macro_f1.mean.total_cmp(&b.macro_f1.mean))?;
    let score = |model: &str, r: &FoldResult| {
        per_fold
            .iter()
            .find(|s| s.model == model && s.repeat == r.repeat + 1 && s.fold == r.fold + 1)
            .map(|s| s.macro_f1)
    };
    let differences: Vec<f64> = results
        .iter()
        .filter_map(|r| Some(100.0 * (score(CNN, r)? - score(&best.model, r)?)))
        .collect();
    if differences.len() < 2 {
        return None;
    }
    let test_to_train = test_to_train(results);
    Some(Comparison {
        baseline: best.model.clone(),
        metric: "macro_f1".into(),
        difference_points: stats::corrected_interval(&differences, test_to_train),
        test_to_train,
    })
}

/// How a sentence names a model.
fn title(model: &str) -> &str {
    if model == CNN {
        "CNN"
    } else {
        baseline_named(model).map_or(model, |b| b.title())
    }
}

impl fmt::Display for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let folds = self.settings.folds;
        let repeats = self.settings.repeats;
        writeln!(
            f,
            "{} samples, {} classes; {folds}-fold cross-validation{}, test folds scored once \
             with the model their training fold chose",
            self.samples,
            self.classes.len(),
            if repeats > 1 {
                format!(" repeated {repeats} times")
            } else {
                String::new()
            }
        )?;
        writeln!(
            f,
            "{:<16} {:>15} {:>18} {:>15} {:>15}",
            "model", "accuracy", "balanced accuracy", "macro-F1", "AUROC"
        )?;
        let cell = |s: &Spread| format!("{:.3} ± {:.3}", s.mean, s.sd);
        for m in &self.models {
            writeln!(
                f,
                "{:<16} {:>15} {:>18} {:>15} {:>15}",
                m.model,
                cell(&m.accuracy),
                cell(&m.balanced_accuracy),
                cell(&m.macro_f1),
                m.auroc.as_ref().map_or("-".to_string(), cell)
            )?;
        }
        match &self.comparison {
            Some(c) => {
                let d = &c.difference_points;
                write!(
                    f,
                    "CNN vs {}: macro-F1 {:+.1} points (95% CI {:+.1} to {:+.1}, corrected \
                     resampled t over {} folds)",
                    title(&c.baseline),
                    d.mean,
                    d.low,
                    d.high,
                    folds * repeats
                )
            }
            None if self.models.iter().all(|m| m.model != CNN) => {
                write!(f, "baselines only: no CNN was trained (--baselines-only)")
            }
            None => write!(f, "no baseline to compare the CNN with"),
        }
    }
}
