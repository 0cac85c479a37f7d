//! `deepinsight export`: other forms of a trained run's network, each checked against the
//! fp32 model on the run's validation samples before it is written, and
//! `export_report.json` with each form's size, accuracy, argmax agreement and CPU latency.
//!
//! Targets name where a model goes; each brings its formats:
//! - `batch`: `model-int8.bpk`, Burn weight quantisation (Q8S per tensor) of the conv and
//!   linear weights only, never the BatchNorm statistics.
//! - `server` (server.rs): `model.onnx` (opset 18, symbolic batch, input `input`, outputs
//!   `logits` and `probabilities`), its static INT8 QDQ forms for ONNX Runtime and TensorRT,
//!   `model-fp16.onnx` for TensorRT 11, and the TensorRT build plan `tensorrt/`. Forms that
//!   run in ONNX Runtime are checked there when its library is found (onnxrt.rs); without it
//!   model.onnx is checked for its structure and the report says what was skipped and why.

pub mod check;
pub mod coreml;
pub mod int8;
pub mod onnx;
pub mod onnx_fp16;
pub mod onnx_int8;
pub mod server;
pub mod tensorrt;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::artefact;
use crate::model::train::argmax;
use crate::score::bundle::Bundle;

pub const REPORT_FILE: &str = "export_report.json";

