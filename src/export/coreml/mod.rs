//! `model.mlpackage` (`--targets mobile`): the network as a Core ML ML Program (iOS 16 /
//! macOS 13, specification 7), written from Rust with coreml-proto's protobuf types.
//!
//! - Input `input`: a float32 multi-array (C, H, W), one DeepInsight image; outputs
//!   `classLabel` (the predicted class name) and `probabilities` (class name to probability),
//!   a Core ML classifier.
//! - Weights in `Data/com.apple.CoreML/weights/weight.bin` (blob.rs); with 8-bit weights, every
//!   convolution and the linear head are stored int8 per output channel and dequantised at
//!   load (`constexpr_affine_dequantize`); BatchNorm stays float.
//! - Prediction needs macOS or iOS; here the package is checked for its structure, and the
//!   tests have coremltools load and type-check it and evaluate it against Burn.

pub(crate) mod blob;
pub(crate) mod mil;

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::Tensor;
use coreml_proto::proto::mil_spec::{
    self as milspec, Argument, DataType, NamedValueType, Operation, ValueType, argument, value_type,
};
use coreml_proto::proto::{
    self as spec, ArrayFeatureType, DictionaryFeatureType, FeatureDescription, FeatureType,
    ModelDescription, StringFeatureType, array_feature_type, dictionary_feature_type, feature_type,
};
use prost::Message;

use crate::model::ResNet;
use crate::model::resnet::BasicBlock;
use mil::Builder;

pub const PACKAGE: &str = "model.mlpackage";
pub const SPEC_PATH: &str = "Data/com.apple.CoreML/model.mlmodel";
pub const WEIGHTS_PATH: &str = "Data/com.apple.CoreML/weights/weight.bin";
pub const SPECIFICATION_VERSION: i32 = 7;
const OPSET: &str = "CoreML6";
const INPUT: &str = "input";
const LABEL: &str = "classLabel";
const PROBABILITIES: &str = "probabilities";

/// The files of an .mlpackage.
pub struct Package {
    pub spec: Vec<u8>,
    pub weights: Vec<u8>,
    pub manifest: String,
}

impl Package {
    pub fn bytes(&self) -> u64 {
        (self.spec.len() + self.weights.len() + self.manifest.len()) as u64
    }
}

/// The Core ML package of `model` for images of `shape` = [C, H, W] and these class names.
pub fn build(
    model: &ResNet,
    shape: [usize; 3],
    classes: &[String],
    int8_weights: bool,
) -> Result<Package> {
    let mut net = Network {
        b: Builder::new(INPUT, &shape),
        int8: int8_weights,
    };
    let x = net.program(model, shape)?;
    let mut b = net.b;
    b.raw(classify(&x, classes));
    let program = program(b.operations, shape);
    let model = spec::Model {
        specification_version: SPECIFICATION_VERSION,
        description: Some(description(shape)),
        r#type: Some(spec::model::Type::MlProgram(program)),
        ..Default::default()
    };
    let spec = model.encode_to_vec();
    let weights = b.blobs.finish();
    let manifest = manifest(&spec, &weights);
    Ok(Package {
        spec,
        weights,
        manifest,
    })
}

struct Network {
    b: Builder,
    int8: bool,
}

fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("converted to f32 just before")
}

fn param1(p: &Param<Tensor<1>>) -> Vec<f32> {
    values(p.val())
}

