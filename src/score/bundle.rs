//! A trained run loaded for scoring: the manifest (feature space, classes), the layout and the
//! model, each checked against the sha256 the manifest recorded when the run was written.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use ndarray::ArrayView2;

use crate::artefact;
use crate::layout::Layout;
use crate::manifest::Manifest;
use crate::model::train::{load_record, predict_proba};
use crate::model::{self, ResNet, ResNetConfig};
use crate::render::RenderPlan;

pub struct Bundle {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub layout: Layout,
    pub plan: RenderPlan,
    pub model: ResNet,
    /// The config the record was loaded into (model-config.json).
    pub config: ResNetConfig,
    pub device: Device,
    /// sha256 of the model record: names the model in every scored row.
    pub model_sha256: String,
}

impl Bundle {
    /// Loads the run in `dir` (a folder written by `deepinsight run`).
    pub fn load(dir: &Path) -> Result<Self> {
        let manifest_path = dir.join("manifest.json");
        let bytes = std::fs::read(&manifest_path).with_context(|| {
            format!(
                "{}: not a run folder (no readable manifest.json)",
                dir.display()
            )
        })?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a valid manifest", manifest_path.display()))?;
        let read_checked = |name: &str| -> Result<Vec<u8>> {
            let path = dir.join(name);
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            if let Some(expected) = manifest.files.get(name)
                && *expected != artefact::sha256_hex(&bytes)
            {
                bail!(
                    "{}: the file changed since the run was written (sha256 differs from manifest.json)",
                    path.display()
                );
            }
            Ok(bytes)
        };
        let layout: Layout = serde_json::from_slice(&read_checked(&manifest.layout_file)?)
            .with_context(|| format!("{}: not a valid layout", manifest.layout_file))?;
        let config: ResNetConfig =
            serde_json::from_slice(&read_checked(&manifest.model.config_file)?)
                .with_context(|| format!("{}: not a model config", manifest.model.config_file))?;
        let record = read_checked(&manifest.model.record)?;
        let device = model::device(&manifest.config.model.device)?;
        let model = load_record(&config, &record, &device)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            model_sha256: artefact::sha256_hex(&record),
            plan: RenderPlan::new(&layout),
            manifest,
            layout,
            model,
            config,
            device,
        })
    }

    pub fn classes(&self) -> &[String] {
        &self.manifest.classes
    }

    pub fn sample_id_column(&self) -> &str {
        &self.manifest.config.data.sample_id_column
    }

    /// Images of normalised feature vectors (samples x features), N x C x H x W.
    pub fn render(&self, values: ArrayView2<f32>) -> Result<Vec<f32>> {
        self.plan.render_batch(values)
    }

    /// Class probabilities of each image, `batch_size` images per forward pass.
    pub fn predict(&self, images: &[f32], batch_size: usize) -> Vec<Vec<f32>> {
        let shape = [
            self.layout.n_channels(),
            self.layout.height,
            self.layout.width,
        ];
        predict_proba(&self.model, images, shape, batch_size, &self.device)
    }
}