/// Where an exported model goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// CPU batch scoring with Burn: the INT8 record.
    Batch,
    /// Inference servers (ONNX Runtime, TensorRT): the ONNX models and the TensorRT plan.
    Server,
    /// Apple devices: the Core ML package.
    Mobile,
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "batch" => Ok(Self::Batch),
            "server" => Ok(Self::Server),
            "mobile" => Ok(Self::Mobile),
            other => Err(format!(
                "unknown target '{other}'; available: batch, server, mobile"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub model: PathBuf,
    pub targets: Vec<Target>,
    /// An exported form whose argmax agrees with fp32 on fewer validation samples fails.
    pub min_agreement: f64,
    /// Images per forward pass when checking.
    pub batch_size: usize,
    /// Training images the ONNX INT8 activation ranges are calibrated on (at most).
    pub calibration_samples: usize,
    pub calibration: onnx_int8::Calibration,
    /// The serving batcher's settings: the TensorRT profile is 1 / preferred / max.
    pub batching: crate::serve::batcher::BatchConfig,
    /// Build the TensorRT engines now (needs trtexec and an NVIDIA GPU).
    pub build_tensorrt: bool,
    /// Store the Core ML package's conv and linear weights in 8 bits.
    pub coreml_8bit: bool,
}

impl ExportOptions {
    pub fn new(model: PathBuf, targets: Vec<Target>) -> Self {
        Self {
            model,
            targets,
            min_agreement: 0.99,
            batch_size: 32,
            calibration_samples: 256,
            calibration: onnx_int8::Calibration::Percentile,
            batching: Default::default(),
            build_tensorrt: false,
            coreml_8bit: false,
        }
    }
}

/// CPU latency of one forward pass, in milliseconds, by batch size.
pub type Latency = BTreeMap<String, f64>;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Fp32Summary {
    pub file: String,
    pub bytes: u64,
    pub accuracy: f64,
    pub latency_ms: Latency,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct FormatReport {
    pub format: String,
    pub target: Target,
    /// What it ran in here: burn-flex or onnxruntime.
    #[serde(default)]
    pub runtime: String,
    pub file: String,
    pub sha256: String,
    pub bytes: u64,
    /// fp32 bytes / these bytes.
    pub size_ratio: f64,
    pub accuracy: f64,
    /// fp32 accuracy minus this one, in points (percent).
    pub accuracy_drop_points: f64,
    /// Share of validation samples whose predicted class equals fp32's.
    pub agreement: f64,
    /// Largest difference of a class probability from fp32's.
    pub max_probability_difference: f64,
    pub latency_ms: Latency,
}

/// A written format not (yet) run here: its file and what was checked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StructureChecked {
    pub format: String,
    pub target: Target,
    pub file: String,
    pub sha256: String,
    pub bytes: u64,
    pub checked: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ExportReport {
    pub model_sha256: String,
    pub validation_samples: usize,
    pub min_agreement: f64,
    pub fp32: Fp32Summary,
    /// Formats run on the validation samples here.
    pub formats: Vec<FormatReport>,
    /// Formats checked for their structure only.
    #[serde(default)]
    pub structure_checked: Vec<StructureChecked>,
    /// Formats not made here, and why (a missing runtime or tool).
    #[serde(default)]
    pub skipped: Vec<Skipped>,
    /// The TensorRT plan (tensorrt/plan.json) and, with --build, the engines built.
    #[serde(default)]
    pub tensorrt: Option<TensorRtSummary>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Skipped {
    pub format: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct TensorRtSummary {
    pub plan: String,
    /// e.g. "10 fp32", "11 int8".
    pub engines: Vec<String>,
    /// Engine files built here, when --build was given.
    #[serde(default)]
    pub built: Vec<String>,
}

/// Exports every format of the requested targets into the run folder and writes the report.
/// Each file is written under a temporary name and renamed; a format that fails its check is
/// not written and the export fails.
pub fn run(options: &ExportOptions) -> Result<ExportReport> {
    if options.build_tensorrt {
        if !options.targets.contains(&Target::Server) {
            bail!(
                "--build builds TensorRT engines from the server target's ONNX: add --targets server"
            );
        }
        // Before any work: a missing tool is known now.
        tensorrt::Tools::find()?;
    }
    let bundle = Bundle::load(&options.model)?;
    let started = Instant::now();
    let valid = check::validation_set(&bundle)?;
    tracing::info!(samples = valid.labels.len(), "validation samples rendered");
    let reference = bundle.predict(&valid.images, options.batch_size);
    let fp32_record = options.model.join(&bundle.manifest.model.record);
    let fp32 = Fp32Summary {
        file: bundle.manifest.model.record.clone(),
        bytes: std::fs::metadata(&fp32_record)?.len(),
        accuracy: check::accuracy(&reference, &valid.labels),
        latency_ms: check::latency(&valid.images, valid.image_len, |images, n| {
            bundle.predict(images, n);
        }),
    };
    let checking = Reference {
        valid: &valid,
        probabilities: &reference,
        fp32: &fp32,
        options,
    };
    let mut report = ExportReport {
        model_sha256: bundle.model_sha256.clone(),
        validation_samples: valid.labels.len(),
        min_agreement: options.min_agreement,
        fp32: fp32.clone(),
        formats: Vec::new(),
        structure_checked: Vec::new(),
        skipped: Vec::new(),
        tensorrt: None,
    };
    for target in &options.targets {
        match target {
            Target::Batch => report.formats.push(int8::export(&bundle, &checking)?),
            Target::Server => server::export(&bundle, &checking, &mut report)?,
            Target::Mobile => report
                .structure_checked
                .push(coreml::export(&bundle, options.coreml_8bit)?),
        }
    }
    artefact::write_atomic(
        &options.model.join(REPORT_FILE),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "export done");
    Ok(report)
}

/// What each exported form is compared with: fp32 on the validation samples.
pub(crate) struct Reference<'a> {
    pub valid: &'a check::ValidationSet,
    pub probabilities: &'a [Vec<f32>],
    pub fp32: &'a Fp32Summary,
    pub options: &'a ExportOptions,
}

/// One form about to be written: checked on the validation samples through `predict`
/// (probabilities of n images), timed, and reported. Fails below the agreement threshold.
pub(crate) fn measure(
    reference: &Reference,
    (format, target, runtime): (&str, Target, &str),
    file: &str,
    bytes: &[u8],
    predict: impl Fn(&[f32], usize) -> Result<Vec<Vec<f32>>>,
) -> Result<FormatReport> {
    let valid = reference.valid;
    let options = reference.options;
    let mut probabilities = Vec::with_capacity(valid.labels.len());
    for chunk in valid.images.chunks(options.batch_size * valid.image_len) {
        probabilities.extend(predict(chunk, chunk.len() / valid.image_len)?);
    }
    let (accuracy, agreement, max_diff) = compare(
        format,
        &probabilities,
        reference.probabilities,
        &valid.labels,
        options.min_agreement,
    )?;
    let latency_ms = check::latency(&valid.images, valid.image_len, |images, n| {
        let _ = predict(images, n);
    });
    Ok(FormatReport {
        format: format.into(),
        target,
        runtime: runtime.into(),
        file: file.into(),
        sha256: artefact::sha256_hex(bytes),
        bytes: bytes.len() as u64,
        size_ratio: reference.fp32.bytes as f64 / bytes.len() as f64,
        accuracy,
        accuracy_drop_points: (reference.fp32.accuracy - accuracy) * 100.0,
        agreement,
        max_probability_difference: max_diff,
        latency_ms,
    })
}

/// Compares a candidate's probabilities with fp32's on the validation samples.
pub(crate) fn compare(
    format: &str,
    candidate: &[Vec<f32>],
    reference: &[Vec<f32>],
    labels: &[usize],
    min_agreement: f64,
) -> Result<(f64, f64, f64)> {
    let agree = candidate
        .iter()
        .zip(reference)
        .filter(|(c, r)| argmax(c) == argmax(r))
        .count();
    let agreement = agree as f64 / reference.len().max(1) as f64;
    let max_diff = candidate
        .iter()
        .zip(reference)
        .flat_map(|(c, r)| c.iter().zip(r).map(|(a, b)| f64::from((a - b).abs())))
        .fold(0.0, f64::max);
    if agreement < min_agreement {
        bail!(
            "{format}: predicted class agrees with fp32 on {:.2}% of the validation samples, below the required {:.2}% (--min-agreement); nothing was written",
            agreement * 100.0,
            min_agreement * 100.0
        );
    }
    Ok((check::accuracy(candidate, labels), agreement, max_diff))
}

/// The report of a run folder, if it was exported.
pub fn read_report(dir: &Path) -> Result<Option<ExportReport>> {
    let path = dir.join(REPORT_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
        format!("{}: not an export report", path.display())
    })?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_below_the_threshold_fails_and_names_it() {
        let reference = vec![
            vec![0.9, 0.1],
            vec![0.2, 0.8],
            vec![0.6, 0.4],
            vec![0.3, 0.7],
        ];
        let mut candidate = reference.clone();
        candidate[2] = vec![0.4, 0.6];
        let labels = [0, 1, 0, 1];
        let (accuracy, agreement, max_diff) =
            compare("x", &candidate, &reference, &labels, 0.75).unwrap();
        assert_eq!((accuracy, agreement), (0.75, 0.75));
        assert!((max_diff - 0.2).abs() < 1e-6);
        let err = compare("x", &candidate, &reference, &labels, 0.99).unwrap_err();
        assert!(err.to_string().contains("75.00%"), "{err}");
    }

    #[test]
    fn targets_parse_and_unknown_ones_are_named() {
        assert_eq!("batch".parse::<Target>(), Ok(Target::Batch));
        assert_eq!("server".parse::<Target>(), Ok(Target::Server));
        assert_eq!("mobile".parse::<Target>(), Ok(Target::Mobile));
        assert!(
            "nope"
                .parse::<Target>()
                .unwrap_err()
                .contains("unknown target")
        );
    }
}
