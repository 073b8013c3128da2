//! Convolution + batch norm in eval mode, and the fold of one into the other.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, VarBuilder};

use super::nhwc::NhwcConv;

/// Batch norm in eval mode: y = (x − mean) / sqrt(var + eps) · γ + β, kept as a per-channel
/// scale and shift. Tensor names follow torchvision: weight, bias, running_mean, running_var.
#[derive(Debug, Clone)]
pub struct BatchNormEval {
    scale: Tensor,
    shift: Tensor,
}

impl BatchNormEval {
    pub fn new(vb: VarBuilder, channels: usize, eps: f64) -> Result<Self> {
        let (scale, shift) = bn_scale_shift(&vb, channels, eps)?;
        let dtype = vb.dtype();
        Ok(Self {
            scale: scale.to_dtype(dtype)?.reshape((1, channels, 1, 1))?,
            shift: shift.to_dtype(dtype)?.reshape((1, channels, 1, 1))?,
        })
    }
}

impl Module for BatchNormEval {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.broadcast_mul(&self.scale)?.broadcast_add(&self.shift)
    }
}

/// γ / sqrt(var + eps) and β − mean · γ / sqrt(var + eps), computed in f64 from the stored
/// values (read as f64, not first rounded to a bf16/f16 compute dtype).
fn bn_scale_shift(vb: &VarBuilder, channels: usize, eps: f64) -> Result<(Tensor, Tensor)> {
    let vb = vb.to_dtype(DType::F64);
    let get = |name: &str| vb.get(channels, name);
    let (gamma, beta) = (get("weight")?, get("bias")?);
    let (mean, var) = (get("running_mean")?, get("running_var")?);
    let scale = gamma.div(&(var + eps)?.sqrt()?)?;
    let shift = beta.sub(&mean.mul(&scale)?)?;
    Ok((scale, shift))
}

/// A bias-free convolution followed by batch norm. With `fold_bn` the norm is folded into
/// the convolution's weight and bias (one op instead of three; outputs move by ~1e-7
/// relative), otherwise it runs as a separate op, as PyTorch does.
#[derive(Debug, Clone)]
pub struct ConvBn {
    conv: Conv2d,
    bn: Norm,
}

/// How a block's batch norms run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NormMode {
    /// Folded into the convolution (inference only).
    Folded,
    /// A separate op from the running statistics (inference only).
    Separate,
    /// Trainable: batch statistics in training, running statistics (updated with `momentum`,
    /// PyTorch's convention) otherwise.
    Train { momentum: f64 },
}

#[derive(Debug, Clone)]
enum Norm {
    Folded,
    Eval(BatchNormEval),
    Train(candle_nn::BatchNorm),
}

/// Shape of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl ConvSpec {
    pub fn new(in_channels: usize, out_channels: usize, kernel: usize, stride: usize) -> Self {
        // "Same" padding for odd kernels: 7x7 → 3, 3x3 → 1, 1x1 → 0.
        Self { in_channels, out_channels, kernel, stride, padding: kernel / 2 }
    }
}

impl ConvBn {
    pub fn new(conv_vb: VarBuilder, bn_vb: VarBuilder, spec: ConvSpec, bn_eps: f64, mode: NormMode) -> Result<Self> {
        let shape = (spec.out_channels, spec.in_channels, spec.kernel, spec.kernel);
        // He (fan-out) initialisation when the builder creates variables (training from scratch).
        let fan_out = (spec.out_channels * spec.kernel * spec.kernel) as f64;
        let he = candle_nn::Init::Randn { mean: 0.0, stdev: (2.0 / fan_out).sqrt() };
        let config = Conv2dConfig { padding: spec.padding, stride: spec.stride, ..Default::default() };
        if let NormMode::Train { momentum } = mode {
            let weight = conv_vb.get_with_hints(shape, "weight", he)?;
            let bn_config = candle_nn::BatchNormConfig { eps: bn_eps, remove_mean: true, affine: true, momentum };
            let bn = candle_nn::batch_norm(spec.out_channels, bn_config, bn_vb)?;
            return Ok(Self { conv: Conv2d::new(weight, None, config), bn: Norm::Train(bn) });
        }
        if mode == NormMode::Folded {
            // The fold is f64 from the stored weights; only its result is rounded to the dtype.
            // (The weight is asked for first, as in the other modes: errors list tensors in order.)
            let dtype = conv_vb.dtype();
            let weight = conv_vb.to_dtype(DType::F64).get_with_hints(shape, "weight", he)?;
            let (scale, shift) = bn_scale_shift(&bn_vb, spec.out_channels, bn_eps)?;
            let folded = weight.broadcast_mul(&scale.reshape((spec.out_channels, 1, 1, 1))?)?.to_dtype(dtype)?;
            Ok(Self { conv: Conv2d::new(folded, Some(shift.to_dtype(dtype)?), config), bn: Norm::Folded })
        } else {
            let weight = conv_vb.get_with_hints(shape, "weight", he)?;
            let bn = BatchNormEval::new(bn_vb, spec.out_channels, bn_eps)?;
            Ok(Self { conv: Conv2d::new(weight, None, config), bn: Norm::Eval(bn) })
        }
    }

    /// The same convolution as a fast NHWC op (BN folded, bias, then ReLU if `relu`), or
    /// `None` when the norm is not folded (the fast path computes folded convolutions only).
    pub fn to_nhwc(&self, relu: bool) -> Result<Option<NhwcConv>> {
        let Norm::Folded = self.bn else { return Ok(None) };
        let Some(bias) = self.conv.bias() else { return Ok(None) };
        let config = self.conv.config();
        NhwcConv::new(self.conv.weight(), bias, config.stride, config.padding, relu).map(Some)
    }

    /// `train`: batch statistics (and a running-statistics update) for trainable norms.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = if x.dtype() == DType::BF16 && x.device().is_cpu() {
            self.widened_conv(x)?
        } else {
            self.conv.forward(x)?
        };
        match &self.bn {
            Norm::Folded => Ok(y),
            Norm::Eval(bn) => bn.forward(&y),
            Norm::Train(bn) => candle_nn::ModuleT::forward_t(bn, &y, train),
        }
    }
}

impl ConvBn {
    /// The convolution of a bf16 model on the CPU, where candle has no bf16 convolution: inputs
    /// and weights (already bf16 values) widened to f32, multiplied and accumulated in f32, the
    /// result narrowed to bf16, then the bias added in bf16 — what a bf16 GEMM with f32
    /// accumulation (a GPU's, or PyTorch's autocast) computes, up to summation order.
    fn widened_conv(&self, x: &Tensor) -> Result<Tensor> {
        let config = self.conv.config();
        let weight = self.conv.weight().to_dtype(DType::F32)?;
        let y =
            x.to_dtype(DType::F32)?.conv2d(&weight, config.padding, config.stride, config.dilation, config.groups)?;
        let y = y.to_dtype(x.dtype())?;
        match self.conv.bias() {
            Some(bias) => y.broadcast_add(&bias.reshape((1, bias.dim(0)?, 1, 1))?),
            None => Ok(y),
        }
    }
}

impl Module for ConvBn {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_t(x, false)
    }
}

/// Mean over the spatial dimensions, keeping them: [N, C, H, W] → [N, C, 1, 1].
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    let (n, c, _, _) = x.dims4()?;
    x.flatten_from(2)?.mean_keepdim(2)?.reshape((n, c, 1, 1))
}
