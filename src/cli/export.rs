//! `deepinsight export`: the trained network in other forms, each checked against fp32.

use std::path::PathBuf;

use crate::export::{self, ExportOptions, Target, int8::Int8Scheme, onnx_int8::Calibration};
use anyhow::{Result, anyhow, bail};

use super::{parse_share, set};

#[derive(clap::Args)]
pub struct Args {
    /// Run folder written by `deepinsight run`, e.g. models/demo.
    #[arg(long)]
    model: PathBuf,
    /// Where the model goes (comma-separated): batch (Burn INT8 record), server
    /// (ONNX fp32/fp16/INT8 QDQ for ONNX Runtime and TensorRT, and tensorrt/ with the
    /// engine build plan), mobile (model.mlpackage for Core ML).
    #[arg(long, value_delimiter = ',', required = true)]
    targets: Vec<Target>,
    /// A form whose predicted class agrees with fp32 on fewer of the checked samples
    /// (validation, and training samples calibration does not use) than this share is not
    /// written, and the command exits non-zero after writing the others.
    #[arg(long, default_value_t = export::DEFAULT_MIN_AGREEMENT, value_parser = parse_share)]
    min_agreement: f64,
    /// Training images the ONNX INT8 activation ranges are calibrated on, at most.
    #[arg(long, default_value_t = 256)]
    calibration_samples: usize,
    /// How ONNX INT8 activation ranges are calibrated (auto: minmax for the CPU model,
    /// percentile for the TensorRT one).
    #[arg(long, value_enum, default_value = "auto")]
    calibration: Calibration,
    /// The serving batcher's max batch size: the TensorRT profile's max (default 32).
    #[arg(long)]
    max_batch_size: Option<usize>,
    /// The serving batcher's preferred batch sizes: the largest is the profile's opt.
    #[arg(long, value_delimiter = ',')]
    preferred_batch_sizes: Option<Vec<usize>>,
    /// Build the TensorRT engines now, with trtexec from PATH (needs an NVIDIA GPU).
    #[arg(long)]
    build: bool,
    /// Store the Core ML package's convolution and linear weights in 8 bits (mobile).
    #[arg(long)]
    coreml_8bit: bool,
    /// How model-int8.bpk's weights are quantised (batch): block (stage convolutions with
    /// a scale per block of input channels, stem and head in fp32), tensor-inner (one
    /// scale per tensor, stem and head in fp32) or tensor (every weight, one scale each).
    #[arg(long, value_enum, default_value = "block")]
    int8_scheme: Int8Scheme,
}

pub fn execute(args: Args) -> Result<()> {
    let mut options = ExportOptions {
        min_agreement: args.min_agreement,
        calibration_samples: args.calibration_samples,
        calibration: args.calibration,
        build_tensorrt: args.build,
        coreml_8bit: args.coreml_8bit,
        int8_scheme: args.int8_scheme,
        ..ExportOptions::new(args.model, args.targets)
    };
    set(&mut options.batching.max_batch_size, args.max_batch_size);
    set(
        &mut options.batching.preferred_batch_sizes,
        args.preferred_batch_sizes,
    );
    options.batching.validate().map_err(|e| anyhow!(e))?;
    let report = export::run(&options)?;
    crate::outln!("{report}");
    if !report.rejected.is_empty() {
        let names: Vec<&str> = report.rejected.iter().map(|f| f.format.as_str()).collect();
        bail!(
            "{} form(s) rejected and not written: {}; the others were written (see \
             export_report.json)",
            names.len(),
            names.join(", ")
        );
    }
    Ok(())
}
