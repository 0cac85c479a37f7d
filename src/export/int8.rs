//! `model-int8.bpk`: Burn weight quantisation (Q8S, symmetric) of the convolution and linear
//! weights. BatchNorm statistics and biases stay fp32: quantising them costs accuracy for
//! almost no size (and, as Burn shares BatchNorm state between clones, it would also corrupt
//! the serving copy), so the model is quantised from a fresh copy loaded from the record, by
//! parameter path.
//!
//! The default scheme (`Int8Scheme::Block`, measured in docs/export.md) keeps the stem
//! convolution and the linear head in fp32, as is usual for INT8 CNNs (they see the raw image
//! and make the decision, and hold under 1% of the weights), and gives the residual stages'
//! convolutions one scale per block of 16 input channels of each output channel (fewer when the
//! width is not a multiple of 16): finer than one scale per output channel, which one scale
//! per tensor is far coarser than.

use anyhow::{Result, anyhow};
use burn::module::{Module, ParamGroup, Quantizer};
use burn::tensor::quantization::{Calibration, QuantValue, ScaleDtype};
use serde::{Deserialize, Serialize};

use super::{FormatReport, Reference, Target, measure};
use crate::model::ResNet;
use crate::model::ResNetConfig;
use crate::model::train::{load_record, predict_proba};
use crate::run::RunDir;

pub const FILE: &str = "model-int8.bpk";

/// How the weights are quantised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Int8Scheme {
    /// Every convolution and the head, one scale per tensor (the first scheme of this tool).
    Tensor,
    /// The residual stages' convolutions, one scale per tensor; stem and head in fp32.
    TensorInner,
    /// The residual stages' convolutions, one scale per block of 16 input channels of each
    /// output channel; stem and head in fp32.
    #[default]
    Block,
}

/// Every conv and the linear head's weight.
const ALL_WEIGHTS: &str = r"(conv\d?|fc|downsample\.conv)\.weight$";
/// The residual stages' 3x3 convolutions, and their 1x1 downsampling convolutions.
const STAGE_CONVS: &str = r"^layer[1-4]\.\d+\.conv[12]\.weight$";
const DOWNSAMPLE_CONVS: &str = r"^layer[1-4]\.\d+\.downsample\.conv\.weight$";

/// Input channels per scale in the `block` scheme. Measured on three demo models (docs/export.md):
/// blocks of the whole width (64) passed the 99% agreement gate on one of three, 16 on all
/// three.
const BLOCK_CHANNELS: usize = 16;

/// The INT8 record of a model's fp32 record.
pub fn quantize(
    config: &ResNetConfig,
    record: &[u8],
    device: &burn::tensor::Device,
    scheme: Int8Scheme,
) -> Result<Vec<u8>> {
    let model: ResNet = load_record(config, record, device)?;
    let q8 = device
        .settings()
        .quantization
        .scheme
        .with_value(QuantValue::Q8S);
    let group = |pattern: &str| {
        ParamGroup::from_regex(pattern).map_err(|e| anyhow!("bad weight pattern: {e:?}"))
    };
    let quantized = match scheme {
        Int8Scheme::Tensor => {
            let mut q = Quantizer::new(Calibration::MinMax, q8);
            model.quantize_weights_group(&mut q, group(ALL_WEIGHTS)?)
        }
        Int8Scheme::TensorInner => {
            let mut q = Quantizer::new(Calibration::MinMax, q8);
            let model = model.quantize_weights_group(&mut q, group(STAGE_CONVS)?);
            model.quantize_weights_group(&mut q, group(DOWNSAMPLE_CONVS)?)
        }
        Int8Scheme::Block => {
            // Every stage's input channels are a multiple of the width, so a block that divides
            // the width divides them all.
            let block = u8::try_from(gcd(config.width, BLOCK_CHANNELS)).expect("at most 16");
            let mut q3 = Quantizer::new(
                Calibration::MinMax,
                q8.per_block([block, 3, 3], ScaleDtype::F32),
            );
            let model = model.quantize_weights_group(&mut q3, group(STAGE_CONVS)?);
            let mut q1 = Quantizer::new(
                Calibration::MinMax,
                q8.per_block([block, 1, 1], ScaleDtype::F32),
            );
            model.quantize_weights_group(&mut q1, group(DOWNSAMPLE_CONVS)?)
        }
    };
    let bytes = quantized
        .into_record()
        .into_bytes()
        .map_err(|e| anyhow!("cannot serialise the INT8 record: {e:?}"))?;
    Ok(bytes.to_vec())
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The INT8 record, measured against fp32; the caller writes it if it passes.
pub(crate) fn export(run_dir: &RunDir, reference: &Reference) -> Result<(FormatReport, Vec<u8>)> {
    let record = std::fs::read(run_dir.dir.join(&run_dir.manifest.model.record))?;
    let bytes = quantize(
        &run_dir.config,
        &record,
        &run_dir.device,
        reference.options.int8_scheme,
    )?;
    // Checked as it will be used: reloaded from the bytes about to be written.
    let model = load_record(&run_dir.config, &bytes, &run_dir.device)?;
    let shape = run_dir.image_shape();
    let report = measure(
        reference,
        ("burn-int8", Target::Batch, "burn-flex"),
        FILE,
        &bytes,
        |images, n| Ok(predict_proba(&model, images, shape, n, &run_dir.device)),
    )?;
    Ok((report, bytes))
}
