//! A served model: the run's fitted preprocessing (normalisation, selection, layout) for raw
//! omics requests, and its network on worker threads behind a dynamic batcher.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::backend::{
    Backend, BackendKind, BurnBackend, WorkerPool, onnx_backends, threads_per_worker,
};
use super::batcher::{BatchConfig, Batcher, BatcherHandle, Runner, Submit};
use super::error::ApiError;
use super::explainer::{Answer, Ask};
use super::metrics::{LiveStats, Metrics};
use super::preprocess::{self, Prepared, Preprocess, SampleInput, SamplePrediction};
use crate::export;
use crate::run::RunDir;

/// Model names are URL path segments and folder names: a name that could leave a folder
/// (`..`, `/`) or need escaping is refused.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if name.is_empty() || name.len() > 64 || !ok_chars || name.starts_with('.') {
        return Err(format!(
            "'{name}' is not a model name: 1 to 64 letters, digits, '_', '-' or '.', not starting with '.'"
        ));
    }
    Ok(())
}

/// Images for the batcher: `n` images of C x H x W, flat.
pub struct ImageJob {
    pub images: Vec<f32>,
    pub n: usize,
}

/// Runs a batch of image jobs as one forward pass on the worker pool.
pub struct InferRunner {
    pool: Arc<WorkerPool>,
}

impl Runner for InferRunner {
    type Item = ImageJob;
    type Output = Vec<Vec<f32>>;

    fn size(item: &ImageJob) -> usize {
        item.n
    }

    fn run(
        &self,
        items: Vec<ImageJob>,
    ) -> impl Future<Output = Vec<Result<Vec<Vec<f32>>, String>>> + Send + 'static {
        let pool = self.pool.clone();
        async move {
            let counts: Vec<usize> = items.iter().map(|i| i.n).collect();
            let total: usize = counts.iter().sum();
            let images = if items.len() == 1 {
                items.into_iter().next().expect("one item").images
            } else {
                items.into_iter().flat_map(|i| i.images).collect()
            };
            match pool.infer(images, total).await {
                Ok(probs) => {
                    let mut probs = probs.into_iter();
                    counts
                        .iter()
                        .map(|&n| Ok(probs.by_ref().take(n).collect()))
                        .collect()
                }
                Err(e) => counts.iter().map(|_| Err(e.clone())).collect(),
            }
        }
    }
}

/// Artefact files a run folder may hold, by format (shown in /optimization/status).
const FORMATS: [(&str, &str); 8] = [
    ("burn", crate::run::MODEL),
    ("burn-int8", export::int8::FILE),
    ("onnx", export::server::FILE),
    ("onnx-fp16", export::onnx_fp16::FILE),
    ("onnx-int8", export::onnx_int8::CPU_FILE),
    ("onnx-int8-tensorrt", export::onnx_int8::TENSORRT_FILE),
    ("tensorrt", "tensorrt/plan.json"),
    ("coreml", export::coreml::PACKAGE),
];

pub struct ServedModel {
    pub name: String,
    pub dir: PathBuf,
    pub classes: Vec<String>,
    /// C, H, W of the network's input.
    pub shape: [usize; 3],
    /// Raw omics in a request to the network's images.
    pub preprocess: Preprocess,
    pub model_sha256: String,
    pub batching: BatchConfig,
    pub batcher: BatcherHandle<InferRunner>,
    /// The worker threads; requests that ask to bypass the batcher go here directly.
    pub pool: Arc<WorkerPool>,
    pub live: Arc<LiveStats>,
    /// The network's copy for POST /explain.
    pub explainer: Arc<super::explainer::Explainer>,
    pub loaded_at: String,
    batcher_task: Mutex<Option<Batcher>>,
}

