//! Class activation maps computed with Burn's autodiff: Grad-CAM on a residual stage
//! (Selvaraju et al. 2017) and plain input-gradient saliency (Simonyan et al. 2014).
//!
//! The model stays in inference mode (BatchNorm uses its running statistics): only the tensor
//! the gradient is taken against is an autodiff leaf, so nothing in the model is changed.

use anyhow::{Result, bail};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::model::ResNet;
use crate::model::metrics::argmax;
use burn::tensor::activation::softmax;

/// Which map is computed.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Default,
    clap::ValueEnum,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Grad-CAM on a residual stage: one map per image, shared by its channels.
    Gradcam,
    /// HiResCAM (Draelos & Carin 2020): like Grad-CAM, but each activation is weighted by its
    /// own gradient instead of the channel's mean gradient, so the map shows where the score
    /// actually came from. Equal to Grad-CAM on stage 4, finer on earlier stages.
    Hirescam,
    /// |d score / d pixel|: one map per image channel, at full resolution. The default: on
    /// DeepInsight images every pixel is a feature, and only a full-resolution map can tell
    /// neighbouring features apart (docs/explain.md has the measurements).
    #[default]
    Saliency,
}

/// Grad-CAM's residual stage unless one is asked for: the last, whose maps are the most
/// class-specific.
pub const DEFAULT_STAGE: usize = 4;

/// What to compute maps of.
#[derive(Debug, Clone, Copy)]
pub struct CamOptions {
    pub method: Method,
    /// Grad-CAM's residual stage, 1 to 4 (4 = the last convolutional stage).
    pub stage: usize,
    pub batch_size: usize,
}

impl Default for CamOptions {
    fn default() -> Self {
        Self {
            method: Method::Saliency,
            stage: 4,
            batch_size: 16,
        }
    }
}

/// Maps of N images, each `channels` x H x W, normalised to [0, 1] per image (divided by its
/// largest value; an all-zero map stays zero), with the forward pass they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Maps {
    pub values: Vec<f32>,
    /// [channels, H, W]: channels is 1 for Grad-CAM, the image's channels for saliency.
    pub shape: [usize; 3],
    /// Class probabilities of each image (the model's prediction, from the same forward pass).
    pub probabilities: Vec<Vec<f32>>,
    /// The class each map explains.
    pub targets: Vec<usize>,
}

