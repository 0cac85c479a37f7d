//! The training loop: Adam or AdamW, a warm-up and decay schedule, label smoothing and class
//! weights, mixup (mixup.rs), an optionally frozen backbone and a lower backbone learning rate
//! when fine-tuning, validation after every epoch (of a moving average of the weights when
//! asked for, ema.rs), early stopping, the best epoch's weights kept, and a checkpoint after
//! every epoch that a later run resumes from.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, anyhow};
use burn::module::{Module, ParamGroup};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use super::checkpoint::{Checkpoint, State};
use super::ema::Ema;
use super::metrics::{EpochStats, Metrics};
use super::mixup::Mixup;
use super::pretrained::{self, PretrainedReport};
use super::resnet::{ResNet, ResNetConfig};
use super::schedule::Schedule;
use super::settings::{ClassWeights, ModelSettings, Monitor, OptimizerKind, TrainSettings};

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

    fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The images of `rows` as one flat N x C x H x W buffer.
    fn gather(&self, rows: &[usize]) -> Vec<f32> {
        let len = self.image_len();
        let mut data = Vec::with_capacity(rows.len() * len);
        for &r in rows {
            data.extend_from_slice(&self.images[r * len..(r + 1) * len]);
        }
        data
    }

    fn tensor(&self, data: Vec<f32>, n: usize, device: &Device) -> Tensor<4> {
        let [c, h, w] = self.shape;
        Tensor::<4>::from_data(TensorData::new(data, [n, c, h, w]), device)
    }

    fn batch(&self, rows: &[usize], device: &Device) -> Tensor<4> {
        self.tensor(self.gather(rows), rows.len(), device)
    }

    fn targets(&self, rows: &[usize], device: &Device) -> Tensor<1, Int> {
        let t: Vec<i64> = rows.iter().map(|&r| self.labels[r] as i64).collect();
        Tensor::<1, Int>::from_data(TensorData::new(t, [rows.len()]), device)
    }
}

/// Renders the training images of `rows` afresh (N x C x H x W), e.g. with noise on the
/// feature values; called once per batch with the epoch's random stream.
pub type Augment<'a> = &'a (dyn Fn(&[usize], &mut ChaCha8Rng) -> Result<Vec<f32>> + Sync);

/// What one training run computes (the `[train]` and `[model]` settings and the seed) and
/// where it keeps its checkpoint.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub train: TrainSettings,
    /// Fine-tuning: the pretrained weights, frozen epochs and backbone rate.
    pub model: ModelSettings,
    pub seed: u64,
    /// Where the state after each epoch is kept.
    pub checkpoint: Option<PathBuf>,
    /// Continue from `checkpoint` when it holds one.
    pub resume: bool,
    /// End after this epoch as an interruption would (the checkpoint stays for a resume).
    pub stop_after: Option<usize>,
}

impl TrainOptions {
    /// `train` and `model` settings with no checkpoint.
    pub fn new(train: TrainSettings, model: ModelSettings, seed: u64) -> Self {
        Self {
            train,
            model,
            seed,
            checkpoint: None,
            resume: false,
            stop_after: None,
        }
    }

    /// The settings that change what training computes, for the checkpoint's fingerprint:
    /// all of them, serialised, but the thread count and the device.
    fn fingerprint_text(&self) -> String {
        let train = TrainSettings {
            threads: 0,
            ..self.train.clone()
        };
        let model = ModelSettings {
            device: String::new(),
            ..self.model.clone()
        };
        serde_json::to_string(&(train, model, self.seed)).expect("settings serialise")
    }
}

/// scikit-learn's "balanced" weights: n / (classes x count of the class); 0 for an absent class.
pub fn balanced_class_weights(labels: &[usize], n_classes: usize) -> Vec<f32> {
    let mut counts = vec![0usize; n_classes];
    for &l in labels {
        counts[l] += 1;
    }
    // scikit-learn counts the classes present (it refuses absent ones; here they weigh 0).
    let present = counts.iter().filter(|&&c| c > 0).count();
    counts
        .iter()
        .map(|&c| {
            if c == 0 {
                0.0
            } else {
                labels.len() as f32 / (present * c) as f32
            }
        })
        .collect()
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
    /// The epoch after which early stopping ended training.
    pub stopped_early: Option<usize>,
    /// The epoch a resumed run continued from.
    pub resumed_from: Option<usize>,
    pub pretrained: Option<PretrainedReport>,
    /// False when `stop_after` ended training before its last epoch.
    pub complete: bool,
}

