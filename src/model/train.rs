//! The training loop: Adam, shuffled mini-batches, validation after every epoch, and the best
//! epoch's weights kept.

use std::time::Instant;

use anyhow::{Result, anyhow};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::metrics::Metrics;
use super::resnet::{ResNet, ResNetConfig};

/// Images (N x C x H x W, flat) with their class indices.
#[derive(Debug, Clone, Copy)]
pub struct ImageSet<'a> {
    pub images: &'a [f32],
    pub labels: &'a [usize],
    /// [C, H, W]
    pub shape: [usize; 3],
}

impl ImageSet<'_> {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The images of `rows` as one N x C x H x W tensor.
    fn batch(&self, rows: &[usize], device: &Device) -> Tensor<4> {
        let len = self.image_len();
        let mut data = Vec::with_capacity(rows.len() * len);
        for &r in rows {
            data.extend_from_slice(&self.images[r * len..(r + 1) * len]);
        }
        let [c, h, w] = self.shape;
        Tensor::<4>::from_data(TensorData::new(data, [rows.len(), c, h, w]), device)
    }

    fn targets(&self, rows: &[usize], device: &Device) -> Tensor<1, Int> {
        let t: Vec<i64> = rows.iter().map(|&r| self.labels[r] as i64).collect();
        Tensor::<1, Int>::from_data(TensorData::new(t, [rows.len()]), device)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct TrainOptions {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochStats {
    pub epoch: usize,
    pub train_loss: f64,
    pub valid_loss: f64,
    pub valid_accuracy: f64,
    pub valid_macro_f1: f64,
    pub seconds: f64,
}

pub struct Trained {
    /// The best epoch's model, in inference mode on the plain (non-autodiff) device.
    pub model: ResNet,
    /// The same weights as a Burnpack record, ready to be written.
    pub record: Vec<u8>,
    pub best_epoch: usize,
    pub history: Vec<EpochStats>,
    /// Validation metrics of the best epoch.
    pub metrics: Metrics,
}

/// Trains a fresh ResNet on `train`, validating on `valid` after each epoch. `device` is the
/// plain device; training runs on its autodiff form.
pub fn train(
    config: &ResNetConfig,
    train: ImageSet,
    valid: ImageSet,
    options: &TrainOptions,
    device: &Device,
) -> Result<Trained> {
    device.seed(options.seed);
    let ad_device = device.clone().autodiff();
    let mut model = config.init(&ad_device);
    let mut optimizer = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&ad_device);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let batches_per_epoch = train.len().div_ceil(options.batch_size);
    let bar = ProgressBar::new((batches_per_epoch * options.epochs) as u64).with_style(
        ProgressStyle::with_template(
            "train {bar:30} {pos}/{len} batches {elapsed_precise} eta {eta} {msg}",
        )
        .expect("static template"),
    );

    let mut best: Option<(usize, Metrics, Vec<u8>)> = None;
    let mut history = Vec::with_capacity(options.epochs);
    let mut order: Vec<usize> = (0..train.len()).collect();
    for epoch in 1..=options.epochs {
        let started = Instant::now();
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        for rows in order.chunks(options.batch_size) {
            // BatchNorm needs more than one value per channel to estimate batch statistics.
            if rows.len() < 2 {
                continue;
            }
            let logits = model.forward(train.batch(rows, &ad_device));
            let loss = loss_fn.forward(logits, train.targets(rows, &ad_device));
            loss_sum += f64::from(loss.clone().into_scalar::<f32>()) * rows.len() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(options.learning_rate, model, grads);
            bar.inc(1);
        }
        model = precise_batch_norm(model, train, options.batch_size, &ad_device);
        let inference = model.valid();
        let evaluation = evaluate(&inference, valid, options.batch_size, device);
        let stats = EpochStats {
            epoch,
            train_loss: loss_sum / train.len() as f64,
            valid_loss: evaluation.loss,
            valid_accuracy: evaluation.metrics.accuracy,
            valid_macro_f1: evaluation.metrics.macro_f1,
            seconds: started.elapsed().as_secs_f64(),
        };
        bar.set_message(format!(
            "epoch {epoch}: loss {:.3}, valid acc {:.3}",
            stats.train_loss, stats.valid_accuracy
        ));
        tracing::info!(
            epoch,
            train_loss = stats.train_loss,
            valid_loss = stats.valid_loss,
            valid_accuracy = stats.valid_accuracy,
            valid_macro_f1 = stats.valid_macro_f1,
            "epoch done"
        );
        let improved = best.as_ref().is_none_or(|(_, m, _)| {
            (evaluation.metrics.macro_f1, evaluation.metrics.accuracy) > (m.macro_f1, m.accuracy)
        });
        if improved {
            let record = inference
                .into_record()
                .into_bytes()
                .map_err(|e| anyhow!("cannot serialise the model record: {e:?}"))?;
            best = Some((epoch, evaluation.metrics, record.to_vec()));
        }
        history.push(stats);
    }
    bar.finish_and_clear();

    let (best_epoch, metrics, record) = best.expect("at least one epoch ran");
    let model = load_record(config, &record, device)?;
    Ok(Trained {
        model,
        record,
        best_epoch,
        history,
        metrics,
    })
}

/// Re-estimates every BatchNorm layer's running statistics as the plain average over the
/// training set under the epoch's final weights ("precise BN", Wu & Johnson 2021).
///
/// The running averages that training leaves behind trail the weights: with small cohorts
/// Adam changes the weights fast, and the exponential average (momentum 0.1) still mixes in
/// statistics of earlier weights. Measured on the bundled cohort, that mismatch made the
/// inference-mode network predict one class for every sample (33% training accuracy against 88%
/// with batch statistics); after re-estimation the two agree.
fn precise_batch_norm(
    mut model: ResNet,
    train: ImageSet,
    batch_size: usize,
    device: &Device,
) -> ResNet {
    let saved: Vec<f64> = model
        .batch_norms_mut()
        .iter()
        .map(|bn| bn.momentum)
        .collect();
    let rows: Vec<usize> = (0..train.len()).collect();
    let mut seen = 0usize;
    for batch in rows.chunks(batch_size) {
        if batch.len() < 2 {
            continue;
        }
        seen += 1;
        // With momentum 1/k the k-th update makes the running value the mean of k batches.
        for bn in model.batch_norms_mut() {
            bn.momentum = 1.0 / seen as f64;
        }
        // Only the running statistics are wanted: the output and its graph are dropped.
        drop(model.forward(train.batch(batch, device)));
    }
    for (bn, m) in model.batch_norms_mut().into_iter().zip(saved) {
        bn.momentum = m;
    }
    model
}

/// Builds a model from a Burnpack record on `device`, in inference mode.
pub fn load_record(config: &ResNetConfig, record: &[u8], device: &Device) -> Result<ResNet> {
    let record =
        burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(record.to_vec()))
            .map_err(|e| anyhow!("cannot read the model record: {e:?}"))?;
    let model = config
        .init(device)
        .try_load_record(record)
        .map_err(|e| anyhow!("the model record does not fit the model config: {e:?}"))?;
    Ok(model.valid())
}

