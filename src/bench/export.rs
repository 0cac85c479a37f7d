//! `deepinsight bench export --model DIR`: ONNX Runtime latency of a run's exported ONNX forms
//! on its validation images, at batch 1 and 32. The forms are timed in turn within each round
//! (interleaved), so a busy machine slows them alike and the ratio to fp32 ONNX holds.

use std::time::Instant;

use anyhow::{Result, bail};

use crate::export::check;
use crate::onnxrt::OnnxClassifier;
use crate::run::RunDir;

pub const FORMS: [(&str, &str); 3] = [
    ("onnx", crate::export::server::FILE),
    ("onnx-fp16", crate::export::onnx_fp16::FILE),
    ("onnx-int8", crate::export::onnx_int8::CPU_FILE),
];

#[derive(Debug, Clone)]
pub struct ExportRow {
    pub format: String,
    pub batch: usize,
    pub median_ms: f64,
    /// fp32 ONNX's median over this one's: above 1 is faster.
    pub speedup: f64,
}

pub fn run(dir: &std::path::Path, rounds: usize) -> Result<Vec<ExportRow>> {
    let run_dir = RunDir::open(dir)?;
    let valid = check::gate_set(&run_dir, 0)?.checked;
    let shape = run_dir.image_shape();
    let classes = run_dir.classes().len();
    let mut forms = Vec::new();
    for (format, file) in FORMS {
        let path = dir.join(file);
        if path.exists() {
            forms.push((
                format,
                OnnxClassifier::load(&std::fs::read(&path)?, shape, classes, 0)?,
            ));
        }
    }
    if forms.first().map(|f| f.0) != Some("onnx") {
        bail!(
            "{} has no model.onnx: run `deepinsight export --model {} --targets server` first",
            dir.display(),
            dir.display()
        );
    }
    let mut rows = Vec::new();
    for batch in [1usize, 32] {
        let images = check::cyclic_batch(&valid.images, valid.image_len, batch);
        let mut times = vec![Vec::with_capacity(rounds); forms.len()];
        for (_, model) in &forms {
            model.predict(&images, batch)?;
        }
        for _ in 0..rounds.max(1) {
            for (i, (_, model)) in forms.iter().enumerate() {
                let started = Instant::now();
                model.predict(&images, batch)?;
                times[i].push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        let medians: Vec<f64> = times
            .iter_mut()
            .map(|t| {
                t.sort_by(f64::total_cmp);
                t[t.len() / 2]
            })
            .collect();
        for ((format, _), median) in forms.iter().zip(&medians) {
            rows.push(ExportRow {
                format: format.to_string(),
                batch,
                median_ms: *median,
                speedup: medians[0] / median,
            });
        }
    }
    Ok(rows)
}

pub fn print(rows: &[ExportRow], rounds: usize) {
    crate::outln!(
        "ONNX Runtime (CPU), median of {rounds} interleaved rounds, the run's validation images"
    );
    crate::outln!(
        "{:<12} {:>6} {:>12} {:>16}",
        "format",
        "batch",
        "median ms",
        "speed-up vs fp32"
    );
    for r in rows {
        crate::outln!(
            "{:<12} {:>6} {:>12.2} {:>15.2}x",
            r.format,
            r.batch,
            r.median_ms,
            r.speedup
        );
    }
}