/// The best epoch so far: its score (see `score`), metrics and weights.
struct Best {
    epoch: usize,
    score: (f64, f64),
    metrics: Metrics,
    record: Vec<u8>,
}

/// The optimiser named in the options, type-erased: Burn's Adam or AdamW, fused into one pass
/// per parameter on the CPU (`adam.rs`).
fn optimizer(options: &TrainOptions) -> ModuleOptimizer {
    let decay = options.train.weight_decay as f32;
    match options.train.optimizer {
        OptimizerKind::Adam => ModuleOptimizer::from(super::adam::adam(decay)),
        OptimizerKind::AdamW => ModuleOptimizer::from(super::adam::adam_w(decay)),
    }
}

/// What picks the best epoch: the monitored metric, then accuracy; higher is better.
fn score(monitor: Monitor, evaluation: &Evaluation) -> (f64, f64) {
    let m = &evaluation.metrics;
    let primary = match monitor {
        Monitor::MacroF1 => m.macro_f1,
        Monitor::Accuracy => m.accuracy,
        Monitor::BalancedAccuracy => m.balanced_accuracy,
        Monitor::Auroc => m.auroc.unwrap_or(f64::NEG_INFINITY),
        Monitor::Loss => -evaluation.loss,
    };
    (primary, m.accuracy)
}

fn fingerprint(
    train: &ImageSet,
    valid: &ImageSet,
    config: &ResNetConfig,
    options: &TrainOptions,
) -> String {
    let mut hash = Sha256::new();
    for set in [train, valid] {
        for v in set.images {
            hash.update(v.to_le_bytes());
        }
        for &l in set.labels {
            hash.update((l as u64).to_le_bytes());
        }
    }
    hash.update(serde_json::to_vec(config).unwrap_or_default());
    hash.update(options.fingerprint_text());
    hex::encode(hash.finalize())
}

pub fn to_bytes(model: &ResNet) -> Result<Vec<u8>> {
    Ok(model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| anyhow!("cannot serialise the model record: {e:?}"))?
        .to_vec())
}

