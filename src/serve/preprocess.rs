//! POST /predict: raw omics values by modality and feature name, turned into the model's
//! images with exactly the imputation, normalisation, selection and layout fitted at training.

use std::borrow::Cow;
use std::collections::BTreeMap;

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use fnv::FnvHashMap;

use super::error::ApiError;
use crate::render::RenderPlan;
use crate::run::RunDir;
use crate::select::FeatureSpace;

/// What turns a request's raw omics into the network's images, exactly as training did: the
/// run's fitted feature space (imputation, normalisation, selection), a name index per
/// modality, and the render plan. A served model owns one.
pub struct Preprocess {
    /// The model's name, for messages.
    pub name: String,
    pub classes: Vec<String>,
    pub feature_space: FeatureSpace,
    /// Per modality (feature space order): feature name -> column. FNV: a request looks up
    /// thousands of short names, where SipHash's per-call setup dominates.
    pub feature_index: Vec<FnvHashMap<String, usize>>,
    pub plan: RenderPlan,
}

impl Preprocess {
    pub fn new(name: &str, run_dir: &RunDir) -> Self {
        let feature_space = run_dir.manifest.feature_space.clone();
        let feature_index = feature_space
            .modalities
            .iter()
            .map(|m| {
                m.features
                    .iter()
                    .enumerate()
                    .map(|(j, f)| (f.clone(), j))
                    .collect()
            })
            .collect();
        Self {
            name: name.to_string(),
            classes: run_dir.manifest.classes.clone(),
            feature_space,
            feature_index,
            plan: run_dir.plan.clone(),
        }
    }
}

/// One modality's values: by feature name (any order), or every kept feature in the model's
/// order (GET /v2/models/{name}/features lists it). `null` is a missing value.
#[derive(Debug, Clone, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ModalityValues<'a> {
    ByName(NamedValues<'a>),
    Ordered(Vec<Option<f64>>),
}

/// Feature name -> value, in the order given. The names point into the request body where
/// they hold no escapes.
#[derive(Debug, Clone, utoipa::ToSchema)]
#[schema(value_type = BTreeMap<String, Option<f64>>)]
pub struct NamedValues<'a>(pub Vec<(Cow<'a, str>, Option<f64>)>);

/// A string borrowed from the JSON text when it can be (serde's own `Cow<str>` always copies).
struct Borrowed<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Borrowed<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> serde::de::Visitor<'de> for Text {
            type Value = Borrowed<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a feature name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Borrowed(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Borrowed(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Borrowed(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Text)
    }
}

