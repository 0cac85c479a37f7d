//! `[model]` and `[train]`: the network and how it is trained.

use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

pub use super::resnet::{ConvInit, Stem};
pub use super::schedule::ScheduleKind;

/// `[model]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ModelSettings {
    /// Channels of the first stage; torchvision's ResNet18 uses 64. Smaller is faster.
    pub width: usize,
    /// `imagenet` (torchvision's 7x7 stride-2 convolution and max-pool: the side / 4 before
    /// the first block), `full` (3x3 stride 1, no pooling; see model/resnet.rs) or `auto`:
    /// `full` for images under 64 pixels a side, where ImageNet's stem would leave the first
    /// stage less than 16x16 (measured in docs/accuracy.md). `full` costs 16x the compute of
    /// `imagenet` at the same image size.
    pub stem: StemSetting,
    /// How the convolutions start: `layer` (Burn's and PyTorch's layer default, uniform within
    /// +-1/sqrt(fan_in)) or `torchvision` (torchvision's ResNet: normal, sqrt(2/fan_out)).
    /// Ignored with `pretrained` weights.
    pub init: ConvInit,
    /// `cpu` (Burn's flex backend) or `wgpu` (needs the `wgpu` cargo feature).
    pub device: String,
    /// torchvision-format ResNet18 weights to fine-tune from (`.pth`/`.pt` or `.safetensors`);
    /// the classifier head is always replaced. Needs `width = 64`.
    pub pretrained: Option<PathBuf>,
    /// Train only the head for this many epochs first (the backbone frozen).
    pub freeze_backbone_epochs: usize,
    /// The backbone's learning rate is the head's times this (e.g. 0.1 when fine-tuning).
    pub backbone_lr_factor: f64,
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            width: 64,
            stem: StemSetting::default(),
            init: ConvInit::default(),
            device: "cpu".into(),
            pretrained: None,
            freeze_backbone_epochs: 0,
            backbone_lr_factor: 1.0,
        }
    }
}

impl ModelSettings {
    /// The stem the network gets for images of `height` x `width` (`auto` resolved).
    pub fn stem_for(&self, height: usize, width: usize) -> Stem {
        self.stem.resolve(height, width, self.pretrained.is_some())
    }

    pub fn validate(&self) -> Result<()> {
        if !(self.backbone_lr_factor >= 0.0 && self.backbone_lr_factor.is_finite()) {
            bail!(
                "model.backbone_lr_factor: must be finite and not negative, got {}",
                self.backbone_lr_factor
            );
        }
        if let Some(path) = &self.pretrained
            && !path.is_file()
        {
            bail!("model.pretrained: no file {}", path.display());
        }
        if self.pretrained.is_some() && self.stem == StemSetting::Full {
            bail!(
                "model.stem: torchvision's ResNet18 weights (model.pretrained) need the imagenet stem"
            );
        }
        if self.pretrained.is_some() && self.width != 64 {
            bail!(
                "model.width: torchvision's ResNet18 weights (model.pretrained) need width = 64, got {}",
                self.width
            );
        }
        if self.width < 4 {
            bail!("model.width: must be at least 4, got {}", self.width);
        }
        Ok(())
    }
}

/// `model.stem`: a stem, or `auto` to choose it by the image size.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum StemSetting {
    #[default]
    Auto,
    ImageNet,
    Full,
}

impl From<Stem> for StemSetting {
    fn from(stem: Stem) -> Self {
        match stem {
            Stem::ImageNet => Self::ImageNet,
            Stem::Full => Self::Full,
        }
    }
}

impl StemSetting {
    /// Below this many pixels a side ImageNet's stem leaves the first stage under 16x16.
    pub const FULL_BELOW: usize = 64;

