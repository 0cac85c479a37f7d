//! ONNX Runtime, loaded at run time from its shared library: it checks exported ONNX models
//! (`deepinsight export`) and serves them (the server's `onnxruntime` backend).
//!
//! The library is found, in order, at `ORT_DYLIB_PATH`, or inside the `onnxruntime` package of
//! the Python named by `DEEPINSIGHT_PYTHON` (else `python3`): `pip install onnxruntime` ships
//! `onnxruntime/capi/libonnxruntime.so.*`. Nothing is linked at build time, so the crate builds
//! and runs without it; only the ONNX Runtime paths need it, and they say how to get it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use anyhow::{Result, anyhow, bail};
use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::value::TensorRef;

/// The Python that runs the ONNX tooling (quantisation) and whose onnxruntime package is the
/// fallback place of the shared library.
pub fn python() -> String {
    std::env::var("DEEPINSIGHT_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".into())
}

const HOW: &str = "ONNX Runtime was not found: set ORT_DYLIB_PATH to libonnxruntime.so, or \
                   `pip install onnxruntime` into the Python named by DEEPINSIGHT_PYTHON (default python3)";

/// Where the shared library is, or why it was not found.
pub fn locate() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("ORT_DYLIB_PATH={} is not a file", path.display());
        }
        return Ok(path);
    }
    let python = python();
    let out = Command::new(&python)
        .args([
            "-c",
            "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__))",
        ])
        .output()
        .map_err(|e| anyhow!("{HOW} ({python}: {e})"))?;
    if !out.status.success() {
        bail!("{HOW} ({python} has no onnxruntime package)");
    }
    let package = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    library_in(&package.join("capi")).ok_or_else(|| {
        anyhow!(
            "{HOW} (no libonnxruntime shared library in {})",
            package.display()
        )
    })
}

fn library_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("libonnxruntime.so")
                || name.starts_with("libonnxruntime.") && name.ends_with(".dylib")
                || name == "onnxruntime.dll"
        })
        .collect();
    found.sort();
    found.pop()
}

/// Loads the library and makes the process's one ONNX Runtime environment, once; later calls
/// return the first outcome.
pub fn environment() -> Result<&'static Environment> {
    static ENVIRONMENT: OnceLock<std::result::Result<Environment, String>> = OnceLock::new();
    ENVIRONMENT
        .get_or_init(|| {
            let path = locate().map_err(|e| e.to_string())?;
            let environment = ort::init_from(&path)
                .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", path.display()))?
                .with_name("deepinsight")
                .build()
                .map_err(|e| format!("ONNX Runtime environment: {e}"))?;
            tracing::debug!(library = %path.display(), "ONNX Runtime loaded");
            Ok(environment)
        })
        .as_ref()
        .map_err(|e| anyhow!("{e}"))
}

pub fn ensure_loaded() -> Result<()> {
    environment().map(|_| ())
}

/// Whether ONNX Runtime can be used here (for tests and optional paths).
pub fn available() -> bool {
    ensure_loaded().is_ok()
}

/// One ONNX image classifier: input `input` [N, C, H, W] f32, outputs `logits` and
/// `probabilities` [N, classes], as `deepinsight export` writes them.
pub struct OnnxClassifier {
    session: Mutex<Session>,
    shape: [usize; 3],
    classes: usize,
}

impl OnnxClassifier {
    /// A session on the model's bytes, with all graph optimisations (this is where ONNX
    /// Runtime fuses QDQ pairs into integer kernels) and `threads` intra-op threads (0: its
    /// default, one per core).
    pub fn load(bytes: &[u8], shape: [usize; 3], classes: usize, threads: usize) -> Result<Self> {
        let level = GraphOptimizationLevel::Level3;
        Self::with_optimisation(bytes, shape, classes, threads, level, true)
    }

