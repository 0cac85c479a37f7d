//! `deepinsight score`: the scores equal the run's own predictions, shards partition the
//! samples, interrupted jobs resume, and bad rows follow the chosen policy.

mod common;

use std::path::{Path, PathBuf};

use polars::prelude::*;

const MODALITIES: [&str; 4] = ["genomics", "metabolomics", "microbiome", "proteomics"];

/// Trains a small model on the bundled data in `dir` and returns its run folder.
fn trained(dir: &Path) -> PathBuf {
    let pipeline = common::bundled_pipeline(
        "name = \"m\"\noutput_dir = \"models\"\nseed = 5",
        r#"[select]
top_k = 30
[layout]
method = "pca"
height = 16
width = 16
[model]
width = 4
[train]
epochs = 1
batch_size = 32
"#,
    );
    std::fs::write(dir.join("p.toml"), pipeline).unwrap();
    let out = common::deepinsight(dir, &["run", "p.toml"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    dir.join("models/m")
}

/// `--input` arguments for the bundled tables, with `replace` swapping some modalities' files.
fn inputs(replace: &[(&str, &Path)]) -> Vec<String> {
    MODALITIES
        .iter()
        .map(|m| {
            let path = replace
                .iter()
                .find(|(r, _)| r == m)
                .map(|(_, p)| p.to_path_buf())
                .unwrap_or_else(|| common::root().join(format!("data/{m}.parquet")));
            format!("--input={m}={}", path.display())
        })
        .collect()
}

fn score(dir: &Path, model: &Path, output: &str, extra: &[&str]) -> std::process::Output {
    score_with(dir, model, output, &inputs(&[]), extra)
}

fn score_with(
    dir: &Path,
    model: &Path,
    output: &str,
    inputs: &[String],
    extra: &[&str],
) -> std::process::Output {
    let model = model.display().to_string();
    let mut args = vec!["score", "--model", &model, "--output", output];
    args.extend(inputs.iter().map(String::as_str));
    args.extend_from_slice(extra);
    common::deepinsight(dir, &args)
}

fn read(path: &Path) -> DataFrame {
    let file = std::fs::File::open(path).unwrap();
    ParquetReader::new(file)
        .finish()
        .unwrap()
        .sort(["sample_id"], Default::default())
        .unwrap()
}

fn strings(frame: &DataFrame, column: &str) -> Vec<Option<String>> {
    frame
        .column(column)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|s| s.map(str::to_string))
        .collect()
}

fn floats(frame: &DataFrame, column: &str) -> Vec<Option<f32>> {
    frame
        .column(column)
        .unwrap()
        .cast(&DataType::Float32)
        .unwrap()
        .f32()
        .unwrap()
        .iter()
        .collect()
}

const CLASSES: [&str; 3] = ["healthy", "subtype_A", "subtype_B"];

/// Same samples, predictions and reasons; probabilities within `tolerance`.
fn assert_same_scores(a: &DataFrame, b: &DataFrame, tolerance: f32) {
    assert_eq!(strings(a, "sample_id"), strings(b, "sample_id"));
    assert_eq!(strings(a, "predicted"), strings(b, "predicted"));
    assert_eq!(strings(a, "reason"), strings(b, "reason"));
    for class in CLASSES {
        let column = format!("prob_{class}");
        for (x, y) in floats(a, &column).iter().zip(floats(b, &column)) {
            match (x, y) {
                (Some(x), Some(y)) => assert!((x - y).abs() <= tolerance, "{column}: {x} vs {y}"),
                (x, y) => assert_eq!(*x, y),
            }
        }
    }
}

#[test]
fn scores_equal_the_runs_own_predictions_and_absent_samples_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained(dir.path());
    let out = score(dir.path(), &model, "scores.parquet", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(
        stdout.contains("samples: 300 (293 scored, 7 skipped)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("skipped, missing from metabolomics: 4"),
        "{stdout}"
    );

    let scores = read(&dir.path().join("scores.parquet"));
    let predictions = read(&model.join("predictions.parquet"));
    assert_eq!(scores.height(), 300);
    // The 293 aligned samples: exactly the probabilities the run computed for them.
    let scored = scores
        .clone()
        .lazy()
        .filter(col("reason").is_null())
        .collect()
        .unwrap();
    let mut expected = predictions.clone();
    let reason = Column::full_null("reason".into(), expected.height(), &DataType::String);
    expected.with_column(reason).unwrap();
    assert_same_scores(&scored, &expected, 1e-5);
    // The others carry the reason and no prediction.
    let skipped = scores
        .lazy()
        .filter(col("reason").is_not_null())
        .collect()
        .unwrap();
    assert_eq!(skipped.height(), 7);
    assert!(strings(&skipped, "predicted").iter().all(Option::is_none));
    assert!(
        strings(&skipped, "reason")
            .iter()
            .all(|r| r.as_deref().unwrap().starts_with("missing from "))
    );
    let sha = deepinsight::run::sha256_file(&model.join("model.bpk")).unwrap();
    assert!(
        strings(&scored, "model_sha256")
            .iter()
            .all(|s| s.as_deref() == Some(sha.as_str()))
    );
}

#[test]
fn shards_are_disjoint_and_together_equal_a_single_run() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained(dir.path());
    // 50 rows per bucket: six buckets, so the job really is split and merged.
    let small = ["--bucket-rows", "50"];
    let out = score(dir.path(), &model, "all.parquet", &small);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let single = read(&dir.path().join("all.parquet"));

    let mut frames = Vec::new();
    for k in 0..3 {
        let name = format!("shard-{k}.parquet");
        let shard = format!("{k}/3");
        let out = score(
            dir.path(),
            &model,
            &name,
            &["--shard", &shard, "--bucket-rows", "50"],
        );
        assert!(out.status.success(), "{}", common::stderr(&out));
        let frame = read(&dir.path().join(&name));
        assert!(
            frame.height() > 50,
            "shard {k} holds a share: {}",
            frame.height()
        );
        frames.push(frame);
    }
    let mut union = frames[0].clone();
    for f in &frames[1..] {
        union.vstack_mut(f).unwrap();
    }
    let union = union.sort(["sample_id"], Default::default()).unwrap();
    assert_eq!(union.height(), 300, "no sample in two shards, none lost");
    assert_same_scores(&union, &single, 1e-5);

    let bad = score(dir.path(), &model, "x.parquet", &["--shard", "3/3"]);
    assert!(!bad.status.success());
    assert!(
        common::stderr(&bad).contains("0 <= k < n"),
        "{}",
        common::stderr(&bad)
    );
}

#[test]
fn an_interrupted_job_resumes_and_a_finished_one_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained(dir.path());
    let full = score(dir.path(), &model, "full.parquet", &["--bucket-rows", "50"]);
    assert!(full.status.success(), "{}", common::stderr(&full));

    let args = ["--bucket-rows", "50", "--max-parts", "2", "--resume"];
    let first = score(dir.path(), &model, "out.parquet", &args);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{}", common::stderr(&first));
    assert!(stdout.contains("stopped after 2 part(s)"), "{stdout}");
    // Without a terminal, a line per part as it is written.
    assert!(
        stdout.contains("part 1/6 scored: ") && stdout.contains("part 2/6 scored: "),
        "{stdout}"
    );
    assert!(
        !dir.path().join("out.parquet").exists(),
        "no output before the job is complete"
    );
    let parts = dir.path().join("out.parquet.parts");
    let done = |p: &Path| {
        std::fs::read_dir(p)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().ends_with(".parquet")
            })
            .count()
    };
    assert_eq!(done(&parts), 2);

    let second = score(
        dir.path(),
        &model,
        "out.parquet",
        &["--bucket-rows", "50", "--resume"],
    );
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success(), "{}", common::stderr(&second));
    assert!(
        stdout.contains("parts: 4 scored now, 2 reused of 6"),
        "{stdout}"
    );
    assert!(
        stdout.contains("samples: 300 (293 scored"),
        "totals include reused parts: {stdout}"
    );
    assert!(!parts.exists(), "parts are removed once merged");
    let resumed = read(&dir.path().join("out.parquet"));
    assert_same_scores(&resumed, &read(&dir.path().join("full.parquet")), 0.0);

    let modified = std::fs::metadata(dir.path().join("out.parquet"))
        .unwrap()
        .modified()
        .unwrap();
    let third = score(
        dir.path(),
        &model,
        "out.parquet",
        &["--bucket-rows", "50", "--resume"],
    );
    assert!(String::from_utf8_lossy(&third.stdout).contains("already complete"));
    let after = std::fs::metadata(dir.path().join("out.parquet"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(modified, after, "a complete output is left alone");
}

/// The bundled microbiome table with its first sample twice, written as Parquet in `dir`.
fn doubled_sample(dir: &Path) -> PathBuf {
    edited(dir, "microbiome", |f| {
        let head = f.head(Some(1));
        f.vstack(&head).unwrap()
    })
}

/// The bundled table of `modality` with `edit` applied, written as Parquet in `dir`.
fn edited(dir: &Path, modality: &str, edit: impl Fn(DataFrame) -> DataFrame) -> PathBuf {
    let source = common::root().join(format!("data/{modality}.parquet"));
    let frame = ParquetReader::new(std::fs::File::open(source).unwrap())
        .finish()
        .unwrap();
    let mut frame = edit(frame);
    let path = dir.join(format!("{modality}-edited.parquet"));
    ParquetWriter::new(std::fs::File::create(&path).unwrap())
        .finish(&mut frame)
        .unwrap();
    path
}

fn model_features(model: &Path, modality: &str) -> Vec<String> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("manifest.json")).unwrap()).unwrap();
    manifest["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["modality"] == modality)
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn bad_rows_follow_the_chosen_policy() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained(dir.path());

    // The bundled proteomics has missing values: fail names a sample and column, skip gives
    // reasons, impute (the default) scores every aligned sample.
    let fail = score(
        dir.path(),
        &model,
        "f.parquet",
        &["--missing-values", "fail"],
    );
    let err = common::stderr(&fail);
    assert!(!fail.status.success());
    assert!(
        err.contains("missing value in the proteomics input, column 'P")
            && err.contains("sample 'S"),
        "{err}"
    );
    assert!(!dir.path().join("f.parquet").exists());

    let skip = score(
        dir.path(),
        &model,
        "s.parquet",
        &["--missing-values", "skip"],
    );
    assert!(skip.status.success(), "{}", common::stderr(&skip));
    let skipped = read(&dir.path().join("s.parquet"));
    let reasons: Vec<String> = strings(&skipped, "reason").into_iter().flatten().collect();
    let by_value = reasons
        .iter()
        .filter(|r| r.starts_with("missing value in proteomics column P"))
        .count();
    assert!(
        by_value > 0 && by_value < 293,
        "{by_value} of 293 samples lack a kept protein"
    );
    let stdout = String::from_utf8_lossy(&skip.stdout);
    assert!(
        stdout.contains(&format!("skipped, missing value in proteomics: {by_value}")),
        "{stdout}"
    );

    // Samples absent from metabolomics or microbiome: fail names one, impute scores all 300.
    let fail = score(
        dir.path(),
        &model,
        "f.parquet",
        &["--missing-samples", "fail"],
    );
    let err = common::stderr(&fail);
    assert!(
        err.contains("sample 'S") && err.contains("has no row in the m"),
        "{err}"
    );
    let impute = score(
        dir.path(),
        &model,
        "i.parquet",
        &["--missing-samples", "impute"],
    );
    assert!(impute.status.success());
    assert!(
        String::from_utf8_lossy(&impute.stdout).contains("samples: 300 (300 scored, 0 skipped)")
    );

    // A kept feature column absent from the file: imputed by default, an error under fail.
    let dropped = model_features(&model, "genomics")[0].clone();
    let without = edited(dir.path(), "genomics", |f| f.drop(&dropped).unwrap());
    let args = inputs(&[("genomics", &without)]);
    let ok = score_with(dir.path(), &model, "c.parquet", &args, &[]);
    assert!(ok.status.success(), "{}", common::stderr(&ok));
    let strict = score_with(
        dir.path(),
        &model,
        "c.parquet",
        &args,
        &["--missing-values", "fail"],
    );
    let err = common::stderr(&strict);
    assert!(
        err.contains("genomics-edited.parquet") && err.contains(&dropped),
        "{err}"
    );

    // A sample twice in one modality is an error naming it.
    let doubled = doubled_sample(dir.path());
    let twice = score_with(
        dir.path(),
        &model,
        "d.parquet",
        &inputs(&[("microbiome", &doubled)]),
        &[],
    );
    let err = common::stderr(&twice);
    assert!(
        err.contains("appears more than once in the microbiome input"),
        "{err}"
    );

    // Unknown or missing modalities are named.
    let mut args = inputs(&[]);
    args.pop();
    let missing = score_with(dir.path(), &model, "x.parquet", &args, &[]);
    assert!(common::stderr(&missing).contains("no input for modality 'proteomics'"));
    args.push("--input=lipids=x.parquet".into());
    let unknown = score_with(dir.path(), &model, "x.parquet", &args, &[]);
    assert!(common::stderr(&unknown).contains("no modality 'lipids'"));
}

