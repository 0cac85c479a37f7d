//! `deepinsight bench ops`: ResNet18's convolutions one layer shape at a time, forward, input
//! gradient and weight gradient, in milliseconds per call: on model/conv's kernels, on Burn
//! Flex's own ops (the path before them), and with `--pytorch` in PyTorch
//! (scripts/bench_torch_ops.py: `conv2d` and `aten.convolution_backward`) in the same run.
//! With each shape's count in the network, the rows add up to where a training step's
//! convolution time goes.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::backend::Flex;
use burn::backend::ops::{ConvOptions, ModuleOps};
use rand::SeedableRng;

use crate::model::conv::kernels::{self, Geometry};
use crate::model::flex;

pub struct OpsBench {
    /// Input image side (64 or 224).
    pub size: usize,
    pub batch: usize,
    pub threads: usize,
    /// Least time spent timing each op (after one untimed call).
    pub min_seconds: f64,
    pub pytorch: Option<PathBuf>,
}

/// One convolution shape of ResNet18 (width 64, 3 input channels).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Layer {
    pub name: &'static str,
    /// How many convolutions of this shape the network has.
    pub count: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    /// Input side.
    pub side: usize,
    pub kernel: usize,
    pub stride: usize,
}

impl Layer {
    fn pad(&self) -> usize {
        self.kernel / 2
    }

    fn geometry(&self, batch: usize) -> Geometry {
        let p = self.pad();
        Geometry::new(
            [batch, self.in_channels, self.side, self.side],
            [
                self.out_channels,
                self.in_channels,
                self.kernel,
                self.kernel,
            ],
            [self.stride; 2],
            [(p, p); 2],
            [1, 1],
        )
    }
}

/// The distinct convolution shapes of ResNet18 at input side `size`.
pub fn layers(size: usize) -> Vec<Layer> {
    let layer = |name, count, in_channels, out_channels, side, kernel, stride| Layer {
        name,
        count,
        in_channels,
        out_channels,
        side,
        kernel,
        stride,
    };
    let s = size / 4;
    vec![
        layer("stem 7x7/2", 1, 3, 64, size, 7, 2),
        layer("layer1 3x3", 4, 64, 64, s, 3, 1),
        layer("layer2 3x3/2", 1, 64, 128, s, 3, 2),
        layer("layer2 3x3", 3, 128, 128, s / 2, 3, 1),
        layer("layer2 down 1x1/2", 1, 64, 128, s, 1, 2),
        layer("layer3 3x3/2", 1, 128, 256, s / 2, 3, 2),
        layer("layer3 3x3", 3, 256, 256, s / 4, 3, 1),
        layer("layer3 down 1x1/2", 1, 128, 256, s / 2, 1, 2),
        layer("layer4 3x3/2", 1, 256, 512, s / 4, 3, 2),
        layer("layer4 3x3", 3, 512, 512, s / 8, 3, 1),
        layer("layer4 down 1x1/2", 1, 256, 512, s / 4, 1, 2),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Forward,
    Input,
    Weight,
}

impl Op {
    const ALL: [Op; 3] = [Op::Forward, Op::Input, Op::Weight];

    fn name(self) -> &'static str {
        match self {
            Op::Forward => "forward",
            Op::Input => "input grad",
            Op::Weight => "weight grad",
        }
    }
}

pub struct OpRow {
    pub layer: Layer,
    pub op: Op,
    /// Timed on the unfolded (im2col) path where the Winograd one applies: a row for
    /// comparison, left out of the totals.
    pub unfolded: bool,
    /// Milliseconds per call.
    pub ours: f64,
    pub flex: f64,
    pub pytorch: Option<f64>,
}

#[derive(serde::Deserialize)]
struct TorchRow {
    layer: String,
    op: Op,
    ms: f64,
}

