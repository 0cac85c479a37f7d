//! The pipeline file: one TOML document that names the inputs and sets every stage. Each
//! section is the settings struct of the stage that uses it; this file only composes them and
//! checks what crosses sections.
//!
//! Unknown keys are rejected when a pipeline file is read, so that a typo such as `epoch = 3`
//! fails loudly instead of silently training with the default. The structs themselves accept
//! unknown keys, so a run folder whose manifest names a key a later release dropped still opens.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

pub use crate::crossval::settings::{Baseline, EvaluateSettings};
pub use crate::layout::settings::{
    Arrange, ChannelMode, ChannelOverride, Collisions, EmbedMethod, LayoutSettings, Metric,
    TsneInit,
};
pub use crate::model::settings::{
    ClassWeights, ModelSettings, Monitor, OptimizerKind, ScheduleKind, Stem, StemSetting,
    TrainSettings,
};
pub use crate::omics::settings::{DataSettings, Infinite, NormMethod, NormaliseSettings};
pub use crate::select::settings::{FeatureScore, PathwaySettings, SelectSettings};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct PipelineConfig {
    /// Run name: artefacts go to `<output_dir>/<name>/`.
    pub name: String,
    pub output_dir: PathBuf,
    pub seed: u64,
    pub data: DataSettings,
    pub normalise: NormaliseSettings,
    pub select: SelectSettings,
    pub layout: LayoutSettings,
    pub model: ModelSettings,
    pub train: TrainSettings,
    pub evaluate: EvaluateSettings,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            output_dir: PathBuf::from("models"),
            seed: 42,
            data: DataSettings::default(),
            normalise: NormaliseSettings::default(),
            select: SelectSettings::default(),
            layout: LayoutSettings::default(),
            model: ModelSettings::default(),
            train: TrainSettings::default(),
            evaluate: EvaluateSettings::default(),
        }
    }
}

