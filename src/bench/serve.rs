//! `deepinsight bench serve`: load on loopback with a standard HTTP load generator (wrk by
//! default, or hey: `load.rs`) against an in-process server, raw-omics POST /predict with one
//! sample per request, batching off and on, 1 and 16 concurrent clients, at 64x64 and
//! 224x224 (ResNet18 at full width). Each row shows QPS, latency percentiles, the mean batch
//! size the server formed, and QPS as a fraction of the offline throughput (normalise +
//! render + forward pass, no HTTP) measured in the same run at the same batch size.
//!
//! `--overload` adds a 5-minute run at twice the measured capacity: every request must be
//! answered (200, 503 or 504) and the resident memory must stay bounded.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ndarray::Array2;
use serde_json::{Value, json};

use super::load::{self, Generator};
use crate::onnxrt::OnnxClassifier;
use crate::run::RunDir;
use crate::serve::backend::BackendKind;
use crate::serve::{BatchConfig, ModelSpec, ServeConfig, Server};
use crate::synth::{self, SynthSpec};

pub struct Scenario {
    pub size: usize,
    pub batching: bool,
    pub clients: usize,
    /// What the load generator measured.
    pub load: load::Load,
    pub mean_batch: f64,
    /// Offline images/s at this scenario's batch size: the mean of the rates timed just
    /// before and just after the server ran with this scenario's settings.
    pub offline: f64,
    /// Mean compute time of a batch in the server during this scenario (its own metric).
    pub batch_ms: f64,
    /// The bound p99 is held to (docs/serving.md): max queue delay + 2 x batch compute time, in ms.
    pub p99_bound_ms: f64,
    /// CPU time per answered request of the server (every thread: HTTP, parsing, rendering,
    /// the model) and of the load generator, in ms: on a machine they share, these say what
    /// the cores can give.
    pub server_cpu_ms: f64,
    pub generator_cpu_ms: f64,
}

pub struct Overload {
    pub size: usize,
    pub target_qps: f64,
    pub seconds: f64,
    pub codes: Vec<(u16, usize)>,
    pub rss_start_mb: f64,
    pub rss_peak_mb: f64,
    pub rss_end_mb: f64,
    /// The peak of each minute of the run: flat when memory is bounded.
    pub rss_per_minute_mb: Vec<f64>,
}

pub struct Report {
    pub backend: BackendKind,
    /// Batches computed at once, each on its own worker thread with its share of the cores.
    pub concurrent_batches: usize,
    pub generator: Generator,
    pub route: Route,
    pub scenarios: Vec<Scenario>,
    pub overload: Option<Overload>,
}

/// Batching "on": the settings the table is measured with.
const MAX_BATCH: usize = 8;
const DELAY_MS: u64 = 5;

/// Max batch size and max queue delay (ms) of batching on or off.
fn batch_limits(batching: bool) -> (usize, u64) {
    if batching {
        (MAX_BATCH, DELAY_MS)
    } else {
        (1, 0)
    }
}

/// The route the rows load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Route {
    /// POST /predict with the sample's raw omics values by name: the server normalises and
    /// renders.
    Predict,
    /// POST /v2/models/{name}/infer with the sample's rendered image as JSON numbers: the
    /// server parses them, batches and runs the model.
    V2Json,
    /// The same image as raw bytes (the binary data extension): the server copies them.
    V2Binary,
    /// The sample's raw values in the model's feature order as bytes, the v2 `omics` input:
    /// the server normalises and renders, as for /predict, without parsing JSON numbers.
    V2OmicsBinary,
}

impl Route {
    pub fn name(self) -> &'static str {
        match self {
            Route::Predict => "/predict (raw omics, JSON)",
            Route::V2Json => "/v2/models/bench/infer (image, JSON)",
            Route::V2Binary => "/v2/models/bench/infer (image, binary data extension)",
            Route::V2OmicsBinary => "/v2/models/bench/infer (raw omics, binary data extension)",
        }
    }
}

/// What one `bench serve` measures.
#[derive(Debug, Clone)]
pub struct ServeBench {
    /// Small sizes and 2 s per row, to check that everything runs.
    pub quick: bool,
    /// Add 5 minutes at twice the measured capacity.
    pub overload: bool,
    /// One image size to run, e.g. "64" (all when `None`).
    pub only: Option<String>,
    /// With an ONNX backend, each trained model is exported (`--targets server`) and served,
    /// and timed offline, through it.
    pub backend: BackendKind,
    /// The server's `--max-concurrent-batches` in every row.
    pub concurrent_batches: usize,
    pub generator: Generator,
    pub route: Route,
}

