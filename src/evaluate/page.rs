//! The evaluation's report.html: the pipeline, the cohort it was scored on, every model's
//! scores over the test folds with the chart, and the checksums of the files written.

use std::collections::BTreeMap;

use super::CNN;
use super::report::Evaluation;
use crate::config::PipelineConfig;
use crate::crossval::stats::Spread;
use crate::omics::Cohort;
use crate::report::{self, Page, Section, escape, png, table};

/// `chart`: evaluation.png's bytes; `files`: the evaluation's files and their sha256.
pub(super) fn page(
    config: &PipelineConfig,
    cohort: &Cohort,
    evaluation: &Evaluation,
    chart: &[u8],
    files: &BTreeMap<String, String>,
) -> String {
    let mut page = Page::new(format!("deepinsight evaluation: {}", config.name));
    page.push(report::pipeline(config));
    page.push(cohort_section(cohort));
    page.push(scores(evaluation, chart));
    page.push(report::artefacts(
        "artefacts",
        "Artefacts",
        files,
        &[],
        "sha256 of the evaluation's files, as written with this page.",
    ));
    page.html()
}

fn cohort_section(cohort: &Cohort) -> Section {
    let rows: Vec<Vec<String>> = cohort
        .classes
        .iter()
        .enumerate()
        .map(|(k, class)| {
            let n = cohort.labels.iter().filter(|&&l| l == k).count();
            vec![class.clone(), n.to_string()]
        })
        .collect();
    let body = format!(
        "<p>{} aligned samples, {} dropped.</p>{}{}",
        cohort.sample_ids.len(),
        cohort.dropped.len(),
        table(&["class", "samples"], &rows),
        report::dropped(&cohort.dropped)
    );
    Section::new("cohort", "Cohort", body)
}

fn scores(evaluation: &Evaluation, chart: &[u8]) -> Section {
    let cell = |s: &Spread| format!("{:.3} ± {:.3}", s.mean, s.sd);
    let rows: Vec<Vec<String>> = evaluation
        .models
        .iter()
        .map(|m| {
            vec![
                m.model.clone(),
                cell(&m.accuracy),
                cell(&m.balanced_accuracy),
                cell(&m.macro_f1),
                m.auroc.as_ref().map_or("-".into(), cell),
            ]
        })
        .collect();
    let comparison = match &evaluation.comparison {
        Some(c) => {
            let d = &c.difference_points;
            format!(
                "CNN minus {}: macro-F1 {:+.1} points, 95% interval {:+.1} to {:+.1} \
                 (corrected resampled t over the folds).",
                c.baseline, d.mean, d.low, d.high
            )
        }
        None if evaluation.models.iter().all(|m| m.model != CNN) => {
            "Baselines only: no CNN was trained.".into()
        }
        None => "No baseline to compare the CNN with.".into(),
    };
    let s = &evaluation.settings;
    let body = format!(
        "<p class=\"note\">{}-fold cross-validation{}: every step (normalisation, selection, \
         layout, network, epoch) was fitted on each fold's training samples, and each test fold \
         was scored once. Mean ± sd over the folds; the majority class is the trivial \
         baseline.</p>{}<p>{}</p>{}",
        s.folds,
        if s.repeats > 1 {
            format!(", repeated {} times", s.repeats)
        } else {
            String::new()
        },
        table(
            &[
                "model",
                "accuracy",
                "balanced accuracy",
                "macro-F1",
                "AUROC"
            ],
            &rows
        ),
        escape(&comparison),
        png(chart, super::PLOT, "macro-F1 on each test fold")
    );
    Section::new("evaluation", "Evaluation", body)
}
