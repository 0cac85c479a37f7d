//! Runs written by earlier releases still open, predict and score: a run folder written at
//! f1e4ec0 (tests/fixtures/run-f1e4ec0) against today's code.

mod common;

use std::path::{Path, PathBuf};

use polars::prelude::*;

fn fixture() -> PathBuf {
    common::root().join("tests/fixtures/run-f1e4ec0")
}

/// The fixture copied to `dir`: the tests must never change the committed files.
fn copy_fixture(dir: &Path) -> PathBuf {
    let run = dir.join("small");
    std::fs::create_dir(&run).unwrap();
    for entry in std::fs::read_dir(fixture().join("small")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), run.join(entry.file_name())).unwrap();
    }
    for table in ["a.csv", "b.csv", "labels.csv"] {
        std::fs::copy(fixture().join(table), dir.join(table)).unwrap();
    }
    run
}

fn sorted(frame: DataFrame) -> DataFrame {
    frame.sort(["sample_id"], Default::default()).unwrap()
}

fn read_parquet(path: &Path) -> DataFrame {
    sorted(
        ParquetReader::new(std::fs::File::open(path).unwrap())
            .finish()
            .unwrap(),
    )
}

fn column_f32(frame: &DataFrame, name: &str) -> Vec<f32> {
    let column = frame
        .column(name)
        .unwrap()
        .cast(&DataType::Float32)
        .unwrap();
    column.f32().unwrap().into_no_null_iter().collect()
}

/// The probabilities of both classes in `frame` equal those the old release stored in the
/// run's predictions.parquet, sample for sample.
fn assert_old_probabilities(frame: &DataFrame, run: &Path) {
    let old = read_parquet(&run.join("predictions.parquet"));
    assert_eq!(frame.height(), 24);
    assert_eq!(
        frame.column("sample_id").unwrap().as_materialized_series(),
        old.column("sample_id").unwrap().as_materialized_series()
    );
    for class in ["case", "control"] {
        let name = format!("prob_{class}");
        for (new, old) in column_f32(frame, &name).iter().zip(column_f32(&old, &name)) {
            assert!((new - old).abs() <= 1e-5, "{name}: {new} now, {old} then");
        }
    }
}

#[test]
fn a_run_written_before_the_format_version_opens() {
    let dir = tempfile::tempdir().unwrap();
    let run = copy_fixture(dir.path());
    let opened = deepinsight::run::RunDir::open(&run).unwrap();
    assert_eq!(opened.manifest.format, 0);
    assert_eq!(opened.manifest.version, "0.1.0");
    assert_eq!(opened.classes(), ["case", "control"]);
    assert_eq!(opened.image_shape(), [2, 16, 16]);
}

#[test]
fn a_run_written_before_the_format_version_predicts_as_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let run = copy_fixture(dir.path());
    let out = common::deepinsight(
        dir.path(),
        &[
            "predict",
            "--model",
            "small",
            "--input",
            "a=a.csv",
            "--input",
            "b=b.csv",
            "--labels",
            "labels.csv",
            "--output",
            "predicted.parquet",
        ],
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_old_probabilities(&read_parquet(&dir.path().join("predicted.parquet")), &run);
}

#[test]
fn a_run_written_before_the_format_version_scores_as_it_did() {
    let dir = tempfile::tempdir().unwrap();
    let run = copy_fixture(dir.path());
    // Batch scoring streams Parquet: the fixture's CSV tables, converted.
    for name in ["a", "b"] {
        let mut frame = CsvReadOptions::default()
            .with_has_header(true)
            .try_into_reader_with_file_path(Some(dir.path().join(format!("{name}.csv"))))
            .unwrap()
            .finish()
            .unwrap();
        let file = std::fs::File::create(dir.path().join(format!("{name}.parquet"))).unwrap();
        ParquetWriter::new(file).finish(&mut frame).unwrap();
    }
    let out = common::deepinsight(
        dir.path(),
        &[
            "score",
            "--model",
            "small",
            "--input",
            "a=a.parquet",
            "--input",
            "b=b.parquet",
            "--output",
            "scores.parquet",
        ],
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("samples: 24 (24 scored, 0 skipped)"),
        "{stdout}"
    );
    assert_old_probabilities(&read_parquet(&dir.path().join("scores.parquet")), &run);
}

#[test]
fn a_run_from_a_later_format_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let run = copy_fixture(dir.path());
    let path = run.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    manifest["format"] = serde_json::json!(deepinsight::run::FORMAT + 1);
    manifest["version"] = serde_json::json!("9.0.0");
    std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let err = format!("{:#}", deepinsight::run::RunDir::open(&run).err().unwrap());
    assert!(err.contains("run format 2 by deepinsight 9.0.0"), "{err}");
    assert!(err.contains("reads formats up to 1"), "{err}");
}