fn burn_rows(bench: &OpsBench) -> Vec<OpRow> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut rows = Vec::new();
    for layer in layers(bench.size) {
        let g = layer.geometry(bench.batch);
        let x_shape = [bench.batch, layer.in_channels, layer.side, layer.side];
        let w_shape = [
            layer.out_channels,
            layer.in_channels,
            layer.kernel,
            layer.kernel,
        ];
        let x = super::random(x_shape.iter().product(), &mut rng);
        let w = super::random(w_shape.iter().product(), &mut rng);
        let dy = super::random(g.output_len(), &mut rng);
        let p = layer.pad();
        let options = ConvOptions::new([layer.stride; 2], [p, p], [1, 1], 1);
        let (xf, wf) = (
            flex::tensor(x.clone(), x_shape),
            flex::tensor(w.clone(), w_shape),
        );
        let dyf = flex::tensor(dy.clone(), g.output_shape());
        for op in Op::ALL {
            let ours = match op {
                Op::Forward => super::time_ms(bench.min_seconds, || {
                    let mut y = vec![0.0; g.output_len()];
                    kernels::forward(&g, &x, &w, &mut y);
                }),
                Op::Input => super::time_ms(bench.min_seconds, || {
                    let mut dx = vec![0.0; x.len()];
                    kernels::backward_input(&g, &w, &dy, &mut dx);
                }),
                Op::Weight => super::time_ms(bench.min_seconds, || {
                    let mut dw = vec![0.0; w.len()];
                    kernels::backward_weight(&g, &x, &dy, &mut dw);
                }),
            };
            let flex = match op {
                Op::Forward => super::time_ms(bench.min_seconds, || {
                    drop(Flex::conv2d(xf.clone(), wf.clone(), None, options.clone()));
                }),
                Op::Input => super::time_ms(bench.min_seconds, || {
                    drop(Flex::conv2d_x_backward(
                        xf.clone(),
                        wf.clone(),
                        dyf.clone(),
                        options.clone(),
                    ));
                }),
                Op::Weight => super::time_ms(bench.min_seconds, || {
                    drop(Flex::conv2d_weight_backward(
                        xf.clone(),
                        wf.clone(),
                        dyf.clone(),
                        options.clone(),
                    ));
                }),
            };
            tracing::info!(layer = layer.name, op = op.name(), ours, flex, "op timed");
            rows.push(OpRow {
                layer: layer.clone(),
                op,
                unfolded: false,
                ours,
                flex,
                pytorch: None,
            });
            let unfolded = match op {
                Op::Forward if kernels::uses_winograd(&g) => {
                    super::time_ms(bench.min_seconds, || {
                        let mut y = vec![0.0; g.output_len()];
                        kernels::forward_unfolded(&g, &x, &w, &mut y);
                    })
                }
                Op::Input if kernels::uses_winograd(&g) => {
                    super::time_ms(bench.min_seconds, || {
                        let mut dx = vec![0.0; x.len()];
                        kernels::backward_input_unfolded(&g, &w, &dy, &mut dx);
                    })
                }
                _ => continue,
            };
            rows.push(OpRow {
                layer: layer.clone(),
                op,
                unfolded: true,
                ours: unfolded,
                flex,
                pytorch: None,
            });
        }
    }
    rows
}

/// The same ops in PyTorch, through scripts/bench_torch_ops.py: one JSON object per
/// convolution (`layer`) or BatchNorm (`norm`) op.
fn torch_lines(bench: &OpsBench, python: &Path) -> Result<Vec<serde_json::Value>> {
    let args = [
        "--layers".into(),
        serde_json::to_string(&layers(bench.size))?,
        "--norms".into(),
        serde_json::to_string(&super::norm::norms(bench.size))?,
        "--batch".into(),
        bench.batch.to_string(),
        "--threads".into(),
        bench.threads.to_string(),
        "--min-seconds".into(),
        bench.min_seconds.to_string(),
    ];
    super::python_json_lines(python, "bench_torch_ops.py", &args)
}

/// The convolution rows and the BatchNorm rows.
pub fn run(bench: &OpsBench) -> Result<(Vec<OpRow>, Vec<super::norm::NormRow>)> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(bench.threads)
        .build_global()
        .context("cannot size the thread pool")?;
    let lines = match &bench.pytorch {
        Some(python) => torch_lines(bench, python)?,
        None => Vec::new(),
    };
    let torch: Vec<TorchRow> = lines
        .iter()
        .filter(|v| v.get("layer").is_some())
        .map(|v| serde_json::from_value(v.clone()))
        .collect::<Result<_, _>>()?;
    let mut rows = burn_rows(bench);
    for row in &mut rows {
        row.pytorch = torch
            .iter()
            .find(|t| t.layer == row.layer.name && t.op == row.op)
            .map(|t| t.ms);
    }
    Ok((
        rows,
        super::norm::run(bench.size, bench.batch, bench.min_seconds, &lines)?,
    ))
}

/// The convolution table, then the BatchNorm table, each with its totals over the network
/// (each shape times its count).
pub fn print((rows, norms): &(Vec<OpRow>, Vec<super::norm::NormRow>), bench: &OpsBench) {
    crate::outln!(
        "ResNet18 convolutions at {0}x{0}, batch {1}, {2} threads; ms per call",
        bench.size,
        bench.batch,
        bench.threads
    );
    let table: Vec<super::OpRow> = rows
        .iter()
        .map(|r| {
            if r.unfolded {
                let name = format!("{} unfolded", r.layer.name);
                (name, 0, r.op.name(), r.ours, r.flex, r.pytorch)
            } else {
                let name = r.layer.name.to_string();
                (name, r.layer.count, r.op.name(), r.ours, r.flex, r.pytorch)
            }
        })
        .collect();
    super::print_op_table(&table);
    crate::outln!();
    super::norm::print(norms, bench.size, bench.batch, bench.threads);
}
