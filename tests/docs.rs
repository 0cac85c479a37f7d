//! The documentation's examples stay true.

mod common;

use deepinsight::PipelineConfig;
use deepinsight::config::{ChannelMode, Metric};

#[test]
fn readme_pipeline_example_is_a_valid_pipeline_file() {
    let readme = std::fs::read_to_string(common::root().join("README.md")).unwrap();
    let start = readme.find("```toml\n").expect("README has a toml example") + 8;
    let end = start + readme[start..].find("```").unwrap();
    let config = PipelineConfig::from_toml(&readme[start..end]).unwrap();
    assert_eq!(config.name, "demo");
    assert_eq!(config.layout.mode, ChannelMode::Channels);
    assert_eq!(config.layout.metric, Metric::Cosine);
    assert_eq!(config.select.top_k_for("genomics"), 2000);
    assert_eq!(config.select.top_k_for("proteomics"), 1000);
}

#[test]
fn every_bundled_pipeline_file_is_valid() {
    let mut checked = 0;
    for entry in std::fs::read_dir(common::root().join("pipelines")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            PipelineConfig::from_file(&path)
                .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            checked += 1;
        }
    }
    assert!(checked >= 5, "the demo pipelines and one per real cohort");
}

/// The README section starting at `heading`, up to the next `## ` heading.
fn readme_section(heading: &str) -> String {
    let readme = std::fs::read_to_string(common::root().join("README.md")).unwrap();
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README has {heading}"));
    let end = start + 1 + readme[start + 1..].find("\n## ").unwrap();
    readme[start..end].to_string()
}

/// Every `--flag` of `section` (Slurm's own left out) is one `deepinsight <command>` takes.
fn assert_real_flags(section: &str, command: &str, at_least: usize) {
    let dir = tempfile::tempdir().unwrap();
    let help = common::deepinsight(dir.path(), &[command, "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    let mut flags: Vec<&str> = section
        .split(|c: char| c.is_whitespace() || c == '`' || c == '=' || c == '"')
        .filter(|w| {
            w.starts_with("--")
                && w.len() > 2
                && w[2..].chars().all(|c| c.is_ascii_lowercase() || c == '-')
        })
        .filter(|w| {
            !w.starts_with("--cpus")
                && !w.starts_with("--mem")
                && !w.starts_with("--time")
                && !w.starts_with("--array")
        })
        .collect();
    flags.sort_unstable();
    flags.dedup();
    assert!(flags.len() >= at_least, "{flags:?}");
    for flag in flags {
        assert!(
            help.contains(flag),
            "README uses {flag}, which `{command}` does not take"
        );
    }
}

#[test]
fn readme_score_examples_use_only_real_flags() {
    assert_real_flags(&readme_section("## Scoring new samples"), "score", 8);
}

#[test]
fn readme_serve_section_uses_real_flags_and_a_valid_serve_file() {
    let section = readme_section("## Serving over HTTP");
    assert_real_flags(&section, "serve", 8);
    let start = section.find("```toml\n").expect("a serve file example") + 8;
    let end = start + section[start..].find("```").unwrap();
    let config: deepinsight::serve::ServeConfig = toml::from_str(&section[start..end]).unwrap();
    assert_eq!(config.models.len(), 2);
    assert_eq!(config.batching.max_batch_size, 8);
    let own = config.models[1].batching.as_ref().unwrap();
    assert_eq!((own.max_batch_size, own.queue_capacity), (16, 512));
}

#[test]
fn readme_training_section_uses_real_flags() {
    let section = readme_section("## Training and predicting");
    // Each example line's flags belong to its command; the prose may name either's.
    let dir = tempfile::tempdir().unwrap();
    let help = |command: &str| {
        let out = common::deepinsight(dir.path(), &[command, "--help"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (train, predict) = (help("train"), help("predict"));
    let mut command = "";
    let mut checked = 0;
    for line in section.lines() {
        if line.starts_with("deepinsight train") {
            command = "train";
        } else if line.starts_with("deepinsight predict") {
            command = "predict";
        } else if !line.starts_with("  --") {
            command = "";
        }
        for flag in line
            .split(|c: char| c.is_whitespace() || c == '`' || c == '=')
            .filter(|w| w.starts_with("--") && w.len() > 2)
        {
            let known = match command {
                "train" => train.contains(flag),
                "predict" => predict.contains(flag),
                _ => train.contains(flag) || predict.contains(flag),
            };
            assert!(
                known,
                "README uses {flag} ({command:?}), which is not a real flag"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked} flags checked");
}

#[test]
fn readme_explain_section_uses_real_flags() {
    assert_real_flags(&readme_section("## Explaining predictions"), "explain", 12);
}

#[test]
fn readme_export_flags_are_real() {
    assert_real_flags(&readme_section("## Exporting"), "export", 8);
}

#[test]
fn readme_evaluate_section_uses_real_flags() {
    assert_real_flags(
        &readme_section("## Does the CNN beat a simple model?"),
        "evaluate",
        5,
    );
}
