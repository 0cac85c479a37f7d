//! The KServe Open Inference Protocol (v2) types: the tensor request of
//! POST /v2/models/{name}/infer and its response, with the checks that turn a bad tensor into
//! an error naming the field.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ApiError;

/// A tensor's values, flat in row-major order, as FP32 (the only datatype served). v2 allows a
/// flat array or nested arrays.
#[derive(Debug, Clone, Default, PartialEq, utoipa::ToSchema)]
pub struct FlatData(pub Vec<f32>);

impl<'de> Deserialize<'de> for FlatData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Flat<'a>(&'a mut Vec<f32>);
        impl<'de> de::DeserializeSeed<'de> for Flat<'_> {
            type Value = ();
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_any(self)
            }
        }
        impl<'de> Visitor<'de> for Flat<'_> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("numbers, or arrays of numbers")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
                self.0.push(v as f32);
                Ok(())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
                self.0.push(v as f32);
                Ok(())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
                self.0.push(v as f32);
                Ok(())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
                while seq.next_element_seed(Flat(&mut *self.0))?.is_some() {}
                Ok(())
            }
        }
        let mut out = Vec::new();
        d.deserialize_seq(Flat(&mut out))?;
        Ok(FlatData(out))
    }
}

/// Request parameters this server reads; others are accepted and ignored, as v2 allows.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
pub struct InferParameters {
    /// 1 = most urgent; defaults to the lowest level.
    pub priority: Option<u8>,
    /// Deadline in milliseconds from arrival; past it the answer is 504.
    pub timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct InferInput {
    pub name: String,
    /// [N, C, H, W]
    pub shape: Vec<i64>,
    /// Only FP32.
    pub datatype: String,
    pub data: FlatData,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct RequestedOutput {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct InferRequest {
    pub id: Option<String>,
    #[serde(default)]
    pub parameters: InferParameters,
    pub inputs: Vec<InferInput>,
    pub outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InferOutput {
    pub name: String,
    pub shape: Vec<usize>,
    pub datatype: String,
    #[schema(value_type = Vec<Object>)]
    pub data: Value,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InferResponse {
    pub model_name: String,
    pub model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub outputs: Vec<InferOutput>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TensorMetadata {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelMetadata {
    pub name: String,
    pub versions: Vec<String>,
    pub platform: String,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
}

pub const INPUT: &str = "input";
pub const PROBABILITIES: &str = "probabilities";
pub const LABEL: &str = "label";

pub fn metadata(name: &str, backend: &str, shape: [usize; 3], classes: usize) -> ModelMetadata {
    let [c, h, w] = shape.map(|d| d as i64);
    ModelMetadata {
        name: name.to_string(),
        versions: vec!["1".to_string()],
        platform: backend.to_string(),
        inputs: vec![TensorMetadata {
            name: INPUT.to_string(),
            datatype: "FP32".to_string(),
            shape: vec![-1, c, h, w],
        }],
        outputs: vec![
            TensorMetadata {
                name: PROBABILITIES.to_string(),
                datatype: "FP32".to_string(),
                shape: vec![-1, classes as i64],
            },
            TensorMetadata {
                name: LABEL.to_string(),
                datatype: "BYTES".to_string(),
                shape: vec![-1],
            },
        ],
    }
}

/// The images of a v2 request for a model of input `shape`, checked: one FP32 input of shape
/// [N, C, H, W] whose N*C*H*W values are all finite. Takes them out of the request (no copy);
/// returns the images and N.
pub fn images(
    request: &mut InferRequest,
    shape: [usize; 3],
) -> Result<(Vec<f32>, usize), ApiError> {
    let [input] = request.inputs.as_mut_slice() else {
        return Err(ApiError::field(
            "inputs",
            format!(
                "exactly one input tensor ('{INPUT}') is expected, got {}",
                request.inputs.len()
            ),
        ));
    };
    if input.datatype != "FP32" {
        return Err(ApiError::field(
            "inputs[0].datatype",
            format!("'{}' is not supported; send FP32", input.datatype),
        ));
    }
    let [c, h, w] = shape;
    let wanted = format!("[N, {c}, {h}, {w}]");
    let n = match input.shape.as_slice() {
        &[n, sc, sh, sw] if n >= 1 && [sc, sh, sw] == [c as i64, h as i64, w as i64] => n as usize,
        other => {
            return Err(ApiError::field(
                "inputs[0].shape",
                format!("{other:?} does not match the model's input {wanted} with N >= 1"),
            ));
        }
    };
    let expected = n * c * h * w;
    if input.data.0.len() != expected {
        return Err(ApiError::field(
            "inputs[0].data",
            format!(
                "{} values given, shape {:?} needs {expected}",
                input.data.0.len(),
                input.shape
            ),
        ));
    }
    if let Some(i) = input.data.0.iter().position(|v| !v.is_finite()) {
        return Err(ApiError::field(
            format!("inputs[0].data[{i}]"),
            "not a finite FP32 number",
        ));
    }
    Ok((std::mem::take(&mut input.data.0), n))
}

/// Which outputs the caller asked for (both when it named none).
pub fn requested_outputs(request: &InferRequest) -> Result<(bool, bool), ApiError> {
    let Some(outputs) = &request.outputs else {
        return Ok((true, true));
    };
    let (mut probabilities, mut label) = (false, false);
    for (i, o) in outputs.iter().enumerate() {
        match o.name.as_str() {
            PROBABILITIES => probabilities = true,
            LABEL => label = true,
            other => {
                return Err(ApiError::field(
                    format!("outputs[{i}].name"),
                    format!("unknown output '{other}' (expected '{PROBABILITIES}' or '{LABEL}')"),
                ));
            }
        }
    }
    Ok((probabilities, label))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::error::parse_json;

    fn request(shape: &str, data: &str) -> InferRequest {
        parse_json(
            format!(r#"{{"inputs": [{{"name": "input", "shape": {shape}, "datatype": "FP32", "data": {data}}}]}}"#)
                .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn nested_and_flat_data_read_the_same() {
        let flat = request("[1, 1, 2, 2]", "[1, 2, 3, 4.5]");
        let nested = request("[1, 1, 2, 2]", "[[[[1, 2], [3, 4.5]]]]");
        assert_eq!(flat.inputs[0].data, nested.inputs[0].data);
        let (images, n) = images(&mut nested.clone(), [1, 2, 2]).unwrap();
        assert_eq!((images, n), (vec![1.0, 2.0, 3.0, 4.5], 1));
    }

    #[test]
    fn bad_tensors_name_the_field() {
        let e = images(&mut request("[1, 1, 2, 3]", "[1,2,3,4,5,6]"), [1, 2, 2]).unwrap_err();
        assert_eq!(e.body.field.as_deref(), Some("inputs[0].shape"));
        let e = images(&mut request("[1, 1, 2, 2]", "[1,2,3]"), [1, 2, 2]).unwrap_err();
        assert_eq!(e.body.field.as_deref(), Some("inputs[0].data"));
        // 1e300 is a valid JSON number but not a finite FP32 one.
        let e = images(&mut request("[1, 1, 2, 2]", "[1,2,1e300,4]"), [1, 2, 2]).unwrap_err();
        assert_eq!(e.body.field.as_deref(), Some("inputs[0].data[2]"));
        let e = parse_json::<InferRequest>(
            br#"{"inputs": [{"name": "input", "shape": [1], "datatype": "FP32", "data": ["x"]}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.body.field.as_deref(), Some("inputs[0].data[0]"));
    }
}
