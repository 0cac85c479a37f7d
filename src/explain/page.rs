//! The explanation's report.html: the run's page, then what `explain` found (the best
//! features, the activation maps) and the checksums of both folders' files.

use std::collections::BTreeMap;

use anyhow::Result;

use super::ExplainReport;
use crate::report::{self, Page, Section, escape, png, table};
use crate::run::RunDir;

/// `pictures`: (file name, PNG bytes, caption); `files`: the explanation's files and their
/// sha256.
pub(super) fn page(
    run_dir: &RunDir,
    explained: &ExplainReport,
    pictures: &[(&str, &[u8], &str)],
    files: &BTreeMap<String, String>,
) -> Result<String> {
    let manifest = &run_dir.manifest;
    let mut page = Page::new(format!("deepinsight explanation: {}", manifest.config.name));
    for section in report::run_sections(manifest, &|name| run_dir.file(name))? {
        page.push(section);
    }
    page.push(summary(run_dir, explained));
    let top: Vec<Vec<String>> = explained
        .top
        .iter()
        .enumerate()
        .map(|(i, (modality, feature, score))| {
            vec![
                (i + 1).to_string(),
                modality.clone(),
                feature.clone(),
                format!("{score:.3}"),
            ]
        })
        .collect();
    page.push(Section::new(
        "top-features",
        "Top features",
        format!(
            "<p class=\"note\">A feature's score is the map value at its pixel, averaged over \
             each class's explained images, the largest over the classes; feature_scores.csv \
             has every feature.</p>{}",
            table(&["rank", "modality", "feature", "score"], &top)
        ),
    ));
    let figures: String = pictures
        .iter()
        .map(|(name, bytes, caption)| png(bytes, name, caption))
        .collect();
    page.push(Section::new("explain-pictures", "Activation maps", figures));
    page.push(report::artefacts(
        "explain-artefacts",
        "Explanation artefacts",
        files,
        &[],
        "sha256 of the explanation's files; the run's files are checked against its manifest \
         when explain opens it (run folder artefacts: see manifest.json there).",
    ));
    page.push(report::artefacts(
        "artefacts",
        "Run artefacts",
        &manifest.files,
        &manifest.inputs,
        "manifest.json of the run folder records these checksums.",
    ));
    Ok(page.html())
}

fn summary(run_dir: &RunDir, explained: &ExplainReport) -> Section {
    let mut per_class: Vec<(&String, &usize)> = explained.per_class.iter().collect();
    per_class.sort();
    let rows = vec![
        vec!["run folder".into(), run_dir.dir.display().to_string()],
        vec!["model sha256".into(), explained.model_sha256.clone()],
        vec![
            "method".into(),
            format!("{:?}", explained.method).to_lowercase(),
        ],
        vec!["stage".into(), explained.stage.to_string()],
        vec![
            "target class".into(),
            format!("{:?}", explained.target).to_lowercase(),
        ],
        vec!["samples explained".into(), explained.samples.to_string()],
        vec![
            "per class".into(),
            per_class
                .iter()
                .map(|(c, n)| format!("{c}: {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        ],
        vec![
            "accuracy on them".into(),
            explained
                .accuracy
                .map_or("- (classes unknown)".into(), |a| format!("{a:.3}")),
        ],
        vec![
            "features selected".into(),
            format!(
                "{} of {} (score at least {})",
                explained.selected, explained.features, explained.threshold
            ),
        ],
    ];
    Section::new(
        "explanation",
        "Explanation",
        format!(
            "<p class=\"note\">Which pixels, and so which features, moved the model's score for \
             the target class, on the samples below ({}).</p>{}",
            escape("explain_report.json holds the same numbers"),
            table(&["", ""], &rows)
        ),
    )
}
