//! The one place a compute device is chosen.

use candle_core::Device;

/// candle asks for the thread count on every op, and without `RAYON_NUM_THREADS` that reads
/// /proc/cpuinfo each time (about 3,000 times a second in training). Call this once, before any
/// thread starts (the CLI's and the benches' `main`), to fix it: to `threads` when given (the
/// CLI's `-j`), else to an existing `RAYON_NUM_THREADS`, else to Slurm's `SLURM_CPUS_PER_TASK`
/// (a task may see every core of its node but own only these), else to the available parallelism.
pub fn pin_thread_count(threads: Option<usize>) {
    let from_env = |name| std::env::var(name).ok().and_then(|v| v.trim().parse::<usize>().ok()).filter(|&n| n > 0);
    let count = threads
        .or_else(|| from_env("RAYON_NUM_THREADS"))
        .or_else(|| from_env("SLURM_CPUS_PER_TASK"))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // Single-threaded at this point: nothing else reads the environment concurrently.
    std::env::set_var("RAYON_NUM_THREADS", count.to_string());
}

/// Compute device named on the command line or in an experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
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
