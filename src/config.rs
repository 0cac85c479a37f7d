//! The pipeline file: one TOML document that names the inputs and sets every stage.
//!
//! Unknown keys are rejected (`deny_unknown_fields`) so that a typo such as `epoch = 3`
//! fails loudly instead of silently training with the default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

pub use crate::model::schedule::ScheduleKind;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Run name: artefacts go to `<output_dir>/<name>/`.
    pub name: String,
    #[serde(default = "default_output_dir")]
    pub output_dir: PathBuf,
    #[serde(default = "default_seed")]
    pub seed: u64,
    pub data: DataConfig,
    #[serde(default)]
    pub normalise: NormaliseConfig,
    #[serde(default)]
    pub select: SelectConfig,
    #[serde(default)]
    pub layout: LayoutConfig,
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub train: TrainConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Modality name -> table path (Parquet, CSV or TSV, chosen by extension).
    /// A BTreeMap keeps the modality (and so channel) order stable: alphabetical.
    pub modalities: BTreeMap<String, PathBuf>,
    /// Table holding the class of every sample.
    pub labels: PathBuf,
    #[serde(default = "default_sample_id")]
    pub sample_id_column: String,
    #[serde(default = "default_label_column")]
    pub label_column: String,
    /// What an infinite value (+-Inf) in a table means: an error naming it, or missing.
    #[serde(default)]
    pub infinite_values: Infinite,
}

/// What an infinite value in an input table means.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Infinite {
    /// Stop with an error naming the file, column and sample: most often a division by zero
    /// upstream that the user should see.
    #[default]
    Error,
    /// Treat it as a missing value (imputed with the training median).
    Missing,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum NormMethod {
    /// Per-feature min-max to [0, 1].
    #[serde(rename = "norm-1")]
    Norm1,
    /// log(x + |min| + 1) divided by the global maximum, per modality (DeepInsight's default).
    #[default]
    #[serde(rename = "norm-2")]
    Norm2,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct NormaliseConfig {
    #[serde(default)]
    pub method: NormMethod,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SelectConfig {
    /// Keep at most this many features per modality, ranked by variance on training samples.
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// Per-modality overrides of `top_k`.
    #[serde(default)]
    pub top_k_per_modality: BTreeMap<String, usize>,
    /// Pathway-grouped selection from GMT gene sets; replaces `top_k` when set.
    #[serde(default)]
    pub pathways: Option<PathwayConfig>,
    /// A feature list (Parquet, CSV or TSV with columns `modality` and `feature`): only these
    /// features are candidates, before `top_k` or pathways choose among them. `deepinsight
    /// explain --refit` writes one from the features the model's class activation maps rank best.
    #[serde(default)]
    pub keep: Option<PathBuf>,
}

/// How features are ranked within a pathway, and pathways against each other.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FeatureScore {
    /// One-way ANOVA F statistic of the feature across classes, on training samples.
    #[default]
    Anova,
    /// Variance of the normalised feature on training samples (unsupervised).
    Variance,
}

/// `[select.pathways]`: gene sets from a GMT file, matched to features by name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PathwayConfig {
    /// GMT file (MSigDB/GSEA format): name, description, members, tab-separated.
    pub gmt: PathBuf,
    /// Match members to feature names ignoring case.
    #[serde(default)]
    pub case_insensitive: bool,
    /// Optional ID-mapping table (Parquet, CSV or TSV): its first two columns (or `id_map_columns`)
    /// are two names of one feature, e.g. Ensembl id and gene symbol; a member matches a
    /// feature under either name.
    #[serde(default)]
    pub id_map: Option<PathBuf>,
    #[serde(default)]
    pub id_map_columns: Option<[String; 2]>,
    /// Pathways with fewer matched (non-constant) features are left out.
    #[serde(default = "default_min_members")]
    pub min_members: usize,
    /// Features kept per pathway, the best by `score`.
    #[serde(default = "default_pathway_top_k")]
    pub top_k: usize,
    #[serde(default)]
    pub score: FeatureScore,
    /// Keep the best pathways by the mean score of their kept features; unset keeps all.
    #[serde(default)]
    pub top_pathways: Option<usize>,
    /// Features in no pathway: keep the best this many as an "unassigned" group (0 drops them).
    #[serde(default)]
    pub unassigned: usize,
}

