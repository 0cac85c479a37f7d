//! Fine-tuning from torchvision's ResNet18 weights (`.pth`/`.pt` through burn-store's PyTorch
//! reader, or `.safetensors` with torchvision's key names).
//!
//! Key mapping, torchvision -> this crate's `ResNet`:
//!
//! | torchvision | here |
//! |---|---|
//! | `bnX.weight` / `bnX.bias` | `bnX.gamma` / `bnX.beta` (burn-store's PyTorch adapter) |
//! | `layerN.B.downsample.0.*` | `layerN.B.downsample.conv.*` |
//! | `layerN.B.downsample.1.*` | `layerN.B.downsample.bn.*` |
//! | `*.num_batches_tracked` | not used (Burn's BatchNorm has a fixed momentum) |
//! | `fc.*` | not loaded: the head is replaced for this task's classes |
//!
//! Every other name is the same. When the images do not have 3 channels, `conv1.weight` is
//! adapted as timm's `adapt_input_conv` does: summed over the RGB filters for one channel;
//! otherwise repeated cyclically over the C channels and scaled by 3 / C, so a C-channel image
//! that repeats a grey value gives the stem the response it gives a grey RGB picture.

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::store::{
    ApplyResult, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};
use burn::tensor::{Tensor, TensorData};

use super::resnet::{ResNet, ResNetConfig};

/// What loading the weights did, for the manifest.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct PretrainedReport {
    pub path: std::path::PathBuf,
    pub sha256: String,
    /// Parameters and buffers set from the file (the stem counted when adapted).
    pub loaded: usize,
    /// Input channels of the file's stem and of the model.
    pub stem_channels: [usize; 2],
}

const RENAMES: [(&str, &str); 2] = [
    (r"\.downsample\.0\.", ".downsample.conv."),
    (r"\.downsample\.1\.", ".downsample.bn."),
];

fn not_head(path: &str, _container: &str) -> bool {
    !path.starts_with("fc.")
}

fn neither_head_nor_stem(path: &str, container: &str) -> bool {
    not_head(path, container) && path != "conv1.weight"
}

/// Loads torchvision-format ResNet18 weights into `model` (built from `config`), keeping its
/// freshly initialised head. Fails, naming the keys, when the file is not a ResNet18.
pub fn load_torchvision(
    mut model: ResNet,
    config: &ResNetConfig,
    path: &Path,
) -> Result<(ResNet, PretrainedReport)> {
    if config.width != 64 || config.blocks != [2, 2, 2, 2] {
        bail!(
            "{}: torchvision's ResNet18 weights need model.width = 64 (got {})",
            path.display(),
            config.width
        );
    }
    let adapt_stem = config.in_channels != 3;
    let filter = if adapt_stem {
        neither_head_nor_stem
    } else {
        not_head
    };
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (result, stem) = match extension.as_str() {
        "pth" | "pt" => {
            let mut store = PytorchStore::from_file(path)
                .map_indices_contiguous(false)
                .allow_partial(true)
                .with_key_remapping(r"^module\.", "");
            for (from, to) in RENAMES {
                store = store.with_key_remapping(from, to);
            }
            apply(&mut model, store.with_predicate(filter), path)?
        }
        "safetensors" => {
            let mut store = SafetensorsStore::from_file(path)
                .with_from_adapter(PyTorchToBurnAdapter)
                .map_indices_contiguous(false)
                .allow_partial(true);
            for (from, to) in RENAMES {
                store = store.with_key_remapping(from, to);
            }
            apply(&mut model, store.with_predicate(filter), path)?
        }
        _ => bail!(
            "{}: pretrained weights must be .pth, .pt or .safetensors",
            path.display()
        ),
    };
    check_complete(&result, path)?;

    let stem_channels = [stem.shape[1], config.in_channels];
    if stem.shape != [64, 3, 7, 7] {
        bail!(
            "{}: conv1.weight has shape {:?}, torchvision's ResNet18 has [64, 3, 7, 7]",
            path.display(),
            stem.shape
        );
    }
    if adapt_stem {
        let device = model.conv1.weight.device();
        let adapted = adapt_input_conv(&stem.values, config.in_channels);
        let tensor = Tensor::<4>::from_data(
            TensorData::new(adapted, [64, config.in_channels, 7, 7]),
            &device,
        );
        model.conv1.weight = model.conv1.weight.map(|_| tensor);
    }
    let report = PretrainedReport {
        path: path.to_path_buf(),
        sha256: crate::artefact::sha256_file(path)?,
        loaded: result.applied.len() + usize::from(adapt_stem),
        stem_channels,
    };
    tracing::info!(
        path = %path.display(),
        loaded = report.loaded,
        adapted_stem = adapt_stem,
        "pretrained weights loaded"
    );
    Ok((model, report))
}

