//! `deepinsight train` and `deepinsight predict` end to end: the training options of the
//! pipeline file, interruption and resume through the CLI, the test split, metrics and curves
//! in the run, fine-tuning from a torchvision-format file, and predicting CSV tables.

mod common;

use std::path::Path;

use deepinsight::model::ResNetConfig;
use deepinsight::model::save_torchvision_safetensors;
use polars::prelude::*;

fn pipeline(name: &str, model: &str, train: &str) -> String {
    common::bundled_pipeline(
        &format!("name = \"{name}\"\noutput_dir = \"out\"\nseed = 5"),
        &format!(
            r#"[select]
top_k = 30
[layout]
method = "pca"
mode = "channels"
height = 16
width = 16
[model]
{model}
[train]
batch_size = 32
validation_fraction = 0.2
{train}
"#
        ),
    )
}

const OPTIONS: &str = r#"epochs = 3
test_fraction = 0.2
optimizer = "adamw"
weight_decay = 0.01
schedule = "cosine"
warmup_epochs = 1
label_smoothing = 0.1
class_weights = "balanced"
monitor = "balanced_accuracy"
feature_noise = 0.05
ema_epochs = 1.0
mixup_alpha = 0.2
threads = 2
"#;

fn manifest(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap()
}

fn read_parquet(path: &Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .unwrap()
}

/// Writes `opts.toml` (the options pipeline) and `straight.toml` (the same, another name) in
/// `dir`, and returns the options pipeline's text.
fn two_pipelines(dir: &Path) -> String {
    let text = pipeline("opts", "width = 4", OPTIONS);
    std::fs::write(
        dir.join("straight.toml"),
        text.replace("\"opts\"", "\"straight\""),
    )
    .unwrap();
    std::fs::write(dir.join("opts.toml"), &text).unwrap();
    text
}

/// `train opts.toml --stop-after 1`: the checkpoint of epoch 1 and nothing else.
fn stop_after_one_epoch(dir: &Path) -> std::process::Output {
    common::deepinsight(dir, &["train", "opts.toml", "--stop-after", "1"])
}

#[test]
fn a_training_with_options_scores_its_test_split_and_follows_its_schedule() {
    let dir = tempfile::tempdir().unwrap();
    two_pipelines(dir.path());
    let out = common::deepinsight(dir.path(), &["train", "straight.toml"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(stdout.contains("test ("), "test metrics printed: {stdout}");
    assert!(stdout.contains("AUROC"), "{stdout}");

    let a = dir.path().join("out/straight");
    let ma = manifest(&a);
    // The test split: counted, scored with the kept model, marked in predictions.parquet.
    let test = ma["samples"]["test"].as_u64().unwrap();
    assert!(test >= 50, "test samples: {test}");
    let metrics = &ma["test_metrics"];
    for key in ["accuracy", "balanced_accuracy", "macro_f1", "auroc"] {
        let v = metrics[key].as_f64().unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&v), "test {key} = {v}");
    }
    assert_eq!(metrics["class_auroc"].as_array().unwrap().len(), 3);
    let predictions = read_parquet(&a.join("predictions.parquet"));
    let splits = predictions.column("split").unwrap().str().unwrap().clone();
    assert_eq!(
        splits.iter().filter(|s| *s == Some("test")).count() as u64,
        test
    );

    // The schedule: warm-up to the base rate in epoch 1, then cosine decay.
    let history = ma["model"]["history"].as_array().unwrap();
    let lr: Vec<f64> = history
        .iter()
        .map(|h| h["learning_rate"].as_f64().unwrap())
        .collect();
    assert!((lr[0] - 1e-3).abs() < 1e-12, "{lr:?}");
    assert!(lr[1] < lr[0] && lr[2] < lr[1], "{lr:?}");
    assert!(history.iter().all(|h| h["valid_auroc"].is_number()));

    // training.png: listed with its checksum.
    let png = std::fs::read(a.join("training.png")).unwrap();
    assert_eq!(
        ma["files"]["training.png"].as_str().unwrap(),
        deepinsight::run::sha256_hex(&png)
    );
    let picture = image::load_from_memory(&png).unwrap();
    assert!(picture.width() > 800 && picture.height() > 300);

    predict_reads_csv_and_matches_the_run(dir.path(), &a);
}

