//! `deepinsight bench accuracy`: `deepinsight evaluate` on each cohort's pipeline, as written
//! and with each lever (a set of pipeline settings) on top, in one table: the CNN's macro-F1
//! over the folds, its paired difference from the pipeline as written on the same folds, and
//! its difference from the best baseline. docs/accuracy.md is made of these tables.
//!
//! Every evaluation is an ordinary `evaluate` run named `<pipeline>-<lever>` in the output
//! folder: it resumes like one, and a finished one whose fingerprint (settings and input
//! bytes) matches is read back instead of computed again, so a table grows lever by lever.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::config::PipelineConfig;
use crate::crossval::stats::{self, Difference, Spread};
use crate::evaluate::{self, CNN, EvaluateOptions, Evaluation, Outcome};

/// The pipeline as written: every table's reference row.
pub const AS_WRITTEN: &str = "as-written";

/// A named set of pipeline settings (`KEY=VALUE`, as `--set` takes them).
#[derive(Debug, Clone, PartialEq)]
pub struct Lever {
    pub name: String,
    pub settings: Vec<String>,
}

impl Lever {
    /// `NAME:KEY=VALUE[,KEY=VALUE...]`, e.g. `ema:train.ema_epochs=2`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, settings) = text
            .split_once(':')
            .ok_or_else(|| format!("'{text}': expected NAME:KEY=VALUE[,KEY=VALUE...]"))?;
        let name = name.trim();
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if name.is_empty() || !name.chars().all(valid) || name == AS_WRITTEN {
            return Err(format!(
                "'{name}': a lever's name is letters, digits, '-' and '_' (and not {AS_WRITTEN})"
            ));
        }
        // A comma starts a new setting only where a key follows, so that TOML arrays keep
        // theirs.
        let mut parsed: Vec<String> = Vec::new();
        for part in settings.split(',') {
            match parsed.last_mut() {
                Some(last) if !part.contains('=') => {
                    last.push(',');
                    last.push_str(part);
                }
                _ => parsed.push(part.trim().to_string()),
            }
        }
        if parsed.iter().any(|s| !s.contains('=')) {
            return Err(format!("'{text}': every setting is KEY=VALUE"));
        }
        Ok(Self {
            name: name.to_string(),
            settings: parsed,
        })
    }
}

pub struct AccuracyBench {
    pub pipelines: Vec<PathBuf>,
    pub levers: Vec<Lever>,
    /// Where the evaluations are kept.
    pub out: PathBuf,
}

/// One pipeline under one lever.
#[derive(Debug, Clone)]
pub struct Row {
    pub cohort: String,
    pub lever: String,
    pub samples: usize,
    pub folds: usize,
    pub cnn: Spread,
    pub cnn_auroc: Option<Spread>,
    /// Fold by fold against the same pipeline as written (None on its own row).
    pub vs_written: Option<Difference>,
    pub best_baseline: Option<(String, Spread)>,
    pub vs_best: Option<Difference>,
    /// Minutes this invocation spent; None when a finished evaluation was read back.
    pub minutes: Option<f64>,
}

pub fn run(bench: &AccuracyBench) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for pipeline in &bench.pipelines {
        let written = PipelineConfig::from_file(pipeline)?;
        let mut reference: Option<Evaluation> = None;
        let as_written = Lever {
            name: AS_WRITTEN.into(),
            settings: Vec::new(),
        };
        for lever in std::iter::once(&as_written).chain(&bench.levers) {
            let config = lever_config(pipeline, &written.name, lever, &bench.out)?;
            same_folds(&config, &written)
                .with_context(|| format!("{} with lever {}", pipeline.display(), lever.name))?;
            crate::progress::line(format_args!("{} with {}", written.name, lever.name));
            let started = Instant::now();
            let (evaluation, computed) = evaluation(pipeline, &config)?;
            let row = row(
                &written.name,
                &lever.name,
                &evaluation,
                reference.as_ref(),
                computed.then(|| started.elapsed().as_secs_f64() / 60.0),
            )?;
            rows.push(row);
            if reference.is_none() {
                reference = Some(evaluation);
            }
        }
    }
    Ok(rows)
}

