//! The training checkpoint: the state after the last finished epoch, enough to resume as if
//! the run had not stopped. A folder replaced as a whole after each epoch (staged, then
//! renamed), so a crash leaves the previous epoch's checkpoint, never a mix of two.
//!
//! | file | holds |
//! |---|---|
//! | `state.json` | the epoch, the history, the best epoch and its score, epochs since the best, and the fingerprint of the data and options |
//! | `model.bpk` | the weights after the epoch (Burnpack keeps the parameter ids the optimiser state is keyed by) |
//! | `optimizer.bpk` | Adam's moments and step counts |
//! | `best.bpk` | the best epoch's weights |
//! | `ema.bpk` | with `train.ema_epochs`: the moving average of the weights |

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::Metrics;
use super::metrics::EpochStats;
use crate::artefact::StagedDir;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// sha256 of the training data and of every option that changes the result.
    pub fingerprint: String,
    /// The last finished epoch.
    pub epoch: usize,
    pub history: Vec<EpochStats>,
    pub best_epoch: usize,
    pub best_score: (f64, f64),
    pub best_metrics: Metrics,
    pub since_best: usize,
}

impl State {
    /// Why the state cannot be that of an interrupted training of `epochs` epochs, if so.
    fn check(&self, epochs: usize) -> Result<(), String> {
        if self.epoch == 0 || self.epoch > epochs {
            return Err(format!(
                "epoch {} of a training of {epochs} epochs",
                self.epoch
            ));
        }
        let numbered = self.history.iter().map(|e| e.epoch).eq(1..=self.epoch);
        if !numbered {
            return Err(format!(
                "its history does not list epochs 1 to {}",
                self.epoch
            ));
        }
        if self.best_epoch == 0 || self.best_epoch > self.epoch || self.since_best >= self.epoch {
            return Err(format!(
                "best epoch {} and {} epochs since it, after epoch {}",
                self.best_epoch, self.since_best, self.epoch
            ));
        }
        Ok(())
    }
}

pub struct Checkpoint {
    pub state: State,
    pub model: Vec<u8>,
    pub optimizer: Vec<u8>,
    pub best: Vec<u8>,
    /// The moving average of the weights, when training keeps one.
    pub ema: Option<Vec<u8>>,
}

impl Checkpoint {
    pub fn write(&self, dir: &Path) -> Result<()> {
        let staged = StagedDir::new(dir)?;
        staged.write("model.bpk", &self.model)?;
        staged.write("optimizer.bpk", &self.optimizer)?;
        staged.write("best.bpk", &self.best)?;
        if let Some(ema) = &self.ema {
            staged.write("ema.bpk", ema)?;
        }
        staged.write("state.json", &serde_json::to_vec_pretty(&self.state)?)?;
        staged
            .commit()
            .with_context(|| format!("cannot write the checkpoint {}", dir.display()))?;
        Ok(())
    }

    /// Reads a checkpoint, refusing one written for other data or options, or whose state
    /// does not add up for a training of `epochs` epochs.
    /// `ema`: whether the training keeps a moving average, whose file must then be there.
    pub fn read(dir: &Path, fingerprint: &str, epochs: usize, ema: bool) -> Result<Self> {
        let read = |name: &str| -> Result<Vec<u8>> {
            let path = dir.join(name);
            std::fs::read(&path).with_context(|| {
                format!(
                    "cannot resume: cannot read the checkpoint file {}",
                    path.display()
                )
            })
        };
        let state: State = serde_json::from_slice(&read("state.json")?).with_context(|| {
            format!(
                "cannot resume: {} is not a checkpoint state",
                dir.join("state.json").display()
            )
        })?;
        if state.fingerprint != fingerprint {
            bail!(
                "cannot resume from {}: it was written for other training data or options \
                 (remove it, or train without --resume, to start over)",
                dir.display()
            );
        }
        state.check(epochs).map_err(|why| {
            anyhow::anyhow!(
                "cannot resume: {} is inconsistent ({why}); it was edited or damaged: remove {} \
                 to start over",
                dir.join("state.json").display(),
                dir.display()
            )
        })?;
        Ok(Self {
            model: read("model.bpk")?,
            optimizer: read("optimizer.bpk")?,
            best: read("best.bpk")?,
            ema: if ema { Some(read("ema.bpk")?) } else { None },
            state,
        })
    }
}