pub fn run(bench: &ServeBench) -> Result<Report> {
    let ServeBench {
        quick,
        overload,
        ref only,
        backend,
        concurrent_batches,
        generator,
        route,
    } = *bench;
    let only = only.as_deref();
    if concurrent_batches == 0 {
        bail!("--concurrent-batches must be at least 1");
    }
    let setup = Setup {
        backend,
        concurrent_batches,
    };
    generator.check()?;
    if overload {
        Generator::Hey.check()?;
    }
    let work = tempfile::tempdir_in(".").context("cannot create a work folder here")?;
    let (all, width, seconds): (&[usize], usize, u64) = if quick {
        (&[32], 8, 2)
    } else {
        (&[64, 224], 64, 30)
    };
    let sizes: Vec<usize> = all
        .iter()
        .copied()
        .filter(|s| only.is_none_or(|o| s.to_string() == o))
        .collect();
    if sizes.is_empty() {
        bail!("--only {}: the sizes are {all:?}", only.unwrap_or(""));
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let mut scenarios = Vec::new();
    let mut overload_row = None;
    for &size in &sizes {
        let model = train(work.path(), size, width)?;
        if backend != BackendKind::Burn {
            crate::export::run(&crate::export::ExportOptions {
                min_agreement: 0.0,
                calibration_samples: 64,
                ..crate::export::ExportOptions::new(
                    model.clone(),
                    vec![crate::export::Target::Server],
                )
            })?;
        }
        let sample = one_sample(work.path())?;
        let body = work.path().join(format!("body-{size}.json"));
        let request = write_body(route, &model, &sample, body)?;
        for batching in [false, true] {
            // Offline is timed just before and just after this setting's server runs, and
            // the two averaged: this machine's speed drifts over minutes.
            let (batch, delay) = batch_limits(batching);
            let offline_before = offline(&model, &sample, batch, quick, backend, route)?;
            let first_row = scenarios.len();
            let config = serve_config(&model, batching, 30_000, setup);
            let server = runtime.block_on(Server::start(config))?;
            for clients in [1, 16] {
                tracing::info!(size, batching, clients, "load");
                let before = batch_metrics(&runtime, server.addr)?;
                let cpu_before = cpu_seconds();
                let load = load::run(generator, server.addr, &request, clients, seconds)?;
                let cpu_after = cpu_seconds();
                let after = batch_metrics(&runtime, server.addr)?;
                let answered = load.requests.max(1) as f64;
                let count = (after.count - before.count).max(1.0);
                let batch_ms = (after.seconds - before.seconds) / count * 1000.0;
                scenarios.push(Scenario {
                    size,
                    batching,
                    clients,
                    mean_batch: (after.samples - before.samples) / count,
                    offline: f64::NAN,
                    batch_ms,
                    p99_bound_ms: delay as f64 + 2.0 * batch_ms,
                    server_cpu_ms: (cpu_after.0 - cpu_before.0) / answered * 1000.0,
                    generator_cpu_ms: (cpu_after.1 - cpu_before.1) / answered * 1000.0,
                    load,
                });
            }
            runtime.block_on(server.shutdown())?;
            let offline_after = offline(&model, &sample, batch, quick, backend, route)?;
            for row in &mut scenarios[first_row..] {
                row.offline = (offline_before + offline_after) / 2.0;
            }
        }
        if overload && size == *sizes.last().expect("a size") {
            let capacity = scenarios
                .iter()
                .filter(|s| s.size == size && s.batching)
                .map(|s| s.load.qps)
                .fold(0.0, f64::max);
            overload_row = Some(run_overload(
                &runtime, &model, &request, size, capacity, setup,
            )?);
        }
    }
    Ok(Report {
        backend,
        concurrent_batches,
        generator,
        route,
        scenarios,
        overload: overload_row,
    })
}

/// What every server of one bench run shares, beside its batching.
#[derive(Clone, Copy)]
struct Setup {
    backend: BackendKind,
    concurrent_batches: usize,
}

fn serve_config(model: &Path, batching: bool, timeout_ms: u64, setup: Setup) -> ServeConfig {
    let (max_batch_size, max_queue_delay_ms) = batch_limits(batching);
    let batching = BatchConfig {
        max_batch_size,
        max_queue_delay_ms,
        request_timeout_ms: timeout_ms,
        max_concurrent_batches: setup.concurrent_batches,
        ..BatchConfig::default()
    };
    ServeConfig {
        addr: "127.0.0.1:0".into(),
        max_body_bytes: crate::serve::DEFAULT_MAX_BODY_BYTES,
        batching,
        models: vec![ModelSpec {
            name: Some("bench".into()),
            dir: model.to_path_buf(),
            batching: None,
            backend: None,
        }],
        backend: setup.backend,
        ..ServeConfig::default()
    }
}

/// A ResNet18 of `width` at `size` x `size`, trained for one epoch on a small synthetic
/// cohort: its weights do not change the cost of a forward pass.
fn train(dir: &Path, size: usize, width: usize) -> Result<PathBuf> {
    let cohort_dir = dir.join("cohort");
    if !cohort_dir.exists() {
        let spec = SynthSpec {
            samples: 90,
            ..SynthSpec::default()
        };
        synth::write_cohort(&synth::generate(&spec, 7), &cohort_dir)?;
    }
    let config = super::synth_pipeline(
        &format!(
            "name = \"bench-{size}\"\noutput_dir = \"{}\"",
            dir.display()
        ),
        &cohort_dir,
        &format!(
            "[select]\ntop_k = 300\n[layout]\nmethod = \"pca\"\nheight = {size}\nwidth = {size}\n\
             [model]\nwidth = {width}\n[train]\nepochs = 1\n"
        ),
    )?;
    Ok(crate::pipeline::run(&config)?.run_dir)
}

/// The first sample of the cohort as a /predict sample: every feature by name.
fn one_sample(dir: &Path) -> Result<Value> {
    let config = super::synth_pipeline("name = \"x\"", &dir.join("cohort"), "")?;
    let cohort = crate::omics::load_cohort(&config.data)?;
    let mut values = serde_json::Map::new();
    for m in &cohort.modalities {
        let row: serde_json::Map<String, Value> = m
            .feature_names
            .iter()
            .zip(m.values.row(0))
            .map(|(f, v)| (f.clone(), json!(v)))
            .collect();
        values.insert(m.name.clone(), Value::Object(row));
    }
    Ok(json!({"id": cohort.sample_ids[0], "values": values}))
}

/// Offline images/s at `batch`: what the server does per batch of the route: normalise +
/// render + forward for /predict, the forward pass alone for images.
fn offline(
    model: &Path,
    sample: &Value,
    batch: usize,
    quick: bool,
    backend: BackendKind,
    route: Route,
) -> Result<f64> {
    let run_dir = RunDir::open(model)?;
    let shape = run_dir.image_shape();
    let onnx = backend
        .file()
        .map(|file| {
            OnnxClassifier::load(
                &std::fs::read(model.join(file))?,
                shape,
                run_dir.classes().len(),
                0,
            )
        })
        .transpose()?;
    let budget = Duration::from_secs(if quick { 1 } else { 5 });
    // The sample is read out of its JSON once: the timed work is what the server does per
    // batch once a request is parsed.
    let row = feature_row(&run_dir, sample);
    let rendered = render(&run_dir, &row, batch)?;
    let once = || -> Result<()> {
        let fresh;
        let images = match route {
            Route::Predict | Route::V2OmicsBinary => {
                fresh = render(&run_dir, &row, batch)?;
                &fresh
            }
            Route::V2Json | Route::V2Binary => &rendered,
        };
        match &onnx {
            Some(model) => drop(model.predict(images, batch)?),
            None => drop(run_dir.predict(images, batch)),
        }
        Ok(())
    };
    once()?;
    let start = Instant::now();
    let mut images = 0;
    while start.elapsed() < budget {
        once()?;
        images += batch;
    }
    Ok(images as f64 / start.elapsed().as_secs_f64())
}

/// The sample's raw values of the model's features, modality after modality (NaN where
/// absent): one row of the v2 `omics` input.
fn feature_row(run_dir: &RunDir, sample: &Value) -> Vec<f32> {
    let space = &run_dir.manifest.feature_space;
    space
        .modalities
        .iter()
        .flat_map(|m| {
            m.features.iter().map(|f| {
                sample["values"][&m.name][f]
                    .as_f64()
                    .map_or(f32::NAN, |v| v as f32)
            })
        })
        .collect()
}

/// `batch` copies of a `feature_row` normalised and rendered, as the server does for raw
/// omics.
fn render(run_dir: &RunDir, row: &[f32], batch: usize) -> Result<Vec<f32>> {
    let space = &run_dir.manifest.feature_space;
    let mut start = 0;
    let blocks: Vec<Array2<f32>> = space
        .modalities
        .iter()
        .map(|m| {
            let columns = &row[start..start + m.features.len()];
            start += m.features.len();
            Array2::from_shape_fn((batch, columns.len()), |(_, j)| columns[j])
        })
        .collect();
    let views: Vec<_> = blocks.iter().map(|b| b.view()).collect();
    let values = space.transform_selected(&views)?;
    run_dir.render(values.view())
}

/// Writes the body of one request of `route` for `sample` to `body`: what each client sends.
fn write_body(route: Route, model: &Path, sample: &Value, body: PathBuf) -> Result<load::Request> {
    use crate::serve::kserve::{HEADER_LENGTH, INPUT, OMICS};
    let v2 = "/v2/models/bench/infer";
    let (path, bytes, headers) = match route {
        Route::Predict => {
            let request =
                json!({"samples": [sample], "allow_missing": true, "ignore_unknown": true});
            ("/predict", request.to_string().into_bytes(), Vec::new())
        }
        Route::V2Json => {
            let run_dir = RunDir::open(model)?;
            let [c, h, w] = run_dir.image_shape();
            let image = render(&run_dir, &feature_row(&run_dir, sample), 1)?;
            let input = json!({"name": INPUT, "datatype": "FP32", "shape": [1, c, h, w],
                "data": image});
            (
                v2,
                json!({"inputs": [input]}).to_string().into_bytes(),
                Vec::new(),
            )
        }
        Route::V2Binary | Route::V2OmicsBinary => {
            let run_dir = RunDir::open(model)?;
            let [c, h, w] = run_dir.image_shape();
            let (input, values) = if route == Route::V2OmicsBinary {
                let row = feature_row(&run_dir, sample);
                (json!({"name": OMICS, "shape": [1, row.len()]}), row)
            } else {
                let image = render(&run_dir, &feature_row(&run_dir, sample), 1)?;
                (json!({"name": INPUT, "shape": [1, c, h, w]}), image)
            };
            let mut input = input;
            input["datatype"] = json!("FP32");
            input["parameters"] = json!({"binary_data_size": values.len() * 4});
            let header = json!({"inputs": [input], "parameters": {"allow_missing": true}});
            let mut bytes = header.to_string().into_bytes();
            let length = (HEADER_LENGTH.to_string(), bytes.len().to_string());
            values.iter().for_each(|v| bytes.extend(v.to_le_bytes()));
            (v2, bytes, vec![length])
        }
    };
    std::fs::write(&body, bytes).with_context(|| format!("cannot write {}", body.display()))?;
    Ok(load::Request {
        path: path.into(),
        body,
        headers,
    })
}

/// What the server's own metrics say of the batches computed so far.
struct BatchMetrics {
    count: f64,
    samples: f64,
    seconds: f64,
}

fn batch_metrics(
    runtime: &tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
) -> Result<BatchMetrics> {
    let text = runtime.block_on(get_text(addr, "/metrics"))?;
    let read = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok(BatchMetrics {
        count: read("deepinsight_batch_size_count{"),
        samples: read("deepinsight_batch_size_sum{"),
        seconds: read("deepinsight_batch_compute_seconds_sum{"),
    })
}

async fn get_text(addr: std::net::SocketAddr, path: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await?;
    Ok(raw
        .split_once("\r\n\r\n")
        .map_or(raw.clone(), |(_, b)| b.to_string()))
}

/// CPU seconds (user + system) used so far by this process and by its children that have
/// been waited for: the in-process server, and the load generator once it has exited.
fn cpu_seconds() -> (f64, f64) {
    let of = |who| {
        // SAFETY: getrusage only writes the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(who, &mut usage) } != 0 {
            return f64::NAN;
        }
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        secs(usage.ru_utime) + secs(usage.ru_stime)
    };
    (of(libc::RUSAGE_SELF), of(libc::RUSAGE_CHILDREN))
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Twice the measured capacity for 5 minutes, offered by hey (whatever the rows' generator:
/// wrk cannot hold a rate). hey's clients are closed-loop (each waits for
/// its answer), so the offered rate only reaches twice capacity with many more clients than the
/// server can hold: 512 clients, a 256-sample queue and a 2 s deadline, so requests beyond the
/// queue get 503 at once and those that wait too long get 504.
fn run_overload(
    runtime: &tokio::runtime::Runtime,
    model: &Path,
    request: &load::Request,
    size: usize,
    capacity: f64,
    setup: Setup,
) -> Result<Overload> {
    let mut config = serve_config(model, true, 2_000, setup);
    config.batching.queue_capacity = 256;
    let server = runtime.block_on(Server::start(config))?;
    let clients = 512;
    let target = 2.0 * capacity;
    let rss_start = rss_mb();
    let running = Arc::new(AtomicBool::new(true));
    let sampler = {
        let running = running.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut minutes: Vec<f64> = Vec::new();
            while running.load(Ordering::Relaxed) {
                let minute = (start.elapsed().as_secs() / 60) as usize;
                if minutes.len() <= minute {
                    minutes.resize(minute + 1, 0.0);
                }
                minutes[minute] = minutes[minute].max(rss_mb());
                std::thread::sleep(Duration::from_millis(500));
            }
            minutes
        })
    };
    let seconds = 300;
    let per_client = Some(target / clients as f64);
    let load = load::hey(server.addr, request, clients, seconds, per_client)?;
    running.store(false, Ordering::Relaxed);
    let minutes = sampler.join().unwrap_or_default();
    let rss_end = rss_mb();
    runtime.block_on(server.shutdown())?;
    Ok(Overload {
        size,
        target_qps: target,
        seconds: seconds as f64,
        codes: load.codes,
        rss_start_mb: rss_start,
        rss_peak_mb: minutes.iter().copied().fold(f64::NAN, f64::max),
        rss_end_mb: rss_end,
        rss_per_minute_mb: minutes,
    })
}

