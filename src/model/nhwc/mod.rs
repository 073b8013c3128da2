//! The fast CPU inference path: NHWC activations, convolutions as tiled GEMMs with fused
//! epilogues, as candle custom ops (forward only). Each op owns its packed, BN-folded weights,
//! so model code stays candle code: `x.apply_op1_no_bwd(&conv)`.
//!
//! Tensors on this path are [N, H, W, C], contiguous, f32, on the CPU. `to_nhwc` / `to_nchw`
//! convert at the ends of the network.

mod conv;
mod pool;
mod winograd;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

pub use conv::{ConvGeometry, Epilogue, PackedConv};
pub use winograd::WinogradConv;

use crate::model::StemPool;

/// Makes the C allocator keep freed activation buffers for reuse instead of returning them to
/// the system. A process-wide policy, so the program's `main` sets it (the CLI, the benches, the
/// memory test), not the library; models are correct without it, only slower.
///
/// Every op returns a fresh output buffer (candle owns it), up to 51 MB at batch 16. glibc
/// serves blocks above 32 MB with `mmap` and unmaps them on free, so each forward pass would
/// page-fault in ~1 GB of zeroed memory (measured: the stem and the 64→256 1x1 convolutions ran
/// 1.7–2.3× slower). With mmap off and trimming off, a freed block is reused by the next pass:
/// the resident set grows to one pass's peak and stays there (see `tests/memory.rs`).
pub fn keep_freed_activations() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only changes glibc's allocation policy; it is thread-safe.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        }
    });
}

/// Deterministic values in [−0.5, 0.5) for the kernels' tests (a small LCG: no dependency).
#[cfg(test)]
fn test_values(len: usize, seed: u32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(1664525).wrapping_add(1013904223);
            (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

/// [N, C, H, W] → [N, H, W, C] (contiguous).
pub fn to_nhwc(x: &Tensor) -> Result<Tensor> {
    x.permute((0, 2, 3, 1))?.contiguous()
}

/// [N, H, W, C] → [N, C, H, W] (contiguous).
pub fn to_nchw(x: &Tensor) -> Result<Tensor> {
    x.permute((0, 3, 1, 2))?.contiguous()
}

/// (n, h, w, c) of an NHWC tensor.
type Dims = (usize, usize, usize, usize);

/// The f32 data and dims of a contiguous NHWC tensor, or an error naming the op.
fn nhwc_slice<'a>(op: &str, storage: &'a CpuStorage, layout: &Layout) -> Result<(&'a [f32], Dims)> {
    let CpuStorage::F32(data) = storage else {
        bail!("{op}: the fast CPU path computes in f32, got {:?}", storage.dtype())
    };
    let dims = layout.shape().dims4().map_err(|_| {
        candle_core::Error::Msg(format!("{op}: expected an [N, H, W, C] tensor, got shape {:?}", layout.dims()))
    })?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok((&data[start..end], dims)),
        None => bail!("{op}: expected a contiguous NHWC tensor"),
    }
}

/// A convolution with its batch norm folded in, a bias, and optionally a ReLU; as a two-input
/// op it adds a residual (the block's shortcut) before the ReLU.
#[derive(Debug, Clone)]
pub struct NhwcConv {
    geometry: ConvGeometry,
    algorithm: Algorithm,
    relu: bool,
}

/// How the convolution is computed.
#[derive(Debug, Clone)]
enum Algorithm {
    /// im2col tiles (or the input in place, for 1x1) and one GEMM per tile.
    Gemm(PackedConv),
    /// 3x3 stride 1: Winograd F(2x2, 3x3), 2.25× fewer multiply-adds, when the input has at
    /// least `MIN_WINOGRAD_TILES` 2x2 output tiles; below that the layer is bound by reading
    /// its weights, of which Winograd's are 16/9 as many, and the direct GEMM is used.
    Winograd { winograd: WinogradConv, direct: PackedConv },
}

