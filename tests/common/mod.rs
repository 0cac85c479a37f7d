//! Helpers shared by the integration tests: small cohorts written as CSV, pipeline files,
//! and running the CLI.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Repository root (where `data/` and `pipelines/` live).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the deepinsight binary in `dir` with `args`.
pub fn deepinsight(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deepinsight"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the binary runs")
}

/// The binary with environment variables set (`Some`) or removed (`None`).
pub fn deepinsight_env(dir: &Path, args: &[&str], env: &[(&str, Option<&str>)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_deepinsight"));
    command.args(args).current_dir(dir);
    for (name, value) in env {
        match value {
            Some(v) => command.env(name, v),
            None => command.env_remove(name),
        };
    }
    command.output().expect("the binary runs")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A small two-modality cohort with a class signal, as CSV files in `dir`: 24 samples,
/// `a.csv` with 6 features and `b.csv` with 5, and `labels.csv`.
pub fn write_small_cohort(dir: &Path) {
    let mut a = String::from("sample_id");
    for j in 0..6 {
        a.push_str(&format!(",a{j}"));
    }
    a.push('\n');
    let mut b = String::from("sample_id,b0,b1,b2,b3,b4\n");
    let mut labels = String::from("sample_id,label\n");
    for i in 0..24 {
        let class = i % 2;
        let id = format!("S{i}");
        let x =
            |j: usize| ((i * 7 + j * 13) % 11) as f64 + if class == 1 && j < 2 { 8.0 } else { 0.0 };
        a.push_str(&id);
        for j in 0..6 {
            a.push_str(&format!(",{}", x(j)));
        }
        a.push('\n');
        b.push_str(&id);
        for j in 0..5 {
            b.push_str(&format!(",{}", x(j + 6) * 0.5));
        }
        b.push('\n');
        labels.push_str(&format!(
            "{id},{}\n",
            if class == 1 { "case" } else { "control" }
        ));
    }
    std::fs::write(dir.join("a.csv"), a).unwrap();
    std::fs::write(dir.join("b.csv"), b).unwrap();
    std::fs::write(dir.join("labels.csv"), labels).unwrap();
}

/// A quick pipeline over the small cohort: PCA layout, 16x16, a narrow ResNet, one epoch.
pub fn small_pipeline(extra: &str) -> String {
    format!(
        r#"name = "small"
output_dir = "models"
seed = 1
{extra}
[data]
labels = "labels.csv"
[data.modalities]
a = "a.csv"
b = "b.csv"
[layout]
method = "pca"
height = 16
width = 16
[model]
width = 4
[train]
epochs = 1
batch_size = 8
"#
    )
}

/// A pipeline file over the bundled data: `head` (name, output_dir, seed), then the `[data]`
/// section with absolute paths to data/, then `stages` (select, layout, model, train).
pub fn bundled_pipeline(head: &str, stages: &str) -> String {
    let data = root().join("data");
    let d = |f: &str| data.join(f).display().to_string();
    format!(
        "{head}\n[data]\nlabels = \"{}\"\n[data.modalities]\ngenomics = \"{}\"\nproteomics = \"{}\"\n\
         metabolomics = \"{}\"\nmicrobiome = \"{}\"\n{stages}",
        d("labels.parquet"),
        d("genomics.parquet"),
        d("proteomics.parquet"),
        d("metabolomics.parquet"),
        d("microbiome.parquet")
    )
}

/// The Python the tests run helpers with, which must import `modules`: the interpreter named
/// in DEEPINSIGHT_NOTEBOOK_PYTHON (scripts/test sets it from scripts/setup-notebooks.sh), else
/// `python3`. A Python without them fails the test with the command that installs them: a
/// test never passes by skipping.
pub fn test_python(modules: &str) -> PathBuf {
    let named = std::env::var_os("DEEPINSIGHT_NOTEBOOK_PYTHON").map(PathBuf::from);
    let candidate = named.clone().unwrap_or_else(|| PathBuf::from("python3"));
    let ok = Command::new(&candidate)
        .args(["-c", &format!("import {modules}")])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} cannot import {modules}: run the tests with scripts/test, which installs them \
         (or run scripts/setup-notebooks.sh and set DEEPINSIGHT_NOTEBOOK_PYTHON to the Python \
         it prints)",
        candidate.display()
    );
    candidate
}

/// What headless Chromium saw of a page (tests/helpers/check_page.py).
#[derive(Debug, serde::Deserialize)]
pub struct PageCheck {
    /// Console errors, uncaught exceptions and failed loads.
    pub problems: Vec<String>,
    /// The ids of the page's sections, in order.
    pub sections: Vec<String>,
    /// Per image, whether it loaded and decoded.
    pub images: Vec<bool>,
}

/// Opens `page` from file:// in headless Chromium with no network, and takes a `width` x
/// `height` screenshot into `screenshot`. Chromium (Debian's `chromium`) and websocket-client
/// are installed by scripts/test; without them this fails saying so.
pub fn check_page(page: &Path, screenshot: &Path, (width, height): (u32, u32)) -> PageCheck {
    let python = test_python("websocket");
    let browser = std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".into());
    assert!(
        Command::new(&browser).arg("--version").output().is_ok(),
        "'{browser}' is not on PATH: run the tests with scripts/test, which installs it \
         (Debian/Ubuntu: apt-get install chromium), or name a Chromium in CHROMIUM"
    );
    let out = Command::new(python)
        .arg(root().join("tests/helpers/check_page.py"))
        .arg(page)
        .arg(screenshot)
        .args([width.to_string(), height.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "check_page.py: {}", stderr(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}
