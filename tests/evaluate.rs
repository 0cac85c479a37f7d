//! `deepinsight evaluate` end to end on the small cohort: the reports, resuming, bad input.

mod common;

use std::path::Path;

use polars::prelude::*;

/// The small cohort with 3 folds and quick baselines.
fn setup(dir: &Path) {
    common::write_small_cohort(dir);
    let pipeline = common::small_pipeline("") + "[evaluate]\nfolds = 3\nforest_trees = 20\n";
    std::fs::write(dir.join("pipeline.toml"), pipeline).unwrap();
}

fn evaluate(dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["evaluate", "pipeline.toml"];
    args.extend_from_slice(extra);
    common::deepinsight(dir, &args)
}

#[test]
fn evaluate_writes_every_report_and_ends_in_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let out = evaluate(dir.path(), &[]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for model in ["cnn", "majority", "logistic", "random_forest"] {
        assert!(stdout.contains(&format!("\n{model} ")), "{model}: {stdout}");
    }
    let sentence = stdout
        .lines()
        .find(|l| l.starts_with("CNN vs "))
        .unwrap_or_else(|| panic!("no comparison: {stdout}"));
    assert!(
        sentence.contains("macro-F1") && sentence.contains("95% CI"),
        "{sentence}"
    );
    // Without a terminal, one line per epoch that names its fold, and one per finished fold.
    for fold in 1..=3 {
        assert!(
            stdout.contains(&format!("fold {fold}/3: epoch 1/1: train loss ")),
            "{stdout}"
        );
        assert!(stdout.contains(&format!("fold {fold}/3: done")), "{stdout}");
    }

    let result = dir.path().join("models/small-evaluation");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(result.join("evaluation.json")).unwrap()).unwrap();
    let per_fold = json["per_fold"].as_array().unwrap();
    assert_eq!(per_fold.len(), 3 * 4, "3 folds x 4 models");
    let tested: u64 = per_fold
        .iter()
        .filter(|s| s["model"] == "cnn")
        .map(|s| s["test"].as_u64().unwrap())
        .sum();
    assert_eq!(tested, 24, "the test folds cover every sample once");
    // The majority class of balanced training folds scores about half.
    let majority = json["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "majority")
        .unwrap();
    assert!(majority["accuracy"]["mean"].as_f64().unwrap() <= 0.6);

    let png = image::open(result.join("evaluation.png"))
        .unwrap()
        .to_rgb8();
    assert!(png.width() > 4 * 100, "a column per model");
    let csv = std::fs::read_to_string(result.join("evaluation.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 12, "{csv}");
    let oof =
        ParquetReader::new(std::fs::File::open(result.join("oof_predictions.parquet")).unwrap())
            .finish()
            .unwrap();
    assert_eq!(oof.height(), 24 * 4, "every sample once per model");
    let ids = oof
        .clone()
        .lazy()
        .filter(col("model").eq(lit("cnn")))
        .select([col("sample_id").n_unique()])
        .collect()
        .unwrap();
    assert_eq!(
        ids.column("sample_id").unwrap().u32().unwrap().get(0),
        Some(24)
    );
    for column in [
        "fold",
        "repeat",
        "label",
        "predicted",
        "prob_case",
        "prob_control",
    ] {
        assert!(oof.column(column).is_ok(), "{column}");
    }
    // Nothing is left of the work: the folds' files and checkpoints went with it.
    assert!(!dir.path().join("models/.small-evaluation.work").exists());

    // report.html: the evaluation's page, read in headless Chromium.
    let check = common::check_page(
        &result.join("report.html"),
        &dir.path().join("page.png"),
        (1024, 768),
    );
    assert!(check.problems.is_empty(), "{:?}", check.problems);
    assert_eq!(
        check.sections,
        ["pipeline", "cohort", "evaluation", "artefacts"]
    );
    assert_eq!(check.images, [true], "the chart");
    let html = std::fs::read_to_string(result.join("report.html")).unwrap();
    let cnn = &json["models"][0];
    assert_eq!(cnn["model"], "cnn");
    let f1 = format!(
        "{:.3} ± {:.3}",
        cnn["macro_f1"]["mean"].as_f64().unwrap(),
        cnn["macro_f1"]["sd"].as_f64().unwrap()
    );
    assert!(html.contains(&f1), "the CNN's macro-F1 {f1}");
    let sha = deepinsight::run::sha256_file(&result.join("evaluation.json")).unwrap();
    assert!(html.contains(&sha));
}

#[test]
fn an_interrupted_evaluation_resumes_to_the_same_report() {
    let straight = tempfile::tempdir().unwrap();
    setup(straight.path());
    assert!(evaluate(straight.path(), &[]).status.success());

    let resumed = tempfile::tempdir().unwrap();
    setup(resumed.path());
    let out = evaluate(resumed.path(), &["--max-folds", "1"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("stopped with 1 of 3 folds finished"),
        "{stdout}"
    );
    let work = resumed.path().join("models/.small-evaluation.work");
    assert!(work.join("repeat1-fold1.json").exists());
    assert!(!resumed.path().join("models/small-evaluation").exists());
    let out = evaluate(resumed.path(), &["--max-folds", "1"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 of 3"));
    let out = evaluate(resumed.path(), &[]);
    assert!(out.status.success(), "{}", common::stderr(&out));

    let read = |d: &Path| {
        std::fs::read_to_string(d.join("models/small-evaluation/evaluation.json")).unwrap()
    };
    assert_eq!(read(straight.path()), read(resumed.path()), "bit for bit");
}

#[test]
fn folds_that_cannot_be_trained_are_refused_before_any_training() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let out = evaluate(dir.path(), &["--folds", "1"]);
    assert!(!out.status.success());
    assert!(
        common::stderr(&out).contains("evaluate.folds"),
        "{}",
        common::stderr(&out)
    );
    // 12 samples of each class: 13 folds leave one without a test sample.
    let out = evaluate(dir.path(), &["--folds", "13"]);
    assert!(!out.status.success());
    let err = common::stderr(&out);
    assert!(
        err.contains("class 'case' has 12 sample(s), fewer than the 13 folds"),
        "{err}"
    );
    assert!(!dir.path().join("models").exists(), "nothing was written");
}

#[test]
fn a_fold_from_other_settings_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    assert!(evaluate(dir.path(), &["--max-folds", "1"]).status.success());
    let text = std::fs::read_to_string(dir.path().join("pipeline.toml")).unwrap();
    std::fs::write(
        dir.path().join("pipeline.toml"),
        text.replace("seed = 1", "seed = 2"),
    )
    .unwrap();
    let out = evaluate(dir.path(), &[]);
    assert!(!out.status.success());
    let err = common::stderr(&out);
    assert!(
        err.contains("repeat1-fold1.json") && err.contains("other settings"),
        "{err}"
    );
}

#[test]
fn baselines_alone_write_each_fold_s_fitted_features() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let out = evaluate(
        dir.path(),
        &["--baselines-only", "--fold-features", "features"],
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("baselines only"), "{stdout}");
    assert!(!stdout.contains("\ncnn "), "{stdout}");
    let mut tested = Vec::new();
    for fold in 1..=3 {
        let path = dir
            .path()
            .join(format!("features/repeat1-fold{fold}.parquet"));
        let frame = ParquetReader::new(std::fs::File::open(&path).unwrap())
            .finish()
            .unwrap();
        assert_eq!(frame.height(), 24, "every sample, as training or test");
        // sample_id, split, label and the 11 features of the small cohort (all kept).
        assert_eq!(frame.width(), 3 + 11, "{:?}", frame.get_column_names());
        assert!(frame.column("a:a0").is_ok());
        let split = frame.column("split").unwrap().str().unwrap().clone();
        let ids = frame.column("sample_id").unwrap().str().unwrap().clone();
        let count = |name: &str| split.iter().filter(|s| *s == Some(name)).count();
        // 16 training samples (8 a class), a fifth of each class the inner validation split.
        assert_eq!(
            (count("train"), count("validation"), count("test")),
            (12, 4, 8),
            "{frame}"
        );
        for (s, id) in split.iter().zip(ids.iter()) {
            if s == Some("test") {
                tested.push(id.unwrap().to_string());
            }
        }
    }
    tested.sort();
    tested.dedup();
    assert_eq!(
        tested.len(),
        24,
        "the test folds are disjoint and cover every sample"
    );
}

#[test]
fn folds_run_one_per_process_then_collected_give_the_one_process_report() {
    let straight = tempfile::tempdir().unwrap();
    setup(straight.path());
    assert!(evaluate(straight.path(), &[]).status.success());

    let split = tempfile::tempdir().unwrap();
    setup(split.path());
    for fold in ["3", "1"] {
        let out = evaluate(split.path(), &["--fold", fold]);
        assert!(out.status.success(), "{}", common::stderr(&out));
        assert!(
            String::from_utf8_lossy(&out.stdout)
                .contains(&format!("fold {fold} of repeat 1 finished"))
        );
    }
    let out = evaluate(split.path(), &["--collect"]);
    assert!(!out.status.success(), "collected with a fold missing");
    let err = common::stderr(&out);
    assert!(
        err.contains("1 of 3 folds are not finished") && err.contains("--fold 2"),
        "{err}"
    );
    let out = evaluate(split.path(), &["--fold", "4"]);
    assert!(
        common::stderr(&out).contains("has 1 repeat(s) of 3 folds"),
        "{}",
        common::stderr(&out)
    );
    assert!(evaluate(split.path(), &["--fold", "2"]).status.success());
    let out = evaluate(split.path(), &["--collect"]);
    assert!(out.status.success(), "{}", common::stderr(&out));

    let read = |d: &Path| {
        std::fs::read_to_string(d.join("models/small-evaluation/evaluation.json")).unwrap()
    };
    assert_eq!(read(straight.path()), read(split.path()), "byte for byte");
}

/// The leakage canary: with the bundled cohort's labels shuffled, nothing about a sample says
/// its class, so a CNN that scores above the majority class learned something it should not
/// have seen (here, ANOVA selection is the step that reads labels).
#[test]
fn the_cnn_on_permuted_labels_scores_about_the_majority_rate() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::root().join("data");
    let mut labels = ParquetReader::new(std::fs::File::open(data.join("labels.parquet")).unwrap())
        .finish()
        .unwrap();
    let mut shuffled: Vec<String> = labels
        .column("label")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|l| l.unwrap().to_string())
        .collect();
    // A fixed permutation: a stride coprime with 300 walks every position once.
    let n = shuffled.len();
    shuffled = (0..n).map(|i| shuffled[(i * 7 + 3) % n].clone()).collect();
    labels
        .replace("label", Column::new("label".into(), shuffled))
        .unwrap();
    let mut file = std::fs::File::create(dir.path().join("labels.csv")).unwrap();
    CsvWriter::new(&mut file).finish(&mut labels).unwrap();
    let d = |f: &str| data.join(f).display().to_string();
    let pipeline = format!(
        "name = \"canary\"\nseed = 5\n[data]\nlabels = \"labels.csv\"\n[data.modalities]\n\
         genomics = \"{}\"\nproteomics = \"{}\"\nmetabolomics = \"{}\"\nmicrobiome = \"{}\"\n\
         [select.pathways]\ngmt = \"{}\"\ntop_k = 10\nscore = \"anova\"\n\
         [layout]\nmethod = \"pca\"\nheight = 16\nwidth = 16\n[model]\nwidth = 8\n\
         [train]\nepochs = 4\nbatch_size = 16\n[evaluate]\nfolds = 3\nforest_trees = 50\n",
        d("genomics.parquet"),
        d("proteomics.parquet"),
        d("metabolomics.parquet"),
        d("microbiome.parquet"),
        d("pathways.gmt")
    );
    std::fs::write(dir.path().join("pipeline.toml"), pipeline).unwrap();
    let out = evaluate(dir.path(), &[]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("models/canary-evaluation/evaluation.json")).unwrap(),
    )
    .unwrap();
    let accuracy = |model: &str| {
        json["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["model"] == model)
            .unwrap()["accuracy"]["mean"]
            .as_f64()
            .unwrap()
    };
    let (cnn, majority) = (accuracy("cnn"), accuracy("majority"));
    // Three folds of 100: one standard error of an accuracy near 0.4 is about 0.03.
    assert!(
        cnn <= majority + 0.1,
        "CNN {cnn} vs majority {majority}: leakage?"
    );
}

