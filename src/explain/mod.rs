//! Interpretation: which features (and pathways) drive the model's predictions.
//!
//! Class activation maps (`cam`) are taken back through the layout (`attribution`): each
//! feature gets the score of the pixel it sits on, per class, as a ranked table; `pictures`
//! draws the maps over the images and names the best features on the grid; `refit` keeps the
//! best features and trains again (DeepFeature's loop).

pub(crate) mod attribution;
pub mod cam;
mod page;
pub(crate) mod pictures;
pub(crate) mod refit;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ndarray::Axis;
use polars::prelude::{Column, DataFrame};
use serde::{Deserialize, Serialize};

use crate::artefact::{StagedDir, guard, sha256_hex};
use crate::mapping::{csv_bytes, parquet_bytes};
use crate::model::metrics::argmax;
use crate::render::pictures::class_means;
use crate::report;
use crate::run::RunDir;
use crate::score::predict::{load_inputs, true_classes};
use crate::select::gmt;
use attribution::{ClassMaps, FeatureScore};
use cam::{CamOptions, Maps, Method};
use indicatif::{ProgressBar, ProgressStyle};

/// Which samples to explain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Samples {
    /// A split of the run ("train", "validation", "test") or "all" of it; with new input
    /// tables, "all" of them.
    Split(String),
    /// These sample ids.
    Ids(Vec<String>),
}

impl std::str::FromStr for Samples {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "train" | "validation" | "test" | "all" => Ok(Self::Split(s.to_string())),
            "" => Err("empty --samples".into()),
            ids => Ok(Self::Ids(
                ids.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            )),
        }
    }
}

/// Which class each sample's map explains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The true class where known, else the predicted one.
    Label,
    Predicted,
    Class(String),
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "label" => Self::Label,
            "predicted" => Self::Predicted,
            class => Self::Class(class.to_string()),
        })
    }
}

/// Features named on top_features.png, and in an answer of the server's explain route.
pub const DEFAULT_TOP: usize = 20;

#[derive(Debug, Clone)]
pub struct ExplainOptions {
    pub model: PathBuf,
    pub samples: Samples,
    /// A new cohort's tables (modality, path); empty: the run's own input tables.
    pub inputs: Vec<(String, PathBuf)>,
    /// True classes of a new cohort.
    pub labels: Option<PathBuf>,
    pub out: PathBuf,
    pub cam: CamOptions,
    pub target: Target,
    /// Features whose normalised score reaches this are `selected`.
    pub threshold: f32,
    /// Features named on top_features.png.
    pub top: usize,
    /// Gene sets to report pathways from when the run did not select by pathway.
    pub gmt: Option<PathBuf>,
    pub case_insensitive: bool,
}

/// The samples explained, ready for the model.
struct Explained {
    ids: Vec<String>,
    /// Class index per sample, where known.
    labels: Vec<Option<usize>>,
    label_names: Vec<Option<String>>,
    images: Vec<f32>,
}

/// What `explain` computed, also summarised in explain_report.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExplainReport {
    pub model: PathBuf,
    pub model_sha256: String,
    pub method: Method,
    /// Grad-CAM's residual stage.
    pub stage: usize,
    pub target: Target,
    pub samples: usize,
    /// Images explained per class.
    pub per_class: HashMap<String, usize>,
    pub threshold: f32,
    pub selected: usize,
    pub features: usize,
    /// The best features, best first: (modality, feature, score).
    pub top: Vec<(String, String, f32)>,
    /// Accuracy of the model on the explained samples whose class is known.
    pub accuracy: Option<f64>,
    pub files: Vec<String>,
}

pub struct Explanation {
    pub report: ExplainReport,
    pub features: DataFrame,
    pub out: PathBuf,
}

/// Maps, scores and the ranked table of one model on the chosen samples.
struct Computed {
    samples: Explained,
    maps: Maps,
    class_maps: ClassMaps,
    scores: Vec<FeatureScore>,
    features: DataFrame,
}

