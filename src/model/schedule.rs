//! The learning-rate schedule: an optional linear warm-up, then constant, cosine or step decay.
//!
//! The rate is a pure function of the optimiser step, so a resumed run needs no scheduler
//! state: it recomputes the rate from the step it resumes at.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    #[default]
    Constant,
    /// Cosine annealing from the base rate to zero over the steps after the warm-up.
    Cosine,
    /// The rate times `gamma` every `step_epochs` epochs.
    Step,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub kind: ScheduleKind,
    pub base: f64,
    pub steps_per_epoch: usize,
    pub epochs: usize,
    pub warmup_epochs: usize,
    pub step_epochs: usize,
    pub gamma: f64,
}

impl Schedule {
    /// The rate of optimiser step `step` (0-based, counted over the whole run).
    pub fn lr(&self, step: usize) -> f64 {
        let per_epoch = self.steps_per_epoch.max(1);
        let warmup = self.warmup_epochs * per_epoch;
        if step < warmup {
            // Linear from base/warmup up to base: the first step is not at rate zero.
            return self.base * (step + 1) as f64 / warmup as f64;
        }
        match self.kind {
            ScheduleKind::Constant => self.base,
            ScheduleKind::Cosine => {
                let span = (self.epochs * per_epoch).saturating_sub(warmup).max(1);
                let t = ((step - warmup) as f64 / span as f64).min(1.0);
                self.base * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
            ScheduleKind::Step => {
                let epoch = step / per_epoch;
                self.base * self.gamma.powi((epoch / self.step_epochs.max(1)) as i32)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(kind: ScheduleKind, warmup_epochs: usize) -> Schedule {
        Schedule {
            kind,
            base: 0.1,
            steps_per_epoch: 10,
            epochs: 10,
            warmup_epochs,
            step_epochs: 3,
            gamma: 0.5,
        }
    }

    #[test]
    fn warm_up_rises_linearly_to_the_base_rate() {
        let s = schedule(ScheduleKind::Constant, 2);
        assert!((s.lr(0) - 0.1 / 20.0).abs() < 1e-15);
        assert!((s.lr(9) - 0.1 * 10.0 / 20.0).abs() < 1e-15);
        assert!((s.lr(19) - 0.1).abs() < 1e-15);
        assert!((s.lr(55) - 0.1).abs() < 1e-15);
    }

    #[test]
    fn cosine_falls_from_base_to_zero_after_the_warm_up() {
        let s = schedule(ScheduleKind::Cosine, 2);
        assert!((s.lr(20) - 0.1).abs() < 1e-15);
        // Halfway through the 80 post-warm-up steps the cosine is at half the base rate.
        assert!((s.lr(60) - 0.05).abs() < 1e-12);
        assert!(s.lr(99) < 1e-4);
        assert!((1..80).all(|i| s.lr(20 + i) <= s.lr(20 + i - 1)));
    }

    #[test]
    fn step_decay_multiplies_by_gamma_every_step_epochs() {
        let s = schedule(ScheduleKind::Step, 0);
        assert!((s.lr(29) - 0.1).abs() < 1e-15);
        assert!((s.lr(30) - 0.05).abs() < 1e-15);
        assert!((s.lr(65) - 0.025).abs() < 1e-15);
        assert!((s.lr(95) - 0.0125).abs() < 1e-15);
    }
}
