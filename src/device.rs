//! The one place a compute device is chosen, and the runtime every command computes with.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device};

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

/// The kind of compute device (what a store key records: two GPUs of a node give the same numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    #[default]
    Cpu,
    Cuda,
}

/// A device named on the command line: `cpu`, `cuda` (GPU 0) or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceSpec {
    pub kind: DeviceKind,
    /// The GPU's ordinal (0 on the CPU).
    pub ordinal: usize,
}

impl DeviceSpec {
    pub const CPU: DeviceSpec = DeviceSpec { kind: DeviceKind::Cpu, ordinal: 0 };

    pub fn cuda(ordinal: usize) -> Self {
        Self { kind: DeviceKind::Cuda, ordinal }
    }
}

impl From<DeviceKind> for DeviceSpec {
    fn from(kind: DeviceKind) -> Self {
        Self { kind, ordinal: 0 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeParseError {
    #[error("unknown device `{0}`: use cpu, cuda or cuda:N (N the GPU's ordinal, from 0)")]
    Device(String),
    #[error("unknown dtype `{0}`: use f32, bf16 or f16")]
    Dtype(String),
}

impl FromStr for DeviceSpec {
    type Err = RuntimeParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || RuntimeParseError::Device(text.to_string());
        match text.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::CPU),
            "cuda" => Ok(Self::cuda(0)),
            other => {
                let ordinal = other.strip_prefix("cuda:").ok_or_else(bad)?;
                // Digits only: `cuda:+1` or `cuda: 1` are typos, not GPU 1.
                if ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                ordinal.parse().map(Self::cuda).map_err(|_| bad())
            }
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            DeviceKind::Cpu => write!(f, "cpu"),
            DeviceKind::Cuda => write!(f, "cuda:{}", self.ordinal),
        }
    }
}

/// The precision weights and activations are computed in. Batch-norm folding is f64 and the
/// classifier's softmax and every statistic f32/f64 whatever this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    Bf16,
    F16,
}

impl Precision {
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
            Precision::F16 => DType::F16,
        }
    }

    pub fn name(self) -> &'static str {
        self.dtype().as_str()
    }
}

impl FromStr for Precision {
    type Err = RuntimeParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(Precision::F32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            "f16" | "float16" | "half" => Ok(Precision::F16),
            _ => Err(RuntimeParseError::Dtype(text.to_string())),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where and how models compute: built once (the CLI's `main`) and passed down to eval, audit,
/// train and plan. Store keys take device and dtype from it (see `eval::record_placement`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Runtime {
    pub device: DeviceSpec,
    pub dtype: Precision,
    /// The inference implementation: the fast path (`model::nhwc`) applies to f32 on the CPU
    /// only; elsewhere the model runs on candle's ops, and the store key says so.
    pub backend: crate::model::Backend,
    /// Allow TF32 (10-bit mantissa) in f32 matrix products on GPUs. Off by default: an audit
    /// compares error rates to hundredths of a percent, and TF32 rounds products to 10 mantissa bits.
    pub tf32: bool,
    /// Prepared chunks queued ahead of the model (`--prefetch`); `None` sizes the queue by the
    /// protocol's views (`engine::Settings::prefetch_depth`). Changes speed and memory, never numbers.
    pub prefetch: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "--device {device} needs a build with `--features cuda` (this binary was built without it; \
         `make gpu-check-build` builds one)"
    )]
    CudaNotBuilt { device: DeviceSpec },
    #[error("cannot open CUDA device {ordinal}: {error}")]
    Cuda { ordinal: usize, error: candle_core::Error },
    #[error("--tf32 applies to f32 on a CUDA device only (this run: {dtype} on {device})")]
    Tf32Unused { device: DeviceSpec, dtype: Precision },
}

impl DeviceKind {
    /// Device 0 of this kind.
    pub fn open(self) -> Result<Device, DeviceError> {
        DeviceSpec::from(self).open()
    }
}

impl DeviceSpec {
    pub fn open(self) -> Result<Device, DeviceError> {
        match self.kind {
            DeviceKind::Cpu => Ok(Device::Cpu),
            DeviceKind::Cuda if cfg!(feature = "cuda") => {
                Device::new_cuda(self.ordinal).map_err(|error| DeviceError::Cuda { ordinal: self.ordinal, error })
            }
            DeviceKind::Cuda => Err(DeviceError::CudaNotBuilt { device: self }),
        }
    }
}

