//! Choosing the device to train on from a name given on the command line.
//!
//! `cpu` (burn's pure-Rust `flex` backend) is always available. Other backends are compiled in
//! by cargo features: `tch` (LibTorch: `tch`, `tch-cuda:N`, `tch-mps`) and `wgpu` (`wgpu`,
//! `wgpu-cpu`).

use burn::tensor::Device;

/// A device name that is unknown or whose backend was not compiled in.
#[derive(Debug, thiserror::Error)]
#[error("unknown device `{name}`; available in this build: {available}")]
pub struct DeviceError {
    /// The name given.
    pub name: String,
    /// The names this build accepts.
    pub available: String,
}

/// Names accepted by [`parse_device`] in this build.
pub fn available_devices() -> Vec<&'static str> {
    let mut names = vec!["cpu"];
    if cfg!(feature = "tch") {
        names.extend(["tch", "tch-cuda:N", "tch-mps"]);
    }
    if cfg!(feature = "wgpu") {
        names.extend(["wgpu", "wgpu-cpu"]);
    }
    names
}

/// Returns the device called `name` (see the module documentation), without autodiff.
pub fn parse_device(name: &str) -> Result<Device, DeviceError> {
    let unknown = || DeviceError {
        name: name.to_owned(),
        available: available_devices().join(", "),
    };
    match name {
        "cpu" | "flex" => Ok(Device::flex()),
        #[cfg(feature = "tch")]
        "tch" => Ok(Device::libtorch()),
        #[cfg(feature = "tch")]
        "tch-mps" => Ok(Device::libtorch_mps()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(feature = "wgpu")]
        "wgpu-cpu" => Ok(Device::wgpu(burn::tensor::DeviceKind::Cpu)),
        _ => {
            #[cfg(feature = "tch")]
            if let Some(index) = name.strip_prefix("tch-cuda:") {
                let index: usize = index.parse().map_err(|_| unknown())?;
                return Ok(Device::libtorch_cuda(index));
            }
            Err(unknown())
        }
    }
}
