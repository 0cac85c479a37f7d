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
    pub model: ResNet,
    pub device: Device,
    pub shape: [usize; 3],
    /// `burn-flex` or `burn-wgpu`, from the run's `model.device`.
    pub name: &'static str,
}

impl BurnBackend {
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
        Ok(predict_proba(
            &self.model,
            images,
            self.shape,
            n.max(1),
            &self.device,
        ))
    }
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