// By hand rather than `#[serde(untagged)]`, which buffers the whole value before trying each
// form, and into a list of borrowed names rather than a map of owned ones: a request names
// thousands of features, and this parse is most of its cost.
impl<'de: 'a, 'a> Deserialize<'de> for ModalityValues<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = ModalityValues<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "an object of feature name -> number or null, or an array of numbers or nulls in the model's feature order",
                )
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((Borrowed(name), value)) =
                    map.next_entry::<Borrowed<'de>, Option<f64>>()?
                {
                    pairs.push((name, value));
                }
                Ok(ModalityValues::ByName(NamedValues(pairs)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(v) = seq.next_element::<Option<f64>>()? {
                    values.push(v);
                }
                Ok(ModalityValues::Ordered(values))
            }
        }
        d.deserialize_any(Either)
    }
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleInput<'a> {
    /// Echoed in the answer.
    pub id: Option<String>,
    /// Modality name -> values.
    #[serde(borrow)]
    pub values: BTreeMap<String, ModalityValues<'a>>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest<'a> {
    /// Needed when the server holds more than one model.
    #[schema(pattern = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")]
    pub model: Option<String>,
    #[serde(borrow)]
    #[schema(min_items = 1, max_items = 4096)]
    pub samples: Vec<SampleInput<'a>>,
    /// Impute missing features (absent or null) with the training median instead of refusing.
    #[serde(default)]
    pub allow_missing: bool,
    /// Ignore feature names the model does not use (e.g. whole table rows) instead of refusing.
    #[serde(default)]
    pub ignore_unknown: bool,
    /// 1 = most urgent; defaults to the lowest level.
    #[schema(minimum = 1)]
    pub priority: Option<u8>,
    /// Deadline in milliseconds from arrival; past it the answer is 504.
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SamplePrediction {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub label: String,
    /// Class -> probability.
    pub probabilities: BTreeMap<String, f32>,
    /// Values imputed with the training median.
    pub imputed: usize,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PredictResponse {
    pub model_name: String,
    pub model_sha256: String,
    pub predictions: Vec<SamplePrediction>,
}

/// Rendered images of the request's samples, with each sample's id and count of imputed
/// values: all an answer needs once the request's text is gone.
pub struct Prepared {
    pub images: Vec<f32>,
    pub n: usize,
    pub ids: Vec<Option<String>>,
    pub imputed: Vec<usize>,
}

/// Most samples one request may carry.
pub const MAX_SAMPLES: usize = 4096;

/// Checks the samples against the model's features and renders them. Every refusal names the
/// field: `samples[i].values.<modality>.<feature>`.
pub fn prepare(
    model: &Preprocess,
    samples: &[SampleInput<'_>],
    allow_missing: bool,
    ignore_unknown: bool,
) -> Result<Prepared, ApiError> {
    if samples.is_empty() {
        return Err(ApiError::field("samples", "at least one sample is needed"));
    }
    if samples.len() > MAX_SAMPLES {
        return Err(ApiError::field(
            "samples",
            format!(
                "{} samples in one request; at most {MAX_SAMPLES}",
                samples.len()
            ),
        ));
    }
    let modalities = &model.feature_space.modalities;
    let mut raw: Vec<Array2<f32>> = modalities
        .iter()
        .map(|m| Array2::from_elem((samples.len(), m.features.len()), f32::NAN))
        .collect();
    let mut imputed = vec![0usize; samples.len()];
    for (i, sample) in samples.iter().enumerate() {
        if let Some(name) = sample
            .values
            .keys()
            .find(|k| !modalities.iter().any(|m| &m.name == *k))
        {
            let known: Vec<&str> = modalities.iter().map(|m| m.name.as_str()).collect();
            return Err(ApiError::field(
                format!("samples[{i}].values.{name}"),
                format!("unknown modality; the model uses {}", known.join(", ")),
            ));
        }
        for (m, modality) in modalities.iter().enumerate() {
            // Built only for an error: a request may carry thousands of features.
            let path = || format!("samples[{i}].values.{}", modality.name);
            let mut row = raw[m].row_mut(i);
            match sample.values.get(&modality.name) {
                None if allow_missing => {}
                None => {
                    return Err(ApiError::field(
                        path(),
                        "modality missing (set allow_missing to impute it)",
                    ));
                }
                Some(ModalityValues::Ordered(values)) => {
                    if values.len() != modality.features.len() {
                        return Err(ApiError::field(
                            path(),
                            format!(
                                "{} values given, the model uses {} features of {} (in the order of GET /v2/models/{}/features)",
                                values.len(),
                                modality.features.len(),
                                modality.name,
                                model.name
                            ),
                        ));
                    }
                    for (j, v) in values.iter().enumerate() {
                        row[j] = checked(*v, || format!("{}[{j}]", path()))?;
                    }
                }
                Some(ModalityValues::ByName(NamedValues(values))) => {
                    let index = &model.feature_index[m];
                    let mut seen = vec![false; modality.features.len()];
                    for (feature, v) in values {
                        match index.get(feature.as_ref()) {
                            Some(&j) if seen[j] => {
                                return Err(ApiError::field(
                                    format!("{}.{feature}", path()),
                                    "given twice",
                                ));
                            }
                            Some(&j) => {
                                seen[j] = true;
                                row[j] = checked(*v, || format!("{}.{feature}", path()))?;
                            }
                            None if ignore_unknown => {}
                            None => {
                                return Err(ApiError::field(
                                    format!("{}.{feature}", path()),
                                    "unknown feature (set ignore_unknown to skip features the model does not use)",
                                ));
                            }
                        }
                    }
                }
            }
            let missing = row.iter().filter(|v| v.is_nan()).count();
            if missing > 0 && !allow_missing {
                let j = row.iter().position(|v| v.is_nan()).expect("one is missing");
                return Err(ApiError::field(
                    format!("{}.{}", path(), modality.features[j]),
                    format!(
                        "missing ({missing} of {} features missing; set allow_missing to impute them)",
                        modality.features.len()
                    ),
                ));
            }
            imputed[i] += missing;
        }
    }
    Ok(Prepared {
        images: render(model, &raw)?,
        n: samples.len(),
        ids: samples.iter().map(|s| s.id.clone()).collect(),
        imputed,
    })
}

/// Raw values per modality (NaN = missing) -> the saved imputation, normalisation and
/// layout -> images.
fn render(model: &Preprocess, raw: &[Array2<f32>]) -> Result<Vec<f32>, ApiError> {
    let views: Vec<_> = raw.iter().map(|a| a.view()).collect();
    let values = model
        .feature_space
        .transform_selected(&views)
        .map_err(|e| ApiError::internal(format!("{e:#}")))?;
    model
        .plan
        .render_batch(values.view())
        .map_err(|e| ApiError::internal(format!("{e:#}")))
}

/// The modality and feature of a column of the v2 `omics` input.
fn feature_at(model: &Preprocess, mut column: usize) -> (&str, &str) {
    for m in &model.feature_space.modalities {
        if column < m.features.len() {
            return (&m.name, &m.features[column]);
        }
        column -= m.features.len();
    }
    unreachable!("the column is inside the row")
}

/// Features one row of the v2 `omics` input holds: every modality's, in feature space order.
pub fn feature_count(model: &Preprocess) -> usize {
    model
        .feature_space
        .modalities
        .iter()
        .map(|m| m.features.len())
        .sum()
}

/// The v2 `omics` input's `n` rows (each the modalities' features in feature space order,
/// NaN = missing) as images. A missing value is refused, naming its index and feature,
/// unless `allow_missing`.
pub fn render_rows(
    model: &Preprocess,
    values: &[f32],
    n: usize,
    allow_missing: bool,
) -> Result<Vec<f32>, ApiError> {
    let width = feature_count(model);
    if !allow_missing && let Some(k) = values.iter().position(|v| v.is_nan()) {
        let (modality, feature) = feature_at(model, k % width);
        return Err(ApiError::field(
            format!("inputs[0].data[{k}]"),
            format!(
                "sample {}: {modality}.{feature} is missing (set parameters.allow_missing to \
                 impute it)",
                k / width
            ),
        ));
    }
    let mut start = 0;
    let raw: Vec<Array2<f32>> = model
        .feature_space
        .modalities
        .iter()
        .map(|m| {
            let block = Array2::from_shape_fn((n, m.features.len()), |(i, j)| {
                values[i * width + start + j]
            });
            start += m.features.len();
            block
        })
        .collect();
    render(model, &raw)
}

/// A value as f32; `null` is missing (NaN, imputed later); non-finite values are refused.
fn checked(v: Option<f64>, field: impl Fn() -> String) -> Result<f32, ApiError> {
    match v {
        None => Ok(f32::NAN),
        Some(v) if (v as f32).is_finite() => Ok(v as f32),
        Some(_) => Err(ApiError::field(field(), "not a finite FP32 number")),
    }
}

/// Answers of each sample: the most probable class and every class's probability.
pub fn predictions(
    model: &Preprocess,
    prepared: Prepared,
    probabilities: Vec<Vec<f32>>,
) -> Vec<SamplePrediction> {
    prepared
        .ids
        .into_iter()
        .zip(probabilities)
        .zip(prepared.imputed)
        .map(|((id, p), imputed)| SamplePrediction {
            id,
            label: model.classes[crate::model::metrics::argmax(&p)].clone(),
            probabilities: model.classes.iter().cloned().zip(p).collect(),
            imputed,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_names_point_into_the_body_unless_escaped() {
        let body = br#"{"samples": [{"values": {"g": {"TP53": 1.5, "\u0042RCA1": null}, "p": [2, null]}}]}"#;
        let request: PredictRequest = crate::serve::error::parse_json(body).unwrap();
        let values = &request.samples[0].values;
        let Some(ModalityValues::ByName(NamedValues(pairs))) = values.get("g") else {
            panic!("{values:?}");
        };
        assert!(matches!(&pairs[0].0, Cow::Borrowed("TP53")));
        assert_eq!(pairs[0].1, Some(1.5));
        assert!(matches!(&pairs[1].0, Cow::Owned(name) if name == "BRCA1"));
        assert_eq!(pairs[1].1, None);
        let Some(ModalityValues::Ordered(ordered)) = values.get("p") else {
            panic!("{values:?}");
        };
        assert_eq!(ordered, &[Some(2.0), None]);
    }
}
