//! The one place a compute device is chosen.

use candle_core::Device;

/// Compute device named on the command line or in an experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    #[default]
    Cpu,
    Cuda,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("--device cuda needs a build with `--features cuda` (this binary was built without it)")]
    CudaNotBuilt,
    #[error("cannot open CUDA device {ordinal}: {error}")]
    Cuda { ordinal: usize, error: candle_core::Error },
}

impl DeviceKind {
    pub fn open(self) -> Result<Device, DeviceError> {
        match self {
            DeviceKind::Cpu => Ok(Device::Cpu),
            DeviceKind::Cuda if cfg!(feature = "cuda") => {
                Device::new_cuda(0).map_err(|error| DeviceError::Cuda { ordinal: 0, error })
            }
            DeviceKind::Cuda => Err(DeviceError::CudaNotBuilt),
        }
    }
}
