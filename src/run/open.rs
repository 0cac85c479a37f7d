//! Opening a run folder: the manifest (feature space, classes), the layout and the model, each
//! checked against the sha256 the manifest recorded when the run was written.

use std::path::{Path, PathBuf};

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use ndarray::ArrayView2;
use polars::prelude::{DataType, ParquetReader, SerReader};

use super::{FORMAT, MANIFEST, Manifest, PREDICTIONS};
use crate::artefact;
use crate::layout::Layout;
use crate::model::train::{load_record, predict_proba};
use crate::model::{self, ResNet, ResNetConfig};
use crate::omics::{self, Cohort};
use crate::render::RenderPlan;

/// The run's own cohort, read again from its input tables, with the split of each sample.
pub struct RunCohort {
    pub cohort: Cohort,
    /// "train", "validation" or "test" per cohort row.
    pub split: Vec<String>,
}

impl RunCohort {
    /// Rows of the split `name` ("all": every row).
    pub fn rows(&self, name: &str) -> Vec<usize> {
        (0..self.split.len())
            .filter(|&r| name == "all" || self.split[r] == name)
            .collect()
    }
}

/// A file of the run folder, checked against the sha256 manifest.json gives it. A file the
/// manifest does not list is an error: an entry removed from the list must not turn the check
/// off.
fn read_checked(dir: &Path, manifest: &Manifest, name: &str) -> Result<Vec<u8>> {
    let path = dir.join(name);
    let Some(expected) = manifest.files.get(name) else {
        bail!(
            "{}: not listed in {}'s files, so it cannot be checked; the run folder was edited",
            path.display(),
            MANIFEST
        );
    };
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    if *expected != artefact::sha256_hex(&bytes) {
        bail!(
            "{}: the file changed since the run was written (sha256 differs from manifest.json)",
            path.display()
        );
    }
    Ok(bytes)
}

/// A trained run, opened: what predicting, scoring, serving, exporting and explaining need.
pub struct RunDir {
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

impl RunDir {
    /// [C, H, W] of one image: what the network takes.
    pub fn image_shape(&self) -> [usize; 3] {
        [
            self.layout.n_channels(),
            self.layout.height,
            self.layout.width,
        ]
    }

    /// Opens the run in `dir` (a folder written by `deepinsight run`).
    pub fn open(dir: &Path) -> Result<Self> {
        let manifest_path = dir.join(MANIFEST);
        let bytes = std::fs::read(&manifest_path).with_context(|| {
            format!(
                "{}: not a run folder (no readable manifest.json)",
                dir.display()
            )
        })?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a valid manifest", manifest_path.display()))?;
        if manifest.format > FORMAT {
            bail!(
                "{}: written in run format {} by deepinsight {}; this is {} and reads formats up \
                 to {FORMAT}: open it with that release or a later one",
                manifest_path.display(),
                manifest.format,
                manifest.version,
                env!("CARGO_PKG_VERSION")
            );
        }
        let read_checked = |name: &str| read_checked(dir, &manifest, name);
        let layout: Layout = serde_json::from_slice(&read_checked(&manifest.layout_file)?)
            .with_context(|| format!("{}: not a valid layout", manifest.layout_file))?;
        let config = ResNetConfig::from_json(&read_checked(&manifest.model.config_file)?)
            .with_context(|| format!("{}: not a model config", manifest.model.config_file))?;
        let record = read_checked(&manifest.model.record)?;
        let device = model::device(&manifest.config.model.device)?;
        let model = load_record(&config, &record, &device).with_context(|| {
            format!(
                "{}: the model record cannot be decoded",
                dir.join(&manifest.model.record).display()
            )
        })?;
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

    /// A file of the run folder, checked against the manifest's sha256.
    pub fn file(&self, name: &str) -> Result<Vec<u8>> {
        read_checked(&self.dir, &self.manifest, name)
    }

    pub fn classes(&self) -> &[String] {
        &self.manifest.classes
    }

    pub fn sample_id_column(&self) -> &str {
        &self.manifest.config.data.sample_id_column
    }

    /// The samples the run was trained and validated on, reloaded from its input tables, with
    /// each sample's split from predictions.parquet. Fails if the tables lost samples or
    /// classes since the run.
    pub fn run_cohort(&self) -> Result<RunCohort> {
        let path = self.dir.join(PREDICTIONS);
        let bytes =
            read_checked(&self.dir, &self.manifest, PREDICTIONS).context("the run's split")?;
        let frame = ParquetReader::new(std::io::Cursor::new(bytes))
            .finish()
            .with_context(|| format!("{}: not a predictions table", path.display()))?;
        let column = |name: &str| -> Result<Vec<String>> {
            let s = frame
                .column(name)
                .with_context(|| format!("{}: no column '{name}'", path.display()))?
                .cast(&DataType::String)?;
            Ok(s.str()?
                .iter()
                .map(|v| v.unwrap_or_default().to_string())
                .collect())
        };
        let split_of: HashMap<String, String> = column("sample_id")?
            .into_iter()
            .zip(column("split")?)
            .collect();
        let cohort = omics::load_cohort(&self.manifest.config.data)
            .context("reading the run's input tables again")?;
        if cohort.classes != self.manifest.classes {
            bail!("the run's input tables no longer have the classes the model was trained on");
        }
        let split: Vec<String> = cohort
            .sample_ids
            .iter()
            .map(|id| split_of.get(id).cloned().unwrap_or_default())
            .collect();
        let found = split.iter().filter(|s| !s.is_empty()).count();
        if found != split_of.len() {
            bail!(
                "{} of the run's {} samples are missing from its input tables",
                split_of.len() - found,
                split_of.len()
            );
        }
        Ok(RunCohort { cohort, split })
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
