//! `deepinsight run` end to end on a reduced pipeline over the bundled data.

mod common;

use std::collections::BTreeMap;

use deepinsight::layout::Layout;
use deepinsight::render::render_batch;
use polars::prelude::*;

fn reduced_pipeline() -> String {
    common::bundled_pipeline(
        "name = \"reduced\"\noutput_dir = \"out\"\nseed = 3",
        r#"[select]
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
    let manifest = manifest_with_checksums(
        &run,
        &[
            "layout.json",
            "model.bpk",
            "model-config.json",
            "feature_map.png",
            "density_map.png",
            "class_images.png",
            "mapping.parquet",
            "mapping.csv",
            "predictions.parquet",
        ],
    );
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

    // The feature map has one chart per modality channel.
    let png = image::open(run.join("feature_map.png")).unwrap();
    assert_eq!((png.width(), png.height()), (4 * 520, 480));
    // Density map: 4 panels of 16 x 16 cells zoomed 25x, 6-pixel gaps, then its colour bar
    // (6-pixel gaps around a 44-pixel bar with its title and ticks). Class images: a heading
    // line (16 px + 2 gaps), 3 class rows of (mean + 3 examples) tiles, each 4 channels of
    // 16 x 16 zoomed 6x, then the colour bars; class names on the left.
    let density = image::open(run.join("density_map.png")).unwrap();
    assert_eq!(
        (density.width(), density.height()),
        (4 * 400 + 3 * 6, 400 + 12 + 44)
    );
    let classes = image::open(run.join("class_images.png")).unwrap();
    assert_eq!(classes.height(), 28 + 3 * 96 + 2 * 6 + 12 + 44);
    let left = classes.width() - (4 * (4 * 96) + 3 * 12);
    assert!(
        (50..120).contains(&left),
        "a {left}-pixel column of class names"
    );
    let classes = classes.to_rgb8();
    let ink_left = (0..left)
        .flat_map(|x| (28..classes.height() - 56).map(move |y| (x, y)))
        .filter(|&(x, y)| classes.get_pixel(x, y).0.iter().all(|&v| v < 100))
        .count();
    assert!(ink_left > 50, "class names drawn: {ink_left} dark pixels");
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
    // A pixel shared by k features sums k terms of 1/k in f32: 1 to within an ulp or two.
    let lit = image.iter().filter(|&&v| (v - 1.0).abs() < 1e-6).count();
    let pixels_used: u64 = manifest["layout"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["pixels_used"].as_u64().unwrap())
        .sum();
    assert_eq!(lit as u64, pixels_used);
}

#[test]
fn pathway_run_writes_the_mapping_the_summary_and_the_pathway_map() {
    let dir = tempfile::tempdir().unwrap();
    let gmt = common::root().join("data/pathways.gmt");
    let pipeline = reduced_pipeline()
        .replace(
            "[select]\ntop_k = 40\n",
            &format!(
                "[select.pathways]\ngmt = \"{}\"\ntop_k = 4\ntop_pathways = 6\n",
                gmt.display()
            ),
        )
        .replace(
            "method = \"tsne\"",
            "arrange = \"pathways\"\nmethod = \"pca\"\ncollisions = \"assign\"",
        );
    assert!(pipeline.contains("[select.pathways]") && pipeline.contains("arrange"));
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    let out = common::deepinsight(dir.path(), &["run", "p.toml"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", common::stderr(&out));
    assert!(stdout.contains("gene sets: 40 in"), "{stdout}");

    let run = dir.path().join("out/reduced");
    let manifest = manifest_with_checksums(
        &run,
        &["pathway_summary.csv", "pathway_map.png", "mapping.csv"],
    );
    // The summary lists the 6 kept pathways; the bundled data's class signal lies in
    // PATHWAY_04, _37, _39 and _40 (data/README.md), which the ANOVA ranking finds.
    let summary = std::fs::read_to_string(run.join("pathway_summary.csv")).unwrap();
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(lines.len(), 7, "{summary}");
    assert!(lines[0].starts_with("pathway,rank,score,members,matched,kept,kept_"));
    let kept: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap())
        .collect();
    for signal in ["PATHWAY_04", "PATHWAY_37", "PATHWAY_39", "PATHWAY_40"] {
        assert!(kept.contains(&signal), "{signal} not in {kept:?}");
    }
    let layout = Layout::load(&run.join("layout.json")).unwrap();
    assert_eq!(layout.blocks.len(), 6);
    let mapping = std::fs::read_to_string(run.join("mapping.csv")).unwrap();
    assert_eq!(
        mapping.lines().count(),
        1 + manifest["features"].as_array().unwrap().len()
    );
    let picture = image::open(run.join("pathway_map.png")).unwrap();
    assert!(
        picture.width() > picture.height(),
        "the legend sits beside the grid"
    );
    // report.html has the pathway table (every kept pathway, by rank) and the pathway map,
    // and opens cleanly in Chromium.
    let page = run.join("report.html");
    let check = common::check_page(&page, &dir.path().join("page.png"), (1280, 900));
    assert!(check.problems.is_empty(), "{:?}", check.problems);
    assert!(check.sections.iter().any(|s| s == "pathways"), "{check:?}");
    assert_eq!(
        check.images, [true; 5],
        "the run's four pictures and the pathway map"
    );
    let html = std::fs::read_to_string(&page).unwrap();
    for (rank, pathway) in kept.iter().enumerate() {
        let row = format!("<td class=\"num\">{}</td><td>{pathway}</td>", rank + 1);
        assert!(html.contains(&row), "{row}");
    }
}

/// The run's manifest, after checking that each of `names` exists with the sha256 it records.
fn manifest_with_checksums(run: &std::path::Path, names: &[&str]) -> serde_json::Value {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
    let files: BTreeMap<String, String> =
        serde_json::from_value(manifest["files"].clone()).unwrap();
    for name in names {
        let bytes = std::fs::read(run.join(name)).unwrap();
        assert_eq!(files[*name], deepinsight::run::sha256_hex(&bytes), "{name}");
    }
    manifest
}

#[test]
fn bench_score_prints_throughput_and_stage_shares() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::deepinsight(dir.path(), &["bench", "score", "--quick"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", common::stderr(&out));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].contains("rows/s") && lines[0].contains("model"),
        "{stdout}"
    );
    for (line, rows) in lines[1..].iter().zip([1000, 2000]) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[0], rows.to_string(), "{line}");
        let per_second: f64 = fields[2].parse().unwrap();
        assert!(per_second > 0.0, "{line}");
        // The stage shares are parts of the whole.
        let shares: f64 = fields[4..fields.len() - 1]
            .iter()
            .map(|f| f.trim_end_matches('%').parse::<f64>().unwrap())
            .sum();
        assert!((50.0..=100.5).contains(&shares), "{line}: {shares}");
    }
    // The work folder is removed afterwards.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn bench_serve_loads_the_server_with_wrk_and_prints_each_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::deepinsight(dir.path(), &["bench", "serve", "--quick"]);
    check_bench_serve(&out, "burn", "wrk", "/predict (raw omics, JSON)");
}

