//! The `server` target: ONNX models for ONNX Runtime and TensorRT, and the TensorRT plan.
//!
//! 1. `model.onnx` from the run's record (never the serving copy), structure checked, then run
//!    in ONNX Runtime on the validation images when its library is found (else structure only).
//! 2. `model-fp16.onnx` (TensorRT 11's fp16 source), checked the same way.
//! 3. `model-int8.onnx` and `model-int8-tensorrt.onnx`, static INT8 QDQ calibrated on the
//!    training images, each checked in ONNX Runtime: size, accuracy, agreement, latency.
//! 4. `tensorrt/` with the plan for the ONNX files written, and the engines with --build.
//!
//! Every file is checked before it is written; a form below the agreement threshold is not
//! written and is listed under `rejected`, and the others go on. A missing runtime or tool is not an error: the form is
//! listed under `skipped` with the reason.

use anyhow::Result;

use super::tensorrt::{self, OnnxFiles, Profile};
use super::{
    ExportReport, Reference, Skipped, StructureChecked, Target, TensorRtSummary, measure, onnx,
    onnx_fp16, onnx_int8,
};
use crate::artefact;
use crate::onnxrt::{self, OnnxClassifier};
use crate::run::RunDir;

pub const FILE: &str = "model.onnx";

pub(crate) fn export(
    run_dir: &RunDir,
    reference: &Reference,
    report: &mut ExportReport,
) -> Result<()> {
    let shape = run_dir.image_shape();
    let classes = run_dir.classes().len();
    let record = std::fs::read(run_dir.dir.join(&run_dir.manifest.model.record))?;
    let fp32 = onnx::export(&run_dir.config, &record, shape)?;
    onnx::check_structure(&fp32, shape, classes)?;
    let fp16 = onnx_fp16::convert(&fp32)?;
    onnx::check_structure(&fp16, shape, classes)?;
    let runtime = onnxrt::ensure_loaded();
    // Each form written (file, sha256) for the TensorRT plan; None when rejected.
    let mut written = Vec::new();
    for (format, file, bytes) in [("onnx", FILE, &fp32), ("onnx-fp16", onnx_fp16::FILE, &fp16)] {
        let passed = match &runtime {
            Ok(()) => {
                let model = OnnxClassifier::load(bytes, shape, classes, 0)?;
                let form = measure(
                    reference,
                    (format, Target::Server, "onnxruntime"),
                    file,
                    bytes,
                    |images, n| model.predict(images, n),
                )?;
                report.keep_and_write(&run_dir.dir, form, bytes)?
            }
            Err(e) => {
                tracing::warn!("{e}: {file} is checked for its structure only");
                report
                    .structure_checked
                    .push(structure_checked(format, file, bytes));
                report.skipped.push(Skipped {
                    format: format!("{format} (ONNX Runtime check)"),
                    reason: e.to_string(),
                });
                artefact::write_atomic(&run_dir.dir.join(file), bytes)?;
                true
            }
        };
        written.push(passed.then(|| (file.to_string(), artefact::sha256_hex(bytes))));
    }
    let [fp32_file, fp16_file] = <[_; 2]>::try_from(written).expect("two forms");
    let mut files = OnnxFiles {
        fp32: fp32_file,
        fp16: fp16_file,
        int8: None,
    };
    match runtime.and_then(|()| onnx_int8::tooling()) {
        Ok(()) => files.int8 = int8(run_dir, reference, &fp32, shape, classes, report)?,
        Err(e) => {
            tracing::warn!("ONNX INT8 skipped: {e}");
            report.skipped.push(Skipped {
                format: "onnx-int8".into(),
                reason: e.to_string(),
            });
        }
    }

    let profile = Profile::from_batching(&reference.options.batching, shape);
    let plan = tensorrt::plan(&files, profile);
    tensorrt::write_plan(&run_dir.dir, &plan)?;
    let mut summary = TensorRtSummary {
        plan: format!("{}/{}", tensorrt::DIR, tensorrt::PLAN_FILE),
        engines: plan
            .engines
            .iter()
            .map(|e| format!("{} {:?}", e.tensorrt, e.precision).to_lowercase())
            .collect(),
        built: Vec::new(),
    };
    if reference.options.build_tensorrt {
        let built = tensorrt::build(&run_dir.dir, &plan, &tensorrt::Tools::find()?)?;
        summary.built = built
            .engines
            .iter()
            .map(|e| format!("{}/{}", tensorrt::DIR, e.file))
            .collect();
    }
    report.tensorrt = Some(summary);
    Ok(())
}

/// Both QDQ models, checked in ONNX Runtime; each is written if it passes. Returns the
/// TensorRT one's name and sha256 for the plan, when it was written.
fn int8(
    run_dir: &RunDir,
    reference: &Reference,
    fp32: &[u8],
    shape: [usize; 3],
    classes: usize,
    report: &mut ExportReport,
) -> Result<Option<(String, String)>> {
    let options = reference.options;
    let quantized = onnx_int8::quantize(
        fp32,
        &reference.gate.calibration,
        shape,
        options.calibration,
    )?;
    tracing::info!(operators = ?quantized.operators, "ONNX INT8 made");
    let mut tensorrt = None;
    for (format, file, bytes) in [
        ("onnx-int8", onnx_int8::CPU_FILE, &quantized.cpu),
        (
            "onnx-int8-tensorrt",
            onnx_int8::TENSORRT_FILE,
            &quantized.tensorrt,
        ),
    ] {
        // The TensorRT model is checked on the QDQ reference semantics: ONNX Runtime's x86
        // kernels for int8 activations (S8S8) lose accuracy of their own (measured on the
        // demo: 63% agreement fused against 97% unfused), which says nothing of TensorRT.
        let (model, runtime) = if file == onnx_int8::TENSORRT_FILE {
            (
                OnnxClassifier::reference(bytes, shape, classes)?,
                "onnxruntime-reference",
            )
        } else {
            (
                OnnxClassifier::load(bytes, shape, classes, 0)?,
                "onnxruntime",
            )
        };
        let form = measure(
            reference,
            (format, Target::Server, runtime),
            file,
            bytes,
            |images, n| model.predict(images, n),
        )?;
        if report.keep_and_write(&run_dir.dir, form, bytes)? && file == onnx_int8::TENSORRT_FILE {
            tensorrt = Some((file.to_string(), artefact::sha256_hex(bytes)));
        }
    }
    Ok(tensorrt)
}

fn structure_checked(format: &str, file: &str, bytes: &[u8]) -> StructureChecked {
    StructureChecked {
        format: format.into(),
        target: Target::Server,
        file: file.into(),
        sha256: artefact::sha256_hex(bytes),
        bytes: bytes.len() as u64,
        checked: "opset 18, input `input` [batch, C, H, W], outputs `logits` and `probabilities` [batch, classes], every node input defined".into(),
    }
}