impl Network {
    fn program(&mut self, model: &ResNet, shape: [usize; 3]) -> Result<String> {
        let [c, h, w] = shape;
        let axes = self.b.ints("input_axes", &[0]);
        let x = self.b.op(
            "expand_dims",
            "input_batch",
            &[("x", INPUT), ("axes", &axes)],
            &[1, c, h, w],
        );
        let x = self.conv("conv1", &model.conv1, &x)?;
        let x = self.batch_norm("bn1", &model.bn1, &x);
        let x = self.relu("relu1", &x);
        let mut x = match &model.maxpool {
            Some(pool) => self.max_pool(pool, &x)?,
            None => x,
        };
        for (s, stage) in [&model.layer1, &model.layer2, &model.layer3, &model.layer4]
            .iter()
            .enumerate()
        {
            for (i, block) in stage.iter().enumerate() {
                x = self.block(&format!("layer{}_{i}", s + 1), block, &x)?;
            }
        }
        let axes = self.b.ints("pool_axes", &[2, 3]);
        let keep = self.b.boolean("pool_keep_dims", false);
        let channels = self.b.shape(&x)[1];
        let x = self.b.op(
            "reduce_mean",
            "pool",
            &[("x", &x), ("axes", &axes), ("keep_dims", &keep)],
            &[1, channels],
        );
        // Burn's Linear keeps its weight as [in, out]; MIL's linear takes [out, in].
        let weight = model.fc.weight.val();
        let [inputs, outputs] = weight.dims();
        let transposed = values(weight.transpose());
        let weight = self.weights("fc_weight", &[outputs, inputs], &transposed);
        let bias = match &model.fc.bias {
            Some(bias) => param1(bias),
            None => vec![0.0; outputs],
        };
        let bias = self.b.weights("fc_bias", &[outputs], &bias);
        let logits = self.b.op(
            "linear",
            "logits",
            &[("x", &x), ("weight", &weight), ("bias", &bias)],
            &[1, outputs],
        );
        let axis = self.b.int("softmax_axis", 1);
        let p = self.b.op(
            "softmax",
            "softmax",
            &[("x", &logits), ("axis", &axis)],
            &[1, outputs],
        );
        let axes = self.b.ints("squeeze_axes", &[0]);
        Ok(self.b.op(
            "squeeze",
            "class_probabilities",
            &[("x", &p), ("axes", &axes)],
            &[outputs],
        ))
    }

    fn weights(&mut self, name: &str, shape: &[usize], data: &[f32]) -> String {
        if self.int8 {
            self.b.weights_int8(name, shape, data)
        } else {
            self.b.weights(name, shape, data)
        }
    }

    fn conv(&mut self, name: &str, conv: &Conv2d, x: &str) -> Result<String> {
        let weight = conv.weight.val();
        let [out, _, kh, kw] = weight.dims();
        if conv.bias.is_some() || conv.groups != 1 || conv.dilation != [1, 1] {
            bail!(
                "{name}: only bias-free, ungrouped, undilated convolutions are exported to Core ML"
            );
        }
        let PaddingConfig2d::Explicit(top, left, bottom, right) = conv.padding else {
            bail!("{name}: only explicit padding is exported to Core ML");
        };
        let weight = self.weights(
            &format!("{name}_weight"),
            &[out, weight.dims()[1], kh, kw],
            &values(weight),
        );
        let strides = self.b.ints(
            &format!("{name}_strides"),
            &[conv.stride[0] as i32, conv.stride[1] as i32],
        );
        let pad_type = self.b.string(&format!("{name}_pad_type"), "custom");
        let pad = self.b.ints(
            &format!("{name}_pad"),
            &[top as i32, bottom as i32, left as i32, right as i32],
        );
        let dilations = self.b.ints(&format!("{name}_dilations"), &[1, 1]);
        let groups = self.b.int(&format!("{name}_groups"), 1);
        let [n, _, h, w] =
            <[usize; 4]>::try_from(self.b.shape(x)).context("conv input is not 4-D")?;
        let size = |len: usize, k: usize, s: usize, p: usize| (len + p - k) / s + 1;
        let shape = [
            n,
            out,
            size(h, kh, conv.stride[0], top + bottom),
            size(w, kw, conv.stride[1], left + right),
        ];
        Ok(self.b.op(
            "conv",
            name,
            &[
                ("x", x),
                ("weight", &weight),
                ("strides", &strides),
                ("pad_type", &pad_type),
                ("pad", &pad),
                ("dilations", &dilations),
                ("groups", &groups),
            ],
            &shape,
        ))
    }

