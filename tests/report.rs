//! report.html, as a reader opens it: headless Chromium loads the pages `train` and `explain`
//! write from file:// with no network, and finds every section, every picture decoded and no
//! console error; a screenshot of the first screen is the size asked for and not blank.

mod common;

use std::path::Path;

/// Trains the small cohort with a test split (so the page has test metrics and baselines).
fn trained(dir: &Path) {
    common::write_small_cohort(dir);
    let pipeline =
        common::small_pipeline("") + "test_fraction = 0.25\n[evaluate]\nforest_trees = 20\n";
    std::fs::write(dir.join("pipeline.toml"), pipeline).unwrap();
    let out = common::deepinsight(dir, &["train", "pipeline.toml"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
}

/// The run's own sections, in page order.
const RUN_SECTIONS: [&str; 5] = ["metrics", "cohort", "features", "pictures", "pipeline"];

/// Opens `page` in Chromium: no problem, the sections and pictures are as given, and the
/// first screen is not blank.
fn assert_opens_clean(page: &Path, sections: &[&str], pictures: usize) {
    let shot = page.with_extension("png");
    let check = common::check_page(page, &shot, (1280, 900));
    assert!(check.problems.is_empty(), "{:?}", check.problems);
    assert_eq!(check.sections, sections);
    assert_eq!(check.images, vec![true; pictures], "pictures that decoded");
    assert_not_blank(&shot, (1280, 900));
}

/// The screenshot is `size` and shows a page: ink on a good share of it, in many colours.
fn assert_not_blank(shot: &Path, size: (u32, u32)) {
    let img = image::open(shot).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), size, "{}", shot.display());
    let ink = img
        .pixels()
        .filter(|p| p.0.iter().any(|&v| v < 200))
        .count();
    let share = ink as f64 / f64::from(size.0 * size.1);
    assert!(share > 0.02, "{:.3} of the screenshot has ink", share);
    let colours: std::collections::HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    assert!(colours.len() > 30, "{} colours", colours.len());
}

#[test]
fn the_run_page_stands_alone_with_every_section() {
    let dir = tempfile::tempdir().unwrap();
    trained(dir.path());
    let run = dir.path().join("models/small");
    let page = run.join("report.html");
    assert_opens_clean(
        &page,
        &[&RUN_SECTIONS[..], &["artefacts"]].concat(),
        4, // training, feature map, density, classes
    );
    let html = std::fs::read_to_string(&page).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
    // The page lists the checksum of every file and records its own in the manifest.
    let files = manifest["files"].as_object().unwrap();
    for (name, sha) in files.iter().filter(|(name, _)| *name != "report.html") {
        assert!(html.contains(sha.as_str().unwrap()), "{name}'s sha256");
    }
    assert!(files.contains_key("report.html"));
    // Samples per class and split, as the manifest counts them.
    for class in manifest["samples"]["per_class"].as_array().unwrap() {
        let (name, train) = (class["class"].as_str().unwrap(), &class["train"]);
        assert!(html.contains(&format!("<td>{name}</td><td class=\"num\">{train}</td>")));
    }
    // Test metrics beside the trivial and learned baselines.
    for row in [
        "<td>CNN</td><td>test</td>",
        "<td>majority class</td><td>test</td>",
    ] {
        assert!(html.contains(row), "{row}");
    }
    for baseline in ["logistic", "random_forest"] {
        assert!(html.contains(&format!("<td>{baseline}</td><td>test</td>")));
    }
    // The confusion matrices, as the manifest records them.
    for (split, metrics) in [("validation", "metrics"), ("test", "test_metrics")] {
        let heading = format!("<h3>Confusion matrix, {split} samples (CNN)</h3>");
        let at = html.find(&heading).unwrap_or_else(|| panic!("{heading}"));
        let classes = manifest["classes"].as_array().unwrap();
        for (class, counts) in classes
            .iter()
            .zip(manifest[metrics]["confusion"].as_array().unwrap())
        {
            let cells: String = counts
                .as_array()
                .unwrap()
                .iter()
                .map(|n| format!("<td class=\"num\">{n}</td>"))
                .collect();
            let row = format!("<tr><td>{}</td>{cells}</tr>", class.as_str().unwrap());
            assert!(html[at..].contains(&row), "{split}: {row}");
        }
    }
    assert!(!html.contains("http://") && !html.contains("https://"));
}

#[test]
fn a_page_that_needs_anything_outside_it_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("broken.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><section id=\"a\">a</section>\
         <img src=\"missing.png\"><link rel=\"stylesheet\" href=\"https://example.org/s.css\">\
         </body></html>",
    )
    .unwrap();
    let check = common::check_page(&page, &dir.path().join("shot.png"), (640, 480));
    assert_eq!(check.sections, ["a"]);
    assert_eq!(check.images, [false]);
    assert!(
        check.problems.iter().any(|p| p.contains("missing.png"))
            && check.problems.iter().any(|p| p.contains("example.org")),
        "{:?}",
        check.problems
    );
}

#[test]
fn explain_extends_the_run_page_with_its_own_sections() {
    let dir = tempfile::tempdir().unwrap();
    trained(dir.path());
    let out = common::deepinsight(
        dir.path(),
        &["explain", "--model", "models/small", "--out", "explained"],
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    let page = dir.path().join("explained/report.html");
    assert_opens_clean(
        &page,
        &[
            &RUN_SECTIONS[..],
            &[
                "explanation",
                "top-features",
                "explain-pictures",
                "explain-artefacts",
                "artefacts",
            ],
        ]
        .concat(),
        7, // 4 of the run, 3 of the explanation
    );
    let html = std::fs::read_to_string(&page).unwrap();
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("explained/explain_report.json")).unwrap(),
    )
    .unwrap();
    let best = report["top"][0][1].as_str().unwrap();
    assert!(
        html.contains(&format!("<td>{best}</td>")),
        "the best feature {best}"
    );
    for name in ["feature_scores.csv", "cam_classes.png", "top_features.png"] {
        let sha = deepinsight::run::sha256_file(&dir.path().join("explained").join(name)).unwrap();
        assert!(html.contains(&sha), "{name}'s sha256");
    }
}
