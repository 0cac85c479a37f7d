//! `model-fp16.onnx`: the network typed fp16 throughout, for TensorRT 11, which builds strongly
//! typed networks only and takes its precision from the ONNX types (TensorRT 10 could lower an
//! fp32 model with `--fp16`; 11 cannot). Input and outputs stay fp32, with a Cast at each end,
//! so clients send and receive the same tensors as with `model.onnx`.

use anyhow::{Context, Result, bail};
use half::f16;
use onnx_ir::{AttributeProto, AttributeType, Message, ModelProto, NodeProto};

use super::onnx::{INPUT, OUTPUTS};

pub const FILE: &str = "model-fp16.onnx";

// ONNX TensorProto.DataType values.
const FLOAT: i32 = 1;
const FLOAT16: i32 = 10;

/// The fp16 form of an fp32 model written by `onnx::export`.
pub fn convert(fp32: &[u8]) -> Result<Vec<u8>> {
    let mut model = ModelProto::parse_from_bytes(fp32).context("model.onnx does not parse")?;
    let graph = model.graph.as_mut().context("model.onnx has no graph")?;
    for tensor in graph.initializer.iter_mut() {
        if tensor.data_type != FLOAT {
            continue;
        }
        let values: Vec<f32> = if !tensor.raw_data.is_empty() {
            tensor
                .raw_data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        } else {
            std::mem::take(&mut tensor.float_data)
        };
        if let Some(v) = values
            .iter()
            .find(|v| v.is_finite() && v.abs() > f32::from(f16::MAX))
        {
            bail!(
                "initialiser {} holds {v}, beyond fp16's range: this model cannot be typed fp16",
                tensor.name
            );
        }
        tensor.raw_data = values
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect();
        tensor.data_type = FLOAT16;
    }
    if graph
        .node
        .iter()
        .any(|n| n.op_type == "Constant" || n.op_type == "Cast")
    {
        bail!("model.onnx has Constant or Cast nodes, which the fp16 conversion does not type");
    }
    let inner = |name: &str| format!("{name}_fp16");
    let boundary = |name: &str| name == INPUT || OUTPUTS.contains(&name);
    for node in graph.node.iter_mut() {
        for name in node.input.iter_mut().chain(node.output.iter_mut()) {
            if boundary(name) {
                *name = inner(name);
            }
        }
    }
    graph.node.insert(0, cast(INPUT, &inner(INPUT), FLOAT16));
    for output in OUTPUTS {
        graph.node.push(cast(&inner(output), output, FLOAT));
    }
    model
        .write_to_bytes()
        .context("cannot write the fp16 ONNX model")
}

fn cast(from: &str, to: &str, data_type: i32) -> NodeProto {
    let mut node = NodeProto::new();
    node.op_type = "Cast".into();
    node.name = format!("cast_{to}");
    node.input = vec![from.into()];
    node.output = vec![to.into()];
    let mut attribute = AttributeProto::new();
    attribute.name = "to".into();
    attribute.type_ = AttributeType::INT.into();
    attribute.i = i64::from(data_type);
    node.attribute.push(attribute);
    node
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResNetConfig;
    use burn::module::Module;
    use burn::tensor::Device;

    fn exported() -> Vec<u8> {
        let device = Device::flex();
        let config = ResNetConfig::new(2, 3).with_width(4);
        let model = crate::model::init_seeded(&config, &device.clone().autodiff(), 1).valid();
        let record = crate::model::train::to_bytes(&model).unwrap();
        super::super::onnx::export(&config, &record, [2, 32, 32]).unwrap()
    }

    #[test]
    fn every_float_weight_becomes_fp16_with_casts_at_both_ends() {
        let fp32 = exported();
        let bytes = convert(&fp32).unwrap();
        super::super::onnx::check_structure(&bytes, [2, 32, 32], 3).unwrap();
        let before = ModelProto::parse_from_bytes(&fp32).unwrap();
        let after = ModelProto::parse_from_bytes(&bytes).unwrap();
        let (g0, g1) = (before.graph.unwrap(), after.graph.unwrap());
        for (a, b) in g0.initializer.iter().zip(&g1.initializer) {
            if a.data_type == FLOAT {
                assert_eq!(b.data_type, FLOAT16, "{}", b.name);
                assert_eq!(b.raw_data.len() * 2, a.raw_data.len(), "{}", b.name);
                // Values survive to fp16's precision.
                let x = f32::from_le_bytes(a.raw_data[..4].try_into().unwrap());
                let y = f16::from_le_bytes(b.raw_data[..2].try_into().unwrap()).to_f32();
                assert!((x - y).abs() <= 1e-3 * x.abs().max(1e-3), "{x} {y}");
            } else {
                assert_eq!(a, b);
            }
        }
        assert_eq!(g1.node.len(), g0.node.len() + 3);
        let first = &g1.node[0];
        assert_eq!(
            (first.op_type.as_str(), first.input[0].as_str()),
            ("Cast", INPUT)
        );
        assert_eq!(first.attribute[0].i, i64::from(FLOAT16));
        for output in OUTPUTS {
            let cast = g1
                .node
                .iter()
                .find(|n| n.output.iter().any(|o| o == output))
                .unwrap();
            assert_eq!(cast.op_type, "Cast");
            assert_eq!(cast.attribute[0].i, i64::from(FLOAT));
        }
        // Inputs and outputs keep their fp32 types: clients send what they sent before.
        assert_eq!(g1.input, g0.input);
        assert_eq!(g1.output, g0.output);
    }

    #[test]
    fn a_weight_beyond_fp16_range_is_refused_by_name() {
        let mut model = ModelProto::parse_from_bytes(&exported()).unwrap();
        let graph = model.graph.as_mut().unwrap();
        let tensor = graph
            .initializer
            .iter_mut()
            .find(|t| t.data_type == FLOAT)
            .unwrap();
        let mut raw = tensor.raw_data.to_vec();
        raw[..4].copy_from_slice(&1.0e6f32.to_le_bytes());
        tensor.raw_data = raw.into();
        let name = tensor.name.clone();
        let err = convert(&model.write_to_bytes().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains(&name) && err.contains("fp16"), "{err}");
    }
}