    fn batch_norm(&mut self, name: &str, bn: &BatchNorm, x: &str) -> String {
        let shape = self.b.shape(x).to_vec();
        let n = shape[1];
        let mean = self.b.weights(
            &format!("{name}_mean"),
            &[n],
            &values(bn.running_mean.value()),
        );
        let variance = self.b.weights(
            &format!("{name}_variance"),
            &[n],
            &values(bn.running_var.value()),
        );
        let gamma = self
            .b
            .weights(&format!("{name}_gamma"), &[n], &param1(&bn.gamma));
        let beta = self
            .b
            .weights(&format!("{name}_beta"), &[n], &param1(&bn.beta));
        let epsilon = self.b.float(&format!("{name}_epsilon"), bn.epsilon as f32);
        self.b.op(
            "batch_norm",
            name,
            &[
                ("x", x),
                ("mean", &mean),
                ("variance", &variance),
                ("gamma", &gamma),
                ("beta", &beta),
                ("epsilon", &epsilon),
            ],
            &shape,
        )
    }

    fn relu(&mut self, name: &str, x: &str) -> String {
        let shape = self.b.shape(x).to_vec();
        self.b.op("relu", name, &[("x", x)], &shape)
    }

    fn max_pool(&mut self, pool: &MaxPool2d, x: &str) -> Result<String> {
        let PaddingConfig2d::Explicit(top, left, bottom, right) = pool.padding else {
            bail!("maxpool: only explicit padding is exported to Core ML");
        };
        if pool.dilation != [1, 1] || pool.ceil_mode {
            bail!("maxpool: dilation and ceil mode are not exported to Core ML");
        }
        let [kh, kw] = pool.kernel_size;
        let [sh, sw] = pool.stride;
        let kernel = self.b.ints("maxpool_kernel_sizes", &[kh as i32, kw as i32]);
        let strides = self.b.ints("maxpool_strides", &[sh as i32, sw as i32]);
        let pad_type = self.b.string("maxpool_pad_type", "custom");
        let pad = self.b.ints(
            "maxpool_pad",
            &[top as i32, bottom as i32, left as i32, right as i32],
        );
        let ceil = self.b.boolean("maxpool_ceil_mode", false);
        let [n, c, h, w] =
            <[usize; 4]>::try_from(self.b.shape(x)).context("maxpool input is not 4-D")?;
        let shape = [
            n,
            c,
            (h + top + bottom - kh) / sh + 1,
            (w + left + right - kw) / sw + 1,
        ];
        Ok(self.b.op(
            "max_pool",
            "maxpool",
            &[
                ("x", x),
                ("kernel_sizes", &kernel),
                ("strides", &strides),
                ("pad_type", &pad_type),
                ("pad", &pad),
                ("ceil_mode", &ceil),
            ],
            &shape,
        ))
    }

    fn block(&mut self, name: &str, block: &BasicBlock, x: &str) -> Result<String> {
        let identity = match &block.downsample {
            Some(d) => {
                let y = self.conv(&format!("{name}_downsample_conv"), &d.conv, x)?;
                self.batch_norm(&format!("{name}_downsample_bn"), &d.bn, &y)
            }
            None => x.to_string(),
        };
        let y = self.conv(&format!("{name}_conv1"), &block.conv1, x)?;
        let y = self.batch_norm(&format!("{name}_bn1"), &block.bn1, &y);
        let y = self.relu(&format!("{name}_relu1"), &y);
        let y = self.conv(&format!("{name}_conv2"), &block.conv2, &y)?;
        let y = self.batch_norm(&format!("{name}_bn2"), &block.bn2, &y);
        let shape = self.b.shape(&y).to_vec();
        let sum = self.b.op(
            "add",
            &format!("{name}_add"),
            &[("x", &y), ("y", &identity)],
            &shape,
        );
        Ok(self.relu(&format!("{name}_out"), &sum))
    }
}

