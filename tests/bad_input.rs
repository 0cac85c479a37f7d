//! Every kind of bad input ends with a non-zero exit, a message that names the file, column,
//! sample or key at fault, and nothing written.

mod common;

use std::path::Path;

use common::{deepinsight, small_pipeline, stderr, write_small_cohort};

/// Runs the pipeline after `spoil` has damaged the small cohort; returns stderr.
fn fails_with(spoil: impl FnOnce(&Path), pipeline: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    write_small_cohort(dir.path());
    spoil(dir.path());
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    let out = deepinsight(dir.path(), &["run", "p.toml"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "expected failure, stderr: {err}");
    assert!(
        !dir.path().join("models").exists(),
        "nothing may be written on bad input: {err}"
    );
    err
}

fn edit(path: &Path, f: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::write(path, f(text)).unwrap();
}

#[test]
fn missing_file() {
    let err = fails_with(
        |d| std::fs::remove_file(d.join("b.csv")).unwrap(),
        &small_pipeline(""),
    );
    assert!(
        err.contains("file not found: b.csv") && err.contains("modality 'b'"),
        "{err}"
    );
}

#[test]
fn truncated_parquet() {
    let err = fails_with(
        |d| {
            let bytes = std::fs::read(common::root().join("data/proteomics.parquet")).unwrap();
            std::fs::write(d.join("b.parquet"), &bytes[..bytes.len() / 2]).unwrap();
        },
        &small_pipeline("").replace("b.csv", "b.parquet"),
    );
    assert!(err.contains("cannot read table b.parquet"), "{err}");
}

#[test]
fn no_sample_id_column() {
    let err = fails_with(
        |d| edit(&d.join("a.csv"), |t| t.replacen("sample_id", "id", 1)),
        &small_pipeline(""),
    );
    assert!(
        err.contains("a.csv: no sample-id column 'sample_id'"),
        "{err}"
    );
}

#[test]
fn duplicate_sample_ids() {
    let err = fails_with(
        |d| edit(&d.join("b.csv"), |t| t.replacen("S3,", "S2,", 1)),
        &small_pipeline(""),
    );
    assert!(err.contains("b.csv: duplicate sample id 'S2'"), "{err}");
}

/// Sets the cell at (data row, column) of a CSV file; `row = None` sets the whole column.
fn set_cells(path: &Path, row: Option<usize>, col: usize, value: &str) {
    edit(path, |t| {
        let mut lines: Vec<String> = t.lines().map(String::from).collect();
        for (i, line) in lines.iter_mut().enumerate().skip(1) {
            if row.is_none_or(|r| r + 1 == i) {
                let mut cells: Vec<&str> = line.split(',').collect();
                cells[col] = value;
                *line = cells.join(",");
            }
        }
        lines.join("\n") + "\n"
    });
}

#[test]
fn non_numeric_feature_column() {
    let err = fails_with(
        |d| set_cells(&d.join("a.csv"), Some(4), 2, "high"),
        &small_pipeline(""),
    );
    assert!(err.contains("a.csv: column 'a1' is not numeric"), "{err}");
}

#[test]
fn all_nan_column() {
    let err = fails_with(
        |d| set_cells(&d.join("b.csv"), None, 3, "NaN"),
        &small_pipeline(""),
    );
    assert!(err.contains("b.csv: column 'b2' has no values"), "{err}");
}

#[test]
fn fewer_than_three_features_after_selection() {
    let err = fails_with(|_| {}, &small_pipeline("[select]\ntop_k = 2"));
    assert!(
        err.contains("only 2 feature(s) left") && err.contains("select.top_k"),
        "{err}"
    );
}

#[test]
fn sample_without_label() {
    let err = fails_with(
        |d| edit(&d.join("labels.csv"), |t| t.replace("S5,case\n", "")),
        &small_pipeline(""),
    );
    assert!(
        err.contains("labels.csv: sample 'S5' has no label"),
        "{err}"
    );
}

#[test]
fn unknown_key_in_pipeline_file() {
    let err = fails_with(
        |_| {},
        &small_pipeline("").replace("epochs = 1", "epoch = 1"),
    );
    assert!(err.contains("p.toml") && err.contains("epoch"), "{err}");
}

#[test]
fn a_table_without_rows() {
    let err = fails_with(
        |d| std::fs::write(d.join("b.csv"), "sample_id,b0,b1,b2,b3,b4\n").unwrap(),
        &small_pipeline(""),
    );
    assert!(err.contains("b.csv: no rows"), "{err}");
}

#[test]
fn a_column_whose_one_value_is_missing() {
    let err = fails_with(
        |d| {
            edit(&d.join("b.csv"), |t| {
                let mut lines = t.lines();
                format!("{}\nS0,1,2,,4,5\n", lines.next().unwrap())
            })
        },
        &small_pipeline(""),
    );
    assert!(
        err.contains("b.csv: column 'b2' has no values: all 1 row(s) are missing"),
        "{err}"
    );
}

#[test]
fn an_infinite_value_is_named_unless_asked_to_impute_it() {
    let err = fails_with(
        |d| set_cells(&d.join("a.csv"), Some(3), 2, "inf"),
        &small_pipeline(""),
    );
    assert!(
        err.contains("a.csv: column 'a1', sample 'S3' (row 4): infinite value"),
        "{err}"
    );
    // A whole column of -inf is named for what it is, not as "no values".
    let err = fails_with(
        |d| set_cells(&d.join("b.csv"), None, 1, "-inf"),
        &small_pipeline(""),
    );
    assert!(
        err.contains("column 'b0', sample 'S0' (row 1): infinite value"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    write_small_cohort(dir.path());
    set_cells(&dir.path().join("a.csv"), Some(3), 2, "inf");
    let pipeline = small_pipeline("").replace(
        "labels = \"labels.csv\"",
        "labels = \"labels.csv\"\ninfinite_values = \"missing\"",
    );
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    let out = deepinsight(dir.path(), &["run", "p.toml"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