pub struct Evaluation {
    pub loss: f64,
    pub metrics: Metrics,
    /// Class probabilities per image.
    pub probabilities: Vec<Vec<f32>>,
}

/// Loss, metrics and probabilities of `model` on a labelled image set.
pub fn evaluate(model: &ResNet, set: ImageSet, batch_size: usize, device: &Device) -> Evaluation {
    let probabilities = predict_proba(model, set.images, set.shape, batch_size, device);
    let n_classes = model.fc.weight.dims()[1];
    let loss = probabilities
        .iter()
        .zip(set.labels)
        .map(|(p, &y)| -f64::from(p[y].max(1e-12)).ln())
        .sum::<f64>()
        / set.len().max(1) as f64;
    let predicted: Vec<usize> = probabilities.iter().map(|p| argmax(p)).collect();
    Evaluation {
        loss,
        metrics: Metrics::compute(set.labels, &predicted, n_classes),
        probabilities,
    }
}

/// Class probabilities for each image of a flat N x C x H x W buffer.
pub fn predict_proba(
    model: &ResNet,
    images: &[f32],
    shape: [usize; 3],
    batch_size: usize,
    device: &Device,
) -> Vec<Vec<f32>> {
    let len: usize = shape.iter().product();
    let n = images.len() / len;
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(batch_size.max(1)) {
        let end = (start + batch_size).min(n);
        let [c, h, w] = shape;
        let data = TensorData::new(
            images[start * len..end * len].to_vec(),
            [end - start, c, h, w],
        );
        let probs = softmax(model.forward(Tensor::<4>::from_data(data, device)), 1);
        let k = probs.dims()[1];
        let flat: Vec<f32> = probs
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .expect("converted to f32");
        out.extend(flat.chunks(k).map(<[f32]>::to_vec));
    }
    out
}

pub fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}
