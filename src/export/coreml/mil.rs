//! A small builder of MIL programs (Core ML's ML Program): every operation input is a named
//! `const` (as coremltools writes them), every output carries its type and shape, and large
//! tensors go to the weight file.

use std::collections::HashMap;

use coreml_proto::proto::mil_spec::{
    self as mil, Argument, DataType, Dimension, NamedValueType, Operation, TensorType, Value,
    ValueType, argument, dimension, tensor_value, value, value_type,
};

use super::blob::{BlobType, BlobWriter, FILE_REFERENCE};

pub struct Builder {
    pub operations: Vec<Operation>,
    pub blobs: BlobWriter,
    /// Shape of every value defined so far, by name.
    shapes: HashMap<String, Vec<usize>>,
}

pub fn tensor_type(data_type: DataType, shape: &[usize]) -> ValueType {
    ValueType {
        r#type: Some(value_type::Type::TensorType(TensorType {
            data_type: data_type as i32,
            rank: shape.len() as i64,
            dimensions: shape
                .iter()
                .map(|&size| Dimension {
                    dimension: Some(dimension::Dimension::Constant(
                        dimension::ConstantDimension { size: size as u64 },
                    )),
                })
                .collect(),
            attributes: HashMap::new(),
        })),
    }
}

pub fn immediate(data_type: DataType, shape: &[usize], tensor: tensor_value::Value) -> Value {
    Value {
        doc_string: String::new(),
        r#type: Some(tensor_type(data_type, shape)),
        value: Some(value::Value::ImmediateValue(value::ImmediateValue {
            value: Some(value::immediate_value::Value::Tensor(mil::TensorValue {
                value: Some(tensor),
            })),
        })),
    }
}

pub fn string_value(s: &str) -> Value {
    immediate(
        DataType::String,
        &[],
        tensor_value::Value::Strings(tensor_value::RepeatedStrings {
            values: vec![s.to_string()],
        }),
    )
}

fn named(name: &str) -> Argument {
    Argument {
        arguments: vec![argument::Binding {
            binding: Some(argument::binding::Binding::Name(name.to_string())),
        }],
    }
}

impl Builder {
    pub fn new(input: &str, shape: &[usize]) -> Self {
        Self {
            operations: Vec::new(),
            blobs: BlobWriter::default(),
            shapes: HashMap::from([(input.to_string(), shape.to_vec())]),
        }
    }

    pub fn shape(&self, name: &str) -> &[usize] {
        &self.shapes[name]
    }

    fn push(
        &mut self,
        kind: &str,
        name: &str,
        inputs: HashMap<String, Argument>,
        outputs: Vec<NamedValueType>,
        mut attributes: HashMap<String, Value>,
    ) {
        attributes.insert("name".into(), string_value(name));
        self.operations.push(Operation {
            r#type: kind.into(),
            inputs,
            outputs,
            blocks: Vec::new(),
            attributes,
        });
    }

    /// A constant holding `value` of type `data_type` and shape `shape`.
    pub fn constant(
        &mut self,
        name: &str,
        data_type: DataType,
        shape: &[usize],
        value: Value,
    ) -> String {
        self.push(
            "const",
            name,
            HashMap::new(),
            vec![NamedValueType {
                name: name.into(),
                r#type: Some(tensor_type(data_type, shape)),
            }],
            HashMap::from([("val".to_string(), value)]),
        );
        self.shapes.insert(name.into(), shape.to_vec());
        name.into()
    }

    /// A constant written into the program itself.
    fn inline(
        &mut self,
        name: &str,
        data_type: DataType,
        shape: &[usize],
        tensor: tensor_value::Value,
    ) -> String {
        let value = immediate(data_type, shape, tensor);
        self.constant(name, data_type, shape, value)
    }

    pub fn ints(&mut self, name: &str, values: &[i32]) -> String {
        let tensor = tensor_value::Value::Ints(tensor_value::RepeatedInts {
            values: values.to_vec(),
        });
        self.inline(name, DataType::Int32, &[values.len()], tensor)
    }

    pub fn int(&mut self, name: &str, v: i32) -> String {
        let tensor = tensor_value::Value::Ints(tensor_value::RepeatedInts { values: vec![v] });
        self.inline(name, DataType::Int32, &[], tensor)
    }