impl Maps {
    pub fn len(&self) -> usize {
        self.values.len() / self.map_len().max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn map_len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn map(&self, i: usize) -> &[f32] {
        &self.values[i * self.map_len()..(i + 1) * self.map_len()]
    }

    /// The score of image channel `channel` at (row, column) in map `i`.
    pub fn at(&self, i: usize, channel: usize, row: usize, column: usize) -> f32 {
        read(self.map(i), self.shape, channel, row, column)
    }
}

/// The value for image channel `channel` at (row, column) of one map of `shape`: Grad-CAM's
/// single plane serves every channel.
pub fn read(map: &[f32], shape: [usize; 3], channel: usize, row: usize, column: usize) -> f32 {
    let [c, h, w] = shape;
    let plane = if c == 1 { 0 } else { channel };
    map[plane * h * w + row * w + column]
}

/// Maps of `images` (N x C x H x W, flat), image i's for class `targets[i]`, or for its
/// predicted class where that is None (read from the same forward pass as the map).
pub fn maps(
    model: &ResNet,
    images: &[f32],
    shape: [usize; 3],
    targets: &[Option<usize>],
    options: &CamOptions,
    device: &Device,
) -> Result<Maps> {
    let [c, h, w] = shape;
    let len = c * h * w;
    if images.len() != targets.len() * len {
        bail!(
            "{} values given for {} images of {c} x {h} x {w}",
            images.len(),
            targets.len()
        );
    }
    if !(1..=4).contains(&options.stage) {
        bail!(
            "Grad-CAM stage {}: the ResNet has stages 1 to 4",
            options.stage
        );
    }
    let n_classes = model.fc.weight.dims()[1];
    if let Some(bad) = targets.iter().flatten().find(|&&t| t >= n_classes) {
        bail!("target class {bad}: the model has {n_classes} classes");
    }
    let map_shape = match options.method {
        Method::Gradcam | Method::Hirescam => [1, h, w],
        Method::Saliency => shape,
    };
    let mut out = Maps {
        values: Vec::with_capacity(targets.len() * map_shape.iter().product::<usize>()),
        shape: map_shape,
        probabilities: Vec::with_capacity(targets.len()),
        targets: Vec::with_capacity(targets.len()),
    };
    let batch = options.batch_size.max(1);
    for start in (0..targets.len()).step_by(batch) {
        let end = (start + batch).min(targets.len());
        let x = Tensor::<4>::from_data(
            TensorData::new(
                images[start * len..end * len].to_vec(),
                [end - start, c, h, w],
            ),
            device,
        );
        let given = &targets[start..end];
        let raw = match options.method {
            Method::Gradcam => grad_cam(model, x, given, options.stage, [h, w], false, &mut out),
            Method::Hirescam => grad_cam(model, x, given, options.stage, [h, w], true, &mut out),
            Method::Saliency => saliency(model, x, given, &mut out),
        };
        out.values
            .extend(normalise(raw, map_shape.iter().product()));
    }
    Ok(out)
}

/// The explained score of a batch: each image's logit of its target class. The batch's
/// probabilities and targets (None: the predicted class) are recorded in `out`.
fn target_score(logits: Tensor<2>, given: &[Option<usize>], out: &mut Maps) -> Tensor<1> {
    let device = logits.device();
    let [n, k] = logits.dims();
    let probabilities = to_vec(softmax(logits.clone().detach(), 1));
    let mut targets = Vec::with_capacity(n);
    for (p, t) in probabilities.chunks(k).zip(given) {
        targets.push(t.unwrap_or_else(|| argmax(p)));
        out.probabilities.push(p.to_vec());
    }
    let mask = one_hot(&targets, k, &device);
    out.targets.extend(targets);
    (logits * mask).sum()
}

fn one_hot(targets: &[usize], n_classes: usize, device: &Device) -> Tensor<2> {
    let mut mask = vec![0.0f32; targets.len() * n_classes];
    for (i, &t) in targets.iter().enumerate() {
        mask[i * n_classes + t] = 1.0;
    }
    Tensor::<2>::from_data(TensorData::new(mask, [targets.len(), n_classes]), device)
}

/// Grad-CAM: the stage's activations A (N x K x h x w) weighted by the spatial mean of
/// d score / dA per channel (HiResCAM: by d score / dA itself), summed over channels, ReLU,
/// upsampled bilinearly to the image.
fn grad_cam(
    model: &ResNet,
    images: Tensor<4>,
    given: &[Option<usize>],
    stage: usize,
    size: [usize; 2],
    element_wise: bool,
    out: &mut Maps,
) -> Vec<f32> {
    let activations = model.activations(images, stage);
    let leaf = activations.clone().autodiff().require_grad();
    let score = target_score(model.logits_from(leaf.clone(), stage), given, out);
    let grads = score.backward();
    let gradient = leaf
        .grad(&grads)
        .expect("the activations are an autodiff leaf");
    let weighted = if element_wise {
        activations * gradient
    } else {
        activations * gradient.mean_dims(&[2, 3])
    };
    let cam = weighted.sum_dim(1).clamp_min(0.0);
    let cam = interpolate(
        cam,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(false)
            .with_output_size(size),
    );
    to_vec(cam)
}

/// |d score / d image| per pixel and channel.
fn saliency(
    model: &ResNet,
    images: Tensor<4>,
    given: &[Option<usize>],
    out: &mut Maps,
) -> Vec<f32> {
    let leaf = images.autodiff().require_grad();
    let score = target_score(model.forward(leaf.clone()), given, out);
    let grads = score.backward();
    let gradient = leaf.grad(&grads).expect("the images are an autodiff leaf");
    to_vec(gradient.abs())
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec()
        .expect("converted to f32")
}

/// Each map divided by its largest value.
fn normalise(mut values: Vec<f32>, map_len: usize) -> Vec<f32> {
    for map in values.chunks_mut(map_len) {
        let top = map.iter().copied().fold(0.0f32, f32::max);
        if top > 0.0 {
            map.iter_mut().for_each(|v| *v /= top);
        }
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResNetConfig;
    use crate::model::train::predict_proba;
    use burn::module::Module;
    use burn::tensor::Distribution;

    /// A small trained-looking model (BatchNorm statistics moved off their initial values)
    /// and random images.
    fn setup(size: usize) -> (ResNet, Vec<f32>, [usize; 3], Device) {
        let device = Device::flex();
        let ad = device.clone().autodiff();
        let model = crate::model::init_seeded(&ResNetConfig::new(2, 3).with_width(4), &ad, 5);
        let images = crate::model::seeded(&device, 5, || {
            for _ in 0..2 {
                let x =
                    Tensor::<4>::random([4, 2, size, size], Distribution::Normal(0.5, 1.0), &ad);
                drop(model.forward(x));
            }
            Tensor::<4>::random([3, 2, size, size], Distribution::Uniform(0.0, 1.0), &device)
        });
        (model.valid(), to_vec(images), [2, size, size], device)
    }

    #[test]
    fn grad_cam_on_the_last_stage_is_the_classic_cam_of_the_head_weights() {
        // With global average pooling and one linear layer, the gradient of class c's logit
        // with respect to the last stage's activations is w_c / (h w) everywhere, so Grad-CAM
        // must equal ReLU(sum_k w_kc A_k) up to its normalisation: the autodiff path is checked
        // against the head's weights read directly.
        let (model, images, shape, device) = setup(128);
        let targets = [Some(0usize), Some(2), Some(1)];
        let options = CamOptions {
            method: Method::Gradcam,
            ..CamOptions::default()
        };
        let maps = maps(&model, &images, shape, &targets, &options, &device).unwrap();
        assert_eq!(maps.shape, [1, 128, 128]);
        let x = Tensor::<4>::from_data(TensorData::new(images.clone(), [3, 2, 128, 128]), &device);
        let a = model.activations(x, 4);
        let [n, k, h, w] = a.dims();
        assert_eq!([h, w], [4, 4]);
        let weights = model.fc.weight.val(); // [in = k, classes]
        let mut expected = Vec::new();
        for (i, t) in targets.iter().flatten().copied().enumerate() {
            let column = weights
                .clone()
                .slice([0..k, t..t + 1])
                .reshape([1, k, 1, 1]);
            let ai = a.clone().slice([i..i + 1, 0..k, 0..h, 0..w]);
            let cam = (ai * column).sum_dim(1).clamp_min(0.0);
            let cam = interpolate(
                cam,
                InterpolateOptions::new(InterpolateMode::Bilinear)
                    .with_align_corners(false)
                    .with_output_size([128, 128]),
            );
            expected.extend(normalise(to_vec(cam), 128 * 128));
        }
        assert_eq!(n, 3);
        let worst = maps
            .values
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "Grad-CAM differs from CAM by {worst}");
        assert!(expected.iter().any(|&v| v > 0.0) && expected.contains(&0.0));
    }

    #[test]
    fn saliency_is_the_gradient_of_the_target_logit() {
        // The network is piecewise linear in its input (ReLU, max-pool, BatchNorm in
        // inference), so a small step on one pixel changes the logit by step x gradient.
        let (model, images, shape, device) = setup(32);
        let options = CamOptions::default();
        let raw = {
            let x =
                Tensor::<4>::from_data(TensorData::new(images.clone(), [3, 2, 32, 32]), &device);
            let leaf = x.autodiff().require_grad();
            let mask = one_hot(&[1, 1, 1], 3, &device);
            let grads = (model.forward(leaf.clone()) * mask.autodiff())
                .sum()
                .backward();
            to_vec(leaf.grad(&grads).unwrap())
        };
        let logit = |imgs: &[f32]| -> f32 {
            let x = Tensor::<4>::from_data(
                TensorData::new(imgs[..2048].to_vec(), [1, 2, 32, 32]),
                &device,
            );
            to_vec(model.forward(x))[1]
        };
        // The five pixels of image 0 with the largest gradient.
        let mut order: Vec<usize> = (0..2048).collect();
        order.sort_by(|&a, &b| raw[b].abs().total_cmp(&raw[a].abs()));
        let base = logit(&images);
        for &p in &order[..5] {
            let step = 1e-2;
            let mut moved = images.clone();
            moved[p] += step;
            let finite = (logit(&moved) - base) / step;
            assert!(
                (finite - raw[p]).abs() <= 0.05 * raw[p].abs() + 1e-4,
                "pixel {p}: finite difference {finite}, gradient {}",
                raw[p]
            );
        }
        // The saliency map is |gradient| scaled so that each image's largest value is 1.
        let maps = maps(&model, &images, shape, &[Some(1); 3], &options, &device).unwrap();
        assert_eq!(maps.shape, shape);
        let top = raw[..2048].iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for (m, g) in maps.values[..2048].iter().zip(&raw) {
            assert!((m - g.abs() / top).abs() < 1e-5);
        }
    }

    #[test]
    fn maps_leave_the_model_unchanged_and_refuse_bad_requests() {
        let (model, images, shape, device) = setup(32);
        let before = predict_proba(&model, &images, shape, 3, &device);
        for method in [Method::Gradcam, Method::Hirescam, Method::Saliency] {
            let options = CamOptions {
                method,
                stage: 2,
                batch_size: 2,
            };
            let m = maps(
                &model,
                &images,
                shape,
                &[None, Some(1), None],
                &options,
                &device,
            )
            .unwrap();
            assert_eq!(m.len(), 3);
            // The prediction comes from the map's own forward pass: the model's, and an
            // image without a target is explained for its predicted class.
            for (p, q) in m
                .probabilities
                .iter()
                .flatten()
                .zip(before.iter().flatten())
            {
                assert!((p - q).abs() < 1e-5, "{p} vs {q}");
            }
            assert_eq!(m.targets[0], argmax(&before[0]));
            assert_eq!(m.targets[1], 1);
            assert_eq!(m.targets[2], argmax(&before[2]));
            assert!(m.values.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        assert_eq!(predict_proba(&model, &images, shape, 3, &device), before);
        let bad_stage = CamOptions {
            method: Method::Gradcam,
            stage: 5,
            ..CamOptions::default()
        };
        assert!(maps(&model, &images, shape, &[Some(0); 3], &bad_stage, &device).is_err());
        let err = maps(
            &model,
            &images,
            shape,
            &[Some(0), Some(1), Some(3)],
            &CamOptions::default(),
            &device,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("target class 3"), "{err}");
        assert!(
            maps(
                &model,
                &images,
                shape,
                &[Some(0), Some(1)],
                &CamOptions::default(),
                &device
            )
            .is_err()
        );
    }
}