/// Reads the stem weight (for adapting it) and loads every other kept tensor into `model`.
fn apply<S: ModuleStore>(
    model: &mut ResNet,
    mut store: S,
    path: &Path,
) -> Result<(ApplyResult, Stem)> {
    let stem = stem_weight(&mut store, path)?;
    let result = model
        .load_from(&mut store)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    Ok((result, stem))
}

struct Stem {
    shape: Vec<usize>,
    values: Vec<f32>,
}

fn stem_weight<S: ModuleStore>(store: &mut S, path: &Path) -> Result<Stem> {
    let tensor = store
        .get_tensor("conv1.weight")
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?
        .with_context(|| {
            format!(
                "{}: no conv1.weight: not a torchvision ResNet state dict",
                path.display()
            )
        })?;
    let data = burn::store::bridge::to_data(tensor)
        .map_err(|e| anyhow::anyhow!("{}: conv1.weight: {e:?}", path.display()))?;
    let shape = data.shape().to_vec();
    let values = data
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{}: conv1.weight: {e:?}", path.display()))?;
    Ok(Stem { shape, values })
}

/// Every backbone tensor must have come from the file, and the file must hold nothing but a
/// ResNet18's tensors.
fn check_complete(result: &ApplyResult, path: &Path) -> Result<()> {
    if let Some(e) = result.errors.first() {
        bail!("{}: {e:?}", path.display());
    }
    let missing: Vec<&str> = result
        .missing
        .iter()
        .map(|(p, _)| p.as_str())
        .filter(|p| !p.starts_with("fc.") && *p != "conv1.weight")
        .collect();
    if !missing.is_empty() {
        bail!(
            "{}: not a torchvision ResNet18: {} tensor(s) missing, e.g. {}",
            path.display(),
            missing.len(),
            missing[..missing.len().min(5)].join(", ")
        );
    }
    let unexpected: Vec<&str> = result
        .unused
        .iter()
        .map(String::as_str)
        .filter(|k| {
            !k.ends_with("num_batches_tracked") && !k.starts_with("fc.") && *k != "conv1.weight"
        })
        .collect();
    if !unexpected.is_empty() {
        bail!(
            "{}: not a torchvision ResNet18: {} unexpected tensor(s), e.g. {}",
            path.display(),
            unexpected.len(),
            unexpected[..unexpected.len().min(5)].join(", ")
        );
    }
    Ok(())
}

/// timm's `adapt_input_conv` on a [64, 3, 7, 7] stem: the weights for `channels` inputs.
pub fn adapt_input_conv(rgb: &[f32], channels: usize) -> Vec<f32> {
    const K: usize = 7 * 7;
    let mut out = vec![0f32; 64 * channels * K];
    for o in 0..64 {
        let filter = &rgb[o * 3 * K..(o + 1) * 3 * K];
        let target = &mut out[o * channels * K..(o + 1) * channels * K];
        if channels == 1 {
            for c in 0..3 {
                for k in 0..K {
                    target[k] += filter[c * K + k];
                }
            }
        } else {
            let scale = 3.0 / channels as f32;
            for c in 0..channels {
                for k in 0..K {
                    target[c * K + k] = filter[(c % 3) * K + k] * scale;
                }
            }
        }
    }
    out
}