    pub fn float(&mut self, name: &str, v: f32) -> String {
        let tensor = tensor_value::Value::Floats(tensor_value::RepeatedFloats { values: vec![v] });
        self.inline(name, DataType::Float32, &[], tensor)
    }

    pub fn boolean(&mut self, name: &str, v: bool) -> String {
        let tensor = tensor_value::Value::Bools(tensor_value::RepeatedBools { values: vec![v] });
        self.inline(name, DataType::Bool, &[], tensor)
    }

    pub fn string(&mut self, name: &str, v: &str) -> String {
        self.constant(name, DataType::String, &[], string_value(v))
    }

    /// A float tensor stored in the weight file.
    pub fn weights(&mut self, name: &str, shape: &[usize], data: &[f32]) -> String {
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        let offset = self.blobs.add(BlobType::Float32, &bytes);
        let value = blob_value(DataType::Float32, shape, offset);
        self.constant(name, DataType::Float32, shape, value)
    }

    /// A float tensor stored as int8 with one scale per slice along axis 0 (symmetric, zero
    /// point 0), dequantised when the model is loaded (`constexpr_affine_dequantize`).
    pub fn weights_int8(&mut self, name: &str, shape: &[usize], data: &[f32]) -> String {
        let (quantised, scales) = quantise_per_channel(data, shape[0]);
        let bytes: Vec<u8> = quantised.iter().map(|&q| q as u8).collect();
        let offset = self.blobs.add(BlobType::Int8, &bytes);
        let channels = shape[0];
        let attributes = HashMap::from([
            (
                "quantized_data".to_string(),
                blob_value(DataType::Int8, shape, offset),
            ),
            (
                "zero_point".to_string(),
                immediate(
                    DataType::Int8,
                    &[channels],
                    tensor_value::Value::Bytes(tensor_value::RepeatedBytes {
                        values: vec![0; channels],
                    }),
                ),
            ),
            (
                "scale".to_string(),
                immediate(
                    DataType::Float32,
                    &[channels],
                    tensor_value::Value::Floats(tensor_value::RepeatedFloats { values: scales }),
                ),
            ),
            (
                "axis".to_string(),
                immediate(
                    DataType::Int32,
                    &[],
                    tensor_value::Value::Ints(tensor_value::RepeatedInts { values: vec![0] }),
                ),
            ),
        ]);
        self.push(
            "constexpr_affine_dequantize",
            name,
            HashMap::new(),
            vec![NamedValueType {
                name: name.into(),
                r#type: Some(tensor_type(DataType::Float32, shape)),
            }],
            attributes,
        );
        self.shapes.insert(name.into(), shape.to_vec());
        name.into()
    }

    /// An operation with one float output of `shape`; `inputs` are (parameter, value name).
    pub fn op(
        &mut self,
        kind: &str,
        name: &str,
        inputs: &[(&str, &str)],
        shape: &[usize],
    ) -> String {
        let inputs = inputs
            .iter()
            .map(|(key, value)| (key.to_string(), named(value)))
            .collect();
        self.push(
            kind,
            name,
            inputs,
            vec![NamedValueType {
                name: name.into(),
                r#type: Some(tensor_type(DataType::Float32, shape)),
            }],
            HashMap::new(),
        );
        self.shapes.insert(name.into(), shape.to_vec());
        name.into()
    }

    /// Any other operation, built by the caller.
    pub fn raw(&mut self, operation: Operation) {
        self.operations.push(operation);
    }
}

fn blob_value(data_type: DataType, shape: &[usize], offset: u64) -> Value {
    Value {
        doc_string: String::new(),
        r#type: Some(tensor_type(data_type, shape)),
        value: Some(value::Value::BlobFileValue(value::BlobFileValue {
            file_name: FILE_REFERENCE.into(),
            offset,
        })),
    }
}

/// Symmetric int8 per slice of axis 0: scale = max |w| / 127 (1 for an all-zero slice).
pub fn quantise_per_channel(data: &[f32], channels: usize) -> (Vec<i8>, Vec<f32>) {
    let per = data.len() / channels.max(1);
    let mut quantised = Vec::with_capacity(data.len());
    let mut scales = Vec::with_capacity(channels);
    for slice in data.chunks(per.max(1)) {
        let max = slice.iter().fold(0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        quantised.extend(
            slice
                .iter()
                .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8),
        );
        scales.push(scale);
    }
    (quantised, scales)
}
