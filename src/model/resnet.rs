//! ResNet18 with torchvision's architecture: 7x7 stem, max-pool, four stages of two
//! BasicBlocks, global average pool, linear head. Input channels, classes and the stem width
//! (64 in torchvision) are configurable. Field names follow torchvision's state-dict keys
//! (`conv1`, `bn1`, `layer1.0.conv1`, ...) so pretrained weights can be mapped onto it.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
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
    pub maxpool: MaxPool2d,
    pub layer1: Vec<BasicBlock>,
    pub layer2: Vec<BasicBlock>,
    pub layer3: Vec<BasicBlock>,
    pub layer4: Vec<BasicBlock>,
    pub avgpool: AdaptiveAvgPool2d,
    pub fc: Linear,
}

fn conv(channels: [usize; 2], kernel: usize, stride: usize, device: &Device) -> Conv2d {
    let pad = kernel / 2;
    Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .init(device)
}

impl BasicBlock {
    fn new(in_ch: usize, out_ch: usize, stride: usize, device: &Device) -> Self {
        let downsample = (stride != 1 || in_ch != out_ch).then(|| Downsample {
            conv: conv([in_ch, out_ch], 1, stride, device),
            bn: BatchNormConfig::new(out_ch).init(device),
        });
        Self {
            conv1: conv([in_ch, out_ch], 3, stride, device),
            bn1: BatchNormConfig::new(out_ch).init(device),
            conv2: conv([out_ch, out_ch], 3, 1, device),
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
        let stage = |in_ch: usize, out_ch: usize, stride: usize, n: usize| -> Vec<BasicBlock> {
            (0..n)
                .map(|i| {
                    if i == 0 {
                        BasicBlock::new(in_ch, out_ch, stride, device)
                    } else {
                        BasicBlock::new(out_ch, out_ch, 1, device)
                    }
                })
                .collect()
        };
        ResNet {
            conv1: conv([self.in_channels, w], 7, 2, device),
            bn1: BatchNormConfig::new(w).init(device),
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
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
        let x = self.maxpool.forward(x);
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
    fn output_is_batch_by_classes() {
        let device = Device::flex();
        let model = crate::model::init_seeded(&ResNetConfig::new(2, 3).with_width(8), &device, 0);
        let x = Tensor::<4>::zeros([2, 2, 32, 32], &device);
        assert_eq!(model.forward(x).dims(), [2, 3]);
    }
}
