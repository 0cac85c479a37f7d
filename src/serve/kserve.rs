//! The KServe Open Inference Protocol (v2) types: the tensor request of
//! POST /v2/models/{name}/infer and its response, with the checks that turn a bad tensor into
//! an error naming the field.
//!
//! Tensors travel as JSON numbers or, with the protocol's binary data extension (what Triton's
//! clients send by default), as raw little-endian bytes after the JSON: the HTTP header
//! `Inference-Header-Content-Length` gives the JSON's length, each binary input says its
//! `binary_data_size` in its `parameters`, and an output asked for with
//! `"parameters": {"binary_data": true}` (or every output, with the request parameter
//! `binary_data_output`) comes back the same way. A 64x64 image of four channels is 64 KiB of
//! bytes against about 200 KiB of JSON numbers that cost more to parse than the model
//! costs to run.

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
            // A missing raw value; images refuse it as not finite.
            fn visit_unit<E: de::Error>(self) -> Result<(), E> {
                self.0.push(f32::NAN);
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
    #[schema(minimum = 1)]
    pub priority: Option<u8>,
    /// Deadline in milliseconds from arrival; past it the answer is 504.
    pub timeout_ms: Option<u64>,
    /// Every output as binary data (the binary data extension).
    #[serde(default)]
    pub binary_data_output: bool,
    /// For the `omics` input: impute missing values (NaN, or null in JSON) with the training
    /// median instead of refusing them.
    #[serde(default)]
    pub allow_missing: bool,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct TensorParameters {
    /// Bytes of this input after the JSON header (binary data extension).
    pub binary_data_size: Option<usize>,
    /// For a requested output: send it as binary data.
    #[serde(default)]
    pub binary_data: bool,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct InferInput {
    /// `input` (images [N, C, H, W]) or `omics` (raw values [N, F]).
    #[schema(pattern = "^(input|omics)$")]
    pub name: String,
    /// [N, C, H, W]
    #[schema(min_items = 1)]
    pub shape: Vec<i64>,
    /// Only FP32.
    #[schema(pattern = "^FP32$")]
    pub datatype: String,
    /// Absent when the values come as binary data.
    #[serde(default)]
    pub data: Option<FlatData>,
    #[serde(default)]
    pub parameters: TensorParameters,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct RequestedOutput {
    pub name: String,
    #[serde(default)]
    pub parameters: TensorParameters,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct InferRequest {
    pub id: Option<String>,
    #[serde(default)]
    pub parameters: InferParameters,
    /// Exactly one: `input` (images) or `omics` (raw values).
    #[schema(min_items = 1, max_items = 1)]
    pub inputs: Vec<InferInput>,
    pub outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InferOutput {
    pub name: String,
    pub shape: Vec<usize>,
    pub datatype: String,
    /// Absent when the output is sent as binary data.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<OutputParameters>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OutputParameters {
    /// Bytes of this output after the JSON header.
    pub binary_data_size: usize,
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

/// The rendered images, [N, C, H, W].
pub const INPUT: &str = "input";
/// Raw omics values, [N, F], in the order of GET /v2/models/{name}/features; the server
/// normalises and renders them as /predict does.
pub const OMICS: &str = "omics";
pub const PROBABILITIES: &str = "probabilities";
pub const LABEL: &str = "label";

/// A model's v2 metadata. It takes one of its two inputs per request: `input` (images) or
/// `omics` (raw values of its `features` features).
pub fn metadata(
    name: &str,
    backend: &str,
    shape: [usize; 3],
    features: usize,
    classes: usize,
) -> ModelMetadata {
    let [c, h, w] = shape.map(|d| d as i64);
    ModelMetadata {
        name: name.to_string(),
        versions: vec!["1".to_string()],
        platform: backend.to_string(),
        inputs: vec![
            TensorMetadata {
                name: INPUT.to_string(),
                datatype: "FP32".to_string(),
                shape: vec![-1, c, h, w],
            },
            TensorMetadata {
                name: OMICS.to_string(),
                datatype: "FP32".to_string(),
                shape: vec![-1, features as i64],
            },
        ],
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

/// Splits a body into its JSON header and binary data, at `header_length` (the
/// `Inference-Header-Content-Length` header) when the request has one.
pub fn split_body(body: &[u8], header_length: Option<usize>) -> Result<(&[u8], &[u8]), ApiError> {
    match header_length {
        None => Ok((body, &[])),
        Some(n) if n <= body.len() => Ok(body.split_at(n)),
        Some(n) => Err(ApiError::field(
            HEADER_LENGTH,
            format!("{n} is longer than the {}-byte body", body.len()),
        )),
    }
}

pub const HEADER_LENGTH: &str = "Inference-Header-Content-Length";

/// Which input a request gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Images,
    Omics,
}

/// Most rows (samples) in one request, as on /predict: bounds the work and every count.
pub const MAX_ROWS: usize = super::preprocess::MAX_SAMPLES;

/// The one input tensor of a request, checked.
#[derive(Debug)]
pub struct Input {
    pub kind: InputKind,
    /// Row-major, N rows. Images are all finite; raw omics may hold NaN (missing).
    pub values: Vec<f32>,
    pub n: usize,
}

/// The input of a v2 request for a model of image `shape` reading `features` raw values:
/// one FP32 tensor, `input` [N, C, H, W] or `omics` [N, F], given as JSON `data` or as
/// `binary` (the bytes after the JSON header). JSON values are taken out of the request (no
/// copy). Images must be finite; raw values may be missing (NaN, null) but not infinite.
pub fn input(
    request: &mut InferRequest,
    shape: [usize; 3],
    features: usize,
    binary: &[u8],
) -> Result<Input, ApiError> {
    let [input] = request.inputs.as_mut_slice() else {
        return Err(ApiError::field(
            "inputs",
            format!(
                "exactly one input tensor ('{INPUT}' or '{OMICS}') is expected, got {}",
                request.inputs.len()
            ),
        ));
    };
    let [c, h, w] = shape;
    let (kind, dims) = match input.name.as_str() {
        INPUT => (InputKind::Images, vec![c, h, w]),
        OMICS => (InputKind::Omics, vec![features]),
        other => {
            return Err(ApiError::field(
                "inputs[0].name",
                format!(
                    "unknown input '{other}': '{INPUT}' takes images [N, {c}, {h}, {w}], \
                     '{OMICS}' raw values [N, {features}]"
                ),
            ));
        }
    };
    if input.datatype != "FP32" {
        return Err(ApiError::field(
            "inputs[0].datatype",
            format!("'{}' is not supported; send FP32", input.datatype),
        ));
    }
    let wanted: Vec<String> = dims.iter().map(usize::to_string).collect();
    let shape_error = |why: String| {
        ApiError::field(
            "inputs[0].shape",
            format!(
                "{:?} {why}: the model's '{}' is [N, {}] with 1 <= N <= {MAX_ROWS}",
                input.shape,
                input.name,
                wanted.join(", ")
            ),
        )
    };
    let n = match input.shape.split_first() {
        Some((&n, rest))
            if rest.len() == dims.len() && rest.iter().zip(&dims).all(|(&a, &b)| a == b as i64) =>
        {
            n
        }
        _ => return Err(shape_error("does not match".into())),
    };
    if !(1..=MAX_ROWS as i64).contains(&n) {
        return Err(shape_error(format!("has N = {n}")));
    }
    let n = n as usize;
    // N is bounded and the other dimensions are the model's, so this cannot overflow; checked
    // all the same, since a wrong count here would answer a request it did not compute.
    let expected = dims
        .iter()
        .try_fold(n, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| shape_error("is too large".into()))?;
    let values = match (input.data.take(), input.parameters.binary_data_size) {
        (Some(data), None) if binary.is_empty() => data.0,
        (None, Some(size)) => binary_values(binary, size, expected, &input.shape)?,
        (Some(_), Some(_)) => {
            return Err(ApiError::field(
                "inputs[0].data",
                "give the values either as data or as binary_data_size bytes, not both",
            ));
        }
        (None, None) => {
            return Err(ApiError::field(
                "inputs[0].data",
                "missing: give the values as data, or as binary data with \
                 parameters.binary_data_size",
            ));
        }
        (Some(_), None) => {
            return Err(ApiError::field(
                HEADER_LENGTH,
                format!(
                    "{} bytes follow the JSON header but no input declares binary_data_size",
                    binary.len()
                ),
            ));
        }
    };
    if values.len() != expected {
        return Err(ApiError::field(
            "inputs[0].data",
            format!(
                "{} values given, shape {:?} needs {expected}",
                values.len(),
                input.shape
            ),
        ));
    }
    let refused = |v: &f32| match kind {
        InputKind::Images => !v.is_finite(),
        InputKind::Omics => v.is_infinite(),
    };
    if let Some(i) = values.iter().position(refused) {
        return Err(ApiError::field(
            format!("inputs[0].data[{i}]"),
            "not a finite FP32 number",
        ));
    }
    Ok(Input { kind, values, n })
}

/// FP32 values from the binary data: exactly `size` bytes, 4 little-endian bytes per value.
fn binary_values(
    binary: &[u8],
    size: usize,
    expected: usize,
    shape: &[i64],
) -> Result<Vec<f32>, ApiError> {
    let field = "inputs[0].parameters.binary_data_size";
    if size != binary.len() {
        return Err(ApiError::field(
            field,
            format!(
                "{size} declared, {} bytes follow the JSON header",
                binary.len()
            ),
        ));
    }
    let needed = expected.checked_mul(4);
    if needed != Some(size) {
        return Err(ApiError::field(
            field,
            format!(
                "{size} bytes, shape {shape:?} needs {} (4 per FP32 value)",
                needed.map_or("more than can be addressed".into(), |b| b.to_string())
            ),
        ));
    }
    Ok(binary
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// How the caller wants an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Binary,
}

/// The outputs the caller asked for, and how (`None`: not asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub probabilities: Option<Encoding>,
    pub label: Option<Encoding>,
}

/// Which outputs the caller asked for (both when it named none), and how.
pub fn requested_outputs(request: &InferRequest) -> Result<Wanted, ApiError> {
    let all_binary = request.parameters.binary_data_output;
    let encoding = |binary: bool| {
        if binary || all_binary {
            Encoding::Binary
        } else {
            Encoding::Json
        }
    };
    let Some(outputs) = &request.outputs else {
        return Ok(Wanted {
            probabilities: Some(encoding(false)),
            label: Some(encoding(false)),
        });
    };
    let mut wanted = Wanted {
        probabilities: None,
        label: None,
    };
    for (i, o) in outputs.iter().enumerate() {
        let slot = match o.name.as_str() {
            PROBABILITIES => &mut wanted.probabilities,
            LABEL => &mut wanted.label,
            other => {
                return Err(ApiError::field(
                    format!("outputs[{i}].name"),
                    format!("unknown output '{other}' (expected '{PROBABILITIES}' or '{LABEL}')"),
                ));
            }
        };
        *slot = Some(encoding(o.parameters.binary_data));
    }
    Ok(wanted)
}

/// An output's values: JSON numbers or strings, or the binary extension's bytes (FP32
/// little-endian; BYTES as a 4-byte little-endian length before each string).
pub fn output(
    name: &str,
    shape: Vec<usize>,
    encoding: Encoding,
    values: OutputValues,
    binary: &mut Vec<u8>,
) -> InferOutput {
    let datatype = match values {
        OutputValues::Fp32(_) => "FP32",
        OutputValues::Bytes(_) => "BYTES",
    };
    let (data, parameters) = match encoding {
        Encoding::Json => (
            Some(match values {
                OutputValues::Fp32(v) => serde_json::json!(v),
                OutputValues::Bytes(v) => serde_json::json!(v),
            }),
            None,
        ),
        Encoding::Binary => {
            let before = binary.len();
            match values {
                OutputValues::Fp32(v) => v.iter().for_each(|x| binary.extend(x.to_le_bytes())),
                OutputValues::Bytes(v) => v.iter().for_each(|s| {
                    binary.extend((s.len() as u32).to_le_bytes());
                    binary.extend(s.as_bytes());
                }),
            }
            let binary_data_size = binary.len() - before;
            (None, Some(OutputParameters { binary_data_size }))
        }
    };
    InferOutput {
        name: name.to_string(),
        shape,
        datatype: datatype.to_string(),
        data,
        parameters,
    }
}

pub enum OutputValues<'a> {
    Fp32(Vec<f32>),
    Bytes(Vec<&'a str>),
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
        let got = input(&mut nested.clone(), [1, 2, 2], 3, &[]).unwrap();
        assert_eq!((got.values, got.n), (vec![1.0, 2.0, 3.0, 4.5], 1));
    }

    #[test]
    fn bad_tensors_name_the_field() {
        let field = |shape: &str, data: &str| {
            input(&mut request(shape, data), [1, 2, 2], 3, &[])
                .unwrap_err()
                .body
                .field
        };
        assert_eq!(
            field("[1, 1, 2, 3]", "[1,2,3,4,5,6]").as_deref(),
            Some("inputs[0].shape")
        );
        assert_eq!(
            field("[1, 1, 2, 2]", "[1,2,3]").as_deref(),
            Some("inputs[0].data")
        );
        // A null is not an image value.
        assert_eq!(
            field("[1, 1, 2, 2]", "[1,null,3,4]").as_deref(),
            Some("inputs[0].data[1]")
        );
        // 1e300 is a valid JSON number but not a finite FP32 one.
        let e = input(
            &mut request("[1, 1, 2, 2]", "[1,2,1e300,4]"),
            [1, 2, 2],
            3,
            &[],
        )
        .unwrap_err();
        assert_eq!(e.body.field.as_deref(), Some("inputs[0].data[2]"));
        let e = parse_json::<InferRequest>(
            br#"{"inputs": [{"name": "input", "shape": [1], "datatype": "FP32", "data": ["x"]}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.body.field.as_deref(), Some("inputs[0].data[0]"));
    }

    fn binary_request(header: &str, values: &[f32]) -> (Vec<u8>, usize) {
        let mut body = header.as_bytes().to_vec();
        values.iter().for_each(|v| body.extend(v.to_le_bytes()));
        (body, header.len())
    }

    #[test]
    fn binary_data_reads_as_the_same_values_as_json() {
        let values = [1.0, -2.5, 3.25, 4.0];
        let header = r#"{"inputs": [{"name": "input", "shape": [1, 1, 2, 2], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]}"#;
        let (body, length) = binary_request(header, &values);
        let (json, binary) = split_body(&body, Some(length)).unwrap();
        let mut request: InferRequest = parse_json(json).unwrap();
        let got = input(&mut request, [1, 2, 2], 3, binary).unwrap();
        assert_eq!((got.values.as_slice(), got.n), (values.as_slice(), 1));
        let mut from_json = request_of(&values);
        assert_eq!(
            input(&mut from_json, [1, 2, 2], 3, &[]).unwrap().values,
            values
        );
    }

    fn request_of(values: &[f32]) -> InferRequest {
        request("[1, 1, 2, 2]", &serde_json::to_string(values).unwrap())
    }

    #[test]
    fn bad_binary_data_names_the_field() {
        let declared = |size: usize| {
            format!(
                r#"{{"inputs": [{{"name": "input", "shape": [1, 1, 2, 2], "datatype": "FP32", "parameters": {{"binary_data_size": {size}}}}}]}}"#
            )
        };
        let field = |header: &str, values: &[f32], shape: [usize; 3]| {
            let (body, length) = binary_request(header, values);
            let (json, binary) = split_body(&body, Some(length)).unwrap();
            let mut request: InferRequest = parse_json(json).unwrap();
            input(&mut request, shape, 3, binary)
                .unwrap_err()
                .body
                .field
                .unwrap()
        };
        let size_field = "inputs[0].parameters.binary_data_size";
        // Declared 16 bytes, 12 sent; 12 declared and sent for 4 values.
        assert_eq!(field(&declared(16), &[1.0; 3], [1, 2, 2]), size_field);
        assert_eq!(field(&declared(12), &[1.0; 3], [1, 2, 2]), size_field);
        // A NaN among the bytes is named by its index, as in JSON.
        assert_eq!(
            field(&declared(16), &[1.0, 2.0, f32::NAN, 4.0], [1, 2, 2]),
            "inputs[0].data[2]"
        );
        // Bytes after the header that no input declares.
        let json_data = r#"{"inputs": [{"name": "input", "shape": [1, 1, 2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}]}"#;
        assert_eq!(field(json_data, &[1.0], [1, 2, 2]), HEADER_LENGTH);
        // Neither data nor binary.
        let none = r#"{"inputs": [{"name": "input", "shape": [1, 1, 2, 2], "datatype": "FP32"}]}"#;
        assert_eq!(field(none, &[], [1, 2, 2]), "inputs[0].data");
        // A header length past the end of the body.
        let e = split_body(b"{}", Some(3)).unwrap_err();
        assert_eq!(e.body.field.as_deref(), Some(HEADER_LENGTH));
    }

    #[test]
    fn outputs_come_as_json_or_as_the_extension_s_bytes() {
        let parse = |text: &str| -> InferRequest { parse_json(text.as_bytes()).unwrap() };
        let both = parse(r#"{"inputs": []}"#);
        let json = Some(Encoding::Json);
        let binary = Some(Encoding::Binary);
        assert_eq!(
            requested_outputs(&both).unwrap(),
            Wanted {
                probabilities: json,
                label: json
            }
        );
        let one = parse(
            r#"{"inputs": [], "outputs": [{"name": "probabilities", "parameters": {"binary_data": true}}]}"#,
        );
        assert_eq!(
            requested_outputs(&one).unwrap(),
            Wanted {
                probabilities: binary,
                label: None
            }
        );
        let all = parse(r#"{"inputs": [], "parameters": {"binary_data_output": true}}"#);
        assert_eq!(
            requested_outputs(&all).unwrap(),
            Wanted {
                probabilities: binary,
                label: binary
            }
        );

        let mut bytes = Vec::new();
        let p = output(
            "p",
            vec![1, 2],
            Encoding::Binary,
            OutputValues::Fp32(vec![0.25, 0.75]),
            &mut bytes,
        );
        let l = output(
            "l",
            vec![2],
            Encoding::Binary,
            OutputValues::Bytes(vec!["ab", "c"]),
            &mut bytes,
        );
        assert_eq!(p.data, None);
        assert_eq!(p.parameters.as_ref().unwrap().binary_data_size, 8);
        assert_eq!(
            l.parameters.as_ref().unwrap().binary_data_size,
            4 + 2 + 4 + 1
        );
        let mut expected: Vec<u8> = [0.25f32, 0.75]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        expected.extend([2, 0, 0, 0, b'a', b'b', 1, 0, 0, 0, b'c']);
        assert_eq!(bytes, expected);
        let j = output(
            "l",
            vec![2],
            Encoding::Json,
            OutputValues::Bytes(vec!["ab", "c"]),
            &mut bytes,
        );
        assert_eq!(j.data, Some(serde_json::json!(["ab", "c"])));
        assert_eq!(
            (j.datatype.as_str(), j.parameters.is_none()),
            ("BYTES", true)
        );
        assert_eq!(bytes.len(), expected.len(), "JSON outputs add no bytes");
    }

    #[test]
    fn raw_omics_rows_may_miss_values_but_not_be_infinite() {
        let omics = |shape: &str, data: &str| -> InferRequest {
            parse_json(
                format!(r#"{{"inputs": [{{"name": "omics", "shape": {shape}, "datatype": "FP32", "data": {data}}}]}}"#)
                    .as_bytes(),
            )
            .unwrap()
        };
        let got = input(
            &mut omics("[2, 3]", "[1, null, 3, 4, 5, 6]"),
            [1, 2, 2],
            3,
            &[],
        )
        .unwrap();
        assert_eq!((got.kind, got.n), (InputKind::Omics, 2));
        assert!(got.values[1].is_nan() && got.values[5] == 6.0);
        let field = |mut r: InferRequest| input(&mut r, [1, 2, 2], 3, &[]).unwrap_err().body.field;
        assert_eq!(
            field(omics("[1, 3]", "[1, 1e300, 3]")).as_deref(),
            Some("inputs[0].data[1]")
        );
        // Three features: a [1, 4] tensor, or an image's shape, is refused.
        for huge in [
            "[1125899906842624, 3]",
            "[1125899906842625, 3]",
            "[4611686018427387904, 3]",
            "[4097, 3]",
            "[0, 3]",
            "[-1, 3]",
        ] {
            let err = input(&mut omics(huge, "[]"), [1, 2, 2], 3, &[]).unwrap_err();
            assert_eq!(err.body.field.as_deref(), Some("inputs[0].shape"), "{huge}");
            assert!(
                err.body.error.contains("1 <= N <= 4096"),
                "{huge}: {}",
                err.body.error
            );
        }
        assert_eq!(
            field(omics("[1, 4]", "[1, 2, 3, 4]")).as_deref(),
            Some("inputs[0].shape")
        );
        assert_eq!(
            field(omics("[1, 1, 2, 2]", "[1, 2, 3, 4]")).as_deref(),
            Some("inputs[0].shape")
        );
        // An input of another name is neither.
        let other = parse_json::<InferRequest>(
            br#"{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}"#,
        )
        .unwrap();
        assert_eq!(field(other).as_deref(), Some("inputs[0].name"));
    }
}
