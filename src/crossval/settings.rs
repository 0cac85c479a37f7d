//! `[evaluate]`: how `deepinsight evaluate` cross-validates a pipeline.

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// A model the CNN is compared with, on the same folds and the same fitted features.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Baseline {
    /// The most common class of the training fold, always.
    Majority,
    /// L2-regularised multinomial logistic regression (linfa-logistic).
    Logistic,
    /// A random forest of decision trees (linfa-ensemble).
    RandomForest,
}

impl Baseline {
    pub fn name(self) -> &'static str {
        match self {
            Baseline::Majority => "majority",
            Baseline::Logistic => "logistic",
            Baseline::RandomForest => "random_forest",
        }
    }

    /// How a sentence names it.
    pub fn title(self) -> &'static str {
        match self {
            Baseline::Majority => "majority class",
            Baseline::Logistic => "logistic regression",
            Baseline::RandomForest => "random forest",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct EvaluateSettings {
    /// Outer folds, stratified by class.
    pub folds: usize,
    /// Repeats of the k-fold split, each with other folds (fold seed = seed + repeat).
    pub repeats: usize,
    /// The models scored beside the CNN.
    pub baselines: Vec<Baseline>,
    /// Trees of the random forest.
    pub forest_trees: usize,
    /// L2 weight of the logistic regression's coefficients: the loss is the summed log-loss
    /// plus alpha / 2 times their squared norm, scikit-learn's C = 1 / alpha for three or
    /// more classes (with two, the multinomial form penalises half as much: docs/evaluation.md).
    pub logistic_alpha: f64,
}

impl Default for EvaluateSettings {
    fn default() -> Self {
        Self {
            folds: 5,
            repeats: 1,
            baselines: vec![
                Baseline::Majority,
                Baseline::Logistic,
                Baseline::RandomForest,
            ],
            forest_trees: 500,
            logistic_alpha: 1.0,
        }
    }
}

impl EvaluateSettings {
    pub fn validate(&self) -> Result<()> {
        if self.folds < 2 {
            bail!(
                "evaluate.folds: cross-validation needs at least 2 folds, got {}",
                self.folds
            );
        }
        if self.repeats == 0 {
            bail!("evaluate.repeats: must be at least 1");
        }
        if self.forest_trees == 0 {
            bail!("evaluate.forest_trees: must be at least 1");
        }
        if !(self.logistic_alpha > 0.0 && self.logistic_alpha.is_finite()) {
            bail!(
                "evaluate.logistic_alpha: must be positive, got {}",
                self.logistic_alpha
            );
        }
        Ok(())
    }
}
