//! `deepinsight bench model`: images/s of ResNet18 (width 64, 3 input channels, 3 classes) for a
//! training step (forward, cross-entropy, backward, Adam) and for inference, at 64x64 and
//! 224x224, batch 1, 8 and 32, on this machine's CPU with a fixed number of threads.
//!
//! With `--pytorch PYTHON`, the same cases run in torchvision's resnet18 under that Python
//! (scripts/bench_torch.py, `torch.set_num_threads` to the same count) in the same run, and the
//! table prints the ratio. PyTorch is benchmark tooling only: `scripts/bench-vs-pytorch.sh`
//! installs it into a venv on demand; the product never depends on it.

use std::path::Path;

use anyhow::{Context, Result};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

use super::rate;
use crate::model::{self, ResNetConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Train,
    Infer,
}

#[derive(Debug, Clone)]
pub struct ModelRow {
    pub size: usize,
    pub batch: usize,
    pub mode: Mode,
    pub burn: f64,
    /// The same case on Burn's own conv2d and BatchNorm instead of model/conv's and model/norm's kernels.
    pub burn_ops: Option<f64>,
    pub pytorch: Option<f64>,
}

#[derive(serde::Deserialize)]
struct TorchRow {
    size: usize,
    batch: usize,
    mode: Mode,
    images_per_second: f64,
}

pub struct ModelBench {
    pub sizes: Vec<usize>,
    pub batches: Vec<usize>,
    pub threads: usize,
    /// Least time spent timing each case (after one untimed warm-up step).
    pub min_seconds: f64,
    pub pytorch: Option<std::path::PathBuf>,
    /// Also time each case on Burn's own conv2d and BatchNorm.
    pub burn_ops: bool,
    pub device: Device,
    /// The device as named on the command line, for the table's heading.
    pub device_name: String,
}

impl ModelBench {
    pub fn new(quick: bool, threads: usize) -> Self {
        Self {
            sizes: if quick { vec![32] } else { vec![64, 224] },
            batches: if quick { vec![2, 4] } else { vec![1, 8, 32] },
            threads,
            min_seconds: if quick { 0.2 } else { 3.0 },
            pytorch: None,
            burn_ops: false,
            device: Device::flex(),
            device_name: "cpu".into(),
        }
    }
}

fn burn_rates(bench: &ModelBench) -> Vec<ModelRow> {
    let mut rows = Vec::new();
    for &size in &bench.sizes {
        for &batch in &bench.batches {
            let [train, infer] = case_rates(bench, size, batch);
            // The old path right after the new one, so both see the same machine.
            let old = bench.burn_ops.then(|| {
                model::flex::use_burn_ops(true);
                let rates = case_rates(bench, size, batch);
                model::flex::use_burn_ops(false);
                rates
            });
            tracing::info!(size, batch, train, infer, "burn rates");
            for (mode, burn, i) in [(Mode::Train, train, 0), (Mode::Infer, infer, 1)] {
                rows.push(ModelRow {
                    size,
                    batch,
                    mode,
                    burn,
                    burn_ops: old.map(|o| o[i]),
                    pytorch: None,
                });
            }
        }
    }
    rows
}

/// Training-step and inference images/s of one case.
fn case_rates(bench: &ModelBench, size: usize, batch: usize) -> [f64; 2] {
    let config = ResNetConfig::new(3, 3);
    let ad = bench.device.clone().autodiff();
    let mut net = model::init_seeded(&config, &ad, 1);
    let mut optimizer = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let x = Tensor::<4>::random([batch, 3, size, size], Distribution::Default, &ad);
    let targets: Vec<i64> = (0..batch as i64).map(|i| i % 3).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(targets, [batch]), &ad);
    let train = rate(batch, bench.min_seconds, || {
        let loss = loss_fn.forward(net.forward(x.clone()), y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optimizer.step(1e-3, net.clone(), grads);
    });
    let inference = net.valid();
    let xi = Tensor::<4>::random([batch, 3, size, size], Distribution::Default, &bench.device);
    let infer = rate(batch, bench.min_seconds, || {
        // Reading the result back waits for the computation on any backend.
        drop(inference.forward(xi.clone()).into_data());
    });
    [train, infer]
}

/// The same cases in PyTorch, through scripts/bench_torch.py.
fn torch_rates(bench: &ModelBench, python: &Path) -> Result<Vec<TorchRow>> {
    let list = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let args = [
        "--sizes".into(),
        list(&bench.sizes),
        "--batches".into(),
        list(&bench.batches),
        "--threads".into(),
        bench.threads.to_string(),
        "--min-seconds".into(),
        bench.min_seconds.to_string(),
    ];
    super::python_json_lines(python, "bench_torch.py", &args)
}

pub fn run(bench: &ModelBench) -> Result<Vec<ModelRow>> {
    // Burn's Flex backend computes on rayon's pool: sized once, before any tensor work.
    rayon::ThreadPoolBuilder::new()
        .num_threads(bench.threads)
        .build_global()
        .context("cannot size the thread pool")?;
    // PyTorch first, while nothing else runs in this process.
    let torch = match &bench.pytorch {
        Some(python) => torch_rates(bench, python)?,
        None => Vec::new(),
    };
    let mut rows = burn_rates(bench);
    for row in &mut rows {
        row.pytorch = torch
            .iter()
            .find(|t| t.size == row.size && t.batch == row.batch && t.mode == row.mode)
            .map(|t| t.images_per_second);
    }
    Ok(rows)
}

/// The table: one row per case, Burn's and PyTorch's images/s and their ratio against the
/// goal (issue 28: PyTorch/Burn at most 1.0 for training, 1.2 for inference; docs/training.md).
pub fn print(rows: &[ModelRow], threads: usize, device: &str) {
    crate::outln!("ResNet18 (width 64, 3 channels, 3 classes), CPU, {threads} threads; images/s");
    crate::outln!(
        "{:>5} {:>6} {:>6} {:>10} {:>10} {:>13} {:>10} {:>15}",
        "size",
        "batch",
        "mode",
        format!("burn-{device}"),
        "pytorch",
        "pytorch/burn",
        "burn-ops",
        "burn/burn-ops"
    );
    let cell = |v: Option<f64>, digits: usize| match v {
        Some(v) => format!("{v:.digits$}"),
        None => "-".into(),
    };
    for r in rows {
        let mode = match r.mode {
            Mode::Train => "train",
            Mode::Infer => "infer",
        };
        crate::outln!(
            "{:>5} {:>6} {:>6} {:>10.1} {:>10} {:>13} {:>10} {:>15}",
            r.size,
            r.batch,
            mode,
            r.burn,
            cell(r.pytorch, 1),
            cell(r.pytorch.map(|t| t / r.burn), 2),
            cell(r.burn_ops, 1),
            cell(r.burn_ops.map(|o| r.burn / o), 2)
        );
    }
    crate::outln!(
        "goal: pytorch/burn <= 1.0 for training, <= 1.2 for inference; burn-ops: Burn's own \
         conv2d and BatchNorm (--burn-ops), the path before model/conv and model/norm"
    );
}
