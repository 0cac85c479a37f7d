//! `deepinsight explain`: on cohorts whose class signal is planted in known features, the maps
//! rank those features first; the feature table is exactly the class maps read at each
//! feature's pixel; pathways, pictures and the per-sample table are written; DeepFeature's
//! refit keeps the planted features and trains again; bad requests are refused by name.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// A two-class cohort as CSV files in `dir`: `modalities` gives each table's name and feature
/// count; a planted feature is shifted by `shift` standard deviations in class `case`, with
/// noise of its own (so the model gains from every one of them); the rest is noise.
fn write_cohort(
    dir: &Path,
    samples: usize,
    modalities: &[(&str, usize)],
    planted: &[&str],
    shift: f64,
    seed: u64,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0f64, 1.0).unwrap();
    let mut tables: Vec<String> = modalities
        .iter()
        .map(|(m, n)| {
            let names: Vec<String> = (0..*n).map(|j| format!("{m}{j:02}")).collect();
            format!("sample_id,{}\n", names.join(","))
        })
        .collect();
    let mut labels = String::from("sample_id,label\n");
    for i in 0..samples {
        let case = i % 2 == 1;
        let id = format!("S{i:03}");
        for (table, (m, n)) in tables.iter_mut().zip(modalities) {
            table.push_str(&id);
            for j in 0..*n {
                let name = format!("{m}{j:02}");
                let noise = normal.sample(&mut rng);
                let v = if case && planted.contains(&name.as_str()) {
                    shift + noise
                } else {
                    noise
                };
                table.push_str(&format!(",{v:.5}"));
            }
            table.push('\n');
        }
        labels.push_str(&format!("{id},{}\n", if case { "case" } else { "control" }));
    }
    for (table, (m, _)) in tables.iter().zip(modalities) {
        std::fs::write(dir.join(format!("{m}.csv")), table).unwrap();
    }
    std::fs::write(dir.join("labels.csv"), labels).unwrap();
}

fn pipeline(modalities: &[&str], layout: &str) -> String {
    let tables: String = modalities
        .iter()
        .map(|m| format!("{m} = \"{m}.csv\"\n"))
        .collect();
    format!(
        r#"name = "planted"
output_dir = "models"
seed = 3
[data]
labels = "labels.csv"
[data.modalities]
{tables}[layout]
height = 32
width = 32
collisions = "assign"
{layout}
[model]
width = 8
[train]
epochs = 25
batch_size = 16
learning_rate = 0.002
"#
    )
}

/// The cohort of the pathway-level and refit tests: modalities `a` (60 features) and `b` (40),
/// signal planted in six features of `a`, PCA layout.
const PLANTED: [&str; 6] = ["a03", "a17", "a29", "a41", "a52", "a58"];