/// The pipeline with the lever's settings, named `<name>-<lever>`, kept under `out`.
fn lever_config(pipeline: &Path, name: &str, lever: &Lever, out: &Path) -> Result<PipelineConfig> {
    let mut settings = lever.settings.clone();
    settings.push(format!(
        "name={}",
        toml_string(&format!("{name}-{}", lever.name))
    ));
    settings.push(format!(
        "output_dir={}",
        toml_string(&out.display().to_string())
    ));
    PipelineConfig::from_file_with(pipeline, &settings)
        .with_context(|| format!("lever {}", lever.name))
}

/// The folds come from the seed, the labels and the fold settings: a lever that changes any
/// of them would be compared with the pipeline as written on other test samples.
fn same_folds(config: &PipelineConfig, written: &PipelineConfig) -> Result<()> {
    let folds = |c: &PipelineConfig| {
        (
            c.seed,
            c.evaluate.folds,
            c.evaluate.repeats,
            c.data.labels.clone(),
            c.data.label_column.clone(),
        )
    };
    if folds(config) != folds(written) {
        bail!(
            "its folds are not those of the pipeline as written: a lever may not change the              seed, the labels or evaluate.folds/repeats"
        );
    }
    Ok(())
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The finished evaluation of `config`: read back when one with its fingerprint is in the
/// output folder (under any lever's name: two levers that come to the same settings, or a
/// lever that a new default made the pipeline as written, are computed once), else computed
/// (true).
fn evaluation(pipeline: &Path, config: &PipelineConfig) -> Result<(Evaluation, bool)> {
    let fingerprint = evaluate::fingerprint(config, false)?;
    let own = evaluate::output_dir(config);
    let finished = std::fs::read_dir(&config.output_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|dir| {
            dir.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with("-evaluation"))
        });
    // Its own folder first, then the others in name order.
    let mut others: Vec<PathBuf> = finished.filter(|dir| *dir != own).collect();
    others.sort();
    for dir in std::iter::once(own).chain(others) {
        if let Ok(bytes) = std::fs::read(dir.join(evaluate::FILE))
            && let Ok(done) = serde_json::from_slice::<Evaluation>(&bytes)
            && done.fingerprint == fingerprint
        {
            return Ok((done, false));
        }
    }
    let options = EvaluateOptions {
        also_read: vec![pipeline.to_path_buf()],
        ..Default::default()
    };
    match evaluate::run(config, &options)? {
        Outcome::Done(evaluation, _) => Ok((*evaluation, true)),
        _ => bail!("{}: the evaluation did not finish", config.name),
    }
}

fn row(
    cohort: &str,
    lever: &str,
    evaluation: &Evaluation,
    reference: Option<&Evaluation>,
    minutes: Option<f64>,
) -> Result<Row> {
    let cnn = evaluation
        .models
        .iter()
        .find(|m| m.model == CNN)
        .with_context(|| format!("{cohort} with {lever}: no CNN in the evaluation"))?;
    let best_baseline = evaluation.comparison.as_ref().and_then(|c| {
        let model = evaluation.models.iter().find(|m| m.model == c.baseline)?;
        Some((c.baseline.clone(), model.macro_f1))
    });
    Ok(Row {
        cohort: cohort.to_string(),
        lever: lever.to_string(),
        samples: evaluation.samples,
        folds: evaluation.settings.folds * evaluation.settings.repeats,
        cnn: cnn.macro_f1,
        cnn_auroc: cnn.auroc,
        vs_written: reference.map(|r| paired(evaluation, r)).transpose()?,
        best_baseline,
        vs_best: evaluation.comparison.as_ref().map(|c| c.difference_points),
        minutes,
    })
}

