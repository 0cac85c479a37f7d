//! The sections of a run's page, built from its manifest and its pictures alone, so that any
//! command holding a run folder (the run itself, `explain`) can draw them again.

use std::collections::BTreeMap;

use anyhow::Result;

use super::html::{Page, Section, escape, png, table};
use crate::config::PipelineConfig;
use crate::model::Metrics;
use crate::omics::DroppedSample;
use crate::run::manifest::InputFile;
use crate::run::{self, Manifest};

/// Dropped samples listed one by one on the page; the rest are counted.
const DROPPED_SHOWN: usize = 100;

/// The run's page: every run section, then the checksums of its files.
pub fn run_page(manifest: &Manifest, file: &dyn Fn(&str) -> Result<Vec<u8>>) -> Result<String> {
    let mut page = Page::new(format!("deepinsight run: {}", manifest.config.name));
    for section in run_sections(manifest, file)? {
        page.push(section);
    }
    page.push(artefacts(
        "artefacts",
        "Artefacts",
        &manifest.files,
        &manifest.inputs,
        "manifest.json records these checksums (and this page's), and every command that \
         opens the run folder checks the files it reads against them.",
    ));
    Ok(page.html())
}

/// Metrics, cohort, features, pictures, pathways (when selected by pathway) and the pipeline.
/// `file(name)` gives the bytes of a file of the run folder.
pub fn run_sections(
    manifest: &Manifest,
    file: &dyn Fn(&str) -> Result<Vec<u8>>,
) -> Result<Vec<Section>> {
    let mut sections = vec![
        metrics(manifest),
        cohort(manifest),
        features(manifest),
        pictures(manifest, file)?,
    ];
    sections.extend(pathways(manifest));
    sections.push(pipeline(&manifest.config));
    Ok(sections)
}

/// The settings the run used, defaults included, as a pipeline file.
pub fn pipeline(config: &PipelineConfig) -> Section {
    let text = toml::to_string_pretty(config)
        .or_else(|_| serde_json::to_string_pretty(config))
        .unwrap_or_default();
    Section::new(
        "pipeline",
        "Pipeline",
        format!(
            "<p class=\"note\">The settings of pipeline <code>{}</code> as the run used them, \
             defaults included: saved as a file, this runs the same pipeline again.</p>\
             <pre>{}</pre>",
            escape(&config.name),
            escape(&text)
        ),
    )
}

fn cohort(manifest: &Manifest) -> Section {
    let s = &manifest.samples;
    let mut body = table(
        &["aligned", "train", "validation", "test", "dropped"],
        &[vec![
            s.aligned.to_string(),
            s.train.to_string(),
            s.validation.to_string(),
            s.test.to_string(),
            s.dropped.len().to_string(),
        ]],
    );
    if s.per_class.is_empty() {
        body.push_str(
            "<p class=\"note\">Samples per class: not recorded by this run's version.</p>",
        );
    } else {
        let rows: Vec<Vec<String>> = s
            .per_class
            .iter()
            .map(|c| {
                vec![
                    c.class.clone(),
                    c.train.to_string(),
                    c.validation.to_string(),
                    c.test.to_string(),
                    (c.train + c.validation + c.test).to_string(),
                ]
            })
            .collect();
        body.push_str("<h3>Samples per class</h3>");
        body.push_str(&table(
            &["class", "train", "validation", "test", "all"],
            &rows,
        ));
    }
    body.push_str(&dropped(&s.dropped));
    Section::new("cohort", "Cohort", body)
}

fn features(manifest: &Manifest) -> Section {
    let rows: Vec<Vec<String>> = manifest
        .feature_space
        .modalities
        .iter()
        .map(|m| {
            vec![
                m.name.clone(),
                m.features.len().to_string(),
                m.dropped_constant.to_string(),
            ]
        })
        .collect();
    let mut body = table(
        &[
            "modality",
            "features kept",
            "constant on training samples (dropped)",
        ],
        &rows,
    );
    let channels: Vec<Vec<String>> = manifest
        .layout
        .iter()
        .map(|c| {
            vec![
                c.channel.clone(),
                c.features.to_string(),
                c.pixels_used.to_string(),
                format!("{:.2}", c.mean_features_per_pixel),
                c.max_features_per_pixel.to_string(),
                format!("{:.1}%", 100.0 * c.shared_fraction),
            ]
        })
        .collect();
    body.push_str("<h3>Image channels</h3>");
    body.push_str(&table(
        &[
            "channel",
            "features",
            "pixels used",
            "features per used pixel",
            "most on one pixel",
            "features sharing a pixel",
        ],
        &channels,
    ));
    Section::new("features", "Features", body)
}

fn metric_row(model: &str, split: &str, m: &Metrics) -> Vec<String> {
    vec![
        model.to_string(),
        split.to_string(),
        format!("{:.3}", m.accuracy),
        format!("{:.3}", m.balanced_accuracy),
        format!("{:.3}", m.macro_f1),
        m.auroc.map_or("-".into(), |a| format!("{a:.3}")),
    ]
}

