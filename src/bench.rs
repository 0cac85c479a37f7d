//! `deepinsight bench layout`: times the layout stages at the sizes users meet and prints a
//! table with the targets and pyDeepInsight's times measured on this kind of machine.
//!
//! Peak memory is the process's high-water mark (VmHWM), reset before each case through
//! /proc/self/clear_refs, so each row shows the resident peak reached during that case.

pub(crate) mod accuracy;
pub(crate) mod export;
pub(crate) mod load;
pub(crate) mod model;
pub(crate) mod norm;
pub(crate) mod ops;
pub(crate) mod score;
pub(crate) mod serve;
pub(crate) mod train;

use std::time::Instant;

use anyhow::Result;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

use crate::config::{Collisions, EmbedMethod, LayoutSettings};
use crate::layout::{Layout, grid};
use crate::render::RenderPlan;

/// Runs `step` once untimed, then until `min_seconds` have passed (at least twice); returns
/// items per second, `batch` items a step.
pub(crate) fn rate(batch: usize, min_seconds: f64, mut step: impl FnMut()) -> f64 {
    step();
    let started = Instant::now();
    let mut steps = 0;
    while steps < 2 || started.elapsed() < std::time::Duration::from_secs_f64(min_seconds) {
        step();
        steps += 1;
    }
    (steps * batch) as f64 / started.elapsed().as_secs_f64()
}

/// Milliseconds per call of `f` (`rate`'s timing, one call a step).
pub(crate) fn time_ms(min_seconds: f64, f: impl FnMut()) -> f64 {
    1e3 / rate(1, min_seconds, f)
}

pub(crate) fn random(n: usize, rng: &mut impl rand::Rng) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// One row of `print_op_table`: shape, count in the network (0: a total), op, then ours, Flex's
/// and PyTorch's ms per call.
pub(crate) type OpRow = (String, usize, &'static str, f64, f64, Option<f64>);

/// The rows, then each op's network total (in the order the ops first appear): every shape's
/// time times its count, summed (PyTorch's only when every shape has it).
pub(crate) fn print_op_table(rows: &[OpRow]) {
    crate::outln!(
        "{:<22} {:>5} {:>12} {:>9} {:>9} {:>9} {:>10} {:>13}",
        "shape",
        "count",
        "op",
        "ours",
        "flex",
        "pytorch",
        "flex/ours",
        "ours/pytorch"
    );
    let mut ops: Vec<&'static str> = Vec::new();
    for row in rows {
        if !ops.contains(&row.2) {
            ops.push(row.2);
        }
    }
    let totals = ops.into_iter().map(|op| {
        let of_op = rows.iter().filter(|r| r.2 == op);
        let sum = |f: fn(&OpRow) -> f64| of_op.clone().map(|r| r.1 as f64 * f(r)).sum::<f64>();
        let torch = of_op.clone().map(|r| r.5.map(|t| r.1 as f64 * t)).sum();
        (
            "network total".to_string(),
            0,
            op,
            sum(|r| r.3),
            sum(|r| r.4),
            torch,
        )
    });
    for (name, count, op, ours, flex, pytorch) in rows.iter().cloned().chain(totals) {
        let count = if count == 0 {
            String::new()
        } else {
            count.to_string()
        };
        crate::outln!(
            "{:<22} {:>5} {:>12} {:>9.3} {:>9.3} {:>9} {:>10.2} {:>13}",
            name,
            count,
            op,
            ours,
            flex,
            pytorch.map_or_else(|| "-".to_string(), |v| format!("{v:.3}")),
            flex / ours,
            pytorch.map_or_else(|| "-".to_string(), |t| format!("{:.2}", ours / t))
        );
    }
}

/// Runs `scripts/<script>` under `python` with `args` and reads the JSON object on each line
/// it prints (the PyTorch side of `bench model` and `bench ops`).
pub(crate) fn python_json_lines<T: serde::de::DeserializeOwned>(
    python: &std::path::Path,
    script: &str,
    args: &[String],
) -> Result<Vec<T>> {
    use anyhow::Context;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    let out = std::process::Command::new(python)
        .arg(&path)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !out.status.success() {
        anyhow::bail!(
            "{} {} failed: {}",
            python.display(),
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).with_context(|| format!("{script} printed {l}")))
        .collect()
}

pub struct Row {
    pub case: String,
    pub seconds: f64,
    pub peak_mb: Option<f64>,
    /// The target time, in seconds (docs/layout.md).
    pub target: Option<f64>,
    /// pyDeepInsight 0.2.3, one thread, measured on this 2-core machine (docs/layout.md).
    pub reference: Option<f64>,
}

/// Omics-like data: samples x features from 12 latent factors plus noise, in [0, 1].
pub fn synthetic(samples: usize, features: usize, seed: u64) -> Array2<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let factors = 12;
    let z = Array2::<f32>::from_shape_fn((samples, factors), |_| rng.sample(StandardNormal));
    let w = Array2::<f32>::from_shape_fn((factors, features), |(f, j)| {
        if j % factors == f {
            1.0
        } else {
            0.15 * rng.sample::<f32, _>(StandardNormal)
        }
    });
    let mut x = z.dot(&w);
    x.mapv_inplace(|v| 1.0 / (1.0 + (-v).exp()));
    x += &Array2::from_shape_fn((samples, features), |_| 0.05 * rng.random::<f32>());
    x
}