fn trained_pca(dir: &Path) -> PathBuf {
    write_cohort(dir, 300, &[("a", 60), ("b", 40)], &PLANTED, 1.0, 11);
    std::fs::write(
        dir.join("p.toml"),
        pipeline(&["a", "b"], "method = \"pca\""),
    )
    .unwrap();
    let out = common::deepinsight(dir, &["run", "p.toml"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    dir.join("models/planted")
}

fn read(path: &Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .unwrap()
}

fn strings(frame: &DataFrame, name: &str) -> Vec<String> {
    frame
        .column(name)
        .unwrap()
        .cast(&DataType::String)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect()
}

fn floats(frame: &DataFrame, name: &str) -> Vec<f32> {
    frame
        .column(name)
        .unwrap()
        .f32()
        .unwrap()
        .iter()
        .map(|v| v.unwrap())
        .collect()
}

fn u32s(frame: &DataFrame, name: &str) -> Vec<u32> {
    frame
        .column(name)
        .unwrap()
        .u32()
        .unwrap()
        .iter()
        .map(|v| v.unwrap())
        .collect()
}

fn explain(dir: &Path, out: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["explain", "--model", "models/planted", "--out", out];
    args.extend_from_slice(extra);
    common::deepinsight(dir, &args)
}

/// Rank (1 = best) of each of `features` in a feature table.
fn ranks(table: &DataFrame, features: &[&str]) -> Vec<u32> {
    let names = strings(table, "feature");
    let rank = u32s(table, "rank");
    features
        .iter()
        .map(|f| rank[names.iter().position(|n| n == f).expect("placed")])
        .collect()
}

#[test]
fn the_planted_features_lead_the_ranking() {
    // 100 features on a 10 x 10 lattice (precomputed coordinates); the six planted ones form a
    // 2 x 3 block, as a DeepInsight layout puts features that behave alike together.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let block = ["a44", "a45", "a46", "a54", "a55", "a56"];
    write_cohort(dir, 300, &[("a", 100)], &block, 1.3, 12);
    let coords: String = std::iter::once("feature,x,y\n".to_string())
        .chain((0..100).map(|j| format!("a{j:02},{},{}\n", j % 10, j / 10)))
        .collect();
    std::fs::write(dir.join("coords.csv"), coords).unwrap();
    std::fs::write(
        dir.join("p.toml"),
        pipeline(
            &["a"],
            "method = \"precomputed\"\ncoordinates = \"coords.csv\"",
        ),
    )
    .unwrap();
    let out = common::deepinsight(dir, &["run", "p.toml"]);
    assert!(out.status.success(), "{}", common::stderr(&out));

    let run = explain(dir, "explained", &[]);
    assert!(run.status.success(), "{}", common::stderr(&run));
    let table = read(&dir.join("explained/feature_scores.parquet"));
    assert_eq!(table.height(), 100);
    let found = ranks(&table, &block);
    // Measured over pipeline seeds 1-11 on two numerically equivalent training paths (Burn's
    // BatchNorm and this crate's, equal to 1e-4 per op): five of the six always ranked in the
    // top ten, and in 3 of the 22 runs one feature on the block's edge ranked 11-14.
    let top_ten = found.iter().filter(|&&r| r <= 10).count();
    assert!(
        top_ten >= 5 && found.iter().all(|&r| r <= 20),
        "planted features ranked {found:?} of 100"
    );
    // The ranking follows the score, best first, and rank 1 has normalised score 1.
    let score = floats(&table, "score");
    assert!(score.windows(2).all(|w| w[0] >= w[1]));
    assert_eq!(floats(&table, "normalised")[0], 1.0);
}

#[test]
fn the_table_is_the_class_maps_at_each_feature_pixel_with_pathways_pictures_and_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let run_dir = trained_pca(dir);
    // Gene sets over the features: the planted ones, and two of noise.
    let others: Vec<String> = (0..40).map(|j| format!("b{j:02}")).collect();
    std::fs::write(
        dir.join("sets.gmt"),
        format!(
            "PLANTED\tx\t{}\nNOISE_A\tx\ta00\ta01\ta02\ta04\ta05\ta06\nNOISE_B\tx\t{}\n",
            PLANTED.join("\t"),
            others.join("\t")
        ),
    )
    .unwrap();
    for (out, extra) in [
        ("saliency", vec!["--gmt", "sets.gmt"]),
        ("gradcam", vec!["--method", "gradcam", "--stage", "1"]),
        ("hirescam", vec!["--method", "hirescam", "--stage", "2"]),
    ] {
        let run = explain(dir, out, &extra);
        assert!(run.status.success(), "{out}: {}", common::stderr(&run));
        let out_dir = dir.join(out);
        let table = read(&out_dir.join("feature_scores.parquet"));
        let pixels = read(&out_dir.join("pixel_scores.parquet"));
        assert_eq!(table.height(), 100, "{out}: one row per placed feature");

        // Exactness: each feature's class scores are the class maps at its own pixel (Grad-CAM
        // has one map plane, saliency one per image channel).
        let planes = u32s(&pixels, "channel").into_iter().max().unwrap() + 1;
        let mut at: HashMap<(String, u32, u32, u32), f32> = HashMap::new();
        for (((c, p), (r, col)), v) in strings(&pixels, "class")
            .into_iter()
            .zip(u32s(&pixels, "channel"))
            .zip(
                u32s(&pixels, "row")
                    .into_iter()
                    .zip(u32s(&pixels, "column")),
            )
            .zip(floats(&pixels, "mean"))
        {
            at.insert((c, p, r, col), v);
        }
        let (channel, row, column) = (
            u32s(&table, "channel_index"),
            u32s(&table, "row"),
            u32s(&table, "column"),
        );
        let mut nonzero = 0;
        for class in ["case", "control"] {
            let mean = floats(&table, &format!("mean_{class}"));
            for i in 0..table.height() {
                let plane = if planes == 1 { 0 } else { channel[i] };
                let pixel = at[&(class.to_string(), plane, row[i], column[i])];
                assert_eq!(mean[i], pixel, "{out}: row {i} of the table");
                if mean[i] != 0.0 {
                    assert_ne!(pixel, 0.0);
                    nonzero += 1;
                }
            }
        }
        assert!(nonzero > 0, "{out}: every score is zero");

        // Pictures: one row per class in cam_classes.png, PNG files that decode.
        for picture in ["cam_classes.png", "cam_samples.png", "top_features.png"] {
            let img = image::open(out_dir.join(picture)).unwrap();
            assert!(img.width() > 64 && img.height() > 32, "{out}/{picture}");
        }
        // One row per training sample, with its five best features.
        let samples = read(&out_dir.join("samples.parquet"));
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run_dir.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(
            samples.height() as u64,
            manifest["samples"]["train"].as_u64().unwrap()
        );
        let top = strings(&samples, "top_features");
        assert!(
            top.iter().all(|t| t.split(';').count() == 5),
            "{:?}",
            &top[0]
        );
        // The selection is the rows at or above the threshold.
        let selected = std::fs::read_to_string(out_dir.join("selected_features.csv")).unwrap();
        let above = floats(&table, "normalised")
            .iter()
            .filter(|&&v| v >= 0.5)
            .count();
        assert_eq!(selected.lines().count() - 1, above);
    }

    // Saliency finds the planted features, and the gene set holding them ranks first. Here
    // the layout scatters them (PCA), and over pipeline seeds 3 to 8 one of the six once ranked
    // 26th (the others 1 to 8): at least five in the top 10% is what is asserted; the block
    // test above holds all six to it.
    let table = read(&dir.join("saliency/feature_scores.parquet"));
    let found = ranks(&table, &PLANTED);
    assert!(
        found.iter().filter(|&&r| r <= 10).count() >= 5,
        "planted ranked {found:?}"
    );
    let pathways = std::fs::read_to_string(dir.join("saliency/pathway_scores.csv")).unwrap();
    let first = pathways.lines().nth(1).unwrap();
    assert!(first.starts_with("PLANTED,6,"), "{pathways}");
    let pathway_column = strings(&table, "pathways");
    assert_eq!(pathway_column[0], "PLANTED");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("saliency/explain_report.json")).unwrap())
            .unwrap();
    assert_eq!(report["method"], "saliency");
    assert_eq!(report["features"], 100);
}

