//! The run summary does not overstate: it says the validation metrics chose the kept epoch,
//! and puts the trivial baseline (the most common training class, always) beside the model on
//! the same validation and test samples; the manifest keeps the same.

mod common;

use std::path::Path;

use common::{deepinsight, small_pipeline, stderr, write_small_cohort};
use polars::prelude::*;

/// Relabels the small cohort so that 'control' is two thirds of it.
fn imbalanced(dir: &Path) {
    write_small_cohort(dir);
    let mut labels = String::from("sample_id,label\n");
    for i in 0..24 {
        let class = if i % 3 == 0 { "case" } else { "control" };
        labels.push_str(&format!("S{i},{class}\n"));
    }
    std::fs::write(dir.join("labels.csv"), labels).unwrap();
}

fn share_of(run: &Path, split: &str, class: &str) -> f64 {
    let file = std::fs::File::open(run.join("predictions.parquet")).unwrap();
    let frame = ParquetReader::new(file).finish().unwrap();
    let splits = frame.column("split").unwrap().str().unwrap().clone();
    let labels = frame.column("label").unwrap().str().unwrap().clone();
    let rows: Vec<bool> = splits
        .iter()
        .zip(labels.iter())
        .filter(|(s, _)| *s == Some(split))
        .map(|(_, l)| l == Some(class))
        .collect();
    rows.iter().filter(|&&c| c).count() as f64 / rows.len() as f64
}

#[test]
fn the_summary_puts_the_majority_baseline_beside_the_model_and_says_what_chose_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    imbalanced(dir.path());
    std::fs::write(dir.path().join("p.toml"), small_pipeline("")).unwrap();
    let out = deepinsight(dir.path(), &["run", "p.toml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("chosen on these samples: optimistic"),
        "{stdout}"
    );
    assert!(stdout.contains("no test split"), "{stdout}");
    assert!(!stdout.contains("chance accuracy"), "{stdout}");
    let run = dir.path().join("models/small");
    let expected = share_of(&run, "validation", "control");
    let line = stdout
        .lines()
        .find(|l| l.contains("trivial baseline, always 'control'") && l.contains("validation"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.contains(&format!("accuracy {expected:.3}")),
        "{line} vs {expected}"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
    let baseline = &manifest["baseline"];
    assert_eq!(
        baseline["class"], 1,
        "control is class 1 of [case, control]"
    );
    assert_eq!(
        baseline["validation"]["accuracy"].as_f64().unwrap(),
        expected
    );
    assert!(baseline["test"].is_null());

    // With a test split, both are scored on it as well.
    let pipeline = small_pipeline("").replace("epochs = 1", "epochs = 1\ntest_fraction = 0.25");
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    let out = deepinsight(dir.path(), &["run", "p.toml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("held out from every choice"), "{stdout}");
    for baseline in ["logistic regression", "random forest"] {
        assert!(
            stdout.contains(&format!("  {baseline}, on the selected features of the training and validation samples, test: accuracy")),
            "{baseline}: {stdout}"
        );
    }
    let expected = share_of(&run, "test", "control");
    let line = stdout
        .lines()
        .find(|l| l.contains("trivial baseline, always 'control', test"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.contains(&format!("accuracy {expected:.3}")),
        "{line} vs {expected}"
    );
    // The learned baselines' test metrics are in the manifest too, on the same samples.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
    let baselines = manifest["test_baselines"].as_array().unwrap();
    let names: Vec<&str> = baselines.iter().map(|b| b[0].as_str().unwrap()).collect();
    assert_eq!(names, ["logistic", "random_forest"]);
    for b in baselines {
        let accuracy = b[1]["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&accuracy), "{b}");
        let test: u64 = b[1]["confusion"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()))
            .sum();
        assert_eq!(test, manifest["samples"]["test"].as_u64().unwrap(), "{b}");
    }
}
