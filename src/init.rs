//! `deepinsight init`: a starter pipeline file for a user's own tables, so nobody has to copy
//! `demo.toml` and guess. Each table is read once: its sample-id column checked, its features
//! counted; the labels are matched to the samples; the image size is fitted to the features
//! a channel holds; and every key is written with a comment saying what it does.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::artefact;
use crate::config::{Infinite, PipelineConfig};
use crate::omics;

/// The file `init` writes into its folder.
pub const FILE: &str = "pipeline.toml";

pub struct InitOptions {
    /// The folder to write `pipeline.toml` into (created if needed); runs go to `DIR/models`.
    pub dir: PathBuf,
    pub labels: PathBuf,
    /// (modality, table)
    pub inputs: Vec<(String, PathBuf)>,
    pub sample_id_column: String,
    pub label_column: String,
}

/// What `init` found in the tables, and the file it wrote.
#[derive(Debug)]
pub struct Starter {
    pub file: PathBuf,
    /// Features per modality.
    pub features: BTreeMap<String, usize>,
    /// Samples with a label, per class.
    pub classes: BTreeMap<String, usize>,
    /// Samples in every table and with a label.
    pub samples: usize,
    pub image_side: usize,
    pub test_fraction: f64,
}

/// Features each modality keeps by default (`select.top_k`).
const TOP_K: usize = 1000;

pub fn run(options: &InitOptions) -> Result<Starter> {
    let file = options.dir.join(FILE);
    if file.exists() {
        bail!(
            "{}: exists already; init never overwrites a file: choose another folder",
            file.display()
        );
    }
    if options.inputs.is_empty() {
        bail!("--input: name at least one table, e.g. --input genomics=expression.parquet");
    }
    let mut features = BTreeMap::new();
    let mut ids: Option<Vec<String>> = None;
    for (name, path) in &options.inputs {
        if features.contains_key(name) {
            bail!("--input {name}=...: the modality '{name}' is named twice");
        }
        let table = omics::load_table(path, &options.sample_id_column, Infinite::Error)
            .with_context(|| format!("modality '{name}'"))?;
        features.insert(name.clone(), table.feature_names.len());
        ids = Some(match ids {
            None => table.sample_ids,
            Some(seen) => {
                let here: HashSet<&String> = table.sample_ids.iter().collect();
                seen.into_iter().filter(|id| here.contains(id)).collect()
            }
        });
    }
    let labels = omics::load_labels(
        &options.labels,
        &options.sample_id_column,
        &options.label_column,
    )?;
    let mut classes: BTreeMap<String, usize> = BTreeMap::new();
    let mut samples = 0;
    for id in ids.unwrap_or_default() {
        if let Some(Some(label)) = labels.get(&id) {
            *classes.entry(label.clone()).or_default() += 1;
            samples += 1;
        }
    }
    if classes.len() < 2 {
        bail!(
            "{}: {samples} samples are in every table with a label in column '{}', in {} \
             class(es); a classifier needs at least 2",
            options.labels.display(),
            options.label_column,
            classes.len()
        );
    }
    let smallest = classes.values().copied().min().unwrap_or(0);
    if smallest < 2 {
        bail!(
            "{}: a class has {smallest} sample(s); every class needs at least 2 (training and \
             validation): {}",
            options.labels.display(),
            counts(&classes)
        );
    }
    let widest = features.values().map(|&n| n.min(TOP_K)).max().unwrap_or(0);
    let image_side = image_side(widest);
    // A test split only where every class can spare samples for it and enough remain.
    let test_fraction = if samples >= 100 && smallest >= 10 {
        0.2
    } else {
        0.0
    };
    let starter = Starter {
        file: file.clone(),
        features,
        classes,
        samples,
        image_side,
        test_fraction,
    };
    let text = render(options, &starter);
    // Written only once it parses as a pipeline: what init writes, run reads.
    PipelineConfig::from_toml(&text).context("the starter pipeline does not parse (a bug)")?;
    std::fs::create_dir_all(&options.dir)
        .with_context(|| format!("cannot create {}", options.dir.display()))?;
    artefact::write_atomic(&file, text.as_bytes())?;
    Ok(starter)
}

