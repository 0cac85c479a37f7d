//! ResNet18 with torchvision's architecture: 7x7 stem, max-pool, four stages of two
//! BasicBlocks, global average pool, linear head. Input channels, classes and the stem width
//! (64 in torchvision) are configurable. Field names follow torchvision's state-dict keys
//! (`conv1`, `bn1`, `layer1.0.conv1`, ...) so pretrained weights can be mapped onto it.
//!
//! The stem is a setting too: ImageNet's (7x7 stride 2, then a stride-2 max-pool) divides the
//! image side by 4 before the first block, which suits 224x224 photographs; on the 16x16 to
//! 64x64 images of a few hundred features, where every pixel is a feature, it leaves the
//! blocks 4x4 to 16x16 maps. The `full` stem (3x3 stride 1, no max-pool, as ResNets for
//! CIFAR's 32x32 images have) keeps the image's resolution into the first stage; the blocks
//! are the same.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

use super::conv::conv2d;
use super::norm::batch_norm;

#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// Image channels (1 for a shared layout, one per modality otherwise).
    pub in_channels: usize,
    pub num_classes: usize,
    /// Channels of the first stage; later stages use 2x, 4x and 8x.
    #[config(default = 64)]
    pub width: usize,
    /// BasicBlocks per stage; [2, 2, 2, 2] is ResNet18.
    #[config(default = "[2, 2, 2, 2]")]
    pub blocks: [usize; 4],
    #[config(default = "Stem::ImageNet")]
    pub stem: Stem,
    #[config(default = "ConvInit::Layer")]
    pub conv_init: ConvInit,
}

impl ResNetConfig {
    /// A model config as a run folder keeps it (model-config.json). Burn's `Config` derive
    /// does not give serde its defaults, so a config written before a setting existed gets
    /// that setting's default here: runs trained before the `stem` setting had ImageNet's.
    pub fn from_json(bytes: &[u8]) -> serde_json::Result<Self> {
        let mut value: serde_json::Value = serde_json::from_slice(bytes)?;
        if let Some(fields) = value.as_object_mut() {
            fields
                .entry("stem")
                .or_insert_with(|| serde_json::to_value(Stem::ImageNet).expect("an enum"));
            fields
                .entry("conv_init")
                .or_insert_with(|| serde_json::to_value(ConvInit::Layer).expect("an enum"));
        }
        serde_json::from_value(value)
    }
}

/// The layers before the first stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stem {
    /// 7x7 convolution with stride 2 and a 3x3 max-pool with stride 2 (torchvision's).
    #[default]
    ImageNet,
    /// 3x3 convolution with stride 1 and no pooling: the image's resolution into layer1.
    Full,
}

/// How the convolutions' weights are drawn before training (BatchNorm starts at weight 1,
/// bias 0 either way, and the head keeps the layer default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvInit {
    /// The layer default of Burn and PyTorch alike: uniform within +-1 / sqrt(fan_in).
    #[default]
    Layer,
    /// torchvision's ResNet: normal with standard deviation sqrt(2 / fan_out) (He et al.,
    /// fan-out mode), about 2.4x the layer default's spread.
    Torchvision,
}

impl ConvInit {
    fn initializer(self) -> Initializer {
        match self {
            Self::Layer => Conv2dConfig::new([1, 1], [1, 1]).initializer,
            Self::Torchvision => Initializer::KaimingNormal {
                gain: std::f64::consts::SQRT_2,
                fan_out_only: true,
            },
        }
    }
}