impl Runtime {
    /// The CPU in f32 with `backend` (the library's default runtime is the fast path).
    pub fn cpu(backend: crate::model::Backend) -> Self {
        Self { backend, ..Self::default() }
    }

    /// Opens the device and applies the GPU math settings. A `--tf32` that cannot apply is an
    /// error rather than a silently ignored flag.
    pub fn open(&self) -> Result<Device, DeviceError> {
        if self.tf32 && (self.device.kind != DeviceKind::Cuda || self.dtype != Precision::F32) {
            return Err(DeviceError::Tf32Unused { device: self.device, dtype: self.dtype });
        }
        let device = self.device.open()?;
        // Process-wide in candle; every run of a process uses one runtime.
        candle_core::cuda::set_gemm_reduced_precision_f32(self.tf32);
        Ok(device)
    }

    /// Whether this runtime can use the fast CPU path (f32 on the CPU, `Backend::Fast`).
    pub fn fast_path_applies(&self) -> bool {
        self.backend == crate::model::Backend::Fast
            && self.device.kind == DeviceKind::Cpu
            && self.dtype == Precision::F32
    }

    /// Why the requested fast path does not apply on the CPU (a note for the report), if it does
    /// not. A GPU always runs candle's ops, as documented; that needs no note.
    pub fn fallback_note(&self) -> Option<String> {
        if self.backend != crate::model::Backend::Fast
            || self.device.kind != DeviceKind::Cpu
            || self.fast_path_applies()
        {
            return None;
        }
        Some(format!(
            "runtime {self}: the fast CPU path computes f32 on the CPU only, so these models ran on \
             candle's ops (the store keys record backend `candle`)"
        ))
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = match self.backend {
            crate::model::Backend::Fast => "fast",
            crate::model::Backend::Candle => "candle",
        };
        write!(f, "{}, {}, backend {backend}", self.device, self.dtype)?;
        if self.tf32 {
            write!(f, ", tf32")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices_and_refuses_typos() {
        assert_eq!("cpu".parse(), Ok(DeviceSpec::CPU));
        assert_eq!("cuda".parse(), Ok(DeviceSpec::cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceSpec::cuda(3)));
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:+1", "cuda:-1", "cpu:0", ""] {
            assert!(matches!(bad.parse::<DeviceSpec>(), Err(RuntimeParseError::Device(_))), "{bad}");
        }
        assert_eq!(DeviceSpec::cuda(2).to_string(), "cuda:2");
    }

    #[test]
    fn parses_dtypes() {
        assert_eq!("bf16".parse(), Ok(Precision::Bf16));
        assert_eq!("F16".parse(), Ok(Precision::F16));
        assert_eq!("f32".parse(), Ok(Precision::F32));
        assert!(matches!("f64".parse::<Precision>(), Err(RuntimeParseError::Dtype(_))));
        assert!(matches!("int8".parse::<Precision>(), Err(RuntimeParseError::Dtype(_))));
    }

    #[test]
    fn cuda_without_the_feature_is_an_error_naming_the_flag() {
        if cfg!(feature = "cuda") {
            return;
        }
        let error = DeviceSpec::cuda(1).open().unwrap_err();
        assert!(error.to_string().contains("--device cuda:1 needs a build with `--features cuda`"), "{error}");
    }

    #[test]
    fn tf32_off_the_gpu_is_refused() {
        let runtime = Runtime { tf32: true, ..Runtime::default() };
        assert!(matches!(runtime.open(), Err(DeviceError::Tf32Unused { .. })));
    }

    #[test]
    fn only_f32_on_the_cpu_takes_the_fast_path() {
        let bf16 = Runtime { dtype: Precision::Bf16, ..Runtime::default() };
        assert!(Runtime::default().fast_path_applies() && !bf16.fast_path_applies());
        assert!(bf16.fallback_note().is_some_and(|n| n.contains("candle")));
        assert!(Runtime::default().fallback_note().is_none());
    }
}