#[test]
fn stopping_where_asked_exits_zero_and_writes_only_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    two_pipelines(dir.path());
    // Stopping where asked is not a failure: exit 0 and a plain message.
    let out = stop_after_one_epoch(dir.path());
    assert!(out.status.success(), "{}", common::stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("--resume") && said.contains(".opts.checkpoint"),
        "{said}"
    );
    assert!(!common::stderr(&out).contains("error:"));
    let checkpoint = dir.path().join("out/.opts.checkpoint");
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(checkpoint.join("state.json")).unwrap()).unwrap();
    assert_eq!(state["epoch"], 1);
    assert!(
        !dir.path().join("out/opts").exists(),
        "no run is written when interrupted"
    );
}

#[test]
fn an_edited_or_foreign_checkpoint_is_refused_for_what_is_wrong_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let text = two_pipelines(dir.path());
    let out = stop_after_one_epoch(dir.path());
    assert!(out.status.success(), "{}", common::stderr(&out));
    // An edited state is refused for what is wrong with it, not taken as a finished stop.
    let state_file = dir.path().join("out/.opts.checkpoint/state.json");
    let original = std::fs::read(&state_file).unwrap();
    let mut edited: serde_json::Value = serde_json::from_slice(&original).unwrap();
    edited["epoch"] = 7.into();
    std::fs::write(&state_file, edited.to_string()).unwrap();
    let out = common::deepinsight(dir.path(), &["train", "opts.toml", "--resume"]);
    let err = common::stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("inconsistent (epoch 7 of a training of 3 epochs)"),
        "{err}"
    );
    assert!(!err.contains("as asked"), "{err}");
    std::fs::write(&state_file, &original).unwrap();

    // Another learning rate is another training: the checkpoint is refused by name.
    let changed = text.replace("epochs = 3", "epochs = 3\nlearning_rate = 0.01");
    std::fs::write(dir.path().join("changed.toml"), changed).unwrap();
    let out = common::deepinsight(dir.path(), &["train", "changed.toml", "--resume"]);
    assert!(!out.status.success());
    assert!(
        common::stderr(&out).contains("other training data or options"),
        "{}",
        common::stderr(&out)
    );
}