fn metrics(manifest: &Manifest) -> Section {
    let mut rows = vec![metric_row("CNN", "validation", &manifest.metrics)];
    let majority = manifest.baseline.as_ref();
    if let Some(b) = majority {
        rows.push(metric_row("majority class", "validation", &b.validation));
    }
    if let Some(test) = &manifest.test_metrics {
        rows.push(metric_row("CNN", "test", test));
        if let Some(t) = majority.and_then(|b| b.test.as_ref()) {
            rows.push(metric_row("majority class", "test", t));
        }
        for (baseline, m) in &manifest.test_baselines {
            rows.push(metric_row(baseline.name(), "test", m));
        }
    }
    let note = if manifest.test_metrics.is_some() {
        "The validation samples chose the kept epoch, so the CNN's validation scores lean \
         optimistic; the test samples played no part in training or in any choice. The \
         baselines were fitted on the training and validation samples' features."
    } else {
        "The validation samples chose the kept epoch, so the CNN's scores lean optimistic. \
         There is no test split (train.test_fraction = 0): for an estimate no choice has seen, \
         run <code>deepinsight evaluate</code>."
    };
    let mut confusions = confusion("validation", &manifest.classes, &manifest.metrics);
    if let Some(test) = &manifest.test_metrics {
        confusions.push_str(&confusion("test", &manifest.classes, test));
    }
    let body = format!(
        "{}<p class=\"note\">{}</p><p>Kept epoch {} of {}{}.</p>{confusions}",
        table(
            &[
                "model",
                "samples",
                "accuracy",
                "balanced accuracy",
                "macro-F1",
                "AUROC"
            ],
            &rows
        ),
        note,
        manifest.model.best_epoch,
        manifest.model.history.len(),
        manifest
            .model
            .stopped_early
            .map_or(String::new(), |e| format!(
                " (stopped early after epoch {e})"
            )),
    );
    Section::new("metrics", "Metrics", body)
}

/// The CNN's confusion matrix on `split`: a row per true class, a column per predicted one.
fn confusion(split: &str, classes: &[String], metrics: &Metrics) -> String {
    if metrics.confusion.len() != classes.len() {
        return String::new();
    }
    let head: Vec<String> = std::iter::once("true \\ predicted".to_string())
        .chain(classes.iter().cloned())
        .collect();
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = classes
        .iter()
        .zip(&metrics.confusion)
        .map(|(class, counts)| {
            std::iter::once(class.clone())
                .chain(counts.iter().map(usize::to_string))
                .collect()
        })
        .collect();
    format!(
        "<h3>Confusion matrix, {split} samples (CNN)</h3>{}",
        table(&head, &rows)
    )
}

fn pictures(manifest: &Manifest, file: &dyn Fn(&str) -> Result<Vec<u8>>) -> Result<Section> {
    let mut body = String::new();
    for (name, caption) in [
        (
            run::TRAINING_CURVES,
            "training and validation loss, and validation scores, per epoch",
        ),
        (
            run::FEATURE_MAP,
            "features in embedding space, by modality, with the frame the images were cut from",
        ),
        (run::DENSITY_MAP, "features per pixel"),
        (
            run::CLASS_IMAGES,
            "mean training image of each class, and examples",
        ),
        (run::PATHWAY_MAP, "image blocks of the kept pathways"),
    ] {
        if manifest.files.contains_key(name) {
            body.push_str(&png(&file(name)?, name, caption));
        }
    }
    Ok(Section::new("pictures", "Pictures", body))
}

fn pathways(manifest: &Manifest) -> Option<Section> {
    let selection = manifest.feature_space.pathways.as_ref()?;
    let rows: Vec<Vec<String>> = selection
        .groups
        .iter()
        .map(|g| {
            vec![
                g.rank.map_or("-".into(), |r| r.to_string()),
                g.name.clone(),
                format!("{:.3}", g.score),
                g.members.to_string(),
                g.matched.to_string(),
                g.features.len().to_string(),
            ]
        })
        .collect();
    let c = &selection.coverage;
    let body = format!(
        "<p>Gene sets from <code>{}</code>: {} in the file, {} with at least {} matched \
         features, {} empty; {} member names match no feature.</p>{}",
        escape(&selection.gmt),
        c.gene_sets,
        c.sets_with_min_members,
        c.min_members,
        c.empty_sets.len(),
        c.unknown_members,
        table(
            &[
                "rank",
                "pathway",
                "score",
                "members",
                "matched",
                "features kept"
            ],
            &rows
        )
    );
    Some(Section::new("pathways", "Pathways", body))
}

/// The samples left out of the cohort, with the reason; empty text when there are none.
pub fn dropped(samples: &[DroppedSample]) -> String {
    if samples.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<String>> = samples
        .iter()
        .take(DROPPED_SHOWN)
        .map(|d| {
            vec![
                d.sample_id.clone(),
                format!("missing from {}", d.missing_from.join(", ")),
            ]
        })
        .collect();
    let mut body = format!(
        "<h3>Dropped samples</h3>{}",
        table(&["sample", "reason"], &rows)
    );
    if samples.len() > DROPPED_SHOWN {
        body.push_str(&format!(
            "<p class=\"note\">... and {} more.</p>",
            samples.len() - DROPPED_SHOWN
        ));
    }
    body
}

/// The sha256 of every file in `files` (name to checksum) and of every input table.
pub fn artefacts(
    id: &str,
    title: &str,
    files: &BTreeMap<String, String>,
    inputs: &[InputFile],
    note: &str,
) -> Section {
    let rows: Vec<Vec<String>> = files
        .iter()
        .map(|(name, sha)| vec![name.clone(), sha.clone()])
        .collect();
    let mut body = table(&["file", "sha256"], &rows);
    if !inputs.is_empty() {
        let rows: Vec<Vec<String>> = inputs
            .iter()
            .map(|i| {
                vec![
                    i.role.clone(),
                    i.path.display().to_string(),
                    i.sha256.clone(),
                ]
            })
            .collect();
        body.push_str("<h3>Inputs</h3>");
        body.push_str(&table(&["role", "path", "sha256"], &rows));
    }
    body.push_str(&format!("<p class=\"note\">{}</p>", escape(note)));
    Section::new(id, title, body)
}