#[derive(Module, Debug)]
pub struct Downsample {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

#[derive(Module, Debug)]
pub struct BasicBlock {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub conv2: Conv2d,
    pub bn2: BatchNorm,
    pub downsample: Option<Downsample>,
}

#[derive(Module, Debug)]
pub struct ResNet {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    /// None with the full-resolution stem.
    pub maxpool: Option<MaxPool2d>,
    pub layer1: Vec<BasicBlock>,
    pub layer2: Vec<BasicBlock>,
    pub layer3: Vec<BasicBlock>,
    pub layer4: Vec<BasicBlock>,
    pub avgpool: AdaptiveAvgPool2d,
    pub fc: Linear,
}

fn conv(
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    init: &Initializer,
    device: &Device,
) -> Conv2d {
    let pad = kernel / 2;
    Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .with_initializer(init.clone())
        .init(device)
}

impl BasicBlock {
    fn new(
        in_ch: usize,
        out_ch: usize,
        stride: usize,
        init: &Initializer,
        device: &Device,
    ) -> Self {
        let downsample = (stride != 1 || in_ch != out_ch).then(|| Downsample {
            conv: conv([in_ch, out_ch], 1, stride, init, device),
            bn: BatchNormConfig::new(out_ch).init(device),
        });
        Self {
            conv1: conv([in_ch, out_ch], 3, stride, init, device),
            bn1: BatchNormConfig::new(out_ch).init(device),
            conv2: conv([out_ch, out_ch], 3, 1, init, device),
            bn2: BatchNormConfig::new(out_ch).init(device),
            downsample,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => batch_norm(&d.bn, conv2d(&d.conv, x.clone()), None, false),
            None => x.clone(),
        };
        let out = batch_norm(&self.bn1, conv2d(&self.conv1, x), None, true);
        batch_norm(&self.bn2, conv2d(&self.conv2, out), Some(identity), true)
    }
}

impl ResNetConfig {
    pub fn init(&self, device: &Device) -> ResNet {
        let w = self.width;
        let init = self.conv_init.initializer();
        let stage = |in_ch: usize, out_ch: usize, stride: usize, n: usize| -> Vec<BasicBlock> {
            (0..n)
                .map(|i| {
                    if i == 0 {
                        BasicBlock::new(in_ch, out_ch, stride, &init, device)
                    } else {
                        BasicBlock::new(out_ch, out_ch, 1, &init, device)
                    }
                })
                .collect()
        };
        ResNet {
            conv1: match self.stem {
                Stem::ImageNet => conv([self.in_channels, w], 7, 2, &init, device),
                Stem::Full => conv([self.in_channels, w], 3, 1, &init, device),
            },
            bn1: BatchNormConfig::new(w).init(device),
            maxpool: (self.stem == Stem::ImageNet).then(|| {
                MaxPool2dConfig::new([3, 3])
                    .with_strides([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init()
            }),
            layer1: stage(w, w, 1, self.blocks[0]),
            layer2: stage(w, 2 * w, 2, self.blocks[1]),
            layer3: stage(2 * w, 4 * w, 2, self.blocks[2]),
            layer4: stage(4 * w, 8 * w, 2, self.blocks[3]),
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(8 * w, self.num_classes).init(device),
        }
    }
}

impl ResNet {
    /// Every BatchNorm layer, stem first.
    pub fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        let mut out = vec![&mut self.bn1];
        for block in self
            .layer1
            .iter_mut()
            .chain(&mut self.layer2)
            .chain(&mut self.layer3)
            .chain(&mut self.layer4)
        {
            out.push(&mut block.bn1);
            out.push(&mut block.bn2);
            if let Some(d) = &mut block.downsample {
                out.push(&mut d.bn);
            }
        }
        out
    }

    /// images: N x C x H x W -> logits: N x classes
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.fc.forward(self.features(images))
    }

    /// The backbone: images N x C x H x W -> pooled features N x (8 x width), the head's input.
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        self.pool(self.activations(images, 4))
    }

    /// The stem and the first `stages` (1 to 4) residual stages: images N x C x H x W -> that
    /// stage's activations N x K x h x w (what Grad-CAM weighs).
    pub fn activations(&self, images: Tensor<4>, stages: usize) -> Tensor<4> {
        let x = batch_norm(&self.bn1, conv2d(&self.conv1, images), None, true);
        let x = match &self.maxpool {
            Some(pool) => pool.forward(x),
            None => x,
        };
        self.run_stages(x, 0, stages)
    }

    /// The rest of the network from the activations of stage `stages` to logits N x classes.
    pub fn logits_from(&self, activations: Tensor<4>, stages: usize) -> Tensor<2> {
        let x = self.run_stages(activations, stages, 4);
        self.fc.forward(self.pool(x))
    }

    /// Stages `from + 1` to `to` (1-based).
    fn run_stages(&self, mut x: Tensor<4>, from: usize, to: usize) -> Tensor<4> {
        let stages = [&self.layer1, &self.layer2, &self.layer3, &self.layer4];
        for stage in &stages[from.min(4)..to.min(4)] {
            for block in stage.iter() {
                x = block.forward(x);
            }
        }
        x
    }