#[test]
fn evaluate_takes_any_setting_from_the_command_line_and_refuses_a_typo() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let out = evaluate(
        dir.path(),
        &["--set", "train.epochs=2", "--set", "name=\"other\""],
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("fold 1/3: epoch 2/2: "), "{stdout}");
    assert!(
        dir.path()
            .join("models/other-evaluation/evaluation.json")
            .exists()
    );
    let typo = evaluate(dir.path(), &["--set", "train.epoch=2"]);
    assert!(!typo.status.success());
    assert!(
        common::stderr(&typo).contains("unknown key `train.epoch`"),
        "{}",
        common::stderr(&typo)
    );
}

/// Numbers of a `bench accuracy` row: the words after the cohort and lever, with `±`, `(`,
/// `)` and `to` dropped.
fn bench_row(stdout: &str, lever: &str) -> Vec<String> {
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(lever))
        .unwrap_or_else(|| panic!("no row for {lever}:\n{stdout}"));
    line.split_whitespace()
        .skip(2)
        .map(|w| w.trim_matches(['(', ')']).to_string())
        .filter(|w| !["±", "to", ""].contains(&w.as_str()))
        .collect()
}

#[test]
fn bench_accuracy_pairs_each_lever_with_the_pipeline_as_written_and_keeps_finished_ones() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let args = [
        "bench",
        "accuracy",
        "pipeline.toml",
        "--lever",
        "longer:train.epochs=3",
        "--lever",
        "same:train.epochs=1",
        "--out",
        "acc",
    ];
    let out = common::deepinsight(dir.path(), &args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}\n{stdout}", common::stderr(&out));
    // samples, folds, CNN mean, sd, vs-written (mean, low, high), baseline name, mean, sd,
    // CNN - best (mean, low, high), AUROC mean, sd, minutes.
    let written = bench_row(&stdout, "as-written");
    let longer = bench_row(&stdout, "longer");
    assert_eq!(written[..2], ["24", "3"], "{stdout}");
    assert_eq!(
        written[4], "-",
        "the reference row is not compared with itself: {stdout}"
    );
    let f1 = |path: &str| -> Vec<f64> {
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(path)).unwrap()).unwrap();
        json["per_fold"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["model"] == "cnn")
            .map(|s| s["macro_f1"].as_f64().unwrap())
            .collect()
    };
    let (a, b) = (
        f1("acc/small-as-written-evaluation/evaluation.json"),
        f1("acc/small-longer-evaluation/evaluation.json"),
    );
    assert_eq!(a.len(), 3);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let printed: f64 = longer[4].parse().unwrap();
    let paired = 100.0 * (mean(&b) - mean(&a));
    assert!(
        (printed - paired).abs() <= 0.051,
        "{printed} vs {paired}: {stdout}"
    );
    let printed_mean: f64 = longer[2].parse().unwrap();
    assert!((printed_mean - mean(&b)).abs() <= 5e-4, "{stdout}");
    assert_ne!(written.last().unwrap(), "kept");
    // A lever that comes to the pipeline as written (epochs = 1 already) is not computed
    // again: the same evaluation, read back.
    let same = bench_row(&stdout, "same");
    assert_eq!(same.last().unwrap(), "kept", "{stdout}");
    assert_eq!(same[4..7], ["+0.0", "+0.0", "+0.0"], "{stdout}");
    assert_eq!(same[2..4], written[2..4]);

    // Again: both evaluations are read back, with the same numbers.
    let again = common::deepinsight(dir.path(), &args);
    let again_out = String::from_utf8_lossy(&again.stdout).into_owned();
    assert!(again.status.success(), "{}", common::stderr(&again));
    for lever in ["as-written", "longer", "same"] {
        let (first, second) = (bench_row(&stdout, lever), bench_row(&again_out, lever));
        assert_eq!(second.last().unwrap(), "kept", "{again_out}");
        assert_eq!(first[..first.len() - 1], second[..second.len() - 1]);
    }
    // A lever that moves the folds has nothing to be paired with.
    let seed = common::deepinsight(
        dir.path(),
        &[
            "bench",
            "accuracy",
            "pipeline.toml",
            "--lever",
            "seed:seed=5",
            "--out",
            "acc",
        ],
    );
    assert!(!seed.status.success());
    assert!(
        common::stderr(&seed).contains("its folds are not those of"),
        "{}",
        common::stderr(&seed)
    );
}