fn compute(run_dir: &RunDir, options: &ExplainOptions) -> Result<Computed> {
    let samples = choose_samples(run_dir, options)?;
    let classes = run_dir.classes().to_vec();
    let shape = run_dir.image_shape();
    let given: Vec<Option<usize>> = match &options.target {
        Target::Label => samples.labels.clone(),
        Target::Predicted => vec![None; samples.ids.len()],
        Target::Class(name) => {
            let Some(k) = classes.iter().position(|c| c == name) else {
                bail!(
                    "--target {name}: not a class of the model (it has {}; or use label, predicted)",
                    classes.join(", ")
                );
            };
            vec![Some(k); samples.ids.len()]
        }
    };
    let pathways_of = match &options.gmt {
        Some(path) => Some(gene_sets_of(
            path,
            options.case_insensitive,
            &run_dir.manifest.feature_space.feature_list(),
        )?),
        None => None,
    };
    // One forward pass per image gives both the prediction and the map.
    let maps = maps_with_progress(run_dir, &samples.images, shape, &given, &options.cam)?;
    let class_maps = ClassMaps::new(&maps, &maps.targets, classes.len());
    let scores = attribution::feature_scores(&run_dir.layout, &class_maps);
    let features = attribution::feature_table(
        &run_dir.layout,
        &run_dir.manifest.feature_space,
        &scores,
        &classes,
        options.threshold,
        pathways_of.as_ref(),
    )?;
    Ok(Computed {
        samples,
        maps,
        class_maps,
        scores,
        features,
    })
}

/// `cam::maps` in slices of a few batches, with a progress bar.
fn maps_with_progress(
    run_dir: &RunDir,
    images: &[f32],
    shape: [usize; 3],
    targets: &[Option<usize>],
    options: &CamOptions,
) -> Result<Maps> {
    let len: usize = shape.iter().product();
    let bar = ProgressBar::new(targets.len() as u64).with_style(
        ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} samples {elapsed}")
            .expect("static template"),
    );
    bar.set_message(format!("{:?} maps", options.method).to_lowercase());
    let slice = options.batch_size.max(1) * 4;
    let mut out = Maps {
        values: Vec::new(),
        shape: [0; 3],
        probabilities: Vec::new(),
        targets: Vec::new(),
    };
    for start in (0..targets.len()).step_by(slice) {
        let end = (start + slice).min(targets.len());
        let part = cam::maps(
            &run_dir.model,
            &images[start * len..end * len],
            shape,
            &targets[start..end],
            options,
            &run_dir.device,
        )?;
        out.shape = part.shape;
        out.values.extend(part.values);
        out.probabilities.extend(part.probabilities);
        out.targets.extend(part.targets);
        bar.inc((end - start) as u64);
        crate::progress::line(format_args!(
            "{:?} maps: {end}/{} samples, {:.1} s",
            options.method,
            targets.len(),
            bar.elapsed().as_secs_f64()
        ));
    }
    bar.finish_and_clear();
    tracing::info!(samples = targets.len(), method = ?options.method, seconds = bar.elapsed().as_secs_f64(), "maps computed");
    Ok(out)
}

/// The ranked feature table of the model in `model` on its training samples, with the maps of
/// `options` (used between rounds of `refit`).
fn rank_features(model: &std::path::Path, options: &ExplainOptions) -> Result<DataFrame> {
    let run_dir = RunDir::open(model)?;
    let options = ExplainOptions {
        model: model.to_path_buf(),
        samples: Samples::Split("train".into()),
        inputs: Vec::new(),
        labels: None,
        ..options.clone()
    };
    Ok(compute(&run_dir, &options)?.features)
}

/// The file that marks a folder as an explanation the tool wrote.
pub const REPORT: &str = "explain_report.json";

/// Refuses an `--out` that is, holds or lies inside anything the explanation reads, or an
/// existing folder that is not an earlier explanation.
pub fn check_out(options: &ExplainOptions, run_dir: &RunDir) -> Result<()> {
    let mut inputs: Vec<&Path> = vec![&options.model];
    inputs.extend(options.inputs.iter().map(|(_, p)| p.as_path()));
    inputs.extend(options.labels.as_deref());
    inputs.extend(options.gmt.as_deref());
    if options.inputs.is_empty() {
        inputs.extend(run_dir.manifest.config.input_paths());
    }
    guard::check_folder("--out", &options.out, REPORT, &inputs)
}