/// Trains a ResNet on `train`, validating on `valid` after each epoch. `device` is the plain
/// device; training runs on its autodiff form. `augment`, when given, renders each training
/// batch instead of taking the fixed images.
pub fn train(
    config: &ResNetConfig,
    train: ImageSet,
    valid: ImageSet,
    options: &TrainOptions,
    augment: Option<Augment>,
    device: &Device,
) -> Result<Trained> {
    let ad_device = device.clone().autodiff();
    let fingerprint = fingerprint(&train, &valid, config, options);
    let mut model = super::init_seeded(config, &ad_device, options.seed);
    let mut pretrained_report = None;
    if let Some(path) = &options.model.pretrained {
        let (loaded, report) = pretrained::load_torchvision(model, config, path)?;
        model = loaded;
        pretrained_report = Some(report);
    }
    let mut optimizer = optimizer(options);
    let mut loss_config = CrossEntropyLossConfig::new().with_weights(
        (options.train.class_weights == ClassWeights::Balanced)
            .then(|| balanced_class_weights(train.labels, config.num_classes)),
    );
    if options.train.label_smoothing > 0.0 {
        loss_config = loss_config.with_smoothing(Some(options.train.label_smoothing as f32));
    }
    let loss_fn = loss_config.init(&ad_device);
    // BatchNorm needs more than one value per channel, so a last batch of one is dropped.
    let batches_per_epoch = train.len() / options.train.batch_size
        + usize::from(train.len() % options.train.batch_size > 1);
    let precise_rows = precise_bn_rows(train.len(), options.train.precise_bn_samples, options.seed);
    let schedule = Schedule {
        kind: options.train.schedule,
        base: options.train.learning_rate,
        steps_per_epoch: batches_per_epoch,
        epochs: options.train.epochs,
        warmup_epochs: options.train.warmup_epochs,
        step_epochs: options.train.step_epochs,
        gamma: options.train.step_gamma,
    };

    // A copy through the record, so that the average shares no BatchNorm running state with
    // the model (Burn's clones share it).
    let averaged = options.train.ema_epochs > 0.0;
    let mut ema = match averaged {
        true => Some(Ema::new(
            load_record_into(config.init(&ad_device), &to_bytes(&model)?)?,
            options.train.ema_epochs,
            batches_per_epoch,
        )),
        false => None,
    };
    let mut best: Option<Best> = None;
    let mut history = Vec::with_capacity(options.train.epochs);
    let mut since_best = 0;
    let mut first_epoch = 1;
    let mut resumed_from = None;
    if let Some(dir) = options
        .checkpoint
        .as_ref()
        .filter(|d| options.resume && d.join("state.json").exists())
    {
        let checkpoint = Checkpoint::read(dir, &fingerprint, options.train.epochs, averaged)?;
        model = load_record_into(config.init(&ad_device), &checkpoint.model)?;
        if let Some(bytes) = &checkpoint.ema {
            ema = Some(Ema::new(
                load_record_into(config.init(&ad_device), bytes)?,
                options.train.ema_epochs,
                batches_per_epoch,
            ));
        }
        optimizer = optimizer
            .from_bytes(burn::tensor::Bytes::from_bytes_vec(checkpoint.optimizer))
            .map_err(|e| anyhow!("cannot resume: {}: optimizer state: {e:?}", dir.display()))?;
        let state = checkpoint.state;
        first_epoch = state.epoch + 1;
        resumed_from = Some(state.epoch);
        since_best = state.since_best;
        history = state.history;
        best = Some(Best {
            epoch: state.best_epoch,
            score: state.best_score,
            metrics: state.best_metrics,
            record: checkpoint.best,
        });
        tracing::info!(epoch = state.epoch, checkpoint = %dir.display(), "resuming");
    }
    let head = ParamGroup::ids_from_module(model.fc.clone());

    let total = (batches_per_epoch * options.train.epochs) as u64;
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template(
            "train {bar:30} {pos}/{len} batches {elapsed_precise} eta {eta} {msg}",
        )
        .expect("static template"),
    );
    bar.set_position((batches_per_epoch * (first_epoch - 1)) as u64);

    let mut stopped_early = None;
    let mut last_epoch = first_epoch - 1;
    for epoch in first_epoch..=options.train.epochs {
        if options.stop_after.is_some_and(|s| epoch > s) || stopped_early.is_some() {
            break;
        }
        let started = Instant::now();
        // One random stream per epoch: a resumed run draws what the uninterrupted one would.
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
        rng.set_stream(epoch as u64);
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut rng);
        let frozen = epoch <= options.model.freeze_backbone_epochs;
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0usize, 0usize);
        let mut lr = 0.0;
        for (b, rows) in order.chunks(options.train.batch_size).enumerate() {
            if rows.len() < 2 {
                continue;
            }
            let step = (epoch - 1) * batches_per_epoch + b;
            lr = schedule.lr(step);
            let images = match augment {
                Some(render) => train.tensor(render(rows, &mut rng)?, rows.len(), &ad_device),
                None => train.batch(rows, &ad_device),
            };
            // Drawn only when asked for, so that runs without mixup keep their random stream.
            let mixup = (options.train.mixup_alpha > 0.0)
                .then(|| Mixup::draw(rows.len(), options.train.mixup_alpha, &mut rng));
            let images = match &mixup {
                Some(mix) => mix.images(images),
                None => images,
            };
            let features = model.features(images);
            // A frozen backbone: the gradient stops at the head's input, so the backbone is
            // neither updated nor back-propagated through (its BatchNorm statistics still
            // follow the data, as in PyTorch).
            let features = if frozen { features.detach() } else { features };
            let logits = model.fc.forward(features);
            let predicted: Vec<i64> = logits
                .clone()
                .argmax(1)
                .into_data()
                .convert::<i64>()
                .try_into_vec()
                .unwrap_or_default();
            correct += rows
                .iter()
                .zip(&predicted)
                .filter(|&(&r, &p)| train.labels[r] as i64 == p)
                .count();
            let targets = train.targets(rows, &ad_device);
            let loss = match &mixup {
                Some(mix) => mix.loss(&loss_fn, logits, targets),
                None => loss_fn.forward(logits, targets),
            };
            loss_sum += f64::from(loss.clone().into_scalar::<f32>()) * rows.len() as f64;
            seen += rows.len();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let rates = ModuleLrScheduler::new(lr * options.model.backbone_lr_factor)
                .with_group(head.clone(), lr)
                .step();
            model = optimizer.step(rates, model, grads);
            if let Some(ema) = &mut ema {
                ema.update(&model, step);
            }
            bar.inc(1);
            bar.set_message(format!(
                "epoch {epoch}/{}: loss {:.3}, acc {:.3}",
                options.train.epochs,
                loss_sum / seen as f64,
                correct as f64 / seen as f64
            ));
        }
        let stepped = started.elapsed();
        // The weights validated (and kept, if best): the moving average when there is one.
        let inference = match &ema {
            Some(ema) => precise_batch_norm(
                ema.average().clone(),
                train,
                &precise_rows,
                options.train.batch_size,
                &ad_device,
            )
            .valid(),
            None => {
                model = precise_batch_norm(
                    model,
                    train,
                    &precise_rows,
                    options.train.batch_size,
                    &ad_device,
                );
                model.valid()
            }
        };
        let re_estimated = started.elapsed();
        let evaluation = evaluate(&inference, valid, options.train.batch_size, device);
        tracing::debug!(
            epoch,
            steps_s = stepped.as_secs_f64(),
            precise_bn_s = (re_estimated - stepped).as_secs_f64(),
            validation_s = (started.elapsed() - re_estimated).as_secs_f64(),
            "epoch phases"
        );
        let stats = EpochStats {
            epoch,
            train_loss: loss_sum / seen.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            valid_loss: evaluation.loss,
            valid_accuracy: evaluation.metrics.accuracy,
            valid_macro_f1: evaluation.metrics.macro_f1,
            valid_balanced_accuracy: evaluation.metrics.balanced_accuracy,
            valid_auroc: evaluation.metrics.auroc,
            learning_rate: lr,
            frozen,
            seconds: started.elapsed().as_secs_f64(),
        };
        crate::progress::line(format_args!(
            "epoch {epoch}/{}: train loss {:.4}, validation loss {:.4}, accuracy {:.3}, balanced \
             accuracy {:.3}, macro-F1 {:.3}, {:.1} s",
            options.train.epochs,
            stats.train_loss,
            stats.valid_loss,
            stats.valid_accuracy,
            stats.valid_balanced_accuracy,
            stats.valid_macro_f1,
            stats.seconds
        ));
        tracing::info!(
            epoch,
            train_loss = stats.train_loss,
            train_accuracy = stats.train_accuracy,
            valid_loss = stats.valid_loss,
            valid_accuracy = stats.valid_accuracy,
            valid_macro_f1 = stats.valid_macro_f1,
            learning_rate = lr,
            frozen,
            "epoch done"
        );
        let current = score(options.train.monitor, &evaluation);
        if best.as_ref().is_none_or(|b| current > b.score) {
            best = Some(Best {
                epoch,
                score: current,
                metrics: evaluation.metrics,
                record: to_bytes(&inference)?,
            });
            since_best = 0;
        } else {
            since_best += 1;
        }
        history.push(stats);
        last_epoch = epoch;
        if options.train.early_stopping_patience > 0
            && since_best >= options.train.early_stopping_patience
            && epoch < options.train.epochs
        {
            tracing::info!(
                epoch,
                patience = options.train.early_stopping_patience,
                "early stop: no improvement"
            );
            stopped_early = Some(epoch);
        }
        if let Some(dir) = &options.checkpoint {
            let kept = best.as_ref().expect("set above");
            Checkpoint {
                state: State {
                    fingerprint: fingerprint.clone(),
                    epoch,
                    history: history.clone(),
                    best_epoch: kept.epoch,
                    best_score: kept.score,
                    best_metrics: kept.metrics.clone(),
                    since_best,
                },
                model: to_bytes(&model)?,
                optimizer: optimizer
                    .into_bytes()
                    .map_err(|e| anyhow!("cannot serialise the optimizer state: {e:?}"))?
                    .to_vec(),
                best: kept.record.clone(),
                ema: ema.as_ref().map(|e| to_bytes(e.average())).transpose()?,
            }
            .write(dir)?;
        }
    }
    bar.finish_and_clear();

    let Best {
        epoch: best_epoch,
        metrics,
        record,
        ..
    } = best.ok_or_else(|| anyhow!("no epoch ran"))?;
    let model = load_record(config, &record, device)?;
    Ok(Trained {
        model,
        record,
        best_epoch,
        history,
        metrics,
        stopped_early,
        resumed_from,
        pretrained: pretrained_report,
        complete: stopped_early.is_some() || last_epoch == options.train.epochs,
    })
}