impl Default for SelectConfig {
    fn default() -> Self {
        Self {
            top_k: default_top_k(),
            top_k_per_modality: BTreeMap::new(),
            pathways: None,
            keep: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum EmbedMethod {
    Pca,
    /// Kernel PCA with an RBF kernel.
    Kpca,
    #[default]
    Tsne,
    /// Coordinates read from `layout.coordinates`.
    Precomputed,
}

/// What happens when several features land on one pixel.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Collisions {
    /// Each feature goes to the pixel its position falls in; features sharing a pixel are
    /// averaged (pyDeepInsight's behaviour).
    #[default]
    Bin,
    /// Each axis first replaced by its quantiles (ranks), which spreads crowded regions, then
    /// binned.
    Quantile,
    /// One feature per pixel, with the least total squared displacement.
    Assign,
}

/// Starting point of the t-SNE optimisation.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum TsneInit {
    /// First two principal components (scikit-learn's default): the same layout for any seed.
    #[default]
    Pca,
    /// Gaussian noise drawn from the seed.
    Random,
}

/// Distance between features for t-SNE.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// pyDeepInsight's default.
    #[default]
    Cosine,
    /// Cosine of the centred profiles: features that rise and fall together.
    Correlation,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ChannelMode {
    /// One layout over all modalities, one image channel.
    Shared,
    /// One layout per modality, each in its own channel.
    #[default]
    Channels,
}

/// What decides where a feature goes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Arrange {
    /// One embedding of all the channel's features (DeepInsight).
    #[default]
    Embedding,
    /// Each pathway of `select.pathways` gets one rectangular block (a treemap, area in
    /// proportion to its features); its features are embedded inside the block.
    Pathways,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LayoutConfig {
    #[serde(default)]
    pub method: EmbedMethod,
    #[serde(default)]
    pub mode: ChannelMode,
    #[serde(default)]
    pub arrange: Arrange,
    #[serde(default = "default_image_size")]
    pub height: usize,
    #[serde(default = "default_image_size")]
    pub width: usize,
    #[serde(default = "default_perplexity")]
    pub perplexity: f64,
    #[serde(default = "default_tsne_iterations")]
    pub iterations: usize,
    #[serde(default)]
    pub metric: Metric,
    #[serde(default)]
    pub collisions: Collisions,
    /// t-SNE step size; unset means scikit-learn's "auto", max(features / 48, 50).
    #[serde(default)]
    pub learning_rate: Option<f64>,
    #[serde(default)]
    pub init: TsneInit,
    /// RBF width of kernel PCA; unset means 1 / training samples (scikit-learn's default).
    #[serde(default)]
    pub gamma: Option<f64>,
    /// Table of feature coordinates for `method = "precomputed"`: columns `feature`, `x`, `y`
    /// and optionally `modality`.
    #[serde(default)]
    pub coordinates: Option<PathBuf>,
    /// Seed of the layout; unset means the pipeline's seed.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Per-modality settings in `channels` mode, e.g. `[layout.modality.microbiome]`.
    #[serde(default)]
    pub modality: BTreeMap<String, ChannelOverride>,
}

/// Settings that may differ between channels.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ChannelOverride {
    pub method: Option<EmbedMethod>,
    pub perplexity: Option<f64>,
    pub metric: Option<Metric>,
}

impl LayoutConfig {
    /// The settings of one modality's channel: the overrides of `[layout.modality.<name>]`
    /// over the layout's own.
    pub fn for_modality(&self, name: &str) -> LayoutConfig {
        let mut out = self.clone();
        if let Some(o) = self.modality.get(name) {
            out.method = o.method.unwrap_or(self.method);
            out.perplexity = o.perplexity.unwrap_or(self.perplexity);
            out.metric = o.metric.unwrap_or(self.metric);
        }
        out
    }
}

