//! `deepinsight init` writes a starter pipeline for a user's own tables that runs end to end:
//! on the bundled cohort and on a real one from ../shared/datasets.

mod common;

use std::path::Path;

use common::{deepinsight, stderr};

/// Runs `init` into `dir/start` for `inputs` and `labels`, then trains what it wrote (one epoch:
/// the file itself, with `train`'s override).
fn init_then_train(dir: &Path, labels: &Path, inputs: &[(&str, &Path)]) -> String {
    let labels = labels.display().to_string();
    let inputs: Vec<String> = inputs
        .iter()
        .map(|(m, p)| format!("--input={m}={}", p.display()))
        .collect();
    let mut args = vec!["init", "start", "--label-table", &labels];
    args.extend(inputs.iter().map(String::as_str));
    let out = deepinsight(dir, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let written = std::fs::read_to_string(dir.join("start/pipeline.toml")).unwrap();
    let train = deepinsight(
        dir,
        &[
            "train",
            "start/pipeline.toml",
            "--epochs",
            "1",
            "--batch-size",
            "32",
        ],
    );
    assert!(train.status.success(), "{}\n{written}", stderr(&train));
    assert!(dir.join("start/models/start/manifest.json").exists());
    // init never overwrites.
    let again = deepinsight(dir, &args);
    assert!(
        stderr(&again).contains("exists already"),
        "{}",
        stderr(&again)
    );
    format!("{said}\n{written}")
}

#[test]
fn a_starter_for_the_bundled_cohort_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::root().join("data");
    let inputs: Vec<(&str, std::path::PathBuf)> =
        ["genomics", "metabolomics", "microbiome", "proteomics"]
            .iter()
            .map(|m| (*m, data.join(format!("{m}.parquet"))))
            .collect();
    let refs: Vec<(&str, &Path)> = inputs.iter().map(|(m, p)| (*m, p.as_path())).collect();
    let text = init_then_train(dir.path(), &data.join("labels.parquet"), &refs);
    // Counted from the files: 2000 genomics features keep 1000, so 2 px each at 48 x 48.
    assert!(text.contains("genomics 2000"), "{text}");
    assert!(text.contains("height = 48"), "{text}");
    assert!(text.contains("test_fraction = 0.2"), "{text}");
    assert!(
        text.contains("healthy") && text.contains("subtype_A"),
        "{text}"
    );
}

#[test]
fn a_starter_for_a_real_cohort_runs_end_to_end() {
    let cohort = common::root().join("../shared/datasets/nutrimouse");
    assert!(
        cohort.join("labels.parquet").exists(),
        "the real cohorts are in ../shared/datasets (beside the repository, as in CI): {}",
        cohort.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let text = init_then_train(
        dir.path(),
        &cohort.join("labels.parquet"),
        &[
            ("genomics", &cohort.join("genomics.parquet")),
            ("metabolomics", &cohort.join("metabolomics.parquet")),
        ],
    );
    // 40 mice, 8 per diet: no test split; 120 genes on 16 x 16.
    assert!(text.contains("40 samples"), "{text}");
    assert!(
        text.contains("genomics 120") && text.contains("metabolomics 21"),
        "{text}"
    );
    assert!(text.contains("test_fraction = 0"), "{text}");
    assert!(text.contains("height = 16"), "{text}");
}
