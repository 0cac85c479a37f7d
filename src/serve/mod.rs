//! `deepinsight serve`: trained runs over HTTP (axum + tokio), each model behind its own
//! dynamic batcher with inference on dedicated worker threads.

pub(crate) mod backend;
pub(crate) mod batcher;
pub(crate) mod error;
pub(crate) mod explainer;
pub(crate) mod http;
pub(crate) mod kserve;
pub(crate) mod listen;
pub(crate) mod metrics;
pub(crate) mod preprocess;
pub(crate) mod served;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

pub use backend::BackendKind;
pub use batcher::BatchConfig;
// Request parsing, public for its benchmark (benches/stages.rs).
pub use error::parse_json;
use http::AppState;
pub use listen::ConnectionLimits;
use metrics::Metrics;
pub use preprocess::PredictRequest;
use served::ServedModel;

pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// One model to serve: a run folder under a name.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Defaults to the folder's name.
    pub name: Option<String>,
    pub dir: PathBuf,
    /// This model's batching; the file's `[batching]` when absent.
    pub batching: Option<BatchConfig>,
    /// This model's backend; the file's `backend` when absent.
    #[serde(default)]
    pub backend: Option<BackendKind>,
}

impl ModelSpec {
    /// `DIR` or `NAME=DIR`, as given to `--model`.
    pub fn parse(arg: &str) -> Result<Self> {
        let (name, dir) = match arg.split_once('=') {
            Some((name, dir)) => (Some(name.to_string()), dir),
            None => (None, arg),
        };
        Ok(Self {
            name,
            dir: PathBuf::from(dir),
            batching: None,
            backend: None,
        })
    }

    fn resolved_name(&self) -> Result<String> {
        match &self.name {
            Some(name) => Ok(name.clone()),
            None => self
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .with_context(|| {
                    format!(
                        "{}: cannot name a model after this path; use NAME=DIR",
                        self.dir.display()
                    )
                }),
        }
    }
}

/// Everything `serve` needs; a TOML file of the same shape can be given with `--config`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    #[serde(default = "default_addr")]
    pub addr: String,
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Batching of models that set none of their own.
    #[serde(default)]
    pub batching: BatchConfig,
    /// Backend of models that set none of their own.
    #[serde(default)]
    pub backend: BackendKind,
    #[serde(default, rename = "model")]
    pub models: Vec<ModelSpec>,
    /// Header, idle and body deadlines and the connection cap.
    #[serde(default)]
    pub connections: ConnectionLimits,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            addr: default_addr(),
            max_body_bytes: default_max_body(),
            batching: BatchConfig::default(),
            backend: BackendKind::default(),
            models: Vec::new(),
            connections: ConnectionLimits::default(),
        }
    }
}

fn default_addr() -> String {
    DEFAULT_ADDR.to_string()
}

fn default_max_body() -> usize {
    DEFAULT_MAX_BODY_BYTES
}

impl ServeConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{}: not a valid serve file", path.display()))
    }
}

/// A running server: its address, and a way to stop it as SIGTERM would.
pub struct Server {
    pub addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Server {
    /// Loads every model, binds, and starts serving in the background.
    pub async fn start(config: ServeConfig) -> Result<Self> {
        config.connections.check()?;
        if config.models.is_empty() {
            bail!("no model to serve: give --model DIR (a folder written by `deepinsight run`)");
        }
        let metrics = Arc::new(Metrics::default());
        let mut models = BTreeMap::new();
        for spec in &config.models {
            let name = spec.resolved_name()?;
            if models.contains_key(&name) {
                bail!("two models are named '{name}': use NAME=DIR to tell them apart");
            }
            let batching = spec
                .batching
                .clone()
                .unwrap_or_else(|| config.batching.clone());
            let backend = spec.backend.unwrap_or(config.backend);
            let model = ServedModel::load(&name, &spec.dir, batching, backend, &metrics)
                .await
                .with_context(|| format!("loading model '{name}' from {}", spec.dir.display()))?;
            models.insert(name, Arc::new(model));
        }
        let state = Arc::new(AppState {
            models,
            metrics,
            jobs: Default::default(),
            job_gate: Arc::new(tokio::sync::Semaphore::new(1)),
            ready: AtomicBool::new(true),
            started: Instant::now(),
        });
        let listener = tokio::net::TcpListener::bind(&config.addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.addr))?;
        let addr = listener.local_addr()?;
        let app = http::router(
            state.clone(),
            config.max_body_bytes,
            config.connections.body_timeout(),
        );
        let limits = config.connections.clone();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let shutdown_state = state.clone();
        let task = tokio::spawn(async move {
            let signal = async move {
                let _ = stopped.wait_for(|s| *s).await;
                tracing::info!("shutting down: no new connections, draining the queues");
                shutdown_state.ready.store(false, Ordering::SeqCst);
                for model in shutdown_state.models.values() {
                    model.close();
                }
            };
            listen::serve(listener, app, &limits, signal).await;
            for model in state.models.values() {
                model.shutdown().await;
            }
            Ok(())
        });
        Ok(Self { addr, stop, task })
    }

    /// Stops accepting, answers what is queued and in flight, then returns.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(true);
        self.task.await.context("the server task failed")?
    }

    /// Serves until SIGTERM or Ctrl-C, then shuts down gracefully.
    pub async fn run_until_signal(self) -> Result<()> {
        wait_for_signal().await;
        self.shutdown().await
    }
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serve_file_reads_models_and_batching() {
        let config: ServeConfig = toml::from_str(
            r#"
            addr = "0.0.0.0:9000"
            [batching]
            max_batch_size = 16
            [[model]]
            dir = "models/demo"
            [[model]]
            name = "fast"
            dir = "models/other"
            batching = { max_batch_size = 1 }
            "#,
        )
        .unwrap();
        assert_eq!(config.addr, "0.0.0.0:9000");
        assert_eq!(config.batching.max_batch_size, 16);
        assert_eq!(config.models[0].resolved_name().unwrap(), "demo");
        assert_eq!(config.models[1].resolved_name().unwrap(), "fast");
        assert_eq!(
            config.models[1].batching.as_ref().unwrap().max_batch_size,
            1
        );
        let bad = toml::from_str::<ServeConfig>("[batching]\nmax_batch = 3\n").unwrap_err();
        assert!(bad.to_string().contains("max_batch"), "{bad}");
        let spec = ModelSpec::parse("x=models/demo").unwrap();
        assert_eq!(
            (spec.name.as_deref(), spec.dir),
            (Some("x"), PathBuf::from("models/demo"))
        );
    }
}
