//! `model-int8.bpk`: Burn weight quantisation (Q8S, symmetric, one scale per tensor) of the
//! convolution and linear weights. BatchNorm statistics and biases stay fp32: quantising them
//! costs accuracy for almost no size (and, as Burn shares BatchNorm state between clones, it
//! would also corrupt the serving copy), so the model is quantised from a fresh copy loaded
//! from the record, by parameter path.

use anyhow::{Result, anyhow};
use burn::module::{Module, ParamGroup, Quantizer};
use burn::tensor::quantization::{Calibration, QuantValue};

use super::check::{self, ValidationSet};
use super::{ExportOptions, FormatReport, Fp32Summary, Target, compare};
use crate::artefact;
use crate::model::ResNet;
use crate::model::ResNetConfig;
use crate::model::train::{load_record, predict_proba};
use crate::score::bundle::Bundle;

pub const FILE: &str = "model-int8.bpk";

/// Parameter paths that are quantised: every conv and the linear head's weight.
pub const WEIGHTS: &str = r"(conv\d?|fc|downsample\.conv)\.weight$";

/// The INT8 record of a model's fp32 record.
pub fn quantize(
    config: &ResNetConfig,
    record: &[u8],
    device: &burn::tensor::Device,
) -> Result<Vec<u8>> {
    let model: ResNet = load_record(config, record, device)?;
    let scheme = device
        .settings()
        .quantization
        .scheme
        .with_value(QuantValue::Q8S);
    let mut quantizer = Quantizer::new(Calibration::MinMax, scheme);
    let group =
        ParamGroup::from_regex(WEIGHTS).map_err(|e| anyhow!("bad weight pattern: {e:?}"))?;
    let quantized = model.quantize_weights_group(&mut quantizer, group);
    let bytes = quantized
        .into_record()
        .into_bytes()
        .map_err(|e| anyhow!("cannot serialise the INT8 record: {e:?}"))?;
    Ok(bytes.to_vec())
}

pub fn export(
    bundle: &Bundle,
    valid: &ValidationSet,
    reference: &[Vec<f32>],
    fp32: &Fp32Summary,
    options: &ExportOptions,
) -> Result<FormatReport> {
    let record = std::fs::read(bundle.dir.join(&bundle.manifest.model.record))?;
    let bytes = quantize(&bundle.config, &record, &bundle.device)?;
    // Checked as it will be used: reloaded from the bytes about to be written.
    let model = load_record(&bundle.config, &bytes, &bundle.device)?;
    let shape = [
        bundle.layout.n_channels(),
        bundle.layout.height,
        bundle.layout.width,
    ];
    let probabilities = predict_proba(
        &model,
        &valid.images,
        shape,
        options.batch_size,
        &bundle.device,
    );
    let (accuracy, agreement, max_diff) = compare(
        "burn-int8",
        &probabilities,
        reference,
        &valid.labels,
        options.min_agreement,
    )?;
    let latency_ms = check::latency(&valid.images, valid.image_len, |images, n| {
        predict_proba(&model, images, shape, n, &bundle.device);
    });
    artefact::write_atomic(&bundle.dir.join(FILE), &bytes)?;
    Ok(FormatReport {
        format: "burn-int8".into(),
        target: Target::Batch,
        file: FILE.into(),
        sha256: artefact::sha256_hex(&bytes),
        bytes: bytes.len() as u64,
        size_ratio: fp32.bytes as f64 / bytes.len() as f64,
        accuracy,
        accuracy_drop_points: (fp32.accuracy - accuracy) * 100.0,
        agreement,
        max_probability_difference: max_diff,
        latency_ms,
    })
}