pub fn run(options: &ExplainOptions) -> Result<Explanation> {
    let run_dir = RunDir::open(&options.model)?;
    check_out(options, &run_dir)?;
    let Computed {
        samples,
        maps,
        class_maps,
        scores,
        mut features,
    } = compute(&run_dir, options)?;
    let (probabilities, targets) = (&maps.probabilities, &maps.targets);
    let classes = run_dir.classes().to_vec();
    let pathways = attribution::pathway_table(&features, &classes)?;
    let mut sample_table = sample_table(&run_dir, &samples, &maps, &scores)?;

    let staged = StagedDir::new(&options.out)?;
    let mut files = BTreeMap::new();
    let mut put = |name: &str, bytes: &[u8]| -> Result<()> {
        staged.write(name, bytes)?;
        files.insert(name.to_string(), sha256_hex(bytes));
        Ok(())
    };
    put("feature_scores.parquet", &parquet_bytes(&mut features)?)?;
    put("feature_scores.csv", &csv_bytes(&mut features)?)?;
    let mut selected = selected_features(&features)?;
    put("selected_features.csv", &csv_bytes(&mut selected)?)?;
    if let Some(mut table) = pathways {
        put("pathway_scores.csv", &csv_bytes(&mut table)?)?;
    }
    put("samples.parquet", &parquet_bytes(&mut sample_table)?)?;
    let mut pixels = pixel_table(&class_maps, &classes)?;
    put("pixel_scores.parquet", &parquet_bytes(&mut pixels)?)?;
    let means = class_means(
        &samples.images,
        targets,
        classes.len(),
        run_dir.plan.image_len(),
    );
    let cam_classes = png(&pictures::class_overlays(
        &run_dir.layout,
        &means,
        &class_maps,
        &classes,
    ))?;
    put("cam_classes.png", &cam_classes)?;
    let sample_labels: Vec<String> = (0..samples.ids.len())
        .map(|i| {
            format!(
                "{} {} p={:.2}",
                samples.ids[i], classes[targets[i]], probabilities[i][targets[i]]
            )
        })
        .collect();
    let cam_samples = png(&pictures::sample_overlays(
        &run_dir.layout,
        &samples.images,
        &maps,
        &sample_labels,
        12,
    ))?;
    put("cam_samples.png", &cam_samples)?;
    let top_features = png(&top_features_picture(
        &run_dir,
        &class_maps,
        &features,
        options.top,
    )?)?;
    put("top_features.png", &top_features)?;

    let known: Vec<usize> = (0..samples.ids.len())
        .filter(|&i| samples.labels[i].is_some())
        .collect();
    let report = ExplainReport {
        model: options.model.clone(),
        model_sha256: run_dir.model_sha256.clone(),
        method: options.cam.method,
        stage: options.cam.stage,
        target: options.target.clone(),
        samples: samples.ids.len(),
        per_class: classes
            .iter()
            .zip(&class_maps.count)
            .map(|(c, &n)| (c.clone(), n))
            .collect(),
        threshold: options.threshold,
        selected: selected.height(),
        features: features.height(),
        top: top_rows(&features, 20)?,
        accuracy: (!known.is_empty()).then(|| {
            known
                .iter()
                .filter(|&&i| samples.labels[i] == Some(argmax(&probabilities[i])))
                .count() as f64
                / known.len() as f64
        }),
        files: files
            .keys()
            .cloned()
            .chain([report::FILE.to_string(), REPORT.to_string()])
            .collect(),
    };
    let html = page::page(
        &run_dir,
        &report,
        &[
            (
                "cam_classes.png",
                &cam_classes,
                "each class's mean image under its mean map",
            ),
            (
                "cam_samples.png",
                &cam_samples,
                "explained samples under their maps",
            ),
            (
                "top_features.png",
                &top_features,
                "the best features on the layout grid",
            ),
        ],
        &files,
    )?;
    staged.write(report::FILE, html.as_bytes())?;
    staged.write(REPORT, &serde_json::to_vec_pretty(&report)?)?;
    let out = staged
        .commit()
        .with_context(|| format!("cannot move the explanation into {}", options.out.display()))?;
    Ok(Explanation {
        report,
        features,
        out,
    })
}