/// Writes `model` as a safetensors file with torchvision's key names and layouts (what
/// `torch.nn.Module.load_state_dict` of a torchvision resnet18 takes, less the
/// `num_batches_tracked` counters). The inverse of `load_torchvision` for `.safetensors`.
pub fn save_torchvision_safetensors(model: &ResNet, path: &Path) -> Result<()> {
    let mut store = SafetensorsStore::from_file(path)
        .with_to_adapter(burn::store::BurnToPyTorchAdapter)
        .with_key_remapping(r"\.downsample\.conv\.", ".downsample.0.")
        .with_key_remapping(r"\.downsample\.bn\.", ".downsample.1.");
    model
        .save_into(&mut store)
        .map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::tensor::{Device, Distribution};

    /// A 3-channel ResNet18 whose BatchNorm statistics are not the initial 0 and 1, so a
    /// loader that skipped them would be caught.
    fn source(device: &Device) -> ResNet {
        let ad = device.clone().autodiff();
        let model = crate::model::init_seeded(&ResNetConfig::new(3, 5), &ad, 3);
        crate::model::seeded(device, 3, || {
            for _ in 0..3 {
                let x = Tensor::<4>::random([4, 3, 32, 32], Distribution::Normal(0.5, 1.0), &ad);
                drop(model.forward(x));
            }
        });
        model.valid()
    }

    fn features(model: &ResNet, x: Tensor<4>) -> Vec<f32> {
        model
            .features(x)
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .unwrap()
    }

    fn max_difference(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max)
    }

    /// Two seeded random images of `channels` x 32 x 32.
    fn input(device: &Device, channels: usize) -> Tensor<4> {
        crate::model::seeded(device, 5, || {
            Tensor::<4>::random([2, channels, 32, 32], Distribution::Default, device)
        })
    }

    #[test]
    fn torchvision_safetensors_round_trip_sets_every_backbone_weight() {
        let device = Device::flex();
        let src = source(&device);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resnet18.safetensors");
        save_torchvision_safetensors(&src, &path).unwrap();

        // The file speaks torchvision's names.
        let mut store = SafetensorsStore::from_file(&path);
        let keys = store.keys().unwrap();
        for key in [
            "conv1.weight",
            "bn1.weight",
            "bn1.running_var",
            "layer2.0.downsample.0.weight",
            "layer2.0.downsample.1.bias",
            "layer4.1.bn2.running_mean",
            "fc.weight",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} not in {keys:?}");
        }
        let fc = store.get_tensor("fc.weight").unwrap().unwrap();
        assert_eq!(
            fc.shape.to_vec(),
            vec![5, 512],
            "torch's Linear is [out, in]"
        );

        // A fresh model with another head: the backbone's output equals the source's.
        let config = ResNetConfig::new(3, 2);
        let fresh = crate::model::init_seeded(&config, &device, 99);
        let (loaded, report) = load_torchvision(fresh, &config, &path).unwrap();
        let loaded = loaded.valid();
        assert_eq!(report.stem_channels, [3, 3]);
        // 20 conv/downsample weights + 20 BatchNorms x 4 tensors.
        assert_eq!(report.loaded, 20 + 20 * 4);
        let x = input(&device, 3);
        let (a, b) = (features(&src, x.clone()), features(&loaded, x));
        let worst = max_difference(&a, &b);
        assert!(worst < 1e-5, "backbone outputs differ by {worst}");
        assert_eq!(loaded.fc.weight.dims(), [512, 2]);
    }

    #[test]
    fn a_one_channel_stem_sums_the_rgb_filters() {
        let device = Device::flex();
        let src = source(&device);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resnet18.safetensors");
        save_torchvision_safetensors(&src, &path).unwrap();
        let config = ResNetConfig::new(1, 2);
        let fresh = crate::model::init_seeded(&config, &device, 6);
        let (loaded, report) = load_torchvision(fresh, &config, &path).unwrap();
        assert_eq!(report.stem_channels, [3, 1]);
        // A grey image seen by the 1-channel model is the same grey in R, G and B for the source.
        let grey = input(&device, 1);
        let rgb = grey.clone().repeat_dim(1, 3);
        let (a, b) = (features(&src, rgb), features(&loaded.valid(), grey));
        let worst = max_difference(&a, &b);
        assert!(worst < 1e-4, "outputs differ by {worst}");
    }

    #[test]
    fn more_channels_repeat_the_filters_scaled_by_three_over_c() {
        let rgb: Vec<f32> = (0..64 * 3 * 49).map(|i| i as f32).collect();
        let four = adapt_input_conv(&rgb, 4);
        // Output filter 1, input channel 3 is the red filter (3 % 3 = 0) times 3/4.
        let (o, c, k) = (1, 3, 10);
        assert_eq!(four[(o * 4 + c) * 49 + k], rgb[(o * 3) * 49 + k] * 0.75);
        assert_eq!(four[(o * 4 + 2) * 49 + k], rgb[(o * 3 + 2) * 49 + k] * 0.75);
    }

    #[test]
    fn a_file_that_is_not_a_resnet18_is_refused_by_name() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resnet10.safetensors");
        let small = crate::model::init_seeded(
            &ResNetConfig::new(3, 2).with_blocks([1, 1, 1, 1]),
            &device,
            7,
        );
        save_torchvision_safetensors(&small, &path).unwrap();
        let config = ResNetConfig::new(3, 2);
        let fresh = crate::model::init_seeded(&config, &device, 7);
        let err = load_torchvision(fresh, &config, &path).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("resnet10.safetensors"), "{text}");
        assert!(
            text.contains("missing") && text.contains("layer1.1."),
            "{text}"
        );

        let narrow = ResNetConfig::new(3, 2).with_width(8);
        let fresh = crate::model::init_seeded(&narrow, &device, 7);
        let err = load_torchvision(fresh, &narrow, &path).unwrap_err();
        assert!(format!("{err:#}").contains("width = 64"));
    }

    /// Writes `model` as a `.pth` the way `torch.save(model.state_dict())` does (through
    /// tests/helpers/write_pth.py), `num_batches_tracked` counters included.
    fn save_pth(model: &ResNet, dir: &Path) -> std::path::PathBuf {
        let safetensors = dir.join("source.safetensors");
        save_torchvision_safetensors(model, &safetensors).unwrap();
        let mut store = SafetensorsStore::from_file(&safetensors);
        let raw = dir.join("raw");
        std::fs::create_dir_all(&raw).unwrap();
        let mut entries = Vec::new();
        for (i, (name, tensor)) in store.get_all_tensors().unwrap().iter().enumerate() {
            let data = burn::store::bridge::to_data(tensor)
                .unwrap()
                .convert::<f32>();
            let bytes: Vec<u8> = data
                .try_to_vec::<f32>()
                .unwrap()
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            std::fs::write(raw.join(format!("{i}.bin")), bytes).unwrap();
            entries.push(serde_json::json!({
                "name": name, "shape": tensor.shape.to_vec(), "dtype": "f32", "file": format!("{i}.bin")
            }));
            if let Some(prefix) = name.strip_suffix("running_mean") {
                let file = format!("{i}.count");
                std::fs::write(raw.join(&file), 7i64.to_le_bytes()).unwrap();
                entries.push(serde_json::json!({
                    "name": format!("{prefix}num_batches_tracked"), "shape": [], "dtype": "i64", "file": file
                }));
            }
        }
        std::fs::write(
            raw.join("tensors.json"),
            serde_json::to_vec(&entries).unwrap(),
        )
        .unwrap();
        let pth = dir.join("resnet18.pth");
        let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/write_pth.py");
        let status = std::process::Command::new("python3")
            .arg(helper)
            .arg(&raw)
            .arg(&pth)
            .status()
            .expect("python3 runs");
        assert!(status.success());
        pth
    }

    #[test]
    fn a_torch_save_checkpoint_loads_every_backbone_weight() {
        let device = Device::flex();
        let src = source(&device);
        let dir = tempfile::tempdir().unwrap();
        let pth = save_pth(&src, dir.path());
        let config = ResNetConfig::new(3, 2);
        let fresh = crate::model::init_seeded(&config, &device, 12);
        let (loaded, report) = load_torchvision(fresh, &config, &pth).unwrap();
        assert_eq!(report.loaded, 100);
        let x = input(&device, 3);
        let (a, b) = (features(&src, x.clone()), features(&loaded.valid(), x));
        let worst = max_difference(&a, &b);
        assert!(worst < 1e-5, "backbone outputs differ by {worst}");
    }
}