#[test]
fn an_interrupted_training_resumes_to_the_uninterrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    two_pipelines(dir.path());
    let out = common::deepinsight(dir.path(), &["train", "straight.toml"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let out = stop_after_one_epoch(dir.path());
    assert!(out.status.success(), "{}", common::stderr(&out));
    let checkpoint = dir.path().join("out/.opts.checkpoint");
    let out = common::deepinsight(dir.path(), &["train", "opts.toml", "--resume"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(
        stdout.contains("resumed from the checkpoint of epoch 1"),
        "{stdout}"
    );
    assert!(
        !checkpoint.exists(),
        "the checkpoint is removed once the run is written"
    );

    // The same weights: every sample's probabilities equal bit for bit (the records
    // themselves differ in their parameter ids).
    let (a, b) = (dir.path().join("out/straight"), dir.path().join("out/opts"));
    let (pa, pb) = (
        read_parquet(&a.join("predictions.parquet")),
        read_parquet(&b.join("predictions.parquet")),
    );
    assert!(pa.equals(&pb), "the resumed run predicts otherwise");
    let (ma, mb) = (manifest(&a), manifest(&b));
    assert_eq!(mb["model"]["resumed_from"], 1);
    assert_eq!(ma["metrics"], mb["metrics"]);
    assert_eq!(ma["test_metrics"], mb["test_metrics"]);
    let without_seconds = |m: &serde_json::Value| -> Vec<serde_json::Value> {
        let mut h = m["model"]["history"].as_array().unwrap().clone();
        for e in &mut h {
            e["seconds"] = serde_json::Value::Null;
        }
        h
    };
    assert_eq!(without_seconds(&ma), without_seconds(&mb));
}

/// `predict` on CSV copies of the bundled tables gives the probabilities the run wrote.
fn predict_reads_csv_and_matches_the_run(dir: &Path, run: &Path) {
    let data = common::root().join("data");
    let mut args = vec![
        "predict".to_string(),
        "--model".into(),
        run.display().to_string(),
    ];
    for modality in ["genomics", "proteomics", "metabolomics", "microbiome"] {
        let mut frame = read_parquet(&data.join(format!("{modality}.parquet")));
        let csv = dir.join(format!("{modality}.csv"));
        CsvWriter::new(std::fs::File::create(&csv).unwrap())
            .finish(&mut frame)
            .unwrap();
        args.push("--input".into());
        args.push(format!("{modality}={}", csv.display()));
    }
    let labels = data.join("labels.parquet").display().to_string();
    let mut with_output = args.clone();
    with_output.extend(["--labels".into(), labels, "--output".into(), "p.csv".into()]);
    let refs: Vec<&str> = with_output.iter().map(String::as_str).collect();
    let out = common::deepinsight(dir, &refs);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(stdout.contains("labelled samples: accuracy"), "{stdout}");

    let predicted = CsvReadOptions::default()
        .try_into_reader_with_file_path(Some(dir.join("p.csv")))
        .unwrap()
        .finish()
        .unwrap();
    let expected = read_parquet(&run.join("predictions.parquet"));
    assert_eq!(predicted.height(), expected.height());
    let ids = |f: &DataFrame| -> Vec<String> {
        let ids = f.column("sample_id").unwrap().str().unwrap().clone();
        ids.iter().map(|s| s.unwrap().to_string()).collect()
    };
    assert_eq!(ids(&predicted), ids(&expected));
    for column in ["predicted", "label"] {
        let a = predicted.column(column).unwrap().str().unwrap().clone();
        let b = expected.column(column).unwrap().str().unwrap().clone();
        assert!(a.equal(&b).all(), "{column} differs");
    }
    for class in ["prob_healthy", "prob_subtype_A", "prob_subtype_B"] {
        let a = predicted
            .column(class)
            .unwrap()
            .cast(&DataType::Float64)
            .unwrap();
        let b = expected
            .column(class)
            .unwrap()
            .cast(&DataType::Float64)
            .unwrap();
        let (a, b) = (a.f64().unwrap(), b.f64().unwrap());
        let worst = a
            .into_no_null_iter()
            .zip(b.into_no_null_iter())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-5, "{class}: {worst}");
    }

    // A modality left out, and an output format it cannot write, are named.
    let mut missing = args[..args.len() - 2].to_vec();
    missing.extend(["--output".into(), "q.parquet".into()]);
    let refs: Vec<&str> = missing.iter().map(String::as_str).collect();
    let out = common::deepinsight(dir, &refs);
    assert!(!out.status.success());
    assert!(
        common::stderr(&out).contains("no --input for modality 'microbiome'"),
        "{}",
        common::stderr(&out)
    );
    let mut bad = args.clone();
    bad.extend(["--output".into(), "p.txt".into()]);
    let refs: Vec<&str> = bad.iter().map(String::as_str).collect();
    let out = common::deepinsight(dir, &refs);
    assert!(common::stderr(&out).contains("p.txt: must end in .parquet or .csv"));
    assert!(!dir.join("q.parquet").exists() && !dir.join("p.txt").exists());
}

#[test]
fn fine_tuning_starts_from_torchvision_weights_with_a_frozen_backbone() {
    let dir = tempfile::tempdir().unwrap();
    // A torchvision-format ResNet18 (3 input channels, 1000 classes) made by this crate.
    let device = burn::tensor::Device::flex();
    let source = deepinsight::model::init_seeded(&ResNetConfig::new(3, 1000), &device, 8);
    save_torchvision_safetensors(&source, &dir.path().join("resnet18.safetensors")).unwrap();

    let text = pipeline(
        "tuned",
        "width = 64\npretrained = \"resnet18.safetensors\"\nfreeze_backbone_epochs = 1\nbackbone_lr_factor = 0.1",
        "epochs = 1",
    );
    std::fs::write(dir.path().join("p.toml"), text).unwrap();
    let out = common::deepinsight(dir.path(), &["train", "p.toml"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let run = dir.path().join("out/tuned");
    let m = manifest(&run);
    let pretrained = &m["model"]["pretrained"];
    assert_eq!(pretrained["loaded"], 100);
    // Four modalities, four channels: the RGB stem was adapted.
    assert_eq!(pretrained["stem_channels"], serde_json::json!([3, 4]));
    assert!(m["model"]["history"][0]["frozen"].as_bool().unwrap());

    // Frozen for its only epoch, the backbone is the file's.
    let run_dir = deepinsight::run::RunDir::open(&run).unwrap();
    let weights = |t: burn::tensor::Tensor<4>| -> Vec<f32> {
        t.into_data().convert::<f32>().try_into_vec().unwrap()
    };
    assert_eq!(
        weights(run_dir.model.layer3[1].conv2.weight.val()),
        weights(source.layer3[1].conv2.weight.val())
    );
    let stem = weights(run_dir.model.conv1.weight.val());
    let rgb = weights(source.conv1.weight.val());
    assert_eq!(stem, deepinsight::model::adapt_input_conv(&rgb, 4));

    // A weights file that is not there is refused by name, and the run stays as it was.
    let before = std::fs::read(run.join("manifest.json")).unwrap();
    let out = common::deepinsight(
        dir.path(),
        &["train", "p.toml", "--pretrained", "missing.pth"],
    );
    assert!(!out.status.success());
    let err = common::stderr(&out);
    assert!(
        err.contains("model.pretrained") && err.contains("missing.pth"),
        "{err}"
    );
    assert_eq!(std::fs::read(run.join("manifest.json")).unwrap(), before);
    assert!(!dir.path().join("out/.tuned.checkpoint").exists());
}

#[test]
fn feature_noise_renders_each_training_batch_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let run = |noise: f64| {
        let text = pipeline(
            "noise",
            "width = 4",
            &format!("epochs = 1\nfeature_noise = {noise}"),
        )
        .replace(
            "output_dir = \"out\"",
            &format!(
                "output_dir = \"{}\"",
                dir.path().join(format!("n{noise}")).display()
            ),
        );
        let config = deepinsight::PipelineConfig::from_toml(&text).unwrap();
        deepinsight::pipeline::run(&config).unwrap();
        let m = manifest(&config.run_dir());
        m["model"]["history"][0]["train_loss"].as_f64().unwrap()
    };
    let (clean, noisy, again) = (run(0.0), run(0.3), run(0.3));
    assert_ne!(clean, noisy, "noise on the feature values changed nothing");
    assert_eq!(noisy, again, "the noise is drawn from the seed");
}

#[test]
fn mixup_and_the_weight_average_each_change_what_is_trained_and_follow_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, train: &str| {
        let text = pipeline(name, "width = 4", &format!("epochs = 2\n{train}")).replace(
            "output_dir = \"out\"",
            &format!("output_dir = \"{}\"", dir.path().display()),
        );
        let config = deepinsight::PipelineConfig::from_toml(&text).unwrap();
        deepinsight::pipeline::run(&config).unwrap();
        let m = manifest(&config.run_dir());
        let history = m["model"]["history"].as_array().unwrap().clone();
        let losses =
            |key: &str| -> Vec<f64> { history.iter().map(|e| e[key].as_f64().unwrap()).collect() };
        (losses("train_loss"), losses("valid_loss"))
    };
    let plain = run("plain", "");
    let mixed = run("mixed", "mixup_alpha = 0.4");
    let mixed_again = run("mixed2", "mixup_alpha = 0.4");
    let averaged = run("averaged", "ema_epochs = 1.0");
    // Mixup trains on blended images: another training loss from the first batch on.
    assert_ne!(plain.0[0], mixed.0[0]);
    assert_eq!(mixed, mixed_again, "the blends are drawn from the seed");
    // The average trains the same steps (same training losses) but validates other weights.
    assert_eq!(plain.0, averaged.0);
    assert_ne!(plain.1, averaged.1);
}