fn string_type() -> ValueType {
    mil::tensor_type(DataType::String, &[])
}

/// `classify`: the probabilities and the class names to the label and the name-to-probability
/// dictionary that make a Core ML classifier.
fn classify(probabilities: &str, classes: &[String]) -> Operation {
    let names = milspec::Value {
        doc_string: String::new(),
        r#type: Some(ValueType {
            r#type: Some(value_type::Type::ListType(Box::new(milspec::ListType {
                r#type: Some(Box::new(string_type())),
                length: Some(milspec::Dimension {
                    dimension: Some(milspec::dimension::Dimension::Constant(
                        milspec::dimension::ConstantDimension {
                            size: classes.len() as u64,
                        },
                    )),
                }),
            }))),
        }),
        value: Some(milspec::value::Value::ImmediateValue(
            milspec::value::ImmediateValue {
                value: Some(milspec::value::immediate_value::Value::List(
                    milspec::ListValue {
                        values: classes.iter().map(|c| mil::string_value(c)).collect(),
                    },
                )),
            },
        )),
    };
    let dictionary = ValueType {
        r#type: Some(value_type::Type::DictionaryType(Box::new(
            milspec::DictionaryType {
                key_type: Some(Box::new(string_type())),
                value_type: Some(Box::new(mil::tensor_type(DataType::Float64, &[]))),
            },
        ))),
    };
    Operation {
        r#type: "classify".into(),
        inputs: HashMap::from([
            (
                "probabilities".to_string(),
                Argument {
                    arguments: vec![argument::Binding {
                        binding: Some(argument::binding::Binding::Name(probabilities.into())),
                    }],
                },
            ),
            (
                "classes".to_string(),
                Argument {
                    arguments: vec![argument::Binding {
                        binding: Some(argument::binding::Binding::Value(names)),
                    }],
                },
            ),
        ]),
        outputs: vec![
            NamedValueType {
                name: LABEL.into(),
                r#type: Some(string_type()),
            },
            NamedValueType {
                name: PROBABILITIES.into(),
                r#type: Some(dictionary),
            },
        ],
        blocks: Vec::new(),
        attributes: HashMap::from([("name".to_string(), mil::string_value("classify"))]),
    }
}

fn program(operations: Vec<Operation>, shape: [usize; 3]) -> milspec::Program {
    let block = milspec::Block {
        inputs: Vec::new(),
        outputs: vec![LABEL.into(), PROBABILITIES.into()],
        operations,
        attributes: HashMap::new(),
    };
    let function = milspec::Function {
        inputs: vec![NamedValueType {
            name: INPUT.into(),
            r#type: Some(mil::tensor_type(DataType::Float32, &shape)),
        }],
        opset: OPSET.into(),
        block_specializations: HashMap::from([(OPSET.to_string(), block)]),
        attributes: HashMap::new(),
    };
    milspec::Program {
        version: 1,
        functions: HashMap::from([("main".to_string(), function)]),
        doc_string: String::new(),
        attributes: HashMap::new(),
    }
}