/// A fit to time: its size and, per method, (target, pyDeepInsight reference) in seconds.
struct FitCase {
    samples: usize,
    features: usize,
    tsne: (Option<f64>, Option<f64>),
    pca: (Option<f64>, Option<f64>),
}

/// Modality name and its columns, as `Layout::fit` takes them.
type Groups = Vec<(String, Vec<usize>)>;

/// Layout inputs for one modality "m" of `features` columns: its group and the feature names.
fn one_modality(features: usize) -> (Groups, Vec<(String, String)>) {
    let groups = vec![("m".to_string(), (0..features).collect())];
    let names = (0..features)
        .map(|j| ("m".to_string(), format!("f{j}")))
        .collect();
    (groups, names)
}

/// A pipeline over the synthetic cohort in `cohort` (as `synth::write_cohort` writes it):
/// `head` (name, output_dir), the `[data]` section, then `stages`.
pub(crate) fn synth_pipeline(
    head: &str,
    cohort: &std::path::Path,
    stages: &str,
) -> Result<crate::config::PipelineConfig> {
    let file = |m: &str| cohort.join(format!("{m}.parquet")).display().to_string();
    let modalities: Vec<String> = ["genomics", "metabolomics", "microbiome", "proteomics"]
        .iter()
        .map(|m| format!("{m} = \"{}\"", file(m)))
        .collect();
    crate::config::PipelineConfig::from_toml(&format!(
        "{head}\n[data]\nlabels = \"{}\"\n[data.modalities]\n{}\n{stages}",
        file("labels"),
        modalities.join("\n")
    ))
}

fn peak_reset() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn time<T>(f: impl FnOnce() -> T) -> (T, f64, Option<f64>) {
    peak_reset();
    let started = Instant::now();
    let out = f();
    (out, started.elapsed().as_secs_f64(), peak_mb())
}

/// A fit shorter than this (seconds) is repeated and its median reported: on a shared
/// machine a single short run can be off by a third.
const SHORT_CASE: f64 = 1.0;
const SHORT_REPEATS: usize = 5;

