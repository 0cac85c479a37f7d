//! The tool never deletes or overwrites what it did not write, never writes its output over,
//! around or inside an input, leaves no staging folder behind, refuses a cohort too small to
//! split before training, and ends quietly when its reader closes stdout.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use common::{deepinsight, small_pipeline, stderr, write_small_cohort};

/// The small cohort's run folder (in `<dir>/ep/m`), trained once for every test of this file.
fn model() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        write_small_cohort(&dir);
        let pipeline = small_pipeline("")
            .replace("name = \"small\"", "name = \"m\"")
            .replace("output_dir = \"models\"", "output_dir = \"ep\"");
        std::fs::write(dir.join("p.toml"), pipeline).unwrap();
        let out = deepinsight(&dir, &["run", "p.toml"]);
        assert!(out.status.success(), "{}", stderr(&out));
        dir.join("ep/m")
    })
}

/// Every file under `dir` with its bytes, to show nothing changed.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn hidden_leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".staging-") || n.contains(".old-"))
        .collect()
}

fn explain(cwd: &Path, out: &str) -> std::process::Output {
    let model = model().display().to_string();
    deepinsight(cwd, &["explain", "--model", &model, "--out", out])
}

#[test]
fn explain_never_replaces_its_model_an_unrelated_folder_or_the_working_directory() {
    let ep = model().parent().unwrap().to_path_buf();
    std::fs::write(ep.join("unrelated.txt"), b"keep me").unwrap();
    let before = snapshot(&ep);

    // The model folder, the folder holding it, and the working directory (which holds it).
    let cases = [
        (model().display().to_string(), "is the input"),
        (ep.display().to_string(), "contains the input"),
        (".".to_string(), "contains the input"),
        (
            model().join("x").display().to_string(),
            "lies inside the input",
        ),
    ];
    for (out, why) in cases {
        let run = explain(&ep, &out);
        let err = stderr(&run);
        assert!(!run.status.success(), "--out {out} must be refused");
        assert!(err.contains(why), "--out {out}: {err}");
    }
    assert_eq!(
        snapshot(&ep),
        before,
        "nothing under {} changed",
        ep.display()
    );
    assert!(hidden_leftovers(&ep).is_empty());

    // A folder of the user's that holds no input is still not the tool's to replace.
    let elsewhere = tempfile::tempdir().unwrap();
    let theirs = elsewhere.path().join("results");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("thesis.tex"), b"x").unwrap();
    let run = explain(elsewhere.path(), "results");
    assert!(
        stderr(&run).contains("not written by deepinsight"),
        "{}",
        stderr(&run)
    );
    assert!(theirs.join("thesis.tex").exists());
    // The working directory, even when it holds no input.
    let run = explain(&theirs, ".");
    assert!(
        stderr(&run).contains("working directory"),
        "{}",
        stderr(&run)
    );

    // An explanation the tool wrote is replaced by the next one (run where the run's relative
    // input paths lead).
    let cohort = ep.parent().unwrap();
    let why = elsewhere.path().join("why").display().to_string();
    for _ in 0..2 {
        let run = explain(cohort, &why);
        assert!(run.status.success(), "{}", stderr(&run));
    }
    assert!(elsewhere.path().join("why/explain_report.json").exists());
    assert!(hidden_leftovers(elsewhere.path()).is_empty());
}

#[test]
fn a_run_never_replaces_a_folder_it_did_not_write_or_one_holding_its_inputs() {
    let dir = tempfile::tempdir().unwrap();
    write_small_cohort(dir.path());
    // The run folder would be the folder of the input tables.
    std::fs::create_dir(dir.path().join("in")).unwrap();
    for f in ["a.csv", "b.csv", "labels.csv"] {
        std::fs::rename(dir.path().join(f), dir.path().join("in").join(f)).unwrap();
    }
    let pipeline = small_pipeline("")
        .replace("\"a.csv\"", "\"in/a.csv\"")
        .replace("\"b.csv\"", "\"in/b.csv\"")
        .replace("\"labels.csv\"", "\"in/labels.csv\"")
        .replace("name = \"small\"", "name = \"in\"")
        .replace("output_dir = \"models\"", "output_dir = \".\"");
    std::fs::write(dir.path().join("p.toml"), &pipeline).unwrap();
    let before = snapshot(dir.path());
    let run = deepinsight(dir.path(), &["run", "p.toml"]);
    assert!(
        stderr(&run).contains("contains the input"),
        "{}",
        stderr(&run)
    );
    assert_eq!(snapshot(dir.path()), before);

    // A folder of that name the tool did not write.
    let pipeline = pipeline.replace("name = \"in\"", "name = \"mine\"");
    std::fs::write(dir.path().join("p.toml"), &pipeline).unwrap();
    std::fs::create_dir(dir.path().join("mine")).unwrap();
    std::fs::write(dir.path().join("mine/data.csv"), b"x").unwrap();
    let run = deepinsight(dir.path(), &["run", "p.toml"]);
    assert!(
        stderr(&run).contains("not written by deepinsight"),
        "{}",
        stderr(&run)
    );
    assert_eq!(
        std::fs::read(dir.path().join("mine/data.csv")).unwrap(),
        b"x"
    );
    assert!(hidden_leftovers(dir.path()).is_empty());

    // Its own earlier run is replaced.
    let pipeline = pipeline.replace("name = \"mine\"", "name = \"run\"");
    std::fs::write(dir.path().join("p.toml"), &pipeline).unwrap();
    for _ in 0..2 {
        let run = deepinsight(dir.path(), &["run", "p.toml"]);
        assert!(run.status.success(), "{}", stderr(&run));
    }
    assert!(hidden_leftovers(dir.path()).is_empty());
}