#[test]
fn bench_serve_loads_kserve_v2_with_json_images_and_binary_raw_omics() {
    for (route, name) in [
        ("v2-json", "/v2/models/bench/infer (image, JSON)"),
        (
            "v2-omics-binary",
            "/v2/models/bench/infer (raw omics, binary data extension)",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = common::deepinsight(dir.path(), &["bench", "serve", "--quick", "--route", route]);
        check_bench_serve(&out, "burn", "wrk", name);
    }
}

#[test]
fn bench_serve_runs_the_onnx_runtime_int8_backend_on_an_exported_model() {
    let python = common::test_python("onnx, onnxruntime, numpy");
    let dir = tempfile::tempdir().unwrap();
    let out = common::deepinsight_env(
        dir.path(),
        &[
            "bench",
            "serve",
            "--quick",
            "--backend",
            "onnx-int8",
            "--generator",
            "hey",
            "--route",
            "v2-binary",
        ],
        &[("DEEPINSIGHT_PYTHON", python.to_str())],
    );
    check_bench_serve(
        &out,
        "onnx-int8",
        "hey",
        "/v2/models/bench/infer (image, binary data extension)",
    );
}

fn check_bench_serve(out: &std::process::Output, backend: &str, generator: &str, route: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", common::stderr(out));
    assert_eq!(
        stdout.lines().next(),
        Some(
            format!(
                "backend: {backend}; concurrent batches: 1; load generator: {generator}; route: {route}"
            )
            .as_str()
        )
    );
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .skip(2)
        .take(4)
        .map(|l| l.split_whitespace().collect())
        .collect();
    // size, batching ("off" or "max 8"), clients, then QPS, p50, p95, p99, p99 bound, mean
    // batch, batch ms, offline, QPS/offline, server and load generator CPU ms per request,
    // then the status codes.
    let expected = [(false, 1), (false, 16), (true, 1), (true, 16)];
    for (row, (batching, clients)) in rows.iter().zip(expected) {
        assert_eq!(row[0], "32", "{row:?}");
        let rest = if batching {
            assert_eq!(&row[1..3], ["max", "8"], "{row:?}");
            &row[3..]
        } else {
            assert_eq!(row[1], "off", "{row:?}");
            &row[2..]
        };
        assert_eq!(rest[0], clients.to_string(), "{row:?}");
        let numbers: Vec<f64> = rest[1..12].iter().map(|v| v.parse().unwrap()).collect();
        let (qps, mean_batch) = (numbers[0], numbers[5]);
        assert!(qps > 0.0, "{row:?}");
        assert!(
            numbers[6] > 0.0,
            "batch compute time from the server's metrics: {row:?}"
        );
        // Serving costs the server CPU time, and sending costs the generator some.
        assert!(numbers[9] > 0.0 && numbers[10] > 0.0, "{row:?}");
        // Every request was answered 200.
        assert_eq!(rest[12..].len(), 1, "{row:?}");
        assert!(rest[12].starts_with("200:"), "{row:?}");
        if !batching {
            assert_eq!(mean_batch, 1.0, "{row:?}");
        } else if clients == 16 {
            // Sixteen clients at once: the server formed batches of more than one sample.
            assert!(mean_batch > 1.0, "{row:?}");
        }
    }
}

#[test]
fn bench_model_times_burn_and_sets_pytorch_rates_beside_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // A stand-in for a Python with torch: it prints bench_torch.py's lines, each case at a
    // rate that names it (size + batch, + 1000 for inference), so a mix-up shows.
    let fake = dir.path().join("fake-python");
    let mut script = String::from("#!/bin/sh\n");
    for batch in [2, 4] {
        for (mode, extra) in [("train", 0), ("infer", 1000)] {
            script.push_str(&format!(
                "echo '{{\"size\": 32, \"batch\": {batch}, \"mode\": \"{mode}\", \"images_per_second\": {}.0}}'\n",
                32 + batch + extra
            ));
        }
    }
    std::fs::write(&fake, script).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let fake = fake.display().to_string();
    let args = [
        "bench",
        "model",
        "--quick",
        "--threads",
        "1",
        "--pytorch",
        &fake,
        "--burn-ops",
    ];
    let out = common::deepinsight(dir.path(), &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", common::stderr(&out));
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("32 "))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 4, "{stdout}");
    for (row, (batch, mode)) in
        rows.iter()
            .zip([(2, "train"), (2, "infer"), (4, "train"), (4, "infer")])
    {
        assert_eq!(
            (row[1], row[2]),
            (batch.to_string().as_str(), mode),
            "{row:?}"
        );
        let burn: f64 = row[3].parse().unwrap();
        let torch: f64 = row[4].parse().unwrap();
        let ratio: f64 = row[5].parse().unwrap();
        assert!(burn > 0.0, "{row:?}");
        let expected = (32 + batch + if mode == "infer" { 1000 } else { 0 }) as f64;
        assert_eq!(torch, expected, "{row:?}");
        // Burn's rate is printed to one decimal and the ratio from the unrounded rate: a
        // slow run (2.7 images/s) rounds by up to 2%.
        let (low, high) = (torch / (burn + 0.05), torch / (burn - 0.05).max(1e-9));
        assert!(ratio >= low - 0.01 && ratio <= high + 0.01, "{row:?}");
        // --burn-ops: the same case on Burn's own convolutions and BatchNorms, and the
        // speed-up over it.
        let old: f64 = row[6].parse().unwrap();
        let speedup: f64 = row[7].parse().unwrap();
        assert!(old > 0.0, "{row:?}");
        let (low, high) = (
            (burn - 0.05) / (old + 0.05),
            (burn + 0.05) / (old - 0.05).max(1e-9),
        );
        assert!(speedup >= low - 0.01 && speedup <= high + 0.01, "{row:?}");
    }
    assert!(stdout.contains("1 threads"), "{stdout}");
}