impl Default for LayoutConfig {
    fn default() -> Self {
        Self {
            method: EmbedMethod::default(),
            mode: ChannelMode::default(),
            arrange: Arrange::default(),
            height: default_image_size(),
            width: default_image_size(),
            perplexity: default_perplexity(),
            iterations: default_tsne_iterations(),
            metric: Metric::default(),
            collisions: Collisions::default(),
            learning_rate: None,
            init: TsneInit::default(),
            gamma: None,
            coordinates: None,
            seed: None,
            modality: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Channels of the first stage; torchvision's ResNet18 uses 64. Smaller is faster.
    #[serde(default = "default_width")]
    pub width: usize,
    /// `cpu` (Burn's flex backend) or `wgpu` (needs the `wgpu` cargo feature).
    #[serde(default = "default_device")]
    pub device: String,
    /// torchvision-format ResNet18 weights to fine-tune from (`.pth`/`.pt` or `.safetensors`);
    /// the classifier head is always replaced. Needs `width = 64`.
    #[serde(default)]
    pub pretrained: Option<PathBuf>,
    /// Train only the head for this many epochs first (the backbone frozen).
    #[serde(default)]
    pub freeze_backbone_epochs: usize,
    /// The backbone's learning rate is the head's times this (e.g. 0.1 when fine-tuning).
    #[serde(default = "default_one")]
    pub backbone_lr_factor: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            width: default_width(),
            device: default_device(),
            pretrained: None,
            freeze_backbone_epochs: 0,
            backbone_lr_factor: 1.0,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    #[default]
    Adam,
    /// Adam with decoupled weight decay (Loshchilov & Hutter).
    AdamW,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClassWeights {
    #[default]
    None,
    /// n_samples / (n_classes * n_class) on the training samples, as scikit-learn's "balanced".
    Balanced,
}

/// The validation metric that picks the best epoch and drives early stopping.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    #[default]
    MacroF1,
    Accuracy,
    BalancedAccuracy,
    Auroc,
    /// Validation cross-entropy; lower is better.
    Loss,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f64,
    /// Fraction of samples held out for validation, stratified by class.
    #[serde(default = "default_validation_fraction")]
    pub validation_fraction: f64,
    /// Fraction held out as a test set, scored once with the kept model (0: no test set).
    #[serde(default)]
    pub test_fraction: f64,
    #[serde(default)]
    pub optimizer: OptimizerKind,
    #[serde(default)]
    pub weight_decay: f64,
    #[serde(default)]
    pub schedule: ScheduleKind,
    /// Epochs of linear learning-rate warm-up before the schedule.
    #[serde(default)]
    pub warmup_epochs: usize,
    /// `schedule = "step"`: multiply the rate by `step_gamma` every `step_epochs` epochs.
    #[serde(default = "default_step_epochs")]
    pub step_epochs: usize,
    #[serde(default = "default_step_gamma")]
    pub step_gamma: f64,
    #[serde(default)]
    pub label_smoothing: f64,
    #[serde(default)]
    pub class_weights: ClassWeights,
    #[serde(default)]
    pub monitor: Monitor,
    /// Stop after this many epochs without a better monitored metric (0: never stop early).
    #[serde(default)]
    pub early_stopping_patience: usize,
    /// Augmentation: Gaussian noise of this standard deviation on the normalised feature
    /// values before they are mapped to pixels (fresh every epoch). Flips and rotations are
    /// not offered: they would move features to pixels that mean other features.
    #[serde(default)]
    pub feature_noise: f64,
    /// CPU threads for training and inference (0: all cores).
    #[serde(default)]
    pub threads: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: default_epochs(),
            batch_size: default_batch_size(),
            learning_rate: default_learning_rate(),
            validation_fraction: default_validation_fraction(),
            test_fraction: 0.0,
            optimizer: OptimizerKind::default(),
            weight_decay: 0.0,
            schedule: ScheduleKind::default(),
            warmup_epochs: 0,
            step_epochs: default_step_epochs(),
            step_gamma: default_step_gamma(),
            label_smoothing: 0.0,
            class_weights: ClassWeights::default(),
            monitor: Monitor::default(),
            early_stopping_patience: 0,
            feature_noise: 0.0,
            threads: 0,
        }
    }
}

fn default_one() -> f64 {
    1.0
}
fn default_step_epochs() -> usize {
    10
}
fn default_step_gamma() -> f64 {
    0.1
}

fn default_output_dir() -> PathBuf {
    PathBuf::from("models")
}
fn default_seed() -> u64 {
    42
}
fn default_sample_id() -> String {
    "sample_id".into()
}
fn default_label_column() -> String {
    "label".into()
}
fn default_top_k() -> usize {
    1000
}
fn default_min_members() -> usize {
    5
}
fn default_pathway_top_k() -> usize {
    10
}
fn default_image_size() -> usize {
    224
}
fn default_perplexity() -> f64 {
    30.0
}
fn default_tsne_iterations() -> usize {
    1000
}
fn default_width() -> usize {
    64
}
fn default_device() -> String {
    "cpu".into()
}
fn default_epochs() -> usize {
    10
}
fn default_batch_size() -> usize {
    16
}
fn default_learning_rate() -> f64 {
    1e-3
}
fn default_validation_fraction() -> f64 {
    0.2
}

