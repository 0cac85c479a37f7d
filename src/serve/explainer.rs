//! POST /explain: one sample's prediction with the features that drove it, from a class
//! activation map of the served model (see `crate::explain`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::preprocess::SampleInput;
use crate::explain::attribution::{ClassMaps, feature_scores};
use crate::explain::cam::{self, CamOptions, Method};
use crate::layout::Layout;
use crate::model::ResNet;
use crate::model::metrics::argmax;
use crate::run::RunDir;

/// The served model's own copy of the network for maps (they need a backward pass), with
/// what it takes to name the features at each pixel.
pub struct Explainer {
    model: Mutex<ResNet>,
    device: Device,
    layout: Layout,
    /// (modality, feature) per feature column.
    names: Vec<(String, String)>,
    /// Gene sets per feature column, when the run selected by pathway.
    pathways: Vec<Vec<String>>,
}

impl Explainer {
    pub fn new(run_dir: &RunDir) -> Self {
        let space = &run_dir.manifest.feature_space;
        let names = space.feature_list();
        let mut of: HashMap<(&str, &str), Vec<String>> = HashMap::new();
        if let Some(selection) = &space.pathways {
            for group in &selection.groups {
                for f in &group.features {
                    of.insert((&f.modality, &f.name), f.pathways.clone());
                }
            }
        }
        let pathways = names
            .iter()
            .map(|(m, f)| {
                of.get(&(m.as_str(), f.as_str()))
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        Self {
            model: Mutex::new(run_dir.model.clone()),
            device: run_dir.device.clone(),
            layout: run_dir.layout.clone(),
            names,
            pathways,
        }
    }
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest<'a> {
    /// Needed when the server holds more than one model.
    #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")]
    pub model: Option<String>,
    /// One sample, as an element of /predict's `samples`.
    #[serde(borrow)]
    pub sample: SampleInput<'a>,
    /// saliency (default), gradcam or hirescam.
    #[serde(default)]
    pub method: Method,
    /// Residual stage for gradcam and hirescam, 1 to 4 (default 4).
    #[serde(default = "default_stage")]
    #[schema(minimum = 1, maximum = 4)]
    pub stage: usize,
    /// The class to explain (default: the predicted one).
    pub target: Option<String>,
    /// Features to return, best first (default 20).
    #[serde(default = "default_top")]
    pub top: usize,
    /// Also return the map itself (channels x H x W, values in [0, 1]).
    #[serde(default)]
    pub include_map: bool,
    #[serde(default)]
    pub allow_missing: bool,
    #[serde(default)]
    pub ignore_unknown: bool,
}

fn default_stage() -> usize {
    crate::explain::cam::DEFAULT_STAGE
}

fn default_top() -> usize {
    crate::explain::DEFAULT_TOP
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FeatureAttribution {
    pub modality: String,
    pub feature: String,
    pub pathways: Vec<String>,
    /// The layout channel and pixel the feature sits on.
    pub channel: String,
    pub row: u32,
    pub column: u32,
    /// The map's value at that pixel, in [0, 1] (1 = the map's largest value).
    pub score: f32,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExplainResponse {
    pub model_name: String,
    pub model_sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub predicted: String,
    pub probabilities: BTreeMap<String, f32>,
    pub target: String,
    pub method: Method,
    pub stage: usize,
    pub features: Vec<FeatureAttribution>,
    /// With `include_map`: the map, flat, and its shape [channels, H, W].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map_shape: Option<[usize; 3]>,
}

/// What the request asks of the map, checked against the model before any work.
pub struct Ask {
    pub options: CamOptions,
    pub target: Option<usize>,
    pub top: usize,
    pub include_map: bool,
}

pub fn check(request: &ExplainRequest<'_>, classes: &[String]) -> Result<Ask, ApiError> {
    if !(1..=4).contains(&request.stage) {
        return Err(ApiError::field(
            "stage",
            format!("{}: the ResNet has stages 1 to 4", request.stage),
        ));
    }
    if request.top == 0 {
        return Err(ApiError::field("top", "must be at least 1"));
    }
    let target = match &request.target {
        None => None,
        Some(name) => Some(classes.iter().position(|c| c == name).ok_or_else(|| {
            ApiError::field(
                "target",
                format!(
                    "'{name}' is not a class of the model ({})",
                    classes.join(", ")
                ),
            )
        })?),
    };
    Ok(Ask {
        options: CamOptions {
            method: request.method,
            stage: request.stage,
            batch_size: 1,
        },
        target,
        top: request.top,
        include_map: request.include_map,
    })
}

pub struct Answer {
    pub predicted: usize,
    pub probabilities: Vec<f32>,
    pub target: usize,
    /// Best first, `top` of them.
    pub features: Vec<FeatureAttribution>,
    pub maps: cam::Maps,
}

/// The answer for one rendered image (C x H x W), on the calling (blocking) thread.
pub fn explain(
    explainer: &Explainer,
    classes: &[String],
    image: &[f32],
    ask: &Ask,
) -> Result<Answer, ApiError> {
    let layout = &explainer.layout;
    let shape = [layout.n_channels(), layout.height, layout.width];
    let model = explainer
        .model
        .lock()
        .map_err(|_| ApiError::internal("the explainer's model is unavailable"))?;
    let maps = cam::maps(
        &model,
        image,
        shape,
        &[ask.target],
        &ask.options,
        &explainer.device,
    )
    .map_err(|e| ApiError::internal(format!("{e:#}")))?;
    drop(model);
    let probabilities = maps.probabilities[0].clone();
    let predicted = argmax(&probabilities);
    let target = maps.targets[0];
    let class_maps = ClassMaps::new(&maps, &[target], classes.len());
    let mut scores = feature_scores(layout, &class_maps);
    scores.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.column.cmp(&b.column)));
    let features = scores
        .into_iter()
        .take(ask.top)
        .map(|s| FeatureAttribution {
            modality: explainer.names[s.column].0.clone(),
            feature: explainer.names[s.column].1.clone(),
            pathways: explainer.pathways[s.column].clone(),
            channel: layout.channels[s.channel].name.clone(),
            row: s.row,
            column: s.pixel_column,
            score: s.score,
        })
        .collect();
    Ok(Answer {
        predicted,
        probabilities,
        target,
        features,
        maps,
    })
}
