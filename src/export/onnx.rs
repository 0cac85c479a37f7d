//! model.onnx: the network exported with burn-onnx's forward-capture exporter (opset 18), batch
//! axis symbolic, input `input` (N x C x H x W, float32), outputs `logits` and `probabilities`
//! (N x classes).

use anyhow::{Context, Result, anyhow, bail};
use burn::tensor::{Device, Tensor};
use burn_onnx::export::{AxisSpec, InputSpec, OnnxExporter};
use onnx_ir::{AttributeProto, AttributeType, Message, ModelProto, NodeProto};

use crate::model::train::load_record;
use crate::model::{ResNet, ResNetConfig};

pub const INPUT: &str = "input";
pub const OUTPUTS: [&str; 2] = ["logits", "probabilities"];

/// The ONNX bytes of the model in `record`, for images of `shape` = [C, H, W].
pub fn export(config: &ResNetConfig, record: &[u8], shape: [usize; 3]) -> Result<Vec<u8>> {
    // Exporting moves the module's BatchNorm statistics onto the exporter's capture device,
    // where the module can no longer run (burn-onnx 0.22): export a copy made from the record,
    // never a model that serves.
    let device = Device::flex();
    let model = load_record(config, record, &device)?;
    let [c, h, w] = shape;
    let sample = Tensor::<4>::zeros([1, c, h, w], &device);
    let validation = Tensor::<4>::zeros([2, c, h, w], &device);
    let specs = [InputSpec::new([
        AxisSpec::dynamic("batch"),
        AxisSpec::Static,
        AxisSpec::Static,
        AxisSpec::Static,
    ])];
    let onnx = OnnxExporter::new()
        .export_dynamic(
            &model,
            sample,
            validation,
            &specs,
            |m: &ResNet, x: Tensor<4>| m.forward(x),
        )
        .map_err(|e| anyhow!("ONNX export failed: {e:?}"))?;
    rename(&onnx.into_bytes())
}

/// The exporter names the graph's input and output itself: give them the names runtimes and
/// TensorRT profiles are written against, everywhere they are referenced; then append the
/// softmax (the exporter cannot lower Burn's softmax or max yet; ONNX has the operator).
fn rename(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut model =
        ModelProto::parse_from_bytes(bytes).context("the exported ONNX does not parse")?;
    let graph = model
        .graph
        .as_mut()
        .context("the exported ONNX has no graph")?;
    if graph.input.len() != 1 || graph.output.len() != 1 {
        bail!(
            "the exported ONNX has {} inputs and {} outputs, expected 1 and 1",
            graph.input.len(),
            graph.output.len()
        );
    }
    let renames = [
        (graph.input[0].name.clone(), INPUT.to_string()),
        (graph.output[0].name.clone(), OUTPUTS[0].to_string()),
    ];
    let new_name = |old: &str| -> Option<String> {
        renames
            .iter()
            .find(|(from, _)| from == old)
            .map(|(_, to)| to.clone())
    };
    for value in graph.input.iter_mut().chain(graph.output.iter_mut()) {
        if let Some(n) = new_name(&value.name) {
            value.name = n;
        }
    }
    for node in graph.node.iter_mut() {
        for name in node.input.iter_mut().chain(node.output.iter_mut()) {
            if let Some(n) = new_name(name) {
                *name = n;
            }
        }
    }
    let mut softmax = NodeProto::new();
    softmax.op_type = "Softmax".into();
    softmax.name = "softmax".into();
    softmax.input = vec![OUTPUTS[0].into()];
    softmax.output = vec![OUTPUTS[1].into()];
    let mut axis = AttributeProto::new();
    axis.name = "axis".into();
    axis.type_ = AttributeType::INT.into();
    axis.i = 1;
    softmax.attribute.push(axis);
    graph.node.push(softmax);
    let mut probabilities = graph.output[0].clone();
    probabilities.name = OUTPUTS[1].into();
    graph.output.push(probabilities);
    model
        .write_to_bytes()
        .context("cannot write the renamed ONNX model")
}

/// Refuses an ONNX model whose opset, input, outputs or wiring is not what was exported.
pub fn check_structure(bytes: &[u8], shape: [usize; 3], classes: usize) -> Result<()> {
    let model = ModelProto::parse_from_bytes(bytes).context("model.onnx does not parse")?;
    let graph = model.graph.as_ref().context("model.onnx has no graph")?;
    if !model.opset_import.iter().any(|o| o.version == 18) {
        bail!("model.onnx is not opset 18");
    }
    let dims = |v: &onnx_ir::ValueInfoProto| -> Vec<String> {
        v.type_
            .tensor_type()
            .shape
            .dim
            .iter()
            .map(|d| {
                if d.has_dim_param() {
                    d.dim_param().to_string()
                } else {
                    d.dim_value().to_string()
                }
            })
            .collect()
    };
    let [c, h, w] = shape;
    let input = graph.input.first().context("model.onnx has no input")?;
    let expected = [
        "batch".to_string(),
        c.to_string(),
        h.to_string(),
        w.to_string(),
    ];
    if input.name != INPUT || dims(input) != expected {
        bail!(
            "model.onnx input is {} {:?}, expected {INPUT} {expected:?}",
            input.name,
            dims(input)
        );
    }
    let names: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    if names != OUTPUTS {
        bail!("model.onnx outputs are {names:?}, expected {OUTPUTS:?}");
    }
    for output in &graph.output {
        let d = dims(output);
        if d.len() != 2 || d[1] != classes.to_string() {
            bail!(
                "model.onnx output {} is {d:?}, expected [batch, {classes}]",
                output.name
            );
        }
    }
    let mut known: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    known.insert(INPUT);
    for node in &graph.node {
        if let Some(i) = node
            .input
            .iter()
            .find(|i| !i.is_empty() && !known.contains(i.as_str()))
        {
            bail!(
                "model.onnx: node {} reads {i}, which nothing defines",
                node.name
            );
        }
        known.extend(node.output.iter().map(String::as_str));
    }
    if let Some(o) = OUTPUTS.iter().find(|o| !known.contains(*o)) {
        bail!("model.onnx: no node computes {o}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;

    #[test]
    fn the_export_names_its_input_and_outputs_and_keeps_the_batch_axis_symbolic() {
        let device = Device::flex();
        let config = ResNetConfig::new(2, 3).with_width(4);
        let model = crate::model::init_seeded(&config, &device.clone().autodiff(), 1).valid();
        let record = crate::model::train::to_bytes(&model).unwrap();
        let bytes = export(&config, &record, [2, 32, 32]).unwrap();
        check_structure(&bytes, [2, 32, 32], 3).unwrap();
        // The check can fail: wrong image size, wrong classes, an output renamed away.
        assert!(check_structure(&bytes, [2, 64, 64], 3).is_err());
        assert!(check_structure(&bytes, [2, 32, 32], 4).is_err());
        let mut broken = ModelProto::parse_from_bytes(&bytes).unwrap();
        let graph = broken.graph.as_mut().unwrap();
        let last = graph.node.len() - 1;
        graph.node[last].input[0] = "nowhere".into();
        let err = check_structure(&broken.write_to_bytes().unwrap(), [2, 32, 32], 3)
            .unwrap_err()
            .to_string();
        assert!(err.contains("nowhere"), "{err}");
        assert!(model.num_params() > 0);
    }
}