fn codes_text(codes: &[(u16, usize)]) -> String {
    codes
        .iter()
        .map(|(c, n)| {
            if *c == 0 {
                format!("errors:{n}")
            } else {
                format!("{c}:{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn print(report: &Report) {
    let backend = serde_json::to_value(report.backend).unwrap_or_default();
    crate::outln!(
        "backend: {}; concurrent batches: {}; load generator: {}; route: {}",
        backend.as_str().unwrap_or("?"),
        report.concurrent_batches,
        report.generator.name(),
        report.route.name()
    );
    crate::outln!(
        "{:>5} {:>8} {:>7} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10} {:>9} {:>9} {:>9} {:>8} {:>8}  codes",
        "size",
        "batching",
        "clients",
        "QPS",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "p99 bound",
        "mean batch",
        "batch ms",
        "offline",
        "QPS/offl",
        "srv CPU",
        "gen CPU"
    );
    for s in &report.scenarios {
        crate::outln!(
            "{:>5} {:>8} {:>7} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>9.1} {:>10.2} {:>9.1} {:>9.1} {:>9.2} {:>8.3} {:>8.3}  {}",
            s.size,
            if s.batching {
                format!("max {MAX_BATCH}")
            } else {
                "off".into()
            },
            s.clients,
            s.load.qps,
            s.load.p50_ms,
            s.load.p95_ms,
            s.load.p99_ms,
            s.p99_bound_ms,
            s.mean_batch,
            s.batch_ms,
            s.offline,
            s.load.qps / s.offline,
            s.server_cpu_ms,
            s.generator_cpu_ms,
            codes_text(&s.load.codes)
        );
    }
    crate::outln!(
        "batch ms = mean compute time of a batch in the server (its batch_compute_seconds metric); \
         p99 bound = max queue delay ({DELAY_MS} ms on) + 2 x batch ms;\n\
         offline = images/s of what the server does per batch (/predict: normalise + render + forward; images: forward)\n\
         at the scenario's batch size (1 off, {MAX_BATCH} on), same process, no HTTP,\n\
         the mean of its rate just before and just after the setting's server runs;\n\
         srv CPU, gen CPU = CPU ms per request of the server (all its threads) and of the load generator"
    );
    if let Some(o) = &report.overload {
        crate::outln!(
            "overload {}x{}: {:.0} QPS targeted (2x capacity) for {:.0} s, {:.0} requests/s sent: {}; RSS start {:.0} MB, peak {:.0} MB, end {:.0} MB",
            o.size,
            o.size,
            o.target_qps,
            o.seconds,
            o.codes.iter().map(|c| c.1).sum::<usize>() as f64 / o.seconds,
            codes_text(&o.codes),
            o.rss_start_mb,
            o.rss_peak_mb,
            o.rss_end_mb
        );
        let minutes: Vec<String> = o
            .rss_per_minute_mb
            .iter()
            .map(|m| format!("{m:.0}"))
            .collect();
        crate::outln!("RSS peak of each minute, MB: {}", minutes.join(", "));
    }
}
