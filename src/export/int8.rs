//! `model-int8.bpk`: Burn weight quantisation (Q8S, symmetric, one scale per tensor) of the
//! convolution and linear weights. BatchNorm statistics and biases stay fp32: quantising them
//! costs accuracy for almost no size (and, as Burn shares BatchNorm state between clones, it
//! would also corrupt the serving copy), so the model is quantised from a fresh copy loaded
//! from the record, by parameter path.

use anyhow::{Result, anyhow};
use burn::module::{Module, ParamGroup, Quantizer};
use burn::tensor::quantization::{Calibration, QuantValue};

use super::{FormatReport, Reference, Target, measure};
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

pub(crate) fn export(bundle: &Bundle, reference: &Reference) -> Result<FormatReport> {
    let record = std::fs::read(bundle.dir.join(&bundle.manifest.model.record))?;
    let bytes = quantize(&bundle.config, &record, &bundle.device)?;
    // Checked as it will be used: reloaded from the bytes about to be written.
    let model = load_record(&bundle.config, &bytes, &bundle.device)?;
    let shape = bundle.image_shape();
    let report = measure(
        reference,
        ("burn-int8", Target::Batch, "burn-flex"),
        FILE,
        &bytes,
        |images, n| Ok(predict_proba(&model, images, shape, n, &bundle.device)),
    )?;
    artefact::write_atomic(&bundle.dir.join(FILE), &bytes)?;
    Ok(report)
}