/// Names of the files in the parts folder `parts` ending in `suffix`.
fn part_files(parts: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(parts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

#[test]
fn a_resumed_job_scores_damaged_or_misplaced_parts_again() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained(dir.path());
    let full = score(dir.path(), &model, "full.parquet", &["--bucket-rows", "50"]);
    assert!(full.status.success(), "{}", common::stderr(&full));
    let reference = read(&dir.path().join("full.parquet"));
    let partial = ["--bucket-rows", "50", "--max-parts", "4"];
    let resume = ["--bucket-rows", "50", "--resume"];

    // Truncated, emptied, random bytes, and a record that is not JSON.
    let first = score(dir.path(), &model, "out.parquet", &partial);
    assert!(first.status.success(), "{}", common::stderr(&first));
    let parts = dir.path().join("out.parquet.parts");
    let written = part_files(&parts, ".parquet");
    assert_eq!(written.len(), 4);
    let bytes = std::fs::read(&written[0]).unwrap();
    std::fs::write(&written[0], &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(&written[1], b"").unwrap();
    std::fs::write(&written[2], vec![0x5a; bytes.len()]).unwrap();
    std::fs::write(parts.join("part-00003.json"), b"{\"bucket\": 3, \"rows\"").unwrap();
    let second = score(dir.path(), &model, "out.parquet", &resume);
    let err = common::stderr(&second);
    assert!(second.status.success(), "{err}");
    for name in [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
        "part-00003.json",
    ] {
        assert!(err.contains(name), "a warning names {name}: {err}");
    }
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(
        stdout.contains("parts: 6 scored now, 0 reused of 6"),
        "{stdout}"
    );
    assert_same_scores(&read(&dir.path().join("out.parquet")), &reference, 0.0);

    // Another bucket's part copied over one, and a record gone: both scored again, and the
    // summary counts exactly what the output holds.
    let first = score(dir.path(), &model, "moved.parquet", &partial);
    assert!(first.status.success(), "{}", common::stderr(&first));
    let parts = dir.path().join("moved.parquet.parts");
    let written = part_files(&parts, ".parquet");
    std::fs::copy(&written[0], &written[1]).unwrap();
    std::fs::remove_file(parts.join("part-00002.json")).unwrap();
    let second = score(dir.path(), &model, "moved.parquet", &resume);
    let err = common::stderr(&second);
    assert!(second.status.success(), "{err}");
    assert!(
        err.contains("part-00001.parquet") && err.contains("another bucket"),
        "{err}"
    );
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(
        stdout.contains("parts: 4 scored now, 2 reused of 6"),
        "{stdout}"
    );
    let moved = read(&dir.path().join("moved.parquet"));
    assert!(
        stdout.contains(&format!("samples: {} (", moved.height())),
        "{stdout}"
    );
    assert_same_scores(&moved, &reference, 0.0);
}

#[test]
fn an_output_over_an_input_or_a_folder_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained(dir.path());
    let table = dir.path().join("inp/genomics.parquet");
    std::fs::create_dir_all(table.parent().unwrap()).unwrap();
    std::fs::copy(common::root().join("data/genomics.parquet"), &table).unwrap();
    let before = std::fs::read(&table).unwrap();
    let args = inputs(&[("genomics", &table)]);

    for output in ["inp/genomics.parquet", "./inp/../inp/genomics.parquet"] {
        let out = score_with(dir.path(), &model, output, &args, &[]);
        let err = common::stderr(&out);
        assert!(
            !out.status.success() && err.contains("is the input"),
            "{err}"
        );
        assert!(err.contains("genomics.parquet"), "{err}");
    }
    let model_arg = model.display().to_string();
    let predict = common::deepinsight(
        dir.path(),
        &[
            vec![
                "predict",
                "--model",
                &model_arg,
                "--output",
                "inp/genomics.parquet",
            ],
            args.iter().map(String::as_str).collect(),
        ]
        .concat(),
    );
    let err = common::stderr(&predict);
    assert!(
        !predict.status.success() && err.contains("is the input"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&table).unwrap(),
        before,
        "the input is untouched"
    );

    // Inside the model folder, a folder, or a file the tool did not write: refused, and no
    // parts folder is left behind.
    let inside = model.join("scores.parquet").display().to_string();
    let out = score_with(dir.path(), &model, &inside, &args, &[]);
    assert!(
        common::stderr(&out).contains("lies inside the input"),
        "{}",
        common::stderr(&out)
    );
    std::fs::create_dir(dir.path().join("results")).unwrap();
    let out = score_with(dir.path(), &model, "results", &args, &[]);
    assert!(
        common::stderr(&out).contains("is a folder"),
        "{}",
        common::stderr(&out)
    );
    std::fs::write(dir.path().join("notes.parquet"), b"my notes").unwrap();
    let out = score_with(dir.path(), &model, "notes.parquet", &args, &[]);
    assert!(common::stderr(&out).contains("not written by deepinsight"));
    assert_eq!(
        std::fs::read(dir.path().join("notes.parquet")).unwrap(),
        b"my notes"
    );
    for parts in [
        "results.parts",
        "notes.parquet.parts",
        "inp/genomics.parquet.parts",
    ] {
        assert!(!dir.path().join(parts).exists(), "{parts}");
    }

    // An error after the checks (a sample twice in one input) leaves no parts folder either;
    // a scores file the tool wrote may be written again.
    let doubled = doubled_sample(dir.path());
    let out = score_with(
        dir.path(),
        &model,
        "d.parquet",
        &inputs(&[("microbiome", &doubled)]),
        &[],
    );
    assert!(!out.status.success());
    assert!(
        !dir.path().join("d.parquet.parts").exists(),
        "no parts folder after an early error"
    );
    for _ in 0..2 {
        let ok = score(dir.path(), &model, "again.parquet", &[]);
        assert!(ok.status.success(), "{}", common::stderr(&ok));
    }
}