#[test]
fn a_cohort_too_small_to_split_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.csv"),
        "sample_id,a0,a1,a2,a3\nS1,1,2,3,4\nS2,2,3,1,5\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.csv"),
        "sample_id,b0,b1,b2,b3\nS1,1,2,3,4\nS2,2,3,1,5\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("labels.csv"),
        "sample_id,label\nS1,x\nS2,y\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("p.toml"), small_pipeline("")).unwrap();
    let run = deepinsight(dir.path(), &["run", "p.toml"]);
    let err = stderr(&run);
    assert!(!run.status.success(), "{err}");
    assert!(
        err.contains("every class needs at least 2") && err.contains("x 1, y 1"),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&run.stdout).contains("-0.000"));
    assert!(!dir.path().join("models").exists());
}

#[test]
fn a_closed_stdout_ends_the_report_quietly() {
    let cohort = model().parent().unwrap().parent().unwrap();
    let out = tempfile::tempdir().unwrap();
    let output = out.path().join("p.csv").display().to_string();
    let a = format!("a={}", cohort.join("a.csv").display());
    let b = format!("b={}", cohort.join("b.csv").display());
    let labels = cohort.join("labels.csv").display().to_string();
    let model = model().display().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_deepinsight"))
        .args(["predict", "--model", &model, "--output", &output])
        .args(["--input", &a, "--input", &b, "--labels", &labels])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the report is printed, as `| head -c 10` does.
    drop(child.stdout.take());
    let done = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{:?}: {err}", done.status);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
    assert!(out.path().join("p.csv").exists());
}

/// A copy of the trained run folder to damage.
fn model_copy(into: &Path) -> PathBuf {
    let dir = into.join("m");
    std::fs::create_dir(&dir).unwrap();
    for entry in std::fs::read_dir(model()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}

/// `predict` with `model` on the small cohort, its `a` table replaced by `a_table` if given.
fn predict_with(model: &Path, a_table: Option<&Path>) -> std::process::Output {
    let cohort = self::model().parent().unwrap().parent().unwrap();
    let out = tempfile::tempdir().unwrap();
    let a_table = a_table.map_or(cohort.join("a.csv"), Path::to_path_buf);
    let a = format!("a={}", a_table.display());
    let b = format!("b={}", cohort.join("b.csv").display());
    let output = out.path().join("p.csv").display().to_string();
    let model = model.display().to_string();
    deepinsight(
        cohort,
        &[
            "predict", "--model", &model, "--output", &output, "--input", &a, "--input", &b,
        ],
    )
}

#[test]
fn a_run_whose_manifest_lost_a_file_or_whose_record_is_damaged_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let run = model_copy(tmp.path());
    let manifest_path = run.join("manifest.json");
    let original = std::fs::read(&manifest_path).unwrap();
    let mut manifest: serde_json::Value = serde_json::from_slice(&original).unwrap();
    manifest["files"]
        .as_object_mut()
        .unwrap()
        .remove("model.bpk");
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let out = predict_with(&run, None);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("model.bpk: not listed in manifest.json's files"),
        "{err}"
    );

    // A record that does not decode, with a checksum to match: named as undecodable.
    let garbage = b"not a burnpack record".to_vec();
    std::fs::write(run.join("model.bpk"), &garbage).unwrap();
    let mut manifest: serde_json::Value = serde_json::from_slice(&original).unwrap();
    manifest["files"]["model.bpk"] = deepinsight::run::sha256_hex(&garbage).into();
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let out = predict_with(&run, None);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("model.bpk: the model record cannot be decoded"),
        "{err}"
    );
}

#[test]
fn values_far_outside_the_training_range_are_counted_in_a_warning() {
    let cohort = model().parent().unwrap().parent().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(cohort.join("a.csv")).unwrap();
    let scaled: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, line)| {
            if i == 0 {
                return line.to_string();
            }
            // Every value of a0 a million times larger: another unit.
            let mut cells: Vec<String> = line.split(',').map(String::from).collect();
            cells[1] = format!("{}", cells[1].parse::<f64>().unwrap() * 1e6 + 1e6);
            cells.join(",")
        })
        .collect();
    std::fs::write(tmp.path().join("a.csv"), scaled.join("\n") + "\n").unwrap();
    let out = predict_with(model(), Some(&tmp.path().join("a.csv")));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("a: 24 values lie far outside the training range"),
        "{err}"
    );
}
