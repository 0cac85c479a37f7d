//! POST /predict: raw omics values by modality and feature name, turned into the model's
//! images with exactly the imputation, normalisation, selection and layout fitted at training.

use std::collections::BTreeMap;

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::model::ServedModel;

/// One modality's values: by feature name (any order), or every kept feature in the model's
/// order (GET /v2/models/{name}/features lists it). `null` is a missing value.
#[derive(Debug, Clone, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ModalityValues {
    ByName(NamedValues),
    Ordered(Vec<Option<f64>>),
}

/// Feature name -> value, in the order given.
#[derive(Debug, Clone, utoipa::ToSchema)]
#[schema(value_type = BTreeMap<String, Option<f64>>)]
pub struct NamedValues(pub Vec<(String, Option<f64>)>);

// By hand rather than `#[serde(untagged)]`, which buffers the whole value before trying each
// form, and into a list of pairs rather than a map: this parse is most of a request's cost.
impl<'de> Deserialize<'de> for ModalityValues {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = ModalityValues;
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
                while let Some(pair) = map.next_entry::<String, Option<f64>>()? {
                    pairs.push(pair);
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
pub struct SampleInput {
    /// Echoed in the answer.
    pub id: Option<String>,
    /// Modality name -> values.
    pub values: BTreeMap<String, ModalityValues>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// Needed when the server holds more than one model.
    pub model: Option<String>,
    pub samples: Vec<SampleInput>,
    /// Impute missing features (absent or null) with the training median instead of refusing.
    #[serde(default)]
    pub allow_missing: bool,
    /// Ignore feature names the model does not use (e.g. whole table rows) instead of refusing.
    #[serde(default)]
    pub ignore_unknown: bool,
    /// 1 = most urgent; defaults to the lowest level.
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

/// Rendered images of the request's samples, with the count of imputed values per sample.
pub struct Prepared {
    pub images: Vec<f32>,
    pub n: usize,
    pub imputed: Vec<usize>,
}

/// Most samples one request may carry.
pub const MAX_SAMPLES: usize = 4096;

/// Checks the samples against the model's features and renders them. Every refusal names the
/// field: `samples[i].values.<modality>.<feature>`.
pub fn prepare(
    model: &ServedModel,
    samples: &[SampleInput],
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
            let path = format!("samples[{i}].values.{}", modality.name);
            let mut row = raw[m].row_mut(i);
            match sample.values.get(&modality.name) {
                None if allow_missing => {}
                None => {
                    return Err(ApiError::field(
                        path,
                        "modality missing (set allow_missing to impute it)",
                    ));
                }
                Some(ModalityValues::Ordered(values)) => {
                    if values.len() != modality.features.len() {
                        return Err(ApiError::field(
                            path,
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
                        row[j] = checked(*v, || format!("{path}[{j}]"))?;
                    }
                }
                Some(ModalityValues::ByName(NamedValues(values))) => {
                    let index = &model.feature_index[m];
                    let mut seen = vec![false; modality.features.len()];
                    for (feature, v) in values {
                        match index.get(feature) {
                            Some(&j) if seen[j] => {
                                return Err(ApiError::field(
                                    format!("{path}.{feature}"),
                                    "given twice",
                                ));
                            }
                            Some(&j) => {
                                seen[j] = true;
                                row[j] = checked(*v, || format!("{path}.{feature}"))?;
                            }
                            None if ignore_unknown => {}
                            None => {
                                return Err(ApiError::field(
                                    format!("{path}.{feature}"),
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
                    format!("{path}.{}", modality.features[j]),
                    format!(
                        "missing ({missing} of {} features missing; set allow_missing to impute them)",
                        modality.features.len()
                    ),
                ));
            }
            imputed[i] += missing;
        }
    }
    let views: Vec<_> = raw.iter().map(|a| a.view()).collect();
    let values = model
        .feature_space
        .transform_selected(&views)
        .map_err(|e| ApiError::internal(format!("{e:#}")))?;
    let images = model
        .plan
        .render_batch(values.view())
        .map_err(|e| ApiError::internal(format!("{e:#}")))?;
    Ok(Prepared {
        images,
        n: samples.len(),
        imputed,
    })
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
    model: &ServedModel,
    samples: &[SampleInput],
    prepared: &Prepared,
    probabilities: Vec<Vec<f32>>,
) -> Vec<SamplePrediction> {
    samples
        .iter()
        .zip(probabilities)
        .zip(&prepared.imputed)
        .map(|((sample, p), &imputed)| SamplePrediction {
            id: sample.id.clone(),
            label: model.classes[crate::model::train::argmax(&p)].clone(),
            probabilities: model.classes.iter().cloned().zip(p).collect(),
            imputed,
        })
        .collect()
}