fn description(shape: [usize; 3]) -> ModelDescription {
    let feature = |name: &str, doc: &str, kind: feature_type::Type| FeatureDescription {
        name: name.into(),
        short_description: doc.into(),
        r#type: Some(FeatureType {
            is_optional: false,
            r#type: Some(kind),
        }),
    };
    ModelDescription {
        input: vec![feature(
            INPUT,
            "One DeepInsight image, channels x height x width, as `deepinsight` renders it",
            feature_type::Type::MultiArrayType(ArrayFeatureType {
                shape: shape.iter().map(|&d| d as i64).collect(),
                data_type: array_feature_type::ArrayDataType::Float32 as i32,
                ..Default::default()
            }),
        )],
        output: vec![
            feature(
                LABEL,
                "The predicted class",
                feature_type::Type::StringType(StringFeatureType {}),
            ),
            feature(
                PROBABILITIES,
                "The probability of each class",
                feature_type::Type::DictionaryType(DictionaryFeatureType {
                    key_type: Some(dictionary_feature_type::KeyType::StringKeyType(
                        StringFeatureType {},
                    )),
                }),
            ),
        ],
        predicted_feature_name: LABEL.into(),
        predicted_probabilities_name: PROBABILITIES.into(),
        metadata: Some(spec::Metadata {
            short_description: "DeepInsight ResNet, exported by deepinsight".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Manifest.json: the package's two items, identified by hashes of their content (Core ML
/// needs unique identifiers, not random ones).
fn manifest(spec: &[u8], weights: &[u8]) -> String {
    let id = |bytes: &[u8]| {
        let h = crate::artefact::sha256_hex(bytes).to_uppercase();
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    };
    let (model_id, weights_id) = (id(spec), id(weights));
    let manifest = serde_json::json!({
        "fileFormatVersion": "1.0.0",
        "itemInfoEntries": {
            model_id.clone(): {
                "author": "com.apple.CoreML",
                "description": "CoreML Model Specification",
                "name": "model.mlmodel",
                "path": "com.apple.CoreML/model.mlmodel"
            },
            weights_id: {
                "author": "com.apple.CoreML",
                "description": "CoreML Model Weights",
                "name": "weights",
                "path": "com.apple.CoreML/weights"
            }
        },
        "rootModelIdentifier": model_id
    });
    serde_json::to_string_pretty(&manifest).unwrap_or_default()
}

/// Reads the spec back and checks it: it parses, is an ML Program with the input and outputs
/// above, every operation reads only values defined before it, and every blob it points at is
/// in the weight file with the type and size its value declares.
pub fn check(package: &Package, shape: [usize; 3], classes: usize) -> Result<()> {
    let model =
        spec::Model::decode(package.spec.as_slice()).context("model.mlmodel does not parse")?;
    if model.specification_version != SPECIFICATION_VERSION {
        bail!(
            "model.mlmodel has specification version {}",
            model.specification_version
        );
    }
    let description = model
        .description
        .as_ref()
        .context("model.mlmodel has no description")?;
    let input = description
        .input
        .first()
        .context("model.mlmodel has no input")?;
    let Some(FeatureType {
        r#type: Some(feature_type::Type::MultiArrayType(array)),
        ..
    }) = &input.r#type
    else {
        bail!("model.mlmodel input is not a multi-array");
    };
    if array.shape != shape.map(|d| d as i64) {
        bail!(
            "model.mlmodel input shape is {:?}, expected {shape:?}",
            array.shape
        );
    }
    let Some(spec::model::Type::MlProgram(program)) = &model.r#type else {
        bail!("model.mlmodel is not an ML Program");
    };
    let block = program
        .functions
        .get("main")
        .and_then(|f| f.block_specializations.get(OPSET))
        .context("model.mlmodel has no main function")?;
    let mut known = std::collections::HashSet::from([INPUT.to_string()]);
    for op in &block.operations {
        for argument in op.inputs.values().flat_map(|a| &a.arguments) {
            if let Some(argument::binding::Binding::Name(name)) = &argument.binding
                && !known.contains(name)
            {
                bail!(
                    "model.mlmodel: {} reads {name}, which nothing defines before it",
                    op.r#type
                );
            }
        }
        for value in op.attributes.values() {
            if let Some(milspec::value::Value::BlobFileValue(blob)) = &value.value {
                let (kind, data) =
                    blob::read(&package.weights, blob.offset).map_err(anyhow::Error::msg)?;
                let Some(ValueType {
                    r#type: Some(value_type::Type::TensorType(t)),
                }) = &value.r#type
                else {
                    bail!("a weight blob without a tensor type");
                };
                let count: u64 = t
                    .dimensions
                    .iter()
                    .map(|d| match d.dimension {
                        Some(milspec::dimension::Dimension::Constant(c)) => c.size,
                        _ => 0,
                    })
                    .product();
                let width = match kind {
                    blob::BlobType::Float32 => 4,
                    blob::BlobType::Int8 => 1,
                };
                if data.len() as u64 != count * width {
                    bail!(
                        "weight blob at {} holds {} bytes for {count} values",
                        blob.offset,
                        data.len()
                    );
                }
            }
        }
        known.extend(op.outputs.iter().map(|o| o.name.clone()));
    }
    for output in [LABEL, PROBABILITIES] {
        if !known.contains(output) {
            bail!("model.mlmodel: nothing computes {output}");
        }
    }
    let classify = block
        .operations
        .last()
        .context("model.mlmodel has no operations")?;
    let listed = classify
        .inputs
        .get("classes")
        .and_then(|a| a.arguments.first())
        .and_then(|b| match &b.binding {
            Some(argument::binding::Binding::Value(v)) => match &v.value {
                Some(milspec::value::Value::ImmediateValue(milspec::value::ImmediateValue {
                    value: Some(milspec::value::immediate_value::Value::List(list)),
                })) => Some(list.values.len()),
                _ => None,
            },
            _ => None,
        });
    if listed != Some(classes) {
        bail!("model.mlmodel lists {listed:?} classes, expected {classes}");
    }
    Ok(())
}

/// Writes the package folder under a temporary name, then renames it over any earlier one.
pub fn save(dir: &Path, package: &Package) -> Result<()> {
    let final_path = dir.join(PACKAGE);
    let partial = tempfile::Builder::new()
        .prefix(".model.mlpackage.")
        .tempdir_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    let root = partial.path();
    std::fs::create_dir_all(root.join("Data/com.apple.CoreML/weights"))?;
    std::fs::write(root.join(SPEC_PATH), &package.spec)?;
    std::fs::write(root.join(WEIGHTS_PATH), &package.weights)?;
    std::fs::write(root.join("Manifest.json"), &package.manifest)?;
    if final_path.exists() {
        std::fs::remove_dir_all(&final_path)
            .with_context(|| format!("cannot replace {}", final_path.display()))?;
    }
    let kept = partial.keep();
    std::fs::rename(&kept, &final_path)
        .with_context(|| format!("cannot write {}", final_path.display()))?;
    Ok(())
}

/// The `mobile` target: builds, checks and writes the package; reports what was checked.
pub(crate) fn export(
    run_dir: &crate::run::RunDir,
    int8_weights: bool,
) -> Result<super::StructureChecked> {
    let shape = run_dir.image_shape();
    let classes = run_dir.classes();
    let package = build(&run_dir.model, shape, classes, int8_weights)?;
    check(&package, shape, classes.len())?;
    save(&run_dir.dir, &package)?;
    tracing::info!(bytes = package.bytes(), "model.mlpackage written");
    let mut hashed = package.spec.clone();
    hashed.extend_from_slice(&package.weights);
    Ok(super::StructureChecked {
        format: if int8_weights { "coreml-int8" } else { "coreml" }.into(),
        target: super::Target::Mobile,
        file: PACKAGE.into(),
        sha256: crate::artefact::sha256_hex(&hashed),
        bytes: package.bytes(),
        checked: "ML Program (specification 7): input multi-array [C, H, W], classifier outputs classLabel and probabilities with the run's class names, every operation input defined, every weight blob present with its declared type and size; prediction needs macOS or iOS".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResNetConfig;
    use burn::tensor::Device;

    fn package(int8: bool) -> Package {
        let config = ResNetConfig::new(2, 3).with_width(4);
        let model = crate::model::init_seeded(&config, &Device::flex(), 1);
        let classes = ["a", "b", "c"].map(String::from);
        build(&model, [2, 32, 32], &classes, int8).unwrap()
    }

    #[test]
    fn the_package_passes_its_check_and_the_check_can_fail() {
        let p = package(false);
        check(&p, [2, 32, 32], 3).unwrap();
        assert!(
            check(&p, [2, 16, 16], 3)
                .unwrap_err()
                .to_string()
                .contains("input shape")
        );
        assert!(
            check(&p, [2, 32, 32], 4)
                .unwrap_err()
                .to_string()
                .contains("classes")
        );
        // A weight file cut short: a blob runs past its end.
        let cut = Package {
            weights: p.weights[..p.weights.len() - 8].to_vec(),
            spec: p.spec.clone(),
            manifest: p.manifest.clone(),
        };
        assert!(
            check(&cut, [2, 32, 32], 3)
                .unwrap_err()
                .to_string()
                .contains("blob")
        );
        let manifest: serde_json::Value = serde_json::from_str(&p.manifest).unwrap();
        let root = manifest["rootModelIdentifier"].as_str().unwrap();
        assert_eq!(
            manifest["itemInfoEntries"][root]["path"],
            "com.apple.CoreML/model.mlmodel"
        );
    }

    #[test]
    fn weights_read_back_from_the_package_are_the_model_s() {
        let config = ResNetConfig::new(2, 3).with_width(4);
        let model = crate::model::init_seeded(&config, &Device::flex(), 1);
        let classes = ["a", "b", "c"].map(String::from);
        let p = build(&model, [2, 32, 32], &classes, false).unwrap();
        let decoded = spec::Model::decode(p.spec.as_slice()).unwrap();
        let Some(spec::model::Type::MlProgram(program)) = decoded.r#type else {
            panic!("not an ML Program")
        };
        let block = &program.functions["main"].block_specializations[OPSET];
        let weight_of = |name: &str| -> Vec<f32> {
            let op = block
                .operations
                .iter()
                .find(|op| op.outputs.first().is_some_and(|o| o.name == name))
                .unwrap();
            let Some(milspec::value::Value::BlobFileValue(b)) = &op.attributes["val"].value else {
                panic!("{name} is not in the weight file")
            };
            let (kind, data) = blob::read(&p.weights, b.offset).unwrap();
            assert_eq!(kind, blob::BlobType::Float32);
            data.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
        assert_eq!(weight_of("conv1_weight"), values(model.conv1.weight.val()));
        assert_eq!(
            weight_of("layer4_1_bn2_variance"),
            values(model.layer4[1].bn2.running_var.value())
        );
        // The head's weight is stored [out, in]: element (o, i) is Burn's (i, o).
        let fc = weight_of("fc_weight");
        let burn = values(model.fc.weight.val());
        let (inputs, outputs) = (model.fc.weight.val().dims()[0], 3);
        for o in 0..outputs {
            for i in 0..inputs {
                assert_eq!(fc[o * inputs + i], burn[i * outputs + o]);
            }
        }
    }

    #[test]
    fn eight_bit_weights_are_a_quarter_and_within_half_a_step() {
        let (full, small) = (package(false), package(true));
        check(&small, [2, 32, 32], 3).unwrap();
        let ratio = full.weights.len() as f64 / small.weights.len() as f64;
        assert!(ratio > 3.0, "{ratio}");
        let data: Vec<f32> = (0..24).map(|i| (i as f32 - 11.0) * 0.37).collect();
        let (q, scales) = mil::quantise_per_channel(&data, 3);
        assert_eq!(scales.len(), 3);
        for (i, (&v, &q)) in data.iter().zip(&q).enumerate() {
            let scale = scales[i / 8];
            assert!((f32::from(q) * scale - v).abs() <= scale / 2.0 + 1e-6);
        }
        // Each channel's largest magnitude maps to 127.
        assert_eq!(q[..8].iter().map(|v| v.unsigned_abs()).max(), Some(127));
    }
}
