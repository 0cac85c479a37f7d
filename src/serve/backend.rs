//! Inference backends behind one trait, each run on dedicated worker threads so that model
//! compute never blocks the async runtime.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::Result;
use burn::tensor::Device;
use tokio::sync::oneshot;

use crate::model::ResNet;
use crate::model::train::predict_proba;
use crate::onnxrt::OnnxClassifier;

/// Which network computes a model's predictions.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
    utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// Burn on the run's device, from model.bpk: what `deepinsight predict` computes.
    #[default]
    Burn,
    /// ONNX Runtime on model.onnx (fp32; Burn's probabilities to about 1e-5).
    Onnx,
    /// ONNX Runtime on model-int8.onnx (static INT8): the fastest CPU path.
    OnnxInt8,
}

impl BackendKind {
    /// The exported file it runs, in a run folder.
    pub fn file(self) -> Option<&'static str> {
        match self {
            Self::Burn => None,
            Self::Onnx => Some(crate::export::server::FILE),
            Self::OnnxInt8 => Some(crate::export::onnx_int8::CPU_FILE),
        }
    }
}

/// Computes class probabilities of N x C x H x W images. One instance per worker thread, so
/// implementations need not be `Sync`.
pub trait Backend: Send + 'static {
    /// Shown in model metadata and /optimization/status.
    fn name(&self) -> &'static str;
    /// One probability vector per image.
    fn infer(&mut self, images: &[f32], n: usize) -> Result<Vec<Vec<f32>>>;
}

/// Burn on the device the run was trained for (Flex on CPU by default).
pub struct BurnBackend {
    model: ResNet,
    device: Device,
    shape: [usize; 3],
    name: &'static str,
    /// Flex computes on whichever rayon pool its caller runs in: each worker has its own, of
    /// its share of the cores, instead of all sharing the global one. With two workers on two
    /// cores that raised QPS by 21% and lowered p99 by 28% (docs/serving.md, Backends): two
    /// batches no longer split four threads' work over two cores.
    pool: rayon::ThreadPool,
}

impl BurnBackend {
    /// `name`: `burn-flex` or `burn-wgpu`, from the run's `model.device`
    /// ([`Self::name_for`]); `threads`: the worker's share of the cores.
    pub fn new(
        model: ResNet,
        device: Device,
        shape: [usize; 3],
        name: &'static str,
        threads: usize,
    ) -> Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("infer-burn-{i}"))
            .build()
            .map_err(|e| anyhow::anyhow!("cannot start an inference thread pool: {e}"))?;
        Ok(Self {
            model,
            device,
            shape,
            name,
            pool,
        })
    }

    /// The backend's name for a pipeline's `model.device`.
    pub fn name_for(device: &str) -> &'static str {
        match device {
            "wgpu" => "burn-wgpu",
            "libtorch" => "burn-libtorch",
            _ => "burn-flex",
        }
    }
}

impl Backend for BurnBackend {
    fn name(&self) -> &'static str {
        self.name
    }

    fn infer(&mut self, images: &[f32], n: usize) -> Result<Vec<Vec<f32>>> {
        let len: usize = self.shape.iter().product();
        anyhow::ensure!(
            images.len() == n * len,
            "{} values for {n} images of {len}",
            images.len()
        );
        // One forward pass per batch: the batcher already sized it.
        Ok(self
            .pool
            .install(|| predict_proba(&self.model, images, self.shape, n.max(1), &self.device)))
    }
}

/// ONNX Runtime on an exported ONNX model.
pub struct OnnxBackend {
    pub model: OnnxClassifier,
    pub name: &'static str,
}

impl Backend for OnnxBackend {
    fn name(&self) -> &'static str {
        self.name
    }

    fn infer(&mut self, images: &[f32], n: usize) -> Result<Vec<Vec<f32>>> {
        self.model.predict(images, n)
    }
}

/// `workers` ONNX Runtime sessions on the run folder's exported model of `kind`, after
/// checking it was exported from this very record (export_report.json's model_sha256) and is
/// the file the export checked (its sha256): a stale or altered ONNX file is refused.
pub fn onnx_backends(
    dir: &std::path::Path,
    kind: BackendKind,
    model_sha256: &str,
    shape: [usize; 3],
    classes: usize,
    workers: usize,
) -> Result<Vec<Box<dyn Backend>>> {
    let Some(file) = kind.file() else {
        anyhow::bail!("the burn backend has no ONNX file");
    };
    let how = format!(
        "run `deepinsight export --model {} --targets server`",
        dir.display()
    );
    let report = crate::export::read_report(dir)?
        .ok_or_else(|| anyhow::anyhow!("backend {kind:?} needs {file}: {how}"))?;
    if report.model_sha256 != model_sha256 {
        anyhow::bail!(
            "{file} was exported from another model.bpk than the one in {} (export_report.json's model_sha256 differs): {how} again",
            dir.display()
        );
    }
    let checked = report
        .formats
        .iter()
        .find(|f| f.file == file)
        .map(|f| f.sha256.clone())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "export_report.json has no ONNX Runtime check of {file} (was ONNX Runtime missing at export?): {how}"
            )
        })?;
    let path = dir.join(file);
    let bytes =
        std::fs::read(&path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    if crate::artefact::sha256_hex(&bytes) != checked {
        anyhow::bail!(
            "{} differs from the file the export checked: {how} again",
            path.display()
        );
    }
    let threads = threads_per_worker(workers);
    let name = match kind {
        BackendKind::OnnxInt8 => "onnxruntime-int8",
        _ => "onnxruntime",
    };
    (0..workers)
        .map(|_| {
            Ok(Box::new(OnnxBackend {
                model: OnnxClassifier::for_server(&bytes, shape, classes, threads)?,
                name,
            }) as Box<dyn Backend>)
        })
        .collect()
}