impl PipelineConfig {
    /// Reads a pipeline file. Relative paths in it are taken from the current directory, which
    /// is the repository root for the README's commands.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_file_with(path, &[])
    }

    /// Reads a pipeline file with `key=value` settings on top (`--set train.epochs=40`): the
    /// key is dotted as in the file, the value is TOML (`0.1`, `true`, `"adamw"`; a bare word
    /// is taken as a string). The result goes through the same checks as the file, so an
    /// unknown key is refused by name.
    pub fn from_file_with(path: &Path, settings: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read pipeline file {}", path.display()))?;
        let text = with_settings(&text, settings)
            .with_context(|| format!("invalid pipeline file {}", path.display()))?;
        Self::from_toml(&text).with_context(|| match settings {
            [] => format!("invalid pipeline file {}", path.display()),
            _ => format!(
                "{} with the command-line settings {}",
                path.display(),
                settings.join(" ")
            ),
        })
    }

    /// Parses and checks a pipeline; a key no stage knows is an error naming it.
    pub fn from_toml(text: &str) -> Result<Self> {
        let mut unknown = Vec::new();
        let document = toml::Deserializer::parse(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let config: Self = serde_ignored::deserialize(document, |path| {
            unknown.push(path.to_string());
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(key) = unknown.first() {
            bail!("{}", unknown_key(text, key));
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks every value (`from_toml` calls it; call it again after changing a field): each
    /// section's own checks, then the ones that cross sections.
    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() || self.name.contains(['/', '\\']) || self.name.starts_with('.') {
            bail!(
                "name: '{}' is not a valid run name (no slashes, not empty)",
                self.name
            );
        }
        self.data.validate()?;
        self.select.validate()?;
        for key in self.select.top_k_per_modality.keys() {
            if !self.data.modalities.contains_key(key) {
                bail!(
                    "select.top_k_per_modality.{key}: no modality of that name in data.modalities"
                );
            }
        }
        if self.layout.arrange == Arrange::Pathways && self.select.pathways.is_none() {
            bail!(
                "layout.arrange = \"pathways\" needs gene sets: add a [select.pathways] section with a gmt file"
            );
        }
        self.layout.validate(&self.data.modalities)?;
        self.train.validate()?;
        self.model.validate()?;
        self.evaluate.validate()?;
        Ok(())
    }

    pub fn run_dir(&self) -> PathBuf {
        self.output_dir.join(&self.name)
    }

    /// Every file the pipeline reads: a run folder may not be, hold or lie inside any of them.
    pub fn input_paths(&self) -> Vec<&Path> {
        let mut paths: Vec<&Path> = self
            .data
            .modalities
            .values()
            .map(PathBuf::as_path)
            .collect();
        paths.push(&self.data.labels);
        if let Some(p) = &self.select.pathways {
            paths.push(&p.gmt);
            paths.extend(p.id_map.as_deref());
        }
        paths.extend(self.layout.coordinates.as_deref());
        paths.extend(self.model.pretrained.as_deref());
        paths
    }
}

/// The pipeline text with each `key=value` setting written into it (the last one wins).
fn with_settings(text: &str, settings: &[String]) -> Result<String> {
    if settings.is_empty() {
        return Ok(text.to_string());
    }
    let mut document: toml::Table = text.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    for setting in settings {
        let Some((key, value)) = setting.split_once('=') else {
            bail!("--set {setting}: expected KEY=VALUE, e.g. train.epochs=40");
        };
        let path: Vec<&str> = key.trim().split('.').map(str::trim).collect();
        if path.iter().any(|p| p.is_empty()) {
            bail!("--set {setting}: '{key}' is not a dotted key such as train.epochs");
        }
        let value = value.trim();
        // A TOML value as written in the file; a bare word such as adamw means the string.
        let value = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        let (last, sections) = path.split_last().expect("split gives one part at least");
        let mut table = &mut document;
        for (depth, section) in sections.iter().enumerate() {
            let entry = table
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = entry.as_table_mut().ok_or_else(|| {
                anyhow::anyhow!(
                    "--set {setting}: '{}' is a value, not a section",
                    path[..=depth].join(".")
                )
            })?;
        }
        table.insert(last.to_string(), value);
    }
    Ok(toml::to_string(&document)?)
}

/// The error for a key no stage reads: where it is in the file, and the known key of that
/// section it is closest to.
fn unknown_key(text: &str, path: &str) -> String {
    let (section, key) = path.rsplit_once('.').unwrap_or(("", path));
    let line = key_line(text, section, key);
    let at = line.map_or(String::new(), |n| format!("line {n}: "));
    let known = toml::Value::try_from(PipelineConfig::default())
        .ok()
        .and_then(|root| {
            section
                .split('.')
                .filter(|s| !s.is_empty())
                .try_fold(root, |v, s| v.get(s).cloned())
        })
        .and_then(|v| v.as_table().map(|t| t.keys().cloned().collect::<Vec<_>>()))
        .unwrap_or_default();
    let closest = known
        .iter()
        .map(|k| (edit_distance(k, key), k))
        .filter(|(d, _)| *d <= 2.max(key.len() / 3))
        .min();
    let hint = closest.map_or(String::new(), |(_, k)| format!("; did you mean `{k}`?"));
    format!("{at}unknown key `{path}`: no stage reads it{hint}")
}

/// The 1-based line where `key` is set in `[section]` (or at the top for an empty section).
fn key_line(text: &str, section: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[') {
            current = header
                .trim_end_matches(']')
                .trim_matches(['[', ']'])
                .trim()
                .to_string();
            continue;
        }
        let name = line
            .split('=')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"');
        if current == section && name == key {
            return Some(n + 1);
        }
    }
    None
}

/// Levenshtein distance, for the spelling hint.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
[data]
labels = "labels.parquet"
[data.modalities]
genomics = "g.parquet"
"#;

    #[test]
    fn defaults_follow_deepinsight() {
        let c = PipelineConfig::from_toml(MINIMAL).unwrap();
        assert_eq!((c.layout.height, c.layout.width), (224, 224));
        assert_eq!(c.normalise.method, NormMethod::Norm2);
        assert_eq!(c.model.width, 64);
    }

    #[test]
    fn command_line_settings_replace_and_add_keys_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, format!("{MINIMAL}\n[train]\nepochs = 3\n")).unwrap();
        let set = |s: &[&str]| {
            let s: Vec<String> = s.iter().map(|s| s.to_string()).collect();
            PipelineConfig::from_file_with(&path, &s)
        };
        let config = set(&[
            "train.epochs=40",
            "train.optimizer=adamw",
            "train.weight_decay = 0.05",
            "model.width=8",
            "name=\"other\"",
        ])
        .unwrap();
        assert_eq!(config.train.epochs, 40);
        assert_eq!(config.train.optimizer, OptimizerKind::AdamW);
        assert_eq!(config.train.weight_decay, 0.05);
        assert_eq!(config.model.width, 8);
        assert_eq!(config.name, "other");
        assert_eq!(set(&[]).unwrap().train.epochs, 3);
        let typo = set(&["train.epoch=4"]).unwrap_err();
        assert!(
            format!("{typo:#}").contains("unknown key `train.epoch`"),
            "{typo:#}"
        );
        let bad = set(&["train.epochs=-1"]).unwrap_err();
        assert!(format!("{bad:#}").contains("train.epochs=-1"), "{bad:#}");
        let shape = set(&["train.epochs.x=1"]).unwrap_err();
        assert!(
            format!("{shape:#}").contains("'train.epochs' is a value"),
            "{shape:#}"
        );
        assert!(set(&["train.epochs"]).is_err());
    }

    #[test]
    fn unknown_key_is_named() {
        let text = MINIMAL.replace("[data]", "[train]\nepoch = 3\n[data]");
        let err = format!("{:#}", PipelineConfig::from_toml(&text).unwrap_err());
        assert!(err.contains("epoch"), "{err}");
    }

    #[test]
    fn an_unknown_key_gets_its_line_and_the_closest_known_key() {
        let text = MINIMAL.replace("[data]", "[train]\nepoch = 3\n[data]");
        let err = format!("{:#}", PipelineConfig::from_toml(&text).unwrap_err());
        assert!(err.contains("line 4: unknown key `train.epoch`"), "{err}");
        assert!(err.contains("did you mean `epochs`?"), "{err}");
        let text = MINIMAL.replace(
            "[data]",
            "[layout.modality.genomics]\nperplexty = 5.0\n[data]",
        );
        let err = format!("{:#}", PipelineConfig::from_toml(&text).unwrap_err());
        assert!(
            err.contains("`layout.modality.genomics.perplexty`"),
            "{err}"
        );
        assert!(err.contains("line 4"), "{err}");
        let text = format!("seeds = 3\n{MINIMAL}");
        let err = format!("{:#}", PipelineConfig::from_toml(&text).unwrap_err());
        assert!(err.contains("line 1: unknown key `seeds`"), "{err}");
        assert!(err.contains("did you mean `seed`?"), "{err}");
    }

    #[test]
    fn a_manifest_s_config_with_a_key_no_longer_known_still_reads() {
        let mut value = toml::Value::try_from(PipelineConfig::from_toml(MINIMAL).unwrap()).unwrap();
        value["train"]
            .as_table_mut()
            .unwrap()
            .insert("retired_option".into(), toml::Value::Integer(3));
        let json = serde_json::to_string(&value).unwrap();
        let config: PipelineConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(config, PipelineConfig::from_toml(MINIMAL).unwrap());
    }

    #[test]
    fn override_for_unknown_modality_is_rejected() {
        let text = format!("{MINIMAL}\n[select.top_k_per_modality]\nproteomics = 5\n");
        let err = format!("{:#}", PipelineConfig::from_toml(&text).unwrap_err());
        assert!(
            err.contains("select.top_k_per_modality.proteomics"),
            "{err}"
        );
    }

    #[test]
    fn training_options_are_read_and_checked_by_key() {
        let text = MINIMAL.replace(
            "[data]",
            "[train]\noptimizer = \"adamw\"\nschedule = \"cosine\"\nmonitor = \"auroc\"\n\
             class_weights = \"balanced\"\n[data]",
        );
        let c = PipelineConfig::from_toml(&text).unwrap();
        assert_eq!(c.train.optimizer, OptimizerKind::AdamW);
        assert_eq!(c.train.schedule, ScheduleKind::Cosine);
        assert_eq!(c.train.monitor, Monitor::Auroc);
        assert_eq!(c.train.class_weights, ClassWeights::Balanced);
        for (section, key) in [
            ("[train]\ntest_fraction = 0.9", "train.test_fraction"),
            ("[train]\nlabel_smoothing = 1.5", "train.label_smoothing"),
            ("[train]\nweight_decay = -1.0", "train.weight_decay"),
            ("[train]\nschedule = \"linear\"", "linear"),
            (
                "[model]\nbackbone_lr_factor = -0.5",
                "model.backbone_lr_factor",
            ),
            ("[model]\npretrained = \"no-such.pth\"", "model.pretrained"),
            (
                "[model]\nwidth = 32\npretrained = \"Cargo.toml\"",
                "model.width",
            ),
        ] {
            let text = MINIMAL.replace("[data]", &format!("{section}\n[data]"));
            let err = format!("{:#}", PipelineConfig::from_toml(&text).unwrap_err());
            assert!(err.contains(key), "{section}: {err}");
        }
    }
}