    /// The stem a model of these settings gets for images of `height` x `width`: `auto` is
    /// `full` for images under `FULL_BELOW` a side and ImageNet's otherwise, and always
    /// ImageNet's for torchvision weights.
    pub fn resolve(self, height: usize, width: usize, pretrained: bool) -> Stem {
        match self {
            Self::ImageNet => Stem::ImageNet,
            Self::Full => Stem::Full,
            Self::Auto if pretrained || height.min(width) >= Self::FULL_BELOW => Stem::ImageNet,
            Self::Auto => Stem::Full,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    #[default]
    Adam,
    /// Adam with decoupled weight decay (Loshchilov & Hutter).
    AdamW,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClassWeights {
    #[default]
    None,
    /// n_samples / (n_classes * n_class) on the training samples, as scikit-learn's "balanced".
    Balanced,
}

/// The validation metric that picks the best epoch and drives early stopping.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    #[default]
    MacroF1,
    Accuracy,
    BalancedAccuracy,
    Auroc,
    /// Validation cross-entropy; lower is better.
    Loss,
}

/// `[train]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct TrainSettings {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Fraction of samples held out for validation, stratified by class.
    pub validation_fraction: f64,
    /// Fraction held out as a test set, scored once with the kept model (0: no test set).
    pub test_fraction: f64,
    pub optimizer: OptimizerKind,
    pub weight_decay: f64,
    pub schedule: ScheduleKind,
    /// Epochs of linear learning-rate warm-up before the schedule.
    pub warmup_epochs: usize,
    /// `schedule = "step"`: multiply the rate by `step_gamma` every `step_epochs` epochs.
    pub step_epochs: usize,
    pub step_gamma: f64,
    pub label_smoothing: f64,
    pub class_weights: ClassWeights,
    pub monitor: Monitor,
    /// Stop after this many epochs without a better monitored metric (0: never stop early).
    pub early_stopping_patience: usize,
    /// Augmentation: Gaussian noise of this standard deviation on the normalised feature
    /// values before they are mapped to pixels (fresh every epoch). Flips and rotations are
    /// not offered: they would move features to pixels that mean other features.
    pub feature_noise: f64,
    /// Validate and keep an exponential moving average of the weights instead of the last
    /// step's, with this time constant in epochs (0: off). See model/ema.rs.
    pub ema_epochs: f64,
    /// Mixup: blend each training batch with a shuffled copy of itself, weights drawn from
    /// Beta(mixup_alpha, mixup_alpha) per batch (0: off). See model/mixup.rs.
    pub mixup_alpha: f64,
    /// Training samples the BatchNorm statistics are re-estimated on after every epoch
    /// ("precise BN", model/train.rs): a seeded random subset of this many, the same every
    /// epoch (0: the whole training split). The pass costs a forward pass per sample; 128
    /// predicted as well as the whole split on tcga-kipan (docs/training.md).
    pub precise_bn_samples: usize,
    /// CPU threads for training and inference (0: all cores).
    pub threads: usize,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 16,
            learning_rate: 1e-3,
            validation_fraction: 0.2,
            test_fraction: 0.0,
            optimizer: OptimizerKind::default(),
            weight_decay: 0.0,
            schedule: ScheduleKind::default(),
            warmup_epochs: 0,
            step_epochs: 10,
            step_gamma: 0.1,
            label_smoothing: 0.0,
            class_weights: ClassWeights::default(),
            monitor: Monitor::default(),
            early_stopping_patience: 0,
            feature_noise: 0.0,
            ema_epochs: 0.0,
            mixup_alpha: 0.0,
            precise_bn_samples: 128,
            threads: 0,
        }
    }
}

impl TrainSettings {
    pub fn validate(&self) -> Result<()> {
        if !(self.validation_fraction > 0.0 && self.validation_fraction < 1.0) {
            bail!(
                "train.validation_fraction: must lie in (0, 1), got {}",
                self.validation_fraction
            );
        }
        if self.epochs == 0 || self.batch_size == 0 {
            bail!("train.epochs and train.batch_size must be at least 1");
        }
        if !(0.0..1.0).contains(&self.test_fraction)
            || self.validation_fraction + self.test_fraction >= 1.0
        {
            bail!(
                "train.test_fraction: must lie in [0, 1) and leave training samples next to \
                 validation_fraction, got {}",
                self.test_fraction
            );
        }
        for (key, value, ok) in [
            (
                "learning_rate",
                self.learning_rate,
                self.learning_rate > 0.0,
            ),
            ("weight_decay", self.weight_decay, self.weight_decay >= 0.0),
            ("step_gamma", self.step_gamma, self.step_gamma > 0.0),
            (
                "label_smoothing",
                self.label_smoothing,
                (0.0..1.0).contains(&self.label_smoothing),
            ),
            (
                "feature_noise",
                self.feature_noise,
                self.feature_noise >= 0.0,
            ),
            ("ema_epochs", self.ema_epochs, self.ema_epochs >= 0.0),
            ("mixup_alpha", self.mixup_alpha, self.mixup_alpha >= 0.0),
        ] {
            if !ok || !value.is_finite() {
                bail!("train.{key}: out of range, got {value}");
            }
        }
        if self.step_epochs == 0 {
            bail!("train.step_epochs: must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_takes_the_full_stem_for_small_images_and_imagenet_s_otherwise() {
        let auto = StemSetting::Auto;
        assert_eq!(auto.resolve(16, 16, false), Stem::Full);
        assert_eq!(auto.resolve(32, 48, false), Stem::Full);
        assert_eq!(auto.resolve(64, 64, false), Stem::ImageNet);
        assert_eq!(auto.resolve(224, 224, false), Stem::ImageNet);
        // torchvision's weights fit ImageNet's stem only.
        assert_eq!(auto.resolve(16, 16, true), Stem::ImageNet);
        assert_eq!(StemSetting::Full.resolve(224, 224, false), Stem::Full);
        assert_eq!(StemSetting::ImageNet.resolve(16, 16, false), Stem::ImageNet);
        let full_with_weights = ModelSettings {
            stem: StemSetting::Full,
            pretrained: Some(PathBuf::from("Cargo.toml")),
            ..ModelSettings::default()
        };
        let err = full_with_weights.validate().unwrap_err().to_string();
        assert!(err.contains("model.stem"), "{err}");
    }
}
