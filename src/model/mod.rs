//! The CNN: ResNet18 in Burn, its training loop and metrics.

pub(crate) mod adam;
pub(crate) mod checkpoint;
pub(crate) mod conv;
pub(crate) mod ema;
pub(crate) mod flex;
pub(crate) mod metrics;
pub(crate) mod mixup;
pub(crate) mod norm;
pub(crate) mod pretrained;
pub(crate) mod resnet;
pub(crate) mod schedule;
pub(crate) mod settings;
pub(crate) mod split;
pub(crate) mod train;

pub use metrics::{Metrics, argmax};
pub use pretrained::{adapt_input_conv, save_torchvision_safetensors};
pub use resnet::{ConvInit, ResNet, ResNetConfig, Stem};
pub use train::{load_record, predict_proba};

use anyhow::{Result, bail};
use burn::tensor::Device;

/// The Burn device named in the pipeline file.
pub fn device(name: &str) -> Result<Device> {
    match name {
        "cpu" | "flex" => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(Default::default())),
        #[cfg(not(feature = "wgpu"))]
        "wgpu" => bail!("model.device = \"wgpu\" needs a build with `--features wgpu`"),
        // burn-tch is marked deprecated in Burn 0.22 but is still the fastest CPU trainer here
        // (docs/training.md, "Speed").
        #[cfg(feature = "tch")]
        #[allow(deprecated)]
        "libtorch" => Ok(Device::libtorch()),
        #[cfg(not(feature = "tch"))]
        "libtorch" => bail!(
            "model.device = \"libtorch\" needs a build with `--features tch` (scripts/setup-libtorch.sh)"
        ),
        other => bail!(
            "model.device: unknown device '{other}' (expected \"cpu\", \"wgpu\" or \"libtorch\")"
        ),
    }
}

/// Burn's random generator is one per process: seeding it and drawing from it hold this lock,
/// so trainings running side by side (the tests do) each draw their seed's own sequence.
static SEEDED: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `f` with Burn's generator seeded with `seed`, no other seeded draw in between.
pub fn seeded<T>(device: &Device, seed: u64, f: impl FnOnce() -> T) -> T {
    let _guard = SEEDED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    device.seed(seed);
    f()
}

/// Holds Burn's generator for a test that draws from it without a seed, so those draws
/// cannot land between another test's seeding and its draws (which must give the same values
/// every time: the tests that compare two trainings rely on it).
#[cfg(test)]
pub(crate) fn hold_generator() -> std::sync::MutexGuard<'static, ()> {
    SEEDED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A ResNet initialised from `seed`. Burn initialises parameters lazily, on first use: every
/// parameter is touched here, under the lock, so the draws happen in a fixed order.
pub fn init_seeded(config: &ResNetConfig, device: &Device, seed: u64) -> ResNet {
    struct Touch;
    impl burn::module::ModuleVisitor for Touch {
        fn visit_float<const D: usize>(
            &mut self,
            param: &burn::module::Param<burn::tensor::Tensor<D>>,
        ) {
            drop(param.val());
        }
    }
    seeded(device, seed, || {
        let model = config.init(device);
        burn::module::Module::visit(&model, &mut Touch);
        model
    })
}