/// The CNN's macro-F1 in `evaluation` minus in `reference`, fold by fold, in points, with
/// the corrected resampled t interval. The folds must be the same ones: a lever that changes
/// the seed or the folds is compared with nothing.
fn paired(evaluation: &Evaluation, reference: &Evaluation) -> Result<Difference> {
    let cnn = |e: &Evaluation| -> Vec<(usize, usize, usize, usize, f64)> {
        e.per_fold
            .iter()
            .filter(|s| s.model == CNN)
            .map(|s| (s.repeat, s.fold, s.train, s.test, s.macro_f1))
            .collect()
    };
    let (ours, theirs) = (cnn(evaluation), cnn(reference));
    let same_folds = ours.len() == theirs.len()
        && ours
            .iter()
            .zip(&theirs)
            .all(|(a, b)| (a.0, a.1, a.2, a.3) == (b.0, b.1, b.2, b.3));
    if !same_folds || ours.len() < 2 {
        bail!(
            "{}: its folds are not those of {} (a lever may not change the seed or the folds)",
            evaluation.pipeline,
            reference.pipeline
        );
    }
    let differences: Vec<f64> = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| 100.0 * (a.4 - b.4))
        .collect();
    let mean = |f: fn(&(usize, usize, usize, usize, f64)) -> usize| {
        ours.iter().map(|r| f(r) as f64).sum::<f64>() / ours.len() as f64
    };
    Ok(stats::corrected_interval(
        &differences,
        mean(|r| r.3) / mean(|r| r.2),
    ))
}

pub fn print(rows: &[Row]) {
    println!(
        "{:<12} {:<16} {:>7} {:>5} {:>15} {:>22} {:>28} {:>22} {:>15} {:>8}",
        "cohort",
        "lever",
        "samples",
        "folds",
        "CNN macro-F1",
        "vs as written (pts)",
        "best baseline",
        "CNN - best (pts)",
        "CNN AUROC",
        "minutes"
    );
    let spread = |s: &Spread| format!("{:.3} ± {:.3}", s.mean, s.sd);
    let difference = |d: &Difference| format!("{:+.1} ({:+.1} to {:+.1})", d.mean, d.low, d.high);
    for r in rows {
        println!(
            "{:<12} {:<16} {:>7} {:>5} {:>15} {:>22} {:>28} {:>22} {:>15} {:>8}",
            r.cohort,
            r.lever,
            r.samples,
            r.folds,
            spread(&r.cnn),
            r.vs_written.as_ref().map_or("-".into(), difference),
            r.best_baseline
                .as_ref()
                .map_or("-".into(), |(name, s)| format!("{name} {}", spread(s))),
            r.vs_best.as_ref().map_or("-".into(), difference),
            r.cnn_auroc.as_ref().map_or("-".into(), spread),
            r.minutes.map_or("(kept)".into(), |m| format!("{m:.1}")),
        );
    }
    println!(
        "macro-F1 mean ± sd over the test folds; differences are paired fold by fold, in points, \
         with the corrected resampled t 95% interval; (kept): a finished evaluation with the \
         same settings and data was read back"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lever_is_a_name_and_settings_and_arrays_keep_their_commas() {
        let lever = Lever::parse("wide:model.width=32,train.epochs=40").unwrap();
        assert_eq!(lever.name, "wide");
        assert_eq!(lever.settings, ["model.width=32", "train.epochs=40"]);
        let array = Lever::parse("a:x.y=[1, 2],z=3").unwrap();
        assert_eq!(array.settings, ["x.y=[1, 2]", "z=3"]);
        assert!(Lever::parse("no-colon").is_err());
        assert!(Lever::parse("bad name:a=1").is_err());
        assert!(Lever::parse(&format!("{AS_WRITTEN}:a=1")).is_err());
        assert!(Lever::parse("n:justakey").is_err());
    }
}