/// The training rows precise BN runs over: all of them, or (`samples` > 0) a random subset of
/// that many drawn once from the seed, in row order. Measured in docs/training.md: the pass
/// costs a forward pass per sample, a fifth of an epoch on the whole split.
fn precise_bn_rows(n: usize, samples: usize, seed: u64) -> Vec<usize> {
    let mut rows: Vec<usize> = (0..n).collect();
    if samples > 0 && samples < n {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
        rows.shuffle(&mut rng);
        rows.truncate(samples);
        rows.sort_unstable();
    }
    rows
}

/// Re-estimates every BatchNorm layer's running statistics as the plain average over the
/// training set's `rows` (`precise_bn_rows`) under the epoch's final weights ("precise BN",
/// Wu & Johnson 2021).
///
/// The running averages that training leaves behind trail the weights: with small cohorts
/// Adam changes the weights fast, and the exponential average (momentum 0.1) still mixes in
/// statistics of earlier weights. Measured on the bundled cohort, that mismatch made the
/// inference-mode network predict one class for every sample (33% training accuracy against 88%
/// with batch statistics); after re-estimation the two agree.
fn precise_batch_norm(
    model: ResNet,
    train: ImageSet,
    rows: &[usize],
    batch_size: usize,
    device: &Device,
) -> ResNet {
    // Only the running statistics are wanted: with no parameter tracked, the forward passes
    // record no graph and keep no activations for a backward pass that never comes.
    let mut model = model.set_require_grad(false);
    let saved: Vec<f64> = model
        .batch_norms_mut()
        .iter()
        .map(|bn| bn.momentum)
        .collect();
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
        drop(model.forward(train.batch(batch, device)));
    }
    for (bn, m) in model.batch_norms_mut().into_iter().zip(saved) {
        bn.momentum = m;
    }
    model.set_require_grad(true)
}