#[test]
fn refit_keeps_the_planted_features_and_reports_accuracy_before_and_after() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let run_dir = trained_pca(dir);
    let run = explain(dir, "deepfeature", &["--refit", "--keep-top", "20"]);
    assert!(run.status.success(), "{}", common::stderr(&run));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("round 1: "), "{stdout}");

    let out = dir.join("deepfeature");
    let kept = std::fs::read_to_string(out.join("refit-1.features.csv")).unwrap();
    let planted_kept = PLANTED
        .iter()
        .filter(|f| kept.contains(&format!("a,{f}\n")))
        .count();
    assert!(planted_kept >= 5, "planted features not kept:\n{kept}");
    // The twenty best, and at least the layout's minimum of three per modality.
    let rows = kept.lines().count() - 1;
    let b_rows = kept.lines().filter(|l| l.starts_with("b,")).count();
    assert!(b_rows >= 3 && (20..=23).contains(&rows), "{kept}");
    let refit_manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("refit-1/manifest.json")).unwrap()).unwrap();
    assert_eq!(
        refit_manifest["features"].as_array().unwrap().len(),
        kept.lines().count() - 1
    );
    // The same validation samples before and after: the comparison is fair.
    let split = |run: &Path| -> Vec<String> {
        let p = read(&run.join("predictions.parquet"));
        let (ids, split) = (strings(&p, "sample_id"), strings(&p, "split"));
        let mut v: Vec<String> = ids
            .into_iter()
            .zip(split)
            .filter(|(_, s)| s == "validation")
            .map(|(id, _)| id)
            .collect();
        v.sort();
        v
    };
    assert_eq!(split(&run_dir), split(&out.join("refit-1")));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("refit_report.json")).unwrap()).unwrap();
    let original: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        report["before"]["accuracy"],
        original["metrics"]["accuracy"]
    );
    assert_eq!(report["before"]["features"], 100);
    assert_eq!(
        report["rounds"][0]["accuracy"],
        refit_manifest["metrics"]["accuracy"]
    );
    assert_eq!(report["rounds"][0]["features"], rows);
    // With only the planted features and a little noise left, the refitted model still
    // separates the classes.
    assert!(
        report["rounds"][0]["accuracy"].as_f64().unwrap() >= 0.75,
        "{report}"
    );
}

