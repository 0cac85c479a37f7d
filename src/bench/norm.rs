//! `deepinsight bench ops`, second table: ResNet18's training-mode BatchNorms one activation
//! shape at a time, forward (batch statistics and the normalised output) and backward (the
//! input, gamma and beta gradients), in milliseconds per call: on model/norm's kernels, on
//! Flex's (Burn's default, a chain of element-wise ops), and with `--pytorch` in PyTorch
//! (`aten.native_batch_norm` and its backward) in the same run.

use anyhow::Result;
use burn::backend::Flex;
use burn::backend::ops::ModuleOps;
use rand::SeedableRng;

use super::{random, time_ms};
use crate::model::flex;
use crate::model::norm::kernels::{self, Shape};

const EPSILON: f64 = 1e-5;

/// One BatchNorm input shape of ResNet18 (width 64).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Norm {
    pub name: &'static str,
    /// How many BatchNorms of this shape the network has.
    pub count: usize,
    pub channels: usize,
    pub side: usize,
}

/// The distinct BatchNorm shapes of ResNet18 at input side `size`.
pub fn norms(size: usize) -> Vec<Norm> {
    let norm = |name, count, channels, side| Norm {
        name,
        count,
        channels,
        side,
    };
    vec![
        norm("stem", 1, 64, size / 2),
        norm("layer1", 4, 64, size / 4),
        norm("layer2", 5, 128, size / 8),
        norm("layer3", 5, 256, size / 16),
        norm("layer4", 5, 512, size / 32),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Forward,
    Backward,
}

impl Op {
    pub const ALL: [Op; 2] = [Op::Forward, Op::Backward];

    pub fn name(self) -> &'static str {
        match self {
            Op::Forward => "forward",
            Op::Backward => "backward",
        }
    }
}

pub struct NormRow {
    pub norm: Norm,
    pub op: Op,
    pub ours: f64,
    pub flex: f64,
    pub pytorch: Option<f64>,
}

#[derive(serde::Deserialize)]
struct TorchRow {
    norm: String,
    op: Op,
    ms: f64,
}

fn burn_rows(size: usize, batch: usize, min_seconds: f64) -> Vec<NormRow> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let mut rows = Vec::new();
    for norm in norms(size) {
        let shape = Shape {
            images: batch,
            channels: norm.channels,
            pixels: norm.side * norm.side,
        };
        let dims = [batch, norm.channels, norm.side, norm.side];
        let x = random(shape.len(), &mut rng);
        let dy = random(shape.len(), &mut rng);
        let (gamma, beta) = (vec![1.0; norm.channels], vec![0.0; norm.channels]);
        let stats = kernels::statistics(shape, &x);
        let [xf, dyf] = [&x, &dy].map(|v| flex::tensor(v.clone(), dims));
        let [gf, bf] = [&gamma, &beta].map(|v| flex::tensor(v.clone(), [norm.channels]));
        let [mf, vf] =
            [&stats.mean, &stats.variance].map(|v| flex::tensor(v.clone(), [norm.channels]));
        for op in Op::ALL {
            let ours = match op {
                Op::Forward => time_ms(min_seconds, || {
                    let stats = kernels::statistics(shape, &x);
                    let (scale, shift) =
                        kernels::affine(&gamma, &beta, &stats.mean, &stats.variance, EPSILON);
                    let mut y = vec![0.0; shape.len()];
                    kernels::forward(shape, &x, &scale, &shift, None, false, &mut y);
                }),
                Op::Backward => time_ms(min_seconds, || {
                    let mut dx = vec![0.0; shape.len()];
                    kernels::backward(shape, &x, &dy, &gamma, &stats, EPSILON, &mut dx);
                }),
            };
            let flex = match op {
                Op::Forward => time_ms(min_seconds, || {
                    drop(Flex::batch_norm_train(
                        xf.clone(),
                        gf.clone(),
                        bf.clone(),
                        EPSILON,
                    ));
                }),
                Op::Backward => time_ms(min_seconds, || {
                    drop(Flex::batch_norm_train_backward(
                        xf.clone(),
                        gf.clone(),
                        mf.clone(),
                        vf.clone(),
                        EPSILON,
                        dyf.clone(),
                    ));
                }),
            };
            tracing::info!(
                norm = norm.name,
                op = op.name(),
                ours,
                flex,
                "BatchNorm timed"
            );
            rows.push(NormRow {
                norm: norm.clone(),
                op,
                ours,
                flex,
                pytorch: None,
            });
        }
    }
    rows
}

/// The rows at input side `size`, with PyTorch's times from `torch`
/// (scripts/bench_torch_ops.py's `norm` lines).
pub fn run(
    size: usize,
    batch: usize,
    min_seconds: f64,
    torch: &[serde_json::Value],
) -> Result<Vec<NormRow>> {
    let torch: Vec<TorchRow> = torch
        .iter()
        .filter(|v| v.get("norm").is_some())
        .map(|v| serde_json::from_value(v.clone()))
        .collect::<Result<_, _>>()?;
    let mut rows = burn_rows(size, batch, min_seconds);
    for row in &mut rows {
        row.pytorch = torch
            .iter()
            .find(|t| t.norm == row.norm.name && t.op == row.op)
            .map(|t| t.ms);
    }
    Ok(rows)
}

pub fn print(rows: &[NormRow], size: usize, batch: usize, threads: usize) {
    crate::outln!(
        "ResNet18 BatchNorms (training mode) at {size}x{size}, batch {batch}, {threads} threads; \
         ms per call"
    );
    let table: Vec<super::OpRow> = rows
        .iter()
        .map(|r| {
            let shape = format!(
                "{} {}x{}x{}",
                r.norm.name, r.norm.channels, r.norm.side, r.norm.side
            );
            (shape, r.norm.count, r.op.name(), r.ours, r.flex, r.pytorch)
        })
        .collect();
    super::print_op_table(&table);
}
