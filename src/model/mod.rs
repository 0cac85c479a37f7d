//! The CNN: ResNet18 in Burn, its training loop and metrics.

pub mod metrics;
pub mod resnet;
pub mod split;
pub mod train;

pub use metrics::Metrics;
pub use resnet::{ResNet, ResNetConfig};

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
        other => bail!("model.device: unknown device '{other}' (expected \"cpu\" or \"wgpu\")"),
    }
}