/// Builds a model from a Burnpack record on `device`, in inference mode.
pub fn load_record(config: &ResNetConfig, record: &[u8], device: &Device) -> Result<ResNet> {
    Ok(load_record_into(config.init(device), record)?.valid())
}

/// Loads a Burnpack record into `model`, keeping the record's parameter ids.
fn load_record_into(model: ResNet, record: &[u8]) -> Result<ResNet> {
    let record =
        burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(record.to_vec()))
            .map_err(|e| anyhow!("cannot read the model record: {e:?}"))?;
    model
        .try_load_record(record)
        .map_err(|e| anyhow!("the model record does not fit the model config: {e:?}"))
}

pub struct Evaluation {
    pub loss: f64,
    pub metrics: Metrics,
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
    Evaluation {
        loss,
        metrics: Metrics::from_probabilities(set.labels, &probabilities, n_classes),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::settings::ScheduleKind;
    use burn::tensor::Distribution;

    /// 24 random 1 x 8 x 8 images in 3 classes, and 9 for validation.
    fn data() -> (Vec<f32>, Vec<usize>, Vec<f32>, Vec<usize>) {
        let device = Device::flex();
        let draw = |n: usize| -> Vec<f32> {
            Tensor::<4>::random([n, 1, 8, 8], Distribution::Default, &device)
                .into_data()
                .try_into_vec()
                .unwrap()
        };
        let labels = |n: usize| (0..n).map(|i| i % 3).collect::<Vec<_>>();
        let (train, valid) = crate::model::seeded(&device, 11, || (draw(24), draw(9)));
        (train, labels(24), valid, labels(9))
    }

    fn weights(model: &ResNet) -> (Vec<f32>, Vec<f32>) {
        let conv = model.layer1[0]
            .conv1
            .weight
            .val()
            .into_data()
            .try_into_vec()
            .unwrap();
        let fc = model.fc.weight.val().into_data().try_into_vec().unwrap();
        (conv, fc)
    }

    fn all_weights(model: &ResNet) -> Vec<f32> {
        crate::model::flex::all_weights(model)
    }

    /// Plain Adam at a constant rate, no extras.
    fn options(epochs: usize, batch_size: usize, learning_rate: f64, seed: u64) -> TrainOptions {
        let train = TrainSettings {
            epochs,
            batch_size,
            learning_rate,
            ..TrainSettings::default()
        };
        TrainOptions::new(train, ModelSettings::default(), seed)
    }

    fn tweak(mut options: TrainOptions, change: impl FnOnce(&mut TrainOptions)) -> TrainOptions {
        change(&mut options);
        options
    }

    fn run(options: &TrainOptions) -> Trained {
        try_run(options).unwrap()
    }

    fn try_run(options: &TrainOptions) -> Result<Trained> {
        let (ti, tl, vi, vl) = data();
        let shape = [1, 8, 8];
        train(
            &ResNetConfig::new(1, 3).with_width(4),
            ImageSet {
                images: &ti,
                labels: &tl,
                shape,
            },
            ImageSet {
                images: &vi,
                labels: &vl,
                shape,
            },
            options,
            None,
            &Device::flex(),
        )
    }

    fn initial(seed: u64) -> ResNet {
        let device = Device::flex().autodiff();
        crate::model::init_seeded(&ResNetConfig::new(1, 3).with_width(4), &device, seed).valid()
    }

    /// Precise BN on a subset of the training rows leaves the statistics the same pass leaves
    /// on a training set of those samples alone; the subset is drawn from the seed (the same
    /// every time, in row order) and has the asked size.
    #[test]
    fn precise_bn_on_a_subset_equals_the_pass_over_those_samples_alone() {
        let rows = precise_bn_rows(24, 10, 7);
        assert_eq!(rows.len(), 10);
        assert_eq!(rows, precise_bn_rows(24, 10, 7));
        assert_ne!(rows, precise_bn_rows(24, 10, 8));
        assert!(rows.windows(2).all(|w| w[0] < w[1]), "{rows:?}");
        let all: Vec<usize> = (0..24).collect();
        assert_eq!(precise_bn_rows(24, 0, 7), all);
        assert_eq!(precise_bn_rows(24, 30, 7), all);

        let (images, labels, _, _) = data();
        let shape = [1, 8, 8];
        let set = ImageSet {
            images: &images,
            labels: &labels,
            shape,
        };
        let (sub_images, sub_labels) = (
            set.gather(&rows),
            rows.iter().map(|&r| labels[r]).collect::<Vec<_>>(),
        );
        let subset = ImageSet {
            images: &sub_images,
            labels: &sub_labels,
            shape,
        };
        let device = Device::flex().autodiff();
        let statistics = |set: ImageSet, rows: &[usize]| -> Vec<f32> {
            let config = ResNetConfig::new(1, 3).with_width(4);
            let model = crate::model::init_seeded(&config, &device, 3);
            let mut model = precise_batch_norm(model, set, rows, 4, &device);
            let mut out = Vec::new();
            for bn in model.batch_norms_mut() {
                for state in [bn.running_mean.value(), bn.running_var.value()] {
                    out.extend(state.into_data().try_to_vec::<f32>().unwrap());
                }
            }
            out
        };
        let on_subset = statistics(set, &rows);
        assert_eq!(on_subset, statistics(subset, &(0..10).collect::<Vec<_>>()));
        assert_ne!(on_subset, statistics(set, &all));
    }

    #[test]
    fn a_frozen_backbone_keeps_its_weights_and_the_head_learns() {
        let options = tweak(options(1, 8, 1e-2, 4), |o| {
            o.model.freeze_backbone_epochs = 1;
        });
        let trained = run(&options);
        assert!(trained.history[0].frozen);
        let (conv, fc) = weights(&trained.model);
        let (conv0, fc0) = weights(&initial(4));
        assert_eq!(conv, conv0, "the backbone moved while frozen");
        assert_ne!(fc, fc0, "the head did not learn");
    }

    #[test]
    fn the_backbone_learning_rate_factor_scales_only_the_backbone() {
        let still = run(&tweak(options(1, 8, 1e-2, 4), |o| {
            o.model.backbone_lr_factor = 0.0;
        }));
        let (conv0, fc0) = weights(&initial(4));
        let (conv, fc) = weights(&still.model);
        assert_eq!(conv, conv0, "a zero factor still moved the backbone");
        assert_ne!(fc, fc0);
        let moving = run(&options(1, 8, 1e-2, 4));
        assert_ne!(weights(&moving.model).0, conv0);
    }

    #[test]
    fn weight_decay_and_label_smoothing_change_training() {
        let plain = run(&options(2, 8, 1e-2, 4));
        let norm = |m: &ResNet| weights(m).1.iter().map(|w| w * w).sum::<f32>();
        let decayed = run(&tweak(options(2, 8, 1e-2, 4), |o| {
            o.train.optimizer = OptimizerKind::AdamW;
            o.train.weight_decay = 5.0;
        }));
        assert!(
            norm(&decayed.model) < norm(&plain.model),
            "AdamW decay did not shrink the head"
        );
        let smoothed = run(&tweak(options(2, 8, 1e-2, 4), |o| {
            o.train.label_smoothing = 0.3;
        }));
        assert_ne!(smoothed.history[0].train_loss, plain.history[0].train_loss);
        // Same seed, same data, same options: the same weights, bit for bit.
        let again = run(&options(2, 8, 1e-2, 4));
        assert_eq!(all_weights(&again.model), all_weights(&plain.model));
        assert_eq!(again.history.len(), 2);
    }

    #[test]
    fn balanced_class_weights_follow_scikit_learn() {
        // 6 samples: class 0 x3, class 1 x2, class 2 x1 (class 3 absent) -> 6 / (3 x count)
        let w = balanced_class_weights(&[0, 0, 0, 1, 1, 2], 4);
        assert_eq!(w, vec![6.0 / 9.0, 1.0, 2.0, 0.0]);
    }

    #[test]
    fn early_stopping_ends_after_patience_epochs_without_improvement() {
        // A rate too small to change any prediction: epoch 1 stays the best.
        let trained = run(&tweak(options(10, 8, 1e-12, 4), |o| {
            o.train.early_stopping_patience = 2;
        }));
        assert_eq!(trained.stopped_early, Some(3));
        assert_eq!(trained.history.len(), 3);
        assert_eq!(trained.best_epoch, 1);
        assert!(trained.complete);
    }

    #[test]
    fn a_resumed_run_ends_where_the_uninterrupted_one_does() {
        let dir = tempfile::tempdir().unwrap();
        let base = tweak(options(3, 8, 1e-2, 4), |o| {
            o.train.schedule = ScheduleKind::Cosine;
            o.train.warmup_epochs = 1;
        });
        let straight = run(&base);
        let checkpoint = Some(dir.path().join("ckpt"));
        let first = run(&tweak(base.clone(), |o| {
            o.checkpoint = checkpoint.clone();
            o.stop_after = Some(2);
        }));
        assert!(!first.complete);
        assert_eq!(first.history.len(), 2);
        let other = tweak(base.clone(), |o| {
            o.train.learning_rate = 2e-2;
            o.checkpoint = checkpoint.clone();
            o.resume = true;
        });
        let refused = try_run(&other);
        let err = format!("{:#}", refused.err().expect("other options refused"));
        assert!(err.contains("other training data or options"), "{err}");
        let resumed = run(&TrainOptions {
            checkpoint,
            resume: true,
            ..base
        });
        assert_eq!(resumed.resumed_from, Some(2));
        assert_eq!(resumed.history.len(), 3);
        assert_eq!(
            all_weights(&resumed.model),
            all_weights(&straight.model),
            "resumed weights differ"
        );
        let strip = |h: &[EpochStats]| {
            h.iter()
                .map(|s| EpochStats {
                    seconds: 0.0,
                    ..s.clone()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&resumed.history), strip(&straight.history));
    }
}