    /// As [`Self::load`], for a server: between runs the intra-op threads sleep instead of
    /// spinning. A spinning thread kept a whole core busy while the batcher waited, taking it
    /// from the requests being parsed and rendered meanwhile (measured: docs/serving.md).
    pub fn for_server(
        bytes: &[u8],
        shape: [usize; 3],
        classes: usize,
        threads: usize,
    ) -> Result<Self> {
        let level = GraphOptimizationLevel::Level3;
        Self::with_optimisation(bytes, shape, classes, threads, level, false)
    }

    /// A session that runs the graph as written, operator by operator: for a QDQ model, the
    /// reference semantics of quantisation (dequantised values in float), which is what an
    /// INT8 engine elsewhere (TensorRT) must reproduce, free of the CPU kernels' own limits.
    pub fn reference(bytes: &[u8], shape: [usize; 3], classes: usize) -> Result<Self> {
        let level = GraphOptimizationLevel::Disable;
        Self::with_optimisation(bytes, shape, classes, 0, level, true)
    }

    fn with_optimisation(
        bytes: &[u8],
        shape: [usize; 3],
        classes: usize,
        threads: usize,
        level: GraphOptimizationLevel,
        spin: bool,
    ) -> Result<Self> {
        let options = |e: ort::Error<SessionBuilder>| anyhow!("ONNX Runtime session options: {e}");
        let mut builder = Session::builder(environment()?)
            .map_err(|e| anyhow!("ONNX Runtime session: {e}"))?
            .with_optimization_level(level)
            .map_err(options)?
            .with_intra_op_spinning(spin)
            .map_err(options)?;
        if threads > 0 {
            builder = builder.with_intra_threads(threads).map_err(options)?;
        }
        let session = builder
            .commit_from_memory(bytes)
            .map_err(|e| anyhow!("ONNX Runtime cannot load the model: {e}"))?;
        for name in ["logits", "probabilities"] {
            if !session.outputs().iter().any(|o| o.name() == name) {
                bail!("the ONNX model has no output `{name}`");
            }
        }
        Ok(Self {
            session: Mutex::new(session),
            shape,
            classes,
        })
    }

    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// Class probabilities of `n` images laid out one after another.
    pub fn predict(&self, images: &[f32], n: usize) -> Result<Vec<Vec<f32>>> {
        self.run(images, n, "probabilities")
    }

    pub fn logits(&self, images: &[f32], n: usize) -> Result<Vec<Vec<f32>>> {
        self.run(images, n, "logits")
    }

    fn run(&self, images: &[f32], n: usize, output: &str) -> Result<Vec<Vec<f32>>> {
        let [c, h, w] = self.shape;
        if images.len() != n * c * h * w {
            bail!("{} values for {n} images of {c}x{h}x{w}", images.len());
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let input = TensorRef::from_array_view(([n, c, h, w], images))
            .map_err(|e| anyhow!("ONNX Runtime input: {e}"))?;
        let mut session = self
            .session
            .lock()
            .map_err(|_| anyhow!("an earlier ONNX Runtime call panicked"))?;
        let outputs = session
            .run(ort::inputs!["input" => input])
            .map_err(|e| anyhow!("ONNX Runtime run: {e}"))?;
        let (shape, values) = outputs[output]
            .try_extract_tensor::<f32>()
            .map_err(|e| anyhow!("ONNX Runtime output `{output}`: {e}"))?;
        if shape.len() != 2 || shape[0] as usize != n || shape[1] as usize != self.classes {
            bail!(
                "ONNX Runtime output `{output}` has shape {shape:?}, expected [{n}, {}]",
                self.classes
            );
        }
        Ok(values.chunks(self.classes).map(<[f32]>::to_vec).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_is_found_in_a_wheel_folder_and_other_files_are_not_taken() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(library_in(dir.path()), None);
        for name in [
            "onnxruntime_pybind11_state.so",
            "libonnxruntime_providers_shared.so",
        ] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        assert_eq!(library_in(dir.path()), None);
        std::fs::write(dir.path().join("libonnxruntime.so.1.32.0"), "").unwrap();
        assert_eq!(
            library_in(dir.path()),
            Some(dir.path().join("libonnxruntime.so.1.32.0"))
        );
    }
}