impl PipelineConfig {
    /// Reads a pipeline file. Relative paths in it are taken from the current directory, which
    /// is the repository root for the README's commands.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read pipeline file {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("invalid pipeline file {}", path.display()))
    }

    pub fn from_toml(text: &str) -> Result<Self> {
        let config: Self = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every value (`from_toml` calls it; call it again after changing a field).
    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() || self.name.contains(['/', '\\']) || self.name.starts_with('.') {
            bail!(
                "name: '{}' is not a valid run name (no slashes, not empty)",
                self.name
            );
        }
        if self.data.modalities.is_empty() {
            bail!("data.modalities: at least one modality table is needed");
        }
        for key in self.select.top_k_per_modality.keys() {
            if !self.data.modalities.contains_key(key) {
                bail!(
                    "select.top_k_per_modality.{key}: no modality of that name in data.modalities"
                );
            }
        }
        if let Some(p) = &self.select.pathways
            && p.top_k == 0
        {
            bail!("select.pathways.top_k: must be at least 1");
        }
        if let Some(0) = self.select.pathways.as_ref().and_then(|p| p.top_pathways) {
            bail!("select.pathways.top_pathways: must be at least 1 (leave it out to keep all)");
        }
        let l = &self.layout;
        if l.arrange == Arrange::Pathways && self.select.pathways.is_none() {
            bail!(
                "layout.arrange = \"pathways\" needs gene sets: add a [select.pathways] section with a gmt file"
            );
        }
        if l.height < 8 || l.width < 8 {
            bail!(
                "layout.height/layout.width: images must be at least 8x8, got {}x{}",
                l.height,
                l.width
            );
        }
        if l.perplexity.is_nan() || l.perplexity <= 0.0 {
            bail!("layout.perplexity: must be positive, got {}", l.perplexity);
        }
        if let Some(rate) = l.learning_rate
            && !(rate > 0.0 && rate.is_finite())
        {
            bail!("layout.learning_rate: must be positive, got {rate}");
        }
        if let Some(gamma) = l.gamma
            && !(gamma > 0.0 && gamma.is_finite())
        {
            bail!("layout.gamma: must be positive, got {gamma}");
        }
        let precomputed = l.method == EmbedMethod::Precomputed
            || l.modality
                .values()
                .any(|o| o.method == Some(EmbedMethod::Precomputed));
        if precomputed && l.coordinates.is_none() {
            bail!("layout.coordinates: method = \"precomputed\" needs a coordinates table");
        }
        for (key, o) in &l.modality {
            if !self.data.modalities.contains_key(key) {
                bail!("layout.modality.{key}: no modality of that name in data.modalities");
            }
            if l.mode == ChannelMode::Shared {
                bail!("layout.modality.{key}: per-modality settings need mode = \"channels\"");
            }
            if let Some(p) = o.perplexity
                && (p.is_nan() || p <= 0.0)
            {
                bail!("layout.modality.{key}.perplexity: must be positive, got {p}");
            }
        }
        let t = &self.train;
        if !(t.validation_fraction > 0.0 && t.validation_fraction < 1.0) {
            bail!(
                "train.validation_fraction: must lie in (0, 1), got {}",
                t.validation_fraction
            );
        }
        if t.epochs == 0 || t.batch_size == 0 {
            bail!("train.epochs and train.batch_size must be at least 1");
        }
        if !(0.0..1.0).contains(&t.test_fraction) || t.validation_fraction + t.test_fraction >= 1.0
        {
            bail!(
                "train.test_fraction: must lie in [0, 1) and leave training samples next to \
                 validation_fraction, got {}",
                t.test_fraction
            );
        }
        for (key, value, ok) in [
            ("learning_rate", t.learning_rate, t.learning_rate > 0.0),
            ("weight_decay", t.weight_decay, t.weight_decay >= 0.0),
            ("step_gamma", t.step_gamma, t.step_gamma > 0.0),
            (
                "label_smoothing",
                t.label_smoothing,
                (0.0..1.0).contains(&t.label_smoothing),
            ),
            ("feature_noise", t.feature_noise, t.feature_noise >= 0.0),
        ] {
            if !ok || !value.is_finite() {
                bail!("train.{key}: out of range, got {value}");
            }
        }
        if t.step_epochs == 0 {
            bail!("train.step_epochs: must be at least 1");
        }
        let m = &self.model;
        if !(m.backbone_lr_factor >= 0.0 && m.backbone_lr_factor.is_finite()) {
            bail!(
                "model.backbone_lr_factor: must be finite and not negative, got {}",
                m.backbone_lr_factor
            );
        }
        if let Some(path) = &m.pretrained
            && !path.is_file()
        {
            bail!("model.pretrained: no file {}", path.display());
        }
        if m.pretrained.is_some() && m.width != 64 {
            bail!(
                "model.width: torchvision's ResNet18 weights (model.pretrained) need width = 64, got {}",
                m.width
            );
        }
        if self.model.width < 4 {
            bail!("model.width: must be at least 4, got {}", self.model.width);
        }
        Ok(())
    }

    pub fn top_k_for(&self, modality: &str) -> usize {
        self.select
            .top_k_per_modality
            .get(modality)
            .copied()
            .unwrap_or(self.select.top_k)
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
    fn unknown_key_is_named() {
        let text = MINIMAL.replace("[data]", "[train]\nepoch = 3\n[data]");
        let err = format!("{:#}", PipelineConfig::from_toml(&text).unwrap_err());
        assert!(err.contains("epoch"), "{err}");
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