/// Measured on ResNet-50 (2 threads, AVX-512): at batch 1, layer3 (49 tiles) is even and
/// layer4 (16 tiles) 2× slower with Winograd; from layer2 (196 tiles) on it is 2–3× faster.
const MIN_WINOGRAD_TILES: usize = 64;

impl NhwcConv {
    /// `weight`: [out, in, k, k] with the BN folded in; `bias`: [out]; both f32 on the CPU.
    pub fn new(weight: &Tensor, bias: &Tensor, stride: usize, padding: usize, relu: bool) -> Result<Self> {
        let (out_channels, in_channels, kh, kw) = weight.dims4()?;
        if kh != kw {
            bail!("fast CPU path: only square kernels, got {kh}x{kw}")
        }
        let geometry = ConvGeometry { in_channels, out_channels, kernel: kh, stride, padding };
        let weights = weight.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let bias = bias.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
        let direct = PackedConv::new(geometry, &weights, &bias).map_err(candle_core::Error::Msg)?;
        let algorithm = if (kh, stride, padding) == (3, 1, 1) {
            let winograd =
                WinogradConv::new(in_channels, out_channels, &weights, &bias).map_err(candle_core::Error::Msg)?;
            Algorithm::Winograd { winograd, direct }
        } else {
            Algorithm::Gemm(direct)
        };
        Ok(Self { geometry, algorithm, relu })
    }

    fn run(&self, input: &[f32], (n, h, w, c): Dims, residual: Option<&[f32]>) -> Result<(CpuStorage, Shape)> {
        let g = &self.geometry;
        if c != g.in_channels {
            bail!("{}: expected {} input channels, got [{n}, {h}, {w}, {c}]", self.name_str(), g.in_channels)
        }
        let epilogue = Epilogue { residual, relu: self.relu };
        let fail = |e: String| candle_core::Error::Msg(format!("{}: {e}", self.name_str()));
        let (out, oh, ow) = match &self.algorithm {
            Algorithm::Gemm(direct) => direct.forward(input, n, h, w, epilogue).map_err(fail)?,
            Algorithm::Winograd { winograd, .. } if n * h.div_ceil(2) * w.div_ceil(2) >= MIN_WINOGRAD_TILES => {
                (winograd.forward(input, n, h, w, epilogue).map_err(fail)?, h, w)
            }
            Algorithm::Winograd { direct, .. } => direct.forward(input, n, h, w, epilogue).map_err(fail)?,
        };
        Ok((CpuStorage::F32(out), Shape::from((n, oh, ow, g.out_channels))))
    }

    fn name_str(&self) -> &'static str {
        "nhwc-conv"
    }
}

impl CustomOp1 for NhwcConv {
    fn name(&self) -> &'static str {
        self.name_str()
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (input, dims) = nhwc_slice(self.name_str(), storage, layout)?;
        self.run(input, dims, None)
    }
}

impl CustomOp2 for NhwcConv {
    fn name(&self) -> &'static str {
        "nhwc-conv-residual"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (input, dims) = nhwc_slice(self.name_str(), s1, l1)?;
        let (residual, _) = nhwc_slice("nhwc-conv residual", s2, l2)?;
        self.run(input, dims, Some(residual))
    }
}

/// The stem's 3x3 stride-2 max pool, in torchvision's or Caffe's convention.
#[derive(Debug, Clone, Copy)]
pub struct NhwcMaxPool(pub StemPool);

impl CustomOp1 for NhwcMaxPool {
    fn name(&self) -> &'static str {
        "nhwc-max-pool"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (input, (n, h, w, c)) = nhwc_slice(self.name(), storage, layout)?;
        let Some((out, oh, ow)) = pool::max_pool_3x3_s2(input, (n, h, w, c), self.0) else {
            bail!("{}: a 3x3 window does not fit a {h}x{w} input", self.name())
        };
        Ok((CpuStorage::F32(out), Shape::from((n, oh, ow, c))))
    }
}