fn png(img: &image::RgbImage) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )?;
    Ok(bytes)
}

/// The samples asked for: from the run's own tables (by split or id), or from new tables.
fn choose_samples(run_dir: &RunDir, options: &ExplainOptions) -> Result<Explained> {
    let classes = run_dir.classes();
    let (ids, labels, values) = if options.inputs.is_empty() {
        if options.labels.is_some() {
            bail!("--labels goes with --input tables; the run's own samples have their labels");
        }
        let run = run_dir.run_cohort()?;
        let rows = match &options.samples {
            Samples::Split(name) => run.rows(name),
            Samples::Ids(ids) => find_ids(&run.cohort.sample_ids, ids)?,
        };
        let values = run_dir.manifest.feature_space.transform(&run.cohort)?;
        let ids: Vec<String> = rows
            .iter()
            .map(|&r| run.cohort.sample_ids[r].clone())
            .collect();
        let labels = rows.iter().map(|&r| Some(run.cohort.labels[r])).collect();
        (ids, labels, values.select(Axis(0), &rows))
    } else {
        let joined = load_inputs(run_dir, &options.inputs)?;
        let rows = match &options.samples {
            Samples::Split(name) if name == "all" => (0..joined.sample_ids.len()).collect(),
            Samples::Split(name) => bail!(
                "--samples {name}: new --input tables have no {name} split; use all or sample ids"
            ),
            Samples::Ids(ids) => find_ids(&joined.sample_ids, ids)?,
        };
        let values = run_dir
            .manifest
            .feature_space
            .transform_modalities(&joined.modalities)?;
        let ids: Vec<String> = rows.iter().map(|&r| joined.sample_ids[r].clone()).collect();
        let labels = match &options.labels {
            Some(path) => true_classes(path, run_dir, &ids)?
                .into_iter()
                .map(|(_, k)| k)
                .collect(),
            None => vec![None; ids.len()],
        };
        (ids, labels, values.select(Axis(0), &rows))
    };
    if ids.is_empty() {
        bail!("--samples {:?}: no sample to explain", options.samples);
    }
    Ok(Explained {
        label_names: labels
            .iter()
            .map(|l: &Option<usize>| l.map(|k| classes[k].clone()))
            .collect(),
        labels,
        images: run_dir.render(values.view())?,
        ids,
    })
}

fn find_ids(have: &[String], wanted: &[String]) -> Result<Vec<usize>> {
    let index: HashMap<&str, usize> = have
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    wanted
        .iter()
        .map(|id| {
            index
                .get(id.as_str())
                .copied()
                .with_context(|| format!("--samples: no sample '{id}' in the tables"))
        })
        .collect()
}

/// Gene sets listing each feature name of the model.
fn gene_sets_of(
    path: &std::path::Path,
    fold: bool,
    features: &[(String, String)],
) -> Result<HashMap<String, Vec<String>>> {
    let key = |s: &str| {
        if fold {
            s.to_lowercase()
        } else {
            s.to_string()
        }
    };
    let names: HashMap<String, &str> = features.iter().map(|(_, f)| (key(f), f.as_str())).collect();
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for set in gmt::read(path)? {
        for member in &set.members {
            if let Some(&feature) = names.get(&key(member)) {
                out.entry(feature.to_string())
                    .or_default()
                    .push(set.name.clone());
            }
        }
    }
    if out.is_empty() {
        bail!(
            "{}: no gene set member is a feature of the model (try --case-insensitive)",
            path.display()
        );
    }
    Ok(out)
}

