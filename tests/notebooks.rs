//! The worked notebooks in notebooks/ run top to bottom (nbclient) on a small model trained
//! on the bundled data, and what they compute agrees with the CLI.
//!
//! They need Python with nbclient, ipykernel, polars and requests: scripts/test installs them
//! in a virtual environment and names its interpreter in DEEPINSIGHT_NOTEBOOK_PYTHON; without
//! it the test fails saying how to install them.

mod common;

use std::path::Path;
use std::process::Command;

use polars::prelude::*;

/// Executes `notebook` with the environment `env`; returns the executed notebook's JSON.
fn execute(
    python: &Path,
    notebook: &str,
    work: &Path,
    env: &[(&str, String)],
) -> serde_json::Value {
    let output = work.join(notebook);
    let run = Command::new(python)
        .arg(common::root().join("tests/helpers/run_notebook.py"))
        .arg(common::root().join("notebooks").join(notebook))
        .arg(&output)
        .arg("900")
        .envs(env.iter().map(|(k, v)| (k.to_string(), v.clone())))
        .current_dir(work)
        .output()
        .expect("python runs");
    assert!(
        run.status.success(),
        "{notebook} failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    serde_json::from_slice(&std::fs::read(&output).unwrap()).unwrap()
}

/// Everything the notebook's cells printed, as one string.
fn printed(notebook: &serde_json::Value) -> String {
    let mut text = String::new();
    for cell in notebook["cells"].as_array().unwrap() {
        for output in cell["outputs"].as_array().into_iter().flatten() {
            for key in ["text", "data"] {
                let value = if key == "data" {
                    &output["data"]["text/plain"]
                } else {
                    &output[key]
                };
                match value {
                    serde_json::Value::String(s) => text.push_str(s),
                    serde_json::Value::Array(lines) => lines
                        .iter()
                        .filter_map(|l| l.as_str())
                        .for_each(|l| text.push_str(l)),
                    _ => {}
                }
            }
        }
    }
    text
}

#[test]
fn the_notebooks_run_top_to_bottom_and_agree_with_the_cli() {
    let python = common::test_python("nbclient, nbformat, ipykernel, polars, requests");
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let pipeline = common::bundled_pipeline(
        &format!(
            "name = \"nb\"\noutput_dir = \"{}\"\nseed = 2",
            work.join("models").display()
        ),
        "[select]\ntop_k = 60\n[layout]\nmethod = \"pca\"\nheight = 32\nwidth = 32\n[model]\nwidth = 8\n[train]\nepochs = 4\nbatch_size = 32\n",
    );
    let pipeline_path = work.join("nb.toml");
    std::fs::write(&pipeline_path, pipeline).unwrap();
    let run = work.join("models/nb");
    let env = vec![
        ("DEEPINSIGHT_ROOT", common::root().display().to_string()),
        ("DEEPINSIGHT_RUN", run.display().to_string()),
        ("DEEPINSIGHT_PIPELINE", pipeline_path.display().to_string()),
        ("DEEPINSIGHT_WORK", work.display().to_string()),
        (
            "DEEPINSIGHT_BIN",
            env!("CARGO_BIN_EXE_deepinsight").to_string(),
        ),
    ];

    // The first notebook trains the run (it does not exist yet) and explains it.
    let first = execute(&python, "01_demo_cohort_to_explanations.ipynb", work, &env);
    let text = printed(&first);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
    let accuracy = manifest["metrics"]["accuracy"].as_f64().unwrap();
    assert!(
        text.contains(&format!("validation accuracy {accuracy:.3}")),
        "the notebook's metrics are not the run's:\n{text}"
    );
    assert!(
        text.contains("signal pathways among the 10 best-scoring gene sets"),
        "{text}"
    );
    let features = ParquetReader::new(
        std::fs::File::open(work.join("nb-explain/feature_scores.parquet")).unwrap(),
    )
    .finish()
    .unwrap();
    let best = features
        .column("feature")
        .unwrap()
        .str()
        .unwrap()
        .get(0)
        .unwrap()
        .to_string();
    assert!(
        text.contains(&best),
        "the best feature {best} is not shown:\n{text}"
    );

    // The second serves the run, scores a new cohort over HTTP and explains one patient.
    let second = execute(&python, "02_score_new_cohort.ipynb", work, &env);
    let text = printed(&second);
    assert!(text.contains("accuracy on the new cohort"), "{text}");
    assert!(text.contains("server stopped with code 0"), "{text}");
    // Its predictions are the CLI's for the same tables.
    let cohort = work.join("new_cohort");
    let mut args: Vec<String> = vec![
        "predict".into(),
        "--model".into(),
        run.display().to_string(),
    ];
    for m in ["genomics", "proteomics", "metabolomics", "microbiome"] {
        args.push(format!(
            "--input={m}={}",
            cohort.join(format!("{m}.parquet")).display()
        ));
    }
    args.push("--output".into());
    args.push(work.join("cli.parquet").display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = common::deepinsight(work, &args);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let read = |p: &Path| -> Vec<(String, String)> {
        let f = ParquetReader::new(std::fs::File::open(p).unwrap())
            .finish()
            .unwrap();
        let ids = f.column("sample_id").unwrap().str().unwrap().clone();
        let predicted = f.column("predicted").unwrap().str().unwrap().clone();
        let mut rows: Vec<(String, String)> = ids
            .iter()
            .zip(predicted.iter())
            .map(|(a, b)| (a.unwrap().to_string(), b.unwrap().to_string()))
            .collect();
        rows.sort();
        rows
    };
    let http = read(&work.join("new_cohort_predictions.parquet"));
    assert_eq!(http.len(), 90);
    assert_eq!(http, read(&work.join("cli.parquet")));
}