    fn pool(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.avgpool.forward(x);
        let [n, c, _, _] = x.dims();
        x.reshape([n, c])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torchvision_init_draws_the_convolutions_with_he_fan_out_spread() {
        let device = Device::flex();
        let std = |config: &ResNetConfig| -> (f64, f64) {
            let model = crate::model::init_seeded(config, &device, 4);
            let spread = |w: Tensor<4>| {
                let v: Vec<f32> = w.into_data().try_into_vec::<f32>().unwrap();
                let n = v.len() as f64;
                let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
                (v.iter()
                    .map(|&x| (f64::from(x) - mean).powi(2))
                    .sum::<f64>()
                    / n)
                    .sqrt()
            };
            // layer3's second 3x3 convolution: 4w -> 4w channels.
            let conv = &model.layer3[1].conv2;
            (
                spread(conv.weight.val()),
                spread(model.fc.weight.val().unsqueeze()),
            )
        };
        let config = ResNetConfig::new(2, 3).with_width(16);
        let (fan_in, fan_out) = (64.0 * 9.0, 64.0 * 9.0);
        let (layer, head_layer) = std(&config);
        let (torchvision, head_tv) = std(&config.clone().with_conv_init(ConvInit::Torchvision));
        let expected_layer = 1.0 / (3.0f64 * fan_in).sqrt();
        let expected_tv = (2.0f64 / fan_out).sqrt();
        assert!(
            (layer / expected_layer - 1.0).abs() < 0.05,
            "{layer} vs {expected_layer}"
        );
        assert!(
            (torchvision / expected_tv - 1.0).abs() < 0.05,
            "{torchvision} vs {expected_tv}"
        );
        // The head keeps the layer default under both.
        assert!(
            (head_layer / head_tv - 1.0).abs() < 0.2,
            "{head_layer} vs {head_tv}"
        );
    }

    #[test]
    fn resnet18_has_torchvision_parameter_count() {
        // torchvision.models.resnet18(num_classes=1000) has 11,689,512 parameters; Burn also
        // counts the BatchNorm running mean and variance (2 x 4,800 channels).
        let model = crate::model::init_seeded(&ResNetConfig::new(3, 1000), &Device::flex(), 0);
        assert_eq!(model.num_params(), 11_689_512 + 2 * 4_800);
    }

    #[test]
    fn every_batch_norm_is_reached() {
        let mut model =
            crate::model::init_seeded(&ResNetConfig::new(1, 2).with_width(4), &Device::flex(), 0);
        // stem + 2 per block * 8 blocks + 3 downsamples (stages 2-4)
        assert_eq!(model.batch_norms_mut().len(), 1 + 16 + 3);
    }

    #[test]
    fn the_full_stem_keeps_the_image_resolution_into_the_first_stage() {
        let device = Device::flex();
        let x = || Tensor::<4>::zeros([2, 3, 16, 16], &device);
        let imagenet =
            crate::model::init_seeded(&ResNetConfig::new(3, 2).with_width(4), &device, 0);
        let full = crate::model::init_seeded(
            &ResNetConfig::new(3, 2).with_width(4).with_stem(Stem::Full),
            &device,
            0,
        );
        assert_eq!(imagenet.activations(x(), 1).dims(), [2, 4, 4, 4]);
        assert_eq!(full.activations(x(), 1).dims(), [2, 4, 16, 16]);
        assert_eq!(full.activations(x(), 4).dims(), [2, 32, 2, 2]);
        assert_eq!(full.forward(x()).dims(), [2, 2]);
        assert_eq!(full.conv1.weight.dims(), [4, 3, 3, 3]);
        // Same blocks and head: only the stem's kernel differs in size (3x3 vs 7x7).
        assert_eq!(imagenet.num_params() - full.num_params(), 4 * 3 * (49 - 9));
    }

    #[test]
    fn a_model_config_written_before_the_stem_setting_reads_as_imagenet() {
        let json = r#"{"in_channels": 2, "num_classes": 3, "width": 8, "blocks": [2, 2, 2, 2]}"#;
        let config = ResNetConfig::from_json(json.as_bytes()).unwrap();
        assert_eq!(config.stem, Stem::ImageNet);
        assert_eq!(config.width, 8);
        let full = ResNetConfig::new(2, 3).with_stem(Stem::Full);
        let back = ResNetConfig::from_json(&serde_json::to_vec(&full).unwrap()).unwrap();
        assert_eq!(back.stem, Stem::Full);
    }

    #[test]
    fn output_is_batch_by_classes() {
        let device = Device::flex();
        let model = crate::model::init_seeded(&ResNetConfig::new(2, 3).with_width(8), &device, 0);
        let x = Tensor::<4>::zeros([2, 2, 32, 32], &device);
        assert_eq!(model.forward(x).dims(), [2, 3]);
    }
}