/// One row per explained sample: id, label, predicted class, target, class probabilities and
/// the five features with the highest score on that sample's own map.
fn sample_table(
    run_dir: &RunDir,
    samples: &Explained,
    maps: &Maps,
    scores: &[FeatureScore],
) -> Result<DataFrame> {
    let classes = run_dir.classes();
    let (probabilities, targets) = (&maps.probabilities, &maps.targets);
    let names = run_dir.manifest.feature_space.feature_list();
    let top: Vec<String> = (0..samples.ids.len())
        .map(|i| {
            let mut ranked: Vec<(f32, usize)> = scores
                .iter()
                .map(|s| {
                    (
                        maps.at(i, s.channel, s.row as usize, s.pixel_column as usize),
                        s.column,
                    )
                })
                .collect();
            ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            ranked
                .iter()
                .take(5)
                .map(|&(_, f)| format!("{}:{}", names[f].0, names[f].1))
                .collect::<Vec<_>>()
                .join(";")
        })
        .collect();
    let mut columns = vec![
        Column::new(run_dir.sample_id_column().into(), &samples.ids),
        Column::new("label".into(), samples.label_names.clone()),
        Column::new(
            "predicted".into(),
            probabilities
                .iter()
                .map(|p| classes[argmax(p)].clone())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "target".into(),
            targets
                .iter()
                .map(|&t| classes[t].clone())
                .collect::<Vec<_>>(),
        ),
    ];
    for (k, class) in classes.iter().enumerate() {
        columns.push(Column::new(
            format!("prob_{class}").into(),
            probabilities.iter().map(|p| p[k]).collect::<Vec<_>>(),
        ));
    }
    columns.push(Column::new("top_features".into(), top));
    Ok(DataFrame::new_infer_height(columns)?)
}

/// The class maps pixel by pixel: class, channel (map plane), row, column, mean, max.
fn pixel_table(maps: &ClassMaps, classes: &[String]) -> Result<DataFrame> {
    let [c, h, w] = maps.shape;
    let (mut class, mut channel, mut row, mut column, mut mean, mut max) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (k, name) in classes.iter().enumerate() {
        if maps.count[k] == 0 {
            continue;
        }
        for p in 0..c * h * w {
            class.push(name.clone());
            channel.push((p / (h * w)) as u32);
            row.push(((p / w) % h) as u32);
            column.push((p % w) as u32);
            mean.push(maps.mean[k][p]);
            max.push(maps.max[k][p]);
        }
    }
    Ok(DataFrame::new_infer_height(vec![
        Column::new("class".into(), class),
        Column::new("channel".into(), channel),
        Column::new("row".into(), row),
        Column::new("column".into(), column),
        Column::new("mean".into(), mean),
        Column::new("max".into(), max),
    ])?)
}

/// The CAMFeatureSelector-style selection: modality and feature of the selected rows.
fn selected_features(features: &DataFrame) -> Result<DataFrame> {
    let mask = features.column("selected")?.bool()?.clone();
    Ok(features
        .filter(&mask)?
        .select(["modality", "feature", "score", "rank"])?)
}

fn top_rows(features: &DataFrame, n: usize) -> Result<Vec<(String, String, f32)>> {
    let modality = features.column("modality")?.str()?.clone();
    let feature = features.column("feature")?.str()?.clone();
    let score = features.column("score")?.f32()?.clone();
    Ok((0..features.height().min(n))
        .map(|i| {
            (
                modality.get(i).unwrap_or_default().to_string(),
                feature.get(i).unwrap_or_default().to_string(),
                score.get(i).unwrap_or_default(),
            )
        })
        .collect())
}

/// The grid coloured by the best class's mean map at each pixel, the `top` features named.
fn top_features_picture(
    run_dir: &RunDir,
    maps: &ClassMaps,
    features: &DataFrame,
    top: usize,
) -> Result<image::RgbImage> {
    let len = maps.shape.iter().product::<usize>();
    let background: Vec<f32> = (0..len)
        .map(|p| {
            maps.mean
                .iter()
                .zip(&maps.count)
                .filter(|&(_, &n)| n > 0)
                .map(|(m, _)| m[p])
                .fold(0.0f32, f32::max)
        })
        .collect();
    let top = top.min(features.height());
    let name = features.column("feature")?.str()?.clone();
    let channel = features.column("channel_index")?.u32()?.clone();
    let row = features.column("row")?.u32()?.clone();
    let column = features.column("column")?.u32()?.clone();
    let named: Vec<pictures::Named> = (0..top)
        .map(|i| pictures::Named {
            name: name.get(i).unwrap_or_default(),
            channel: channel.get(i).unwrap_or_default() as usize,
            row: row.get(i).unwrap_or_default(),
            column: column.get(i).unwrap_or_default(),
        })
        .collect();
    Ok(pictures::top_features(
        &run_dir.layout,
        &background,
        maps.shape,
        &named,
    ))
}