/// Each of `workers` concurrent batches gets an equal share of the cores (at least one).
pub fn threads_per_worker(workers: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / workers.max(1)).max(1)
}

type Reply = oneshot::Sender<Result<Vec<Vec<f32>>, String>>;

struct Job {
    images: Vec<f32>,
    n: usize,
    reply: Reply,
}

/// Worker threads, one backend each, fed from one queue.
pub struct WorkerPool {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    pub backend: &'static str,
}

impl WorkerPool {
    pub fn start(name: &str, backends: Vec<Box<dyn Backend>>) -> Arc<Self> {
        let backend = backends.first().map_or("none", |b| b.name());
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let threads = backends
            .into_iter()
            .enumerate()
            .map(|(i, mut backend)| {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("infer-{name}-{i}"))
                    .spawn(move || {
                        loop {
                            let job = match rx.lock() {
                                Ok(rx) => rx.recv(),
                                Err(_) => return,
                            };
                            let Ok(job) = job else { return };
                            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                                backend.infer(&job.images, job.n)
                            }));
                            let result = match outcome {
                                Ok(Ok(p)) => Ok(p),
                                Ok(Err(e)) => Err(format!("{e:#}")),
                                Err(_) => Err("the backend panicked".to_string()),
                            };
                            let _ = job.reply.send(result);
                        }
                    })
                    .expect("spawning an inference thread")
            })
            .collect();
        Arc::new(Self {
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
            backend,
        })
    }

    /// Probabilities of `n` images, computed on a worker thread.
    pub async fn infer(&self, images: Vec<f32>, n: usize) -> Result<Vec<Vec<f32>>, String> {
        let (reply, answer) = oneshot::channel();
        let sent = match self.tx.lock() {
            Ok(tx) => tx.as_ref().map(|tx| tx.send(Job { images, n, reply })),
            Err(_) => None,
        };
        if !matches!(sent, Some(Ok(()))) {
            return Err("the inference workers have stopped".into());
        }
        answer
            .await
            .unwrap_or_else(|_| Err("an inference worker stopped".into()))
    }

    /// Lets the workers finish their jobs and exit.
    pub fn stop(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Ok(mut threads) = self.threads.lock() {
            for t in threads.drain(..) {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl Backend for Echo {
        fn name(&self) -> &'static str {
            "echo"
        }
        fn infer(&mut self, images: &[f32], n: usize) -> Result<Vec<Vec<f32>>> {
            if images.first() == Some(&-1.0) {
                panic!("asked to");
            }
            Ok(images
                .chunks(images.len() / n)
                .map(|c| vec![c[0]])
                .collect())
        }
    }

    #[test]
    fn burn_backends_on_their_own_pools_match_the_library() {
        let device = Device::flex();
        let config = crate::model::ResNetConfig::new(3, 2)
            .with_width(8)
            .with_blocks([1, 1, 1, 1]);
        let model = crate::model::init_seeded(&config, &device, 7);
        let shape = [3, 16, 16];
        let images: Vec<f32> = (0..4 * 768)
            .map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0)
            .collect();
        let expected = predict_proba(&model, &images, shape, 4, &device);
        // Two workers computing at once, as with --max-concurrent-batches 2, one of them on a
        // one-thread pool.
        let workers: Vec<_> = [1, 2]
            .into_iter()
            .map(|threads| {
                let mut backend =
                    BurnBackend::new(model.clone(), device.clone(), shape, "burn-flex", threads)
                        .unwrap();
                let images = images.clone();
                std::thread::spawn(move || backend.infer(&images, 4).unwrap())
            })
            .collect();
        for worker in workers {
            let got = worker.join().unwrap();
            assert_eq!(got.len(), 4);
            for (g, e) in got.iter().zip(&expected) {
                assert!(
                    g.iter().zip(e).all(|(a, b)| (a - b).abs() < 1e-5),
                    "{g:?} vs {e:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_panicking_backend_answers_an_error_and_keeps_serving() {
        let pool = WorkerPool::start("t", vec![Box::new(Echo)]);
        assert_eq!(
            pool.infer(vec![1.0, 1.0, 2.0, 2.0], 2).await,
            Ok(vec![vec![1.0], vec![2.0]])
        );
        let err = pool.infer(vec![-1.0, 0.0], 1).await.unwrap_err();
        assert!(err.contains("panicked"), "{err}");
        assert_eq!(pool.infer(vec![3.0], 1).await, Ok(vec![vec![3.0]]));
        pool.stop();
        assert!(pool.infer(vec![3.0], 1).await.is_err());
    }
}