impl ServedModel {
    /// Loads the run folder `dir`, starts its worker threads and batcher, and runs one image
    /// through the network so that the first request does not pay for allocation.
    pub async fn load(
        name: &str,
        dir: &Path,
        batching: BatchConfig,
        backend: BackendKind,
        metrics: &Arc<Metrics>,
    ) -> Result<Self> {
        check_name(name).map_err(anyhow::Error::msg)?;
        batching
            .validate()
            .map_err(|e| anyhow::anyhow!("model '{name}': {e}"))?;
        let run_dir = {
            let dir = dir.to_path_buf();
            tokio::task::spawn_blocking(move || RunDir::open(&dir)).await??
        };
        let shape = run_dir.image_shape();
        let workers = batching.max_concurrent_batches;
        let backends: Vec<Box<dyn Backend>> = match backend {
            BackendKind::Burn => {
                let name = BurnBackend::name_for(&run_dir.manifest.config.model.device);
                (0..workers)
                    .map(|_| {
                        Ok(Box::new(BurnBackend::new(
                            run_dir.model.clone(),
                            run_dir.device.clone(),
                            shape,
                            name,
                            threads_per_worker(workers),
                        )?) as Box<dyn Backend>)
                    })
                    .collect::<Result<_>>()?
            }
            kind => {
                let (dir, sha) = (dir.to_path_buf(), run_dir.model_sha256.clone());
                let classes = run_dir.manifest.classes.len();
                tokio::task::spawn_blocking(move || {
                    onnx_backends(&dir, kind, &sha, shape, classes, workers)
                })
                .await??
            }
        };
        let pool = WorkerPool::start(name, backends);
        let start = Instant::now();
        let warm = pool
            .infer(vec![0.0; shape.iter().product()], 1)
            .await
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("model '{name}': warm-up inference failed"))?;
        if warm.first().map(Vec::len) != Some(run_dir.manifest.classes.len()) {
            bail!("model '{name}': the network's outputs do not match the manifest's classes");
        }
        tracing::info!(model = name, dir = %dir.display(), ?shape, warm_up_ms = start.elapsed().as_millis() as u64, "model loaded");
        let live = Arc::new(LiveStats::default());
        let (task, batcher) = Batcher::spawn(
            batching.clone(),
            InferRunner { pool: pool.clone() },
            metrics.observer(name, live.clone()),
        );
        let explainer = Arc::new(super::explainer::Explainer::new(&run_dir));
        let preprocess = Preprocess::new(name, &run_dir);
        Ok(Self {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            classes: run_dir.manifest.classes.clone(),
            shape,
            preprocess,
            model_sha256: run_dir.model_sha256,
            batching,
            batcher,
            pool,
            live,
            explainer,
            loaded_at: unix_now(),
            batcher_task: Mutex::new(Some(task)),
        })
    }

    // The face the HTTP handlers use: parsed requests in, answers out. Handlers know nothing
    // of the preprocessing, the batcher or the worker pool behind it.

    /// Raw omics samples checked against the model's features and rendered, exactly as the
    /// run's training samples were; a refusal names the field.
    pub fn prepare(
        &self,
        samples: &[SampleInput<'_>],
        allow_missing: bool,
        ignore_unknown: bool,
    ) -> Result<Prepared, ApiError> {
        preprocess::prepare(&self.preprocess, samples, allow_missing, ignore_unknown)
    }

    /// Features one row of the KServe v2 `omics` input holds.
    pub fn feature_count(&self) -> usize {
        preprocess::feature_count(&self.preprocess)
    }

    /// The KServe v2 `omics` input's `n` rows as images.
    pub fn render_rows(
        &self,
        values: &[f32],
        n: usize,
        allow_missing: bool,
    ) -> Result<Vec<f32>, ApiError> {
        preprocess::render_rows(&self.preprocess, values, n, allow_missing)
    }

    /// Class probabilities of `n` images: through the batcher with `Some(submit)`, or
    /// straight to a worker with `None`.
    pub async fn infer(
        &self,
        images: Vec<f32>,
        n: usize,
        batched: Option<Submit>,
    ) -> Result<Vec<Vec<f32>>, ApiError> {
        match batched {
            Some(submit) => Ok(self.batcher.submit(ImageJob { images, n }, submit).await?),
            None => self.pool.infer(images, n).await.map_err(ApiError::internal),
        }
    }

    /// Each prepared sample's most probable class and every class's probability.
    pub async fn predict(
        &self,
        mut prepared: Prepared,
        batched: Option<Submit>,
    ) -> Result<Vec<SamplePrediction>, ApiError> {
        let images = std::mem::take(&mut prepared.images);
        let probabilities = self.infer(images, prepared.n, batched).await?;
        Ok(preprocess::predictions(
            &self.preprocess,
            prepared,
            probabilities,
        ))
    }

    /// One prepared sample explained, on a blocking thread (one at a time per model).
    pub async fn explain(&self, prepared: &Prepared, ask: Ask) -> Result<Answer, ApiError> {
        let explainer = self.explainer.clone();
        let classes = self.classes.clone();
        let image = prepared.images.clone();
        tokio::task::spawn_blocking(move || {
            super::explainer::explain(&explainer, &classes, &image, &ask)
        })
        .await
        .map_err(|e| ApiError::internal(format!("explaining failed: {e}")))?
    }

    /// Artefact formats present in the run folder.
    pub fn formats(&self) -> BTreeMap<String, bool> {
        FORMATS
            .iter()
            .map(|(format, file)| (format.to_string(), self.dir.join(file).exists()))
            .collect()
    }

    /// Stops taking requests, answers the queued ones, then stops the worker threads.
    pub async fn shutdown(&self) {
        let task = self.batcher_task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            task.join().await;
        }
        let pool = self.pool.clone();
        let _ = tokio::task::spawn_blocking(move || pool.stop()).await;
    }

    /// Stops taking requests (readiness goes false) without waiting.
    pub fn close(&self) {
        if let Ok(task) = self.batcher_task.lock()
            && let Some(task) = task.as_ref()
        {
            task.close();
        }
    }
}

/// Seconds since the Unix epoch, as text: when a model was loaded.
fn unix_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{secs}")
}

/// What /optimization/status shows of a model.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelStatus {
    pub name: String,
    pub dir: String,
    pub backend: String,
    pub input_shape: Vec<usize>,
    pub classes: Vec<String>,
    pub model_sha256: String,
    pub loaded_at_unix: String,
    pub formats: BTreeMap<String, bool>,
    pub batching: BatchConfig,
    pub queue_depth: usize,
    pub live: super::metrics::LiveSummary,
}

impl ServedModel {
    pub fn status(&self) -> ModelStatus {
        ModelStatus {
            name: self.name.clone(),
            dir: self.dir.display().to_string(),
            backend: self.pool.backend.to_string(),
            input_shape: self.shape.to_vec(),
            classes: self.classes.clone(),
            model_sha256: self.model_sha256.clone(),
            loaded_at_unix: self.loaded_at.clone(),
            formats: self.formats(),
            batching: self.batching.clone(),
            queue_depth: self.batcher.queue_depth(),
            live: self.live.summary(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_leave_a_folder_are_refused() {
        for bad in [
            "",
            "..",
            "../etc",
            "a/b",
            ".hidden",
            "a b",
            "x%2F",
            &"n".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        for good in ["demo", "demo-pathways", "v1.2_model"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
    }
}
