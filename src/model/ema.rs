//! An exponential moving average (EMA) of the weights, validated and kept in place of the
//! weights of the last step.
//!
//! On cohorts of a few hundred samples the validation metrics swing from epoch to epoch by
//! more than the differences between recipes, and the epoch kept is the one that happened to
//! land high on a few dozen validation samples. The average over the last few epochs' steps is
//! a smoother model to choose from (Polyak averaging; the "model EMA" of timm and
//! torchvision's reference recipes).
//!
//! The average starts as the initial weights and after step t (0-based) becomes
//! `d_t * average + (1 - d_t) * weights` with `d_t = min(decay, (1 + t) / (10 + t))`: the
//! warm-up keeps the first steps from being dominated by the random initial weights, as timm
//! does. `decay` comes from `train.ema_epochs`, the average's time constant in epochs, so that
//! it means the same on cohorts of 100 and of 10,000 samples. The BatchNorm running statistics
//! are not averaged in any useful sense: precise BN re-estimates them for the average before it
//! is validated.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::Tensor;

use super::resnet::ResNet;

pub struct Ema {
    /// The averaged weights, untracked (no autodiff graph is recorded through them).
    average: ResNet,
    decay: f64,
}

impl Ema {
    /// An average that starts at `initial`, with a time constant of `epochs` epochs of
    /// `steps_per_epoch` steps.
    pub fn new(initial: ResNet, epochs: f64, steps_per_epoch: usize) -> Self {
        Self {
            average: initial.set_require_grad(false),
            decay: decay(epochs, steps_per_epoch),
        }
    }

    /// The weight of the old average at step `step` (0-based).
    pub fn decay_at(&self, step: usize) -> f64 {
        let warm = (1.0 + step as f64) / (10.0 + step as f64);
        self.decay.min(warm)
    }

    /// Moves the average towards `model`'s weights after step `step`.
    pub fn update(&mut self, model: &ResNet, step: usize) {
        let mut live = Weights(Vec::new());
        model.visit(&mut live);
        let mut blend = Blend {
            live: live.0.into_iter(),
            decay: self.decay_at(step),
        };
        self.average = self.average.clone().map(&mut blend);
        assert!(
            blend.live.next().is_none(),
            "the average and the model have the same parameters"
        );
    }

    /// The averaged weights (running statistics still to be re-estimated).
    pub fn average(&self) -> &ResNet {
        &self.average
    }
}

/// The per-step decay for a time constant of `epochs` epochs.
fn decay(epochs: f64, steps_per_epoch: usize) -> f64 {
    let steps = epochs * steps_per_epoch.max(1) as f64;
    if steps <= 1.0 { 0.0 } else { 1.0 - 1.0 / steps }
}

/// Every float tensor of a module in visiting order, flattened and detached from the graph.
struct Weights(Vec<Tensor<1>>);

impl ModuleVisitor for Weights {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.val().detach().flatten(0, D - 1));
    }
}

/// Replaces each float tensor, in the same visiting order, by its blend with the live one.
struct Blend<I> {
    live: I,
    decay: f64,
}

impl<I: Iterator<Item = Tensor<1>>> ModuleMapper for Blend<I> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let live = self.live.next().expect("the model has this parameter");
        let decay = self.decay;
        param.map(|average| {
            let live = live.reshape(average.shape());
            average.mul_scalar(decay).add(live.mul_scalar(1.0 - decay))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::flex::all_weights;
    use crate::model::resnet::ResNetConfig;
    use burn::tensor::Device;

    fn net(seed: u64, device: &Device) -> ResNet {
        let config = ResNetConfig::new(2, 3).with_width(4);
        crate::model::init_seeded(&config, device, seed)
    }

    #[test]
    fn the_average_is_the_stated_weighted_sum_of_the_steps_weights() {
        let device = Device::flex().autodiff();
        let initial = net(1, &device);
        let steps: Vec<ResNet> = (2..6).map(|s| net(s, &device)).collect();
        let mut ema = Ema::new(initial.clone(), 1.0, 20);
        assert!((ema.decay - 0.95).abs() < 1e-12);
        let mut expected: Vec<f64> = all_weights(&initial).iter().map(|&v| v as f64).collect();
        for (t, model) in steps.iter().enumerate() {
            ema.update(model, t);
            let d = 0.95f64.min((1.0 + t as f64) / (10.0 + t as f64));
            for (e, &w) in expected.iter_mut().zip(&all_weights(model)) {
                *e = d * *e + (1.0 - d) * w as f64;
            }
        }
        let got = all_weights(ema.average());
        assert_eq!(got.len(), expected.len());
        let worst = got
            .iter()
            .zip(&expected)
            .map(|(&g, &e)| (g as f64 - e).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-5, "largest difference {worst}");
        // The average differs from the last step's weights: it is not a copy.
        assert_ne!(got, all_weights(steps.last().unwrap()));
    }

    #[test]
    fn late_steps_use_the_configured_decay_and_a_short_horizon_follows_the_model() {
        let device = Device::flex().autodiff();
        let ema = Ema::new(net(1, &device), 2.0, 50);
        assert_eq!(ema.decay_at(0), 0.1);
        assert!((ema.decay_at(10_000) - 0.99).abs() < 1e-12);
        let mut copy = Ema::new(net(1, &device), 0.5, 1);
        let model = net(2, &device);
        copy.update(&model, 50);
        assert_eq!(all_weights(copy.average()), all_weights(&model));
    }

    #[test]
    fn the_average_records_no_graph() {
        let device = Device::flex().autodiff();
        let mut ema = Ema::new(net(1, &device), 1.0, 10);
        ema.update(&net(2, &device), 3);
        struct Tracked(usize);
        impl ModuleVisitor for Tracked {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                self.0 += usize::from(param.val().is_require_grad());
            }
        }
        let mut tracked = Tracked(0);
        ema.average().visit(&mut tracked);
        assert_eq!(tracked.0, 0);
    }
}
