//! `deepinsight export`: other forms of a trained run's network, each checked against the
//! fp32 model (on the validation samples and the training samples INT8 calibration does not
//! use) before it is written, and
//! `export_report.json` with each form's size, accuracy, argmax agreement and CPU latency.
//!
//! Targets name where a model goes; each brings its formats:
//! - `batch`: `model-int8.bpk`, Burn weight quantisation (Q8S) of the residual stages' conv
//!   weights (int8.rs), never the BatchNorm statistics.
//! - `server` (server.rs): `model.onnx` (opset 18, symbolic batch, input `input`, outputs
//!   `logits` and `probabilities`), its static INT8 QDQ forms for ONNX Runtime and TensorRT,
//!   `model-fp16.onnx` for TensorRT 11, and the TensorRT build plan `tensorrt/`. Forms that
//!   run in ONNX Runtime are checked there when its library is found (onnxrt.rs); without it
//!   model.onnx is checked for its structure and the report says what was skipped and why.

pub mod check;
pub(crate) mod coreml;
pub mod int8;
pub(crate) mod onnx;
pub(crate) mod onnx_fp16;
pub(crate) mod onnx_int8;
pub(crate) mod server;
mod table;
pub mod tensorrt;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::artefact;
use crate::model::metrics::argmax;
use crate::run::RunDir;

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
    pub batching: crate::batching::BatchConfig,
    /// Build the TensorRT engines now (needs trtexec and an NVIDIA GPU).
    pub build_tensorrt: bool,
    /// Store the Core ML package's conv and linear weights in 8 bits.
    pub coreml_8bit: bool,
    /// How `model-int8.bpk`'s weights are quantised.
    pub int8_scheme: int8::Int8Scheme,
}

/// The least share of checked samples on which an exported form must predict fp32's class.
pub const DEFAULT_MIN_AGREEMENT: f64 = 0.99;

impl ExportOptions {
    pub fn new(model: PathBuf, targets: Vec<Target>) -> Self {
        Self {
            model,
            targets,
            min_agreement: DEFAULT_MIN_AGREEMENT,
            batch_size: 32,
            calibration_samples: 256,
            calibration: onnx_int8::Calibration::Auto,
            batching: Default::default(),
            build_tensorrt: false,
            coreml_8bit: false,
            int8_scheme: int8::Int8Scheme::default(),
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
    /// On the validation samples.
    pub accuracy: f64,
    /// fp32 accuracy minus this one, in points (percent).
    pub accuracy_drop_points: f64,
    /// Share of the checked samples (validation and held-back training) whose predicted class
    /// equals fp32's.
    pub agreement: f64,
    /// Its 95% Wilson interval.
    #[serde(default)]
    pub agreement_interval: (f64, f64),
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
    /// Samples accuracy is measured on.
    pub validation_samples: usize,
    /// Samples agreement with fp32 is measured on: the validation samples and the training
    /// samples INT8 calibration did not use.
    #[serde(default)]
    pub checked_samples: usize,
    pub min_agreement: f64,
    /// Set when one flipped prediction would move the agreement across `min_agreement`: the
    /// gate then decides on noise, and says so.
    #[serde(default)]
    pub too_few_to_judge: Option<String>,
    pub fp32: Fp32Summary,
    /// Formats run on the checked samples here, that passed and were written.
    pub formats: Vec<FormatReport>,
    /// Formats that agreed with fp32 on fewer than `min_agreement` of the checked samples:
    /// not written.
    #[serde(default)]
    pub rejected: Vec<FormatReport>,
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
/// Each file is written under a temporary name and renamed. A format that agrees with fp32 on
/// fewer than `min_agreement` of the checked samples is not written and is listed under
/// `rejected`; the others are written all the same. The caller decides what a rejection means
/// (`deepinsight export` exits non-zero).
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
    let run_dir = RunDir::open(&options.model)?;
    let started = Instant::now();
    let gate = check::gate_set(&run_dir, options.calibration_samples)?;
    let checked = &gate.checked;
    tracing::info!(
        checked = checked.labels.len(),
        validation = gate.validation,
        calibration = gate.calibration.labels.len(),
        "samples rendered"
    );
    let reference = run_dir.predict(&checked.images, options.batch_size);
    let fp32_record = options.model.join(&run_dir.manifest.model.record);
    let fp32 = Fp32Summary {
        file: run_dir.manifest.model.record.clone(),
        bytes: std::fs::metadata(&fp32_record)?.len(),
        accuracy: check::accuracy(
            &reference[..gate.validation],
            &checked.labels[..gate.validation],
        ),
        latency_ms: check::latency(&checked.images, checked.image_len, |images, n| {
            run_dir.predict(images, n);
        }),
    };
    let checking = Reference {
        gate: &gate,
        probabilities: &reference,
        fp32: &fp32,
        options,
    };
    let n = checked.labels.len();
    let one_flip = 1.0 / n as f64;
    let mut report = ExportReport {
        model_sha256: run_dir.model_sha256.clone(),
        validation_samples: gate.validation,
        checked_samples: n,
        min_agreement: options.min_agreement,
        too_few_to_judge: (options.min_agreement > 0.0 && one_flip > 1.0 - options.min_agreement)
            .then(|| {
                format!(
                    "{n} samples: one flipped prediction is {:.2} points, more than the {:.2} \
                     the gate allows; the cohort is too small to judge agreement at {:.0}%",
                    one_flip * 100.0,
                    (1.0 - options.min_agreement) * 100.0,
                    options.min_agreement * 100.0
                )
            }),
        fp32: fp32.clone(),
        formats: Vec::new(),
        rejected: Vec::new(),
        structure_checked: Vec::new(),
        skipped: Vec::new(),
        tensorrt: None,
    };
    if let Some(why) = &report.too_few_to_judge {
        tracing::warn!("{why}");
    }
    for target in &options.targets {
        match target {
            Target::Batch => {
                let (form, bytes) = int8::export(&run_dir, &checking)?;
                report.keep_and_write(&run_dir.dir, form, &bytes)?;
            }
            Target::Server => server::export(&run_dir, &checking, &mut report)?,
            Target::Mobile => report
                .structure_checked
                .push(coreml::export(&run_dir, options.coreml_8bit)?),
        }
    }
    artefact::write_atomic(
        &options.model.join(REPORT_FILE),
        &serde_json::to_vec_pretty(&report)?,
    )?;
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "export done");
    Ok(report)
}

impl ExportReport {
    /// Files a measured form under `formats` when it passed, else under `rejected`; returns
    /// whether it passed (and so is to be written).
    pub(crate) fn keep(&mut self, form: FormatReport) -> bool {
        let passed = form.agreement >= self.min_agreement;
        if passed {
            self.formats.push(form);
        } else {
            tracing::warn!(
                "{}: predicted class agrees with fp32 on {:.2}% of {} samples (95% interval \
                 {:.2}-{:.2}%), below the required {:.2}% (--min-agreement): not written",
                form.format,
                form.agreement * 100.0,
                self.checked_samples,
                form.agreement_interval.0 * 100.0,
                form.agreement_interval.1 * 100.0,
                self.min_agreement * 100.0
            );
            self.rejected.push(form);
        }
        passed
    }

