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
    assert_eq!(config.top_k_for("genomics"), 2000);
    assert_eq!(config.top_k_for("proteomics"), 1000);
}
