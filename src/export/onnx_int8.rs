//! ONNX static INT8 in QDQ form, made by ONNX Runtime's quantisation tooling (Python, driven
//! from here: the script is built into the binary) with activation ranges calibrated on the
//! run's training images, then checked in ONNX Runtime like every other form.
//!
//! Two files come out of one calibration (see quantize_qdq.py for why two):
//! - `model-int8.onnx`: U8S8, the fastest CPU path in ONNX Runtime (the server's backend);
//! - `model-int8-tensorrt.onnx`: S8S8 with symmetric activations, what TensorRT builds INT8
//!   engines from (TensorRT 11 has no other way to INT8).

use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use super::check::ValidationSet;
use crate::onnxrt;

pub const CPU_FILE: &str = "model-int8.onnx";
pub const TENSORRT_FILE: &str = "model-int8-tensorrt.onnx";
const SCRIPT: &str = include_str!("quantize_qdq.py");

/// How activation ranges are calibrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Calibration {
    /// Minmax for the CPU model, percentile for the TensorRT model: with bias correction, the
    /// pair that agreed best with fp32 on the demo's three seeds (docs/export.md).
    Auto,
    /// The observed minimum and maximum.
    Minmax,
    /// The 99.999th percentile of the absolute values: outliers clipped.
    Percentile,
    /// The range keeping the KL divergence of the histogram smallest (TensorRT's classic choice).
    Entropy,
}

impl Calibration {
    fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Minmax => "minmax",
            Self::Percentile => "percentile",
            Self::Entropy => "entropy",
        }
    }
}

pub struct Quantized {
    pub cpu: Vec<u8>,
    pub tensorrt: Vec<u8>,
    /// Operator types that run on INT8 inputs.
    pub operators: Vec<String>,
}

/// Whether the Python tooling is there, or what is missing.
pub fn tooling() -> Result<()> {
    let python = onnxrt::python();
    let out = Command::new(&python)
        .args(["-c", "import onnx, numpy, onnxruntime.quantization"])
        .output()
        .map_err(|e| anyhow!("ONNX INT8 needs Python with onnxruntime, onnx and numpy: cannot run {python} ({e}); set DEEPINSIGHT_PYTHON"))?;
    if !out.status.success() {
        bail!(
            "ONNX INT8 needs Python with onnxruntime, onnx and numpy (`pip install onnxruntime onnx numpy`): {python} says {}",
            last_line(&out.stderr)
        );
    }
    Ok(())
}

/// QDQ models of `fp32` calibrated on `calibration`'s images of `shape` = [C, H, W].
pub fn quantize(
    fp32: &[u8],
    calibration: &ValidationSet,
    shape: [usize; 3],
    method: Calibration,
) -> Result<Quantized> {
    let dir = tempfile::tempdir()?;
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("model.onnx"), fp32)?;
    std::fs::write(path("quantize_qdq.py"), SCRIPT)?;
    let raw: Vec<u8> = calibration
        .images
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(path("images.f32"), raw)?;
    let n = calibration.labels.len();
    let [c, h, w] = shape;
    let python = onnxrt::python();
    tracing::info!(images = n, method = method.name(), "calibrating ONNX INT8");
    let out = Command::new(&python)
        .arg(path("quantize_qdq.py"))
        .arg(path("model.onnx"))
        .arg(path("images.f32"))
        .args([n, c, h, w].map(|d| d.to_string()))
        .arg(method.name())
        .arg(path("cpu.onnx"))
        .arg(path("tensorrt.onnx"))
        .output()
        .with_context(|| format!("cannot run {python}"))?;
    if !out.status.success() {
        bail!(
            "ONNX INT8 quantisation failed in {python}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    #[derive(Deserialize)]
    struct Printed {
        quantised_operators: Vec<String>,
    }
    let printed: Printed = serde_json::from_str(last_line(&out.stdout).as_str())
        .context("the quantisation script printed no summary")?;
    Ok(Quantized {
        cpu: std::fs::read(path("cpu.onnx"))?,
        tensorrt: std::fs::read(path("tensorrt.onnx"))?,
        operators: printed.quantised_operators,
    })
}

fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}