    /// `keep`, then writes the form's file into `dir` when it passed.
    pub(crate) fn keep_and_write(
        &mut self,
        dir: &Path,
        form: FormatReport,
        bytes: &[u8],
    ) -> Result<bool> {
        let file = dir.join(&form.file);
        let passed = self.keep(form);
        if passed {
            artefact::write_atomic(&file, bytes)?;
        }
        Ok(passed)
    }
}

/// What each exported form is compared with: fp32 on the checked samples.
pub(crate) struct Reference<'a> {
    pub gate: &'a check::GateSet,
    pub probabilities: &'a [Vec<f32>],
    pub fp32: &'a Fp32Summary,
    pub options: &'a ExportOptions,
}

/// One form about to be written: run on the checked samples through `predict`
/// (probabilities of n images), compared with fp32, timed, and reported.
pub(crate) fn measure(
    reference: &Reference,
    (format, target, runtime): (&str, Target, &str),
    file: &str,
    bytes: &[u8],
    predict: impl Fn(&[f32], usize) -> Result<Vec<Vec<f32>>>,
) -> Result<FormatReport> {
    let checked = &reference.gate.checked;
    let options = reference.options;
    let mut probabilities = Vec::with_capacity(checked.labels.len());
    for chunk in checked
        .images
        .chunks(options.batch_size * checked.image_len)
    {
        probabilities.extend(predict(chunk, chunk.len() / checked.image_len)?);
    }
    let validation = reference.gate.validation;
    let agreed = agreeing(&probabilities, reference.probabilities);
    let agreement = agreed as f64 / checked.labels.len().max(1) as f64;
    let accuracy = check::accuracy(&probabilities[..validation], &checked.labels[..validation]);
    let latency_ms = check::latency(&checked.images, checked.image_len, |images, n| {
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
        agreement_interval: check::wilson_interval(agreed, checked.labels.len()),
        max_probability_difference: max_difference(&probabilities, reference.probabilities),
        latency_ms,
    })
}

/// How many samples a candidate predicts the class fp32 predicts for.
fn agreeing(candidate: &[Vec<f32>], reference: &[Vec<f32>]) -> usize {
    candidate
        .iter()
        .zip(reference)
        .filter(|(c, r)| argmax(c) == argmax(r))
        .count()
}

/// The largest difference of a class probability from fp32's.
fn max_difference(candidate: &[Vec<f32>], reference: &[Vec<f32>]) -> f64 {
    candidate
        .iter()
        .zip(reference)
        .flat_map(|(c, r)| c.iter().zip(r).map(|(a, b)| f64::from((a - b).abs())))
        .fold(0.0, f64::max)
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

    fn form(agreement: f64) -> FormatReport {
        FormatReport {
            format: "x".into(),
            target: Target::Batch,
            runtime: "burn-flex".into(),
            file: "x.bpk".into(),
            sha256: String::new(),
            bytes: 1,
            size_ratio: 1.0,
            accuracy: 1.0,
            accuracy_drop_points: 0.0,
            agreement,
            agreement_interval: (0.0, 1.0),
            max_probability_difference: 0.0,
            latency_ms: Latency::new(),
        }
    }

    #[test]
    fn a_form_below_the_threshold_is_rejected_and_the_others_kept() {
        let reference = vec![
            vec![0.9, 0.1],
            vec![0.2, 0.8],
            vec![0.6, 0.4],
            vec![0.3, 0.7],
        ];
        let mut candidate = reference.clone();
        candidate[2] = vec![0.4, 0.6];
        assert_eq!(agreeing(&candidate, &reference), 3);
        assert!((max_difference(&candidate, &reference) - 0.2).abs() < 1e-6);

        let mut report: ExportReport = serde_json::from_value(serde_json::json!({
            "model_sha256": "", "validation_samples": 4, "min_agreement": 0.99,
            "fp32": {"file": "model.bpk", "bytes": 1, "accuracy": 1.0, "latency_ms": {}},
            "formats": []
        }))
        .unwrap();
        assert!(!report.keep(form(0.75)));
        assert!(report.keep(form(0.995)));
        assert_eq!((report.formats.len(), report.rejected.len()), (1, 1));
        assert_eq!(report.rejected[0].agreement, 0.75);
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