#[test]
fn new_tables_and_bad_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::write_small_cohort(dir);
    std::fs::write(dir.join("p.toml"), common::small_pipeline("")).unwrap();
    let out = common::deepinsight(dir, &["run", "p.toml"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let model = ["--model", "models/small"];
    let run = |args: &[&str]| {
        let mut all = vec!["explain"];
        all.extend_from_slice(&model);
        all.extend_from_slice(args);
        common::deepinsight(dir, &all)
    };

    // A new cohort's tables (here the same files) with labels: every sample explained.
    let ok = run(&[
        "--input",
        "a=a.csv",
        "--input",
        "b=b.csv",
        "--labels",
        "labels.csv",
        "--samples",
        "all",
        "--out",
        "new",
    ]);
    assert!(ok.status.success(), "{}", common::stderr(&ok));
    let samples = read(&dir.join("new/samples.parquet"));
    assert_eq!(samples.height(), 24);
    assert_eq!(strings(&samples, "label")[1], "case");
    // Chosen ids, explained for one class.
    let ok = run(&["--samples", "S1,S2", "--target", "case", "--out", "two"]);
    assert!(ok.status.success(), "{}", common::stderr(&ok));
    let samples = read(&dir.join("two/samples.parquet"));
    assert_eq!(strings(&samples, "sample_id"), ["S1", "S2"]);
    assert_eq!(strings(&samples, "target"), ["case", "case"]);

    for (args, expected) in [
        (vec!["--samples", "S1,S99", "--out", "x"], "no sample 'S99'"),
        (
            vec!["--target", "tumour", "--out", "x"],
            "not a class of the model",
        ),
        (
            vec![
                "--input",
                "a=a.csv",
                "--input",
                "b=b.csv",
                "--samples",
                "train",
                "--out",
                "x",
            ],
            "have no train split",
        ),
        (vec!["--input", "c=a.csv", "--out", "x"], "no modality 'c'"),
        (
            vec!["--keep-top", "5", "--out", "x"],
            "--keep-top goes with --refit",
        ),
        (
            vec!["--method", "gradcam", "--stage", "7", "--out", "x"],
            "stage 7",
        ),
        (vec!["--gmt", "missing.gmt", "--out", "x"], "missing.gmt"),
        (
            vec!["--refit", "--samples", "validation", "--out", "x"],
            "--refit chooses features from the maps of the run's training samples",
        ),
        (
            vec!["--refit", "--rounds", "0", "--out", "x"],
            "--rounds: at least 1",
        ),
    ] {
        let out = run(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = common::stderr(&out);
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!dir.join("x").exists(), "{args:?} left output behind");
    }
}

#[test]
fn select_keep_restricts_the_candidates_and_names_bad_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::write_small_cohort(dir);
    let config = common::small_pipeline("").replace(
        "[layout]",
        "[select]\ntop_k = 100\nkeep = \"keep.csv\"\n[layout]",
    );
    std::fs::write(dir.join("p.toml"), &config).unwrap();
    std::fs::write(
        dir.join("keep.csv"),
        "modality,feature\na,a0\na,a1\na,a4\nb,b0\nb,b2\nb,b3\n",
    )
    .unwrap();
    let out = common::deepinsight(dir, &["run", "p.toml"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("models/small/manifest.json")).unwrap())
            .unwrap();
    let features: Vec<String> = manifest["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}:{}",
                f["modality"].as_str().unwrap(),
                f["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(features, ["a:a0", "a:a1", "a:a4", "b:b0", "b:b2", "b:b3"]);

    for (keep, expected) in [
        (
            "modality,feature\na,a0\na,a9\nb,b0\n",
            "modality 'a' has no feature 'a9'",
        ),
        (
            "modality,feature\na,a0\na,a1\na,a2\n",
            "no feature of modality 'b' is listed",
        ),
        (
            "modality,feature\nc,a0\n",
            "modality 'c' (feature 'a0') is not in data.modalities",
        ),
        ("name,feature\na,a0\n", "no column 'modality'"),
    ] {
        std::fs::write(dir.join("keep.csv"), keep).unwrap();
        let out = common::deepinsight(dir, &["run", "p.toml"]);
        assert!(!out.status.success());
        let err = common::stderr(&out);
        assert!(
            err.contains(expected) && err.contains("keep.csv"),
            "{keep}: {err}"
        );
    }
}