#[test]
fn bench_ops_times_each_convolution_and_totals_them_by_count() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // A stand-in for a Python with torch: bench_torch_ops.py's lines, each (layer, op) at a
    // time that names it, so a mix-up shows.
    let layers = [
        ("stem 7x7/2", 1),
        ("layer1 3x3", 4),
        ("layer2 3x3/2", 1),
        ("layer2 3x3", 3),
        ("layer2 down 1x1/2", 1),
        ("layer3 3x3/2", 1),
        ("layer3 3x3", 3),
        ("layer3 down 1x1/2", 1),
        ("layer4 3x3/2", 1),
        ("layer4 3x3", 3),
        ("layer4 down 1x1/2", 1),
    ];
    let ops = [
        ("forward", "forward"),
        ("input", "input grad"),
        ("weight", "weight grad"),
    ];
    let torch_ms = |l: usize, o: usize| (10 * l + o + 1) as f64;
    let norms = [
        ("stem", 1),
        ("layer1", 4),
        ("layer2", 5),
        ("layer3", 5),
        ("layer4", 5),
    ];
    let norm_ops = [("forward", "forward"), ("backward", "backward")];
    let norm_ms = |l: usize, o: usize| (500 + 10 * l + o) as f64;
    let fake = dir.path().join("fake-python");
    let mut script = String::from("#!/bin/sh\n");
    for (l, (name, _)) in layers.iter().enumerate() {
        for (o, (op, _)) in ops.iter().enumerate() {
            script.push_str(&format!(
                "echo '{{\"layer\": \"{name}\", \"op\": \"{op}\", \"ms\": {}}}'\n",
                torch_ms(l, o)
            ));
        }
    }
    for (l, (name, _)) in norms.iter().enumerate() {
        for (o, (op, _)) in norm_ops.iter().enumerate() {
            script.push_str(&format!(
                "echo '{{\"norm\": \"{name}\", \"op\": \"{op}\", \"ms\": {}}}'\n",
                norm_ms(l, o)
            ));
        }
    }
    std::fs::write(&fake, script).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let fake = fake.display().to_string();
    let out = common::deepinsight(
        dir.path(),
        &[
            "bench",
            "ops",
            "--quick",
            "--threads",
            "1",
            "--pytorch",
            &fake,
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", common::stderr(&out));
    let (convolutions, batch_norms) = stdout
        .split_once("BatchNorms")
        .unwrap_or_else(|| panic!("no BatchNorm table:\n{stdout}"));
    check_op_table(convolutions, &layers, &ops, &torch_ms);
    check_op_table(batch_norms, &norms, &norm_ops, &norm_ms);
}

/// Every (shape, op) row of one `bench ops` table: PyTorch's time as the stand-in printed it,
/// the ratios from the times, and the network totals as the count-weighted sums.
fn check_op_table(
    table: &str,
    shapes: &[(&str, usize)],
    ops: &[(&str, &str)],
    torch_ms: &dyn Fn(usize, usize) -> f64,
) {
    // Columns from the right: ours, flex, pytorch, flex/ours, ours/pytorch.
    let numbers = |line: &str| -> Vec<f64> {
        let words: Vec<&str> = line.split_whitespace().collect();
        words[words.len() - 5..]
            .iter()
            .map(|w| w.parse().unwrap())
            .collect()
    };
    let mut totals = vec![[0.0; 3]; ops.len()];
    for (l, (name, count)) in shapes.iter().enumerate() {
        for (o, (_, label)) in ops.iter().enumerate() {
            let line = table
                .lines()
                .find(|line| line.starts_with(&format!("{name} ")) && line.contains(label))
                .unwrap_or_else(|| panic!("no row for {name} {label}:\n{table}"));
            let [ours, flex, torch, flex_over_ours, ours_over_torch] = numbers(line)[..] else {
                unreachable!()
            };
            assert!(ours > 0.0 && flex > 0.0, "{line}");
            assert_eq!(torch, torch_ms(l, o), "{line}");
            // Times are printed to 0.001 ms and ratios from the unrounded times.
            let within = |ratio: f64, num: f64, den: f64| {
                let (low, high) = ((num - 5e-4) / (den + 5e-4), (num + 5e-4) / (den - 5e-4));
                ratio >= low - 0.006 && ratio <= high + 0.006
            };
            assert!(within(flex_over_ours, flex, ours), "{line}");
            assert!(within(ours_over_torch, ours, torch), "{line}");
            for (t, v) in totals[o].iter_mut().zip([ours, flex, torch]) {
                *t += v * *count as f64;
            }
        }
    }
    for (o, (_, label)) in ops.iter().enumerate() {
        let line = table
            .lines()
            .find(|line| line.starts_with("network total") && line.contains(label))
            .unwrap_or_else(|| panic!("no total for {label}:\n{table}"));
        let got = numbers(line);
        // Each row is printed to 0.001 ms; the totals add the unrounded times.
        for (g, want) in got.iter().zip(totals[o]) {
            assert!(
                (g - want).abs() <= 5e-4 * 24.0 + 1e-3,
                "{label}: {got:?} vs {totals:?}"
            );
        }
    }
}

#[test]
fn bench_train_runs_a_real_cohort_and_sets_the_python_pipeline_beside_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cohort = common::root().join("../shared/datasets/gse7390");
    assert!(
        cohort.join("labels.parquet").exists(),
        "the real cohorts are in ../shared/datasets (beside the repository, as in CI): {}",
        cohort.display()
    );
    // A stand-in for the Python pipeline: it keeps the features it was given and prints
    // bench_train_torch.py's line with times that a mix-up would show.
    let fake = dir.path().join("fake-python");
    let kept = dir.path().join("features.parquet");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = --features ] && cp \"$2\" {kept:?}; \
             shift; done\necho '{{\"pipeline\": \"python stand-in\", \"layout_s\": 7.5, \
             \"train_s\": 123.25, \"best_epoch\": 2, \"valid_macro_f1\": 0.5, \
             \"test_macro_f1\": 0.25}}'\n",
            kept = kept.display().to_string()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (cohort, fake) = (cohort.display().to_string(), fake.display().to_string());
    let args = [
        "bench",
        "train",
        "--quick",
        "--cohort",
        &cohort,
        "--pytorch",
        &fake,
    ];
    let out = common::deepinsight(dir.path(), &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", common::stderr(&out));
    let row = |name: &str| -> Vec<f64> {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row:\n{stdout}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        words[words.len() - 6..]
            .iter()
            .map(|w| w.parse().unwrap())
            .collect()
    };
    let ours = row("deepinsight");
    let [layout, train, ratio, best, valid, test] = ours[..] else {
        unreachable!()
    };
    assert!(layout > 0.0 && train > 0.0 && ratio == 1.0, "{stdout}");
    assert!(
        (1.0..=2.0).contains(&best),
        "--quick trains 2 epochs: {stdout}"
    );
    assert!((0.0..=1.0).contains(&valid) && (0.0..=1.0).contains(&test));
    // The trivial baseline on the same split: the majority class's macro-F1s.
    let trivial = stdout
        .lines()
        .find(|l| l.starts_with("always '"))
        .unwrap_or_else(|| panic!("no trivial baseline row:\n{stdout}"));
    let words: Vec<&str> = trivial.split_whitespace().collect();
    for w in &words[words.len() - 2..] {
        let f1: f64 = w.parse().unwrap();
        assert!(
            f1 > 0.0 && f1 < 0.6,
            "a majority class's macro-F1 on two classes: {trivial}"
        );
    }
    let theirs = row("python stand-in");
    assert_eq!(theirs[..2], [7.5, 123.25], "{stdout}");
    // The ratio is the stand-in's time over ours, ours printed to 0.01 s.
    let (low, high) = (123.25 / (train + 0.005), 123.25 / (train - 0.005));
    assert!(
        theirs[2] >= low - 0.01 && theirs[2] <= high + 0.01,
        "{stdout}"
    );
    // The Python side got every sample once, in the three splits, with the selected
    // features named modality:feature.
    let frame = ParquetReader::new(std::fs::File::open(&kept).unwrap())
        .finish()
        .unwrap();
    assert_eq!(frame.height(), 198);
    let split = frame.column("split").unwrap().str().unwrap();
    let count = |name: &str| split.iter().filter(|s| *s == Some(name)).count();
    assert_eq!(count("train") + count("validation") + count("test"), 198);
    assert!(count("validation") > 30 && count("test") > 30, "{frame}");
    let features = frame.get_column_names().len() - 3;
    assert!(features > 0);
    assert!(
        frame
            .get_column_names()
            .iter()
            .skip(3)
            .all(|c| c.starts_with("genomics:")),
        "{:?}",
        frame.get_column_names()
    );
}