/// The smallest square side, a multiple of 8, with at least two pixels per feature of the
/// widest channel (room for `assign` to keep features apart); at least 16, at most 224.
pub fn image_side(features: usize) -> usize {
    let side = ((2 * features) as f64).sqrt().ceil() as usize;
    side.div_ceil(8).clamp(2, 28) * 8
}

fn counts(classes: &BTreeMap<String, usize>) -> String {
    classes
        .iter()
        .map(|(c, n)| format!("{c} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn quoted(path: &Path) -> String {
    toml::Value::String(path.display().to_string()).to_string()
}

fn render(options: &InitOptions, s: &Starter) -> String {
    let name = options
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty() && !n.starts_with('.'))
        .unwrap_or_else(|| "run".to_string());
    let mut t = String::new();
    let w = &mut t;
    let _ = writeln!(
        w,
        "# Written by `deepinsight init` for {} samples in every table with a label:\n\
         # {}.\n\
         # Run it with `deepinsight run {}`. Relative paths are taken from the folder you run\n\
         # deepinsight in. Every key is optional unless marked; README.md lists them all.\n",
        s.samples,
        counts(&s.classes),
        s.file.display()
    );
    let _ = writeln!(
        w,
        "name = {}                  # the run folder's name under output_dir (required)",
        toml::Value::String(name)
    );
    let _ = writeln!(
        w,
        "output_dir = {}   # where runs are written",
        quoted(&options.dir.join("models"))
    );
    let _ = writeln!(
        w,
        "seed = 42                       # splits, layout and weights: same seed, same run\n"
    );
    let _ = writeln!(w, "[data]");
    let _ = writeln!(
        w,
        "labels = {}   # the table with each sample's class (required)",
        quoted(&options.labels)
    );
    let _ = writeln!(
        w,
        "sample_id_column = {}   # the column that names samples in every table",
        toml::Value::String(options.sample_id_column.clone())
    );
    let _ = writeln!(
        w,
        "label_column = {}   # the class column of the labels table",
        toml::Value::String(options.label_column.clone())
    );
    let _ = writeln!(
        w,
        "infinite_values = \"error\"       # an infinite value stops the run; \"missing\" imputes it\n"
    );
    let _ = writeln!(
        w,
        "[data.modalities]               # one table per modality, one image channel each (required)"
    );
    for (name, path) in &options.inputs {
        let _ = writeln!(
            w,
            "{name} = {}   # {} features",
            quoted(path),
            s.features[name]
        );
    }
    let _ = writeln!(
        w,
        "\n[normalise]\n\
         method = \"norm-2\"   # log(x + |min| + 1) / max, fitted on training samples; \"norm-1\": min-max\n\n\
         [select]\n\
         top_k = {TOP_K}   # features kept per modality, by variance on training samples\n\n\
         [layout]\n\
         method = \"tsne\"        # features placed by t-SNE of their profiles; \"pca\" is faster\n\
         mode = \"channels\"      # one layout and one image channel per modality\n\
         height = {side}           # fitted: at least two pixels per feature of the widest channel\n\
         width = {side}\n\
         collisions = \"assign\"  # one feature per pixel; \"bin\" averages features sharing one\n\n\
         [model]\n\
         width = 64   # ResNet18's stem channels (64 is torchvision's)\n\
         stem = \"auto\"   # full resolution into the first block below 64 px a side (docs/accuracy.md)\n\n\
         [train]\n\
         epochs = 20\n\
         batch_size = 16\n\
         learning_rate = 0.001\n\
         validation_fraction = 0.2   # stratified; chooses the kept epoch\n\
         test_fraction = {test:?}       # {why}\n\
         early_stopping_patience = 0  # stop after N epochs without improvement; 0: never",
        side = s.image_side,
        test = s.test_fraction,
        why = if s.test_fraction > 0.0 {
            "a stratified test split, scored once with the kept model"
        } else {
            "0: too few samples per class for a test split as well"
        },
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_fits_two_pixels_per_feature_in_multiples_of_eight() {
        assert_eq!(image_side(3), 16);
        assert_eq!(image_side(400), 32); // 800 pixels: 28.3 -> 32
        assert_eq!(image_side(1000), 48); // 2000: 44.7 -> 48
        assert_eq!(image_side(100_000), 224);
        for n in [3, 50, 400, 1000, 7000] {
            assert!(image_side(n).pow(2) >= 2 * n || image_side(n) == 224);
        }
    }
}
