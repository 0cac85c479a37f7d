//! `deepinsight run` end to end on a reduced pipeline over the bundled data.

mod common;

use std::collections::BTreeMap;

use deepinsight::layout::Layout;
use deepinsight::render::render_batch;
use polars::prelude::*;

fn reduced_pipeline() -> String {
    let data = common::root().join("data");
    let d = |f: &str| data.join(f).display().to_string();
    format!(
        r#"name = "reduced"
output_dir = "out"
seed = 3
[data]
labels = "{}"
[data.modalities]
genomics = "{}"
proteomics = "{}"
metabolomics = "{}"
microbiome = "{}"
[select]
top_k = 40
[layout]
method = "tsne"
mode = "channels"
height = 16
width = 16
perplexity = 8.0
iterations = 250
[model]
width = 4
[train]
epochs = 2
batch_size = 32
"#,
        d("labels.parquet"),
        d("genomics.parquet"),
        d("proteomics.parquet"),
        d("metabolomics.parquet"),
        d("microbiome.parquet")
    )
}

#[test]
fn bench_layout_prints_a_row_per_case() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::deepinsight(dir.path(), &["bench", "layout", "--quick"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", common::stderr(&out));
    for case in [
        "pca fit",
        "tsne fit",
        "assign",
        "transform 1 sample",
        "transform 50 samples",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(case))
            .unwrap_or_else(|| panic!("{case}: {stdout}"));
        let seconds: f64 = line[34..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(seconds > 0.0 && seconds < 60.0, "{line}");
    }
    let only = common::deepinsight(
        dir.path(),
        &["bench", "layout", "--quick", "--only", "assign"],
    );
    assert_eq!(
        String::from_utf8_lossy(&only.stdout).lines().count(),
        2,
        "header + the assign row"
    );
}

#[test]
fn run_writes_every_artefact_with_matching_checksums() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), reduced_pipeline()).unwrap();
    let out = common::deepinsight(dir.path(), &["run", "p.toml"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", common::stderr(&out));
    assert!(
        stdout.contains("dropped S"),
        "dropped samples reported: {stdout}"
    );
    for stage in ["load", "select", "layout", "render", "train", "write"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(stage)),
            "stage {stage} timed: {stdout}"
        );
    }

    let run = dir.path().join("out/reduced");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
    let files: BTreeMap<String, String> =
        serde_json::from_value(manifest["files"].clone()).unwrap();
    for name in [
        "layout.json",
        "model.bpk",
        "model-config.json",
        "feature_map.png",
        "density_map.png",
        "class_images.png",
        "predictions.parquet",
    ] {
        let bytes = std::fs::read(run.join(name)).unwrap();
        assert_eq!(
            files[name],
            deepinsight::artefact::sha256_hex(&bytes),
            "{name}"
        );
    }
    // No staging folder or temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec!["reduced"]);

    let aligned = manifest["samples"]["aligned"].as_u64().unwrap() as usize;
    assert_eq!(
        aligned,
        300 - manifest["samples"]["dropped"].as_array().unwrap().len()
    );
    assert_eq!(manifest["features"].as_array().unwrap().len(), 160);
    assert_eq!(
        manifest["classes"],
        serde_json::json!(["healthy", "subtype_A", "subtype_B"])
    );
    let accuracy = manifest["metrics"]["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy));

    // Predictions: one row per aligned sample, probabilities summing to one.
    let file = std::fs::File::open(run.join("predictions.parquet")).unwrap();
    let predictions = ParquetReader::new(file).finish().unwrap();
    assert_eq!(predictions.height(), aligned);
    let total: f32 = ["healthy", "subtype_A", "subtype_B"]
        .iter()
        .map(|class| {
            let column = predictions.column(&format!("prob_{class}")).unwrap();
            column.f32().unwrap().get(0).unwrap()
        })
        .sum();
    assert!((total - 1.0).abs() < 1e-4);

    // The feature map has one panel per modality channel.
    let png = image::open(run.join("feature_map.png")).unwrap();
    assert_eq!((png.width(), png.height()), (4 * 420, 420));
    // Density map: 4 panels of 16 x 16 cells zoomed 25x, 6-pixel gaps. Class images: 3 class
    // rows of (mean + 3 examples) tiles, each 4 channels of 16 x 16 zoomed 6x.
    let density = image::open(run.join("density_map.png")).unwrap();
    assert_eq!((density.width(), density.height()), (4 * 400 + 3 * 6, 400));
    let classes = image::open(run.join("class_images.png")).unwrap();
    assert_eq!(classes.height(), 3 * 96 + 2 * 6);
    assert_eq!(classes.width(), 4 * (4 * 96) + 3 * 12);
    // The layout report is printed: a line per channel.
    for channel in ["genomics", "metabolomics", "microbiome", "proteomics"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(channel)),
            "{channel} in the report: {stdout}"
        );
    }

    // The saved layout reloads and places 40 features in each of 4 channels.
    let layout = Layout::load(&run.join("layout.json")).unwrap();
    assert_eq!(layout.n_channels(), 4);
    assert!(layout.channels.iter().all(|c| c.features.len() == 40));
    let ones = ndarray::Array2::<f32>::ones((1, 160));
    let image = render_batch(&layout, ones.view()).unwrap();
    let lit = image.iter().filter(|&&v| v == 1.0).count();
    let pixels_used: u64 = manifest["layout"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["pixels_used"].as_u64().unwrap())
        .sum();
    assert_eq!(lit as u64, pixels_used);
}