/// Sizes: (samples, features) of the fits; `quick` shrinks everything for a smoke run.
pub fn layout(quick: bool, only: Option<&str>) -> Result<Vec<Row>> {
    let wanted = |case: &str| only.is_none_or(|o| case.contains(o));
    let fits: &[FitCase] = if quick {
        &[FitCase {
            samples: 60,
            features: 400,
            tsne: (None, None),
            pca: (None, None),
        }]
    } else {
        &[
            FitCase {
                samples: 1000,
                features: 5000,
                tsne: (Some(2.0), Some(19.0)),
                pca: (Some(0.05), Some(0.14)),
            },
            FitCase {
                samples: 200,
                features: 20000,
                tsne: (Some(15.0), Some(186.0)),
                pca: (None, None),
            },
        ]
    };
    let mut rows = Vec::new();
    for case in fits {
        let (samples, features) = (case.samples, case.features);
        let x = synthetic(samples, features, 1);
        let (groups, names) = one_modality(features);
        for (method, (target, reference)) in
            [(EmbedMethod::Pca, case.pca), (EmbedMethod::Tsne, case.tsne)]
        {
            let config = LayoutSettings {
                method,
                mode: crate::config::ChannelMode::Shared,
                ..LayoutSettings::default()
            };
            let case = format!("{method:?} fit {samples} x {features}").to_lowercase();
            if !wanted(&case) {
                continue;
            }
            let fit = || Layout::fit(x.view(), &groups, &names, &config, 1);
            let (fitted, mut seconds, peak) = time(fit);
            fitted?;
            if seconds < SHORT_CASE {
                let mut runs = vec![seconds];
                for _ in 1..SHORT_REPEATS {
                    let (fitted, s, _) = time(fit);
                    fitted?;
                    runs.push(s);
                }
                runs.sort_by(f64::total_cmp);
                seconds = runs[runs.len() / 2];
            }
            rows.push(Row {
                case,
                seconds,
                peak_mb: peak,
                target,
                reference,
            });
        }
    }
    let assigns: &[(usize, Option<f64>, Option<f64>)] = if quick {
        &[(400, None, None)]
    } else {
        &[(5000, None, Some(400.0)), (20000, Some(30.0), None)]
    };
    for &(features, target, reference) in assigns {
        let case = format!("assign {features} features, 224x224");
        if !wanted(&case) {
            continue;
        }
        // Clumped positions, as t-SNE leaves them: 40 Gaussian clusters of varied spread.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let centres: Vec<[f64; 3]> = (0..40)
            .map(|_| {
                [
                    rng.random_range(0.0..100.0),
                    rng.random_range(0.0..100.0),
                    rng.random_range(2.0..8.0),
                ]
            })
            .collect();
        let points = Array2::from_shape_fn((features, 2), |(i, k)| {
            let c = centres[i % centres.len()];
            c[k] + c[2] * rng.sample::<f64, _>(StandardNormal)
        });
        let (placed, seconds, peak) = time(|| grid::place(&points, 224, 224, Collisions::Assign));
        placed?;
        rows.push(Row {
            case,
            seconds,
            peak_mb: peak,
            target,
            reference,
        });
    }
    if !wanted("transform") {
        return Ok(rows);
    }
    let features = if quick { 400 } else { 5000 };
    let x = synthetic(if quick { 50 } else { 1000 }, features, 2);
    let (groups, names) = one_modality(features);
    let config = LayoutSettings {
        method: EmbedMethod::Pca,
        mode: crate::config::ChannelMode::Shared,
        ..LayoutSettings::default()
    };
    let layout = Layout::fit(x.view(), &groups, &names, &config, 1)?;
    let plan = RenderPlan::new(&layout);
    let mut one = vec![0.0; plan.image_len()];
    let repeats = 200;
    let (_, seconds, peak) = time(|| {
        for _ in 0..repeats {
            plan.render_into(x.row(0), &mut one);
        }
    });
    rows.push(Row {
        case: "transform 1 sample, 224x224".into(),
        seconds: seconds / repeats as f64,
        peak_mb: peak,
        target: Some(0.0005),
        reference: Some(0.018),
    });
    // Timed on a buffer already written once, as batch scoring and the server reuse theirs;
    // a fresh 200 MB buffer adds the kernel's page zeroing (about as much again).
    let mut batch = vec![0.0; x.nrows() * plan.image_len()];
    plan.render_batch_into(x.view(), &mut batch)?;
    let (done, seconds, peak) = time(|| plan.render_batch_into(x.view(), &mut batch));
    done?;
    rows.push(Row {
        case: format!("transform {} samples, 224x224", x.nrows()),
        seconds,
        peak_mb: peak,
        target: Some(0.05),
        reference: Some(0.08),
    });
    Ok(rows)
}

pub fn print(rows: &[Row]) {
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".to_string(), f);
    crate::outln!(
        "{:<34} {:>10} {:>9} {:>10} {:>13} {:>9}",
        "case",
        "seconds",
        "peak MB",
        "target s",
        "pyDeepInsight",
        "speed-up"
    );
    for r in rows {
        crate::outln!(
            "{:<34} {:>10.6} {:>9} {:>10} {:>13} {:>9}",
            r.case,
            r.seconds,
            opt(r.peak_mb, &|v| format!("{v:.0}")),
            opt(r.target, &|v| format!("{v}")),
            opt(r.reference, &|v| format!("{v}")),
            opt(r.reference, &|v| format!("{:.1}x", v / r.seconds)),
        );
    }
}
