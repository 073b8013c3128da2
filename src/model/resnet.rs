//! The ResNet family (ImageNet depths 18–200 and the CIFAR 6n+2 nets) with its two heads.
//!
//! Tensor names follow torchvision/timm: `conv1`, `bn1`, `layer{1..4}.{block}.conv{k}`,
//! `.bn{k}`, `.downsample.0` (projection conv), `.downsample.1` (its BN), `fc`.

use candle_core::{bail, DType, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

use super::config::{BlockKind, CifarShortcut, ResNetConfig, StemPool, StridePlacement, Topology};
use super::layers::{global_avg_pool, ConvBn, ConvSpec, NormMode};
use super::nhwc::{to_nchw, to_nhwc, NhwcConv, NhwcMaxPool};

/// How a model is built from its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildOptions {
    /// Fold each batch norm into the preceding convolution (the fast default).
    pub fold_bn: bool,
    /// Which implementation runs inference.
    pub backend: Backend,
}

/// The implementation behind inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The NHWC custom ops of `model::nhwc` wherever they apply (f32 on the CPU, batch norm
    /// folded, inference), candle's ops elsewhere (GPU, training, unfolded norms).
    #[default]
    Fast,
    /// candle's own ops everywhere: the plain path, for comparison and debugging.
    Candle,
}

impl BuildOptions {
    fn norm_mode(self) -> NormMode {
        if self.fold_bn {
            NormMode::Folded
        } else {
            NormMode::Separate
        }
    }
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self { fold_bn: true, backend: Backend::Fast }
    }
}

/// Spatial window of the dense (fully-convolutional) head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenseWindow {
    /// A k×k average pool with stride 1 slid over the final feature map (Caffe's pool5 is
    /// k = 7), giving an (H−k+1)×(W−k+1) map of class scores.
    Pool(usize),
    /// One global average: a 1×1 map.
    Global,
}

/// The shortcut of a block, before weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShortcutPlan {
    Identity,
    /// 1x1 convolution + BN (`downsample.0`, `downsample.1`).
    Projection(ConvSpec),
    /// CIFAR option A: subsample by `stride`, then `before` zero channels, the identity ones,
    /// `after` zero channels (`before` is 0 for fb.resnet.torch's A, half for A-split).
    ZeroPad {
        stride: usize,
        before: usize,
        after: usize,
    },
}

/// A residual block before weights: its convolutions in order and its shortcut.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BlockPlan {
    pub convs: Vec<ConvSpec>,
    pub shortcut: ShortcutPlan,
}

/// The first convolution: 7x7/2 for ImageNet ResNets, 3x3/1 for CIFAR ones.
pub(crate) fn stem_spec(config: &ResNetConfig) -> ConvSpec {
    match config.topology {
        Topology::Imagenet { .. } => ConvSpec::new(3, config.base_width, 7, 2),
        Topology::Cifar { .. } => ConvSpec::new(3, config.base_width, 3, 1),
    }
}

/// Every block of every stage, with its convolutions' shapes and strides. The one place
/// that decides block structure: the model, the weight check and the complexity count all
/// read it.
pub(crate) fn block_plans(config: &ResNetConfig) -> Vec<Vec<BlockPlan>> {
    let kind = config.block_kind();
    let mut in_channels = config.base_width;
    let mut stages = Vec::new();
    for stage in config.stages() {
        let mut blocks = Vec::with_capacity(stage.blocks);
        for j in 0..stage.blocks {
            let stride = if j == 0 { stage.stride } else { 1 };
            let width = stage.width;
            let out_channels = width * kind.expansion();
            let convs = match kind {
                BlockKind::Basic => {
                    vec![ConvSpec::new(in_channels, width, 3, stride), ConvSpec::new(width, width, 3, 1)]
                }
                BlockKind::Bottleneck => {
                    let (stride_1x1, stride_3x3) = match config.topology {
                        Topology::Imagenet { stride: StridePlacement::V1, .. } => (stride, 1),
                        _ => (1, stride),
                    };
                    vec![
                        ConvSpec::new(in_channels, width, 1, stride_1x1),
                        ConvSpec::new(width, width, 3, stride_3x3),
                        ConvSpec::new(width, out_channels, 1, 1),
                    ]
                }
            };
            let shortcut = if stride == 1 && in_channels == out_channels {
                ShortcutPlan::Identity
            } else if let Topology::Cifar { shortcut: shortcut @ (CifarShortcut::A | CifarShortcut::ASplit), .. } =
                config.topology
            {
                let extra = out_channels.saturating_sub(in_channels);
                // A-split: planes // 4 on each side, where planes = out = 2 × in, so half each.
                let before = if shortcut == CifarShortcut::ASplit { extra / 2 } else { 0 };
                ShortcutPlan::ZeroPad { stride, before, after: extra - before }
            } else {
                ShortcutPlan::Projection(ConvSpec::new(in_channels, out_channels, 1, stride))
            };
            blocks.push(BlockPlan { convs, shortcut });
            in_channels = out_channels;
        }
        stages.push(blocks);
    }
    stages
}

#[derive(Debug, Clone)]
enum Shortcut {
    Identity,
    Projection(ConvBn),
    ZeroPad { stride: usize, before: usize, after: usize },
}

impl Shortcut {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Shortcut::Identity => Ok(x.clone()),
            Shortcut::Projection(conv) => conv.forward_t(x, train),
            Shortcut::ZeroPad { stride, before, after } => {
                // x[:, :, ::s, ::s], by index selection (which, unlike a strided pool, has a gradient).
                let x = subsample(x, *stride, (2, 3))?;
                x.pad_with_zeros(1, *before, *after)
            }
        }
    }
}

/// A residual block: its convolutions in order (ReLU between them), a shortcut, the sum, ReLU.
#[derive(Debug, Clone)]
struct Block {
    convs: Vec<ConvBn>,
    shortcut: Shortcut,
}

impl Block {
    fn new(vb: VarBuilder, plan: &BlockPlan, bn_eps: f64, mode: NormMode) -> Result<Self> {
        let convs = plan
            .convs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let k = i + 1;
                ConvBn::new(vb.pp(format!("conv{k}")), vb.pp(format!("bn{k}")), *spec, bn_eps, mode)
            })
            .collect::<Result<Vec<_>>>()?;
        let shortcut = match plan.shortcut {
            ShortcutPlan::Identity => Shortcut::Identity,
            ShortcutPlan::Projection(spec) => {
                Shortcut::Projection(ConvBn::new(vb.pp("downsample.0"), vb.pp("downsample.1"), spec, bn_eps, mode)?)
            }
            ShortcutPlan::ZeroPad { stride, before, after } => Shortcut::ZeroPad { stride, before, after },
        };
        Ok(Self { convs, shortcut })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut y = x.clone();
        for (i, conv) in self.convs.iter().enumerate() {
            y = conv.forward_t(&y, train)?;
            if i + 1 < self.convs.len() {
                y = relu(&y, train)?;
            }
        }
        relu(&(y + self.shortcut.forward_t(x, train)?)?, train)
    }
}

/// A block on the fast NHWC path: the same convolutions as [`Block`], each with its ReLU (the
/// last one's after the shortcut's sum) fused in.
#[derive(Debug, Clone)]
struct NhwcBlock {
    convs: Vec<NhwcConv>,
    shortcut: NhwcShortcut,
}

#[derive(Debug, Clone)]
enum NhwcShortcut {
    Identity,
    Projection(NhwcConv),
    ZeroPad { stride: usize, before: usize, after: usize },
}

impl NhwcBlock {
    /// `None` when a convolution cannot take the fast path (its norm is not folded).
    fn new(block: &Block) -> Result<Option<Self>> {
        // Every ReLU is fused: after each inner convolution, and after the last one's residual sum.
        let mut convs = Vec::with_capacity(block.convs.len());
        for conv in &block.convs {
            let Some(fast) = conv.to_nhwc(true)? else { return Ok(None) };
            convs.push(fast);
        }
        let shortcut = match &block.shortcut {
            Shortcut::Identity => NhwcShortcut::Identity,
            Shortcut::Projection(conv) => match conv.to_nhwc(false)? {
                Some(fast) => NhwcShortcut::Projection(fast),
                None => return Ok(None),
            },
            Shortcut::ZeroPad { stride, before, after } => {
                NhwcShortcut::ZeroPad { stride: *stride, before: *before, after: *after }
            }
        };
        Ok(Some(Self { convs, shortcut }))
    }

    /// `x`: [N, H, W, C].
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let shortcut = match &self.shortcut {
            NhwcShortcut::Identity => x.clone(),
            NhwcShortcut::Projection(conv) => x.apply_op1_no_bwd(conv)?,
            NhwcShortcut::ZeroPad { stride, before, after } => {
                let x = subsample(x, *stride, (1, 2))?;
                x.pad_with_zeros(3, *before, *after)?.contiguous()?
            }
        };
        let (last, inner) = self.convs.split_last().ok_or_else(|| candle_core::Error::Msg("empty block".into()))?;
        let mut y = x.clone();
        for conv in inner {
            y = y.apply_op1_no_bwd(conv)?;
        }
        y.apply_op2_no_bwd(&shortcut, last)
    }
}

/// The fast NHWC twin of a ResNet's feature extractor (the head stays candle's).
#[derive(Debug, Clone)]
struct NhwcFeatures {
    stem: NhwcConv,
    pool: Option<NhwcMaxPool>,
    blocks: Vec<NhwcBlock>,
}

impl NhwcFeatures {
    fn new(config: &ResNetConfig, stem: &ConvBn, stages: &[Vec<Block>]) -> Result<Option<Self>> {
        let Some(stem) = stem.to_nhwc(true)? else { return Ok(None) };
        let pool = match config.topology {
            Topology::Imagenet { stem_pool, .. } => Some(NhwcMaxPool(stem_pool)),
            Topology::Cifar { .. } => None,
        };
        let mut blocks = Vec::new();
        for block in stages.iter().flatten() {
            match NhwcBlock::new(block)? {
                Some(fast) => blocks.push(fast),
                None => return Ok(None),
            }
        }
        Ok(Some(Self { stem, pool, blocks }))
    }

    /// `x`: [N, 3, H, W] → the final feature map [N, C, h, w], as [`ResNet::features`].
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = to_nhwc(x)?.apply_op1_no_bwd(&self.stem)?;
        if let Some(pool) = &self.pool {
            x = x.apply_op1_no_bwd(pool)?;
        }
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        to_nchw(&x)
    }
}

/// A ResNet in eval mode.
#[derive(Debug, Clone)]
pub struct ResNet {
    config: ResNetConfig,
    stem: ConvBn,
    stages: Vec<Vec<Block>>,
    fc: Linear,
    /// The fast path's ops (same weights), when the build options and device allow it.
    nhwc: Option<NhwcFeatures>,
}

impl ResNet {
    /// Builds the model from `vb` (torchvision tensor names). The config must be valid.
    pub fn new(config: &ResNetConfig, vb: VarBuilder, options: BuildOptions) -> Result<Self> {
        let fast = options.backend == Backend::Fast && vb.device().is_cpu() && vb.dtype() == DType::F32;
        let mut model = Self::build(config, vb, options.norm_mode())?;
        if fast {
            model.nhwc = NhwcFeatures::new(config, &model.stem, &model.stages)?;
        }
        Ok(model)
    }

    /// Whether inference runs on the fast NHWC path (see [`Backend`]).
    pub fn uses_fast_path(&self) -> bool {
        self.nhwc.is_some()
    }

    /// A trainable model: variables come from `vb` (a `VarMap` builder creates them with He
    /// initialisation for convolutions), batch norms use batch statistics in `forward_t(x, true)`
    /// and update their running statistics with `bn_momentum` (PyTorch's convention, 0.1).
    pub fn trainable(config: &ResNetConfig, vb: VarBuilder, bn_momentum: f64) -> Result<Self> {
        Self::build(config, vb, NormMode::Train { momentum: bn_momentum })
    }

    fn build(config: &ResNetConfig, vb: VarBuilder, mode: NormMode) -> Result<Self> {
        if let Err(e) = config.validate() {
            bail!("invalid ResNet config: {e}")
        }
        let stem = ConvBn::new(vb.pp("conv1"), vb.pp("bn1"), stem_spec(config), config.bn_eps, mode)?;
        let stages = block_plans(config)
            .iter()
            .enumerate()
            .map(|(i, plans)| {
                let vb_stage = vb.pp(format!("layer{}", i + 1));
                plans
                    .iter()
                    .enumerate()
                    .map(|(j, plan)| Block::new(vb_stage.pp(j), plan, config.bn_eps, mode))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let fc = candle_nn::linear(config.feature_channels(), config.num_classes, vb.pp("fc"))?;
        Ok(Self { config: *config, stem, stages, fc, nhwc: None })
    }

    pub fn config(&self) -> &ResNetConfig {
        &self.config
    }

    /// The dtype weights and activations are computed in (the input is cast to it).
    pub fn dtype(&self) -> DType {
        self.fc.weight().dtype()
    }

    /// The final feature map, [N, C, H/32, W/32] for ImageNet ResNets (H/4 for CIFAR ones).
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        self.features_t(x, false)
    }

    /// [`Self::features`] in training (`train`: batch statistics for trainable norms) or not.
    pub fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (_, channels, height, width) = x.dims4()?;
        if channels != 3 {
            bail!("input must be [batch, 3, height, width] images, got shape {:?}", x.dims())
        }
        let min_side = match self.config.topology {
            Topology::Imagenet { .. } => 32,
            Topology::Cifar { .. } => 4,
        };
        if height < min_side || width < min_side {
            bail!(
                "input {height}x{width} is too small for {}: each side must be at least {min_side}",
                self.config.name()
            )
        }
        if let (Some(fast), false) = (&self.nhwc, train) {
            return fast.forward(x);
        }
        let mut x = relu(&self.stem.forward_t(x, train)?, train)?;
        if let Topology::Imagenet { stem_pool, .. } = self.config.topology {
            x = stem_max_pool(&x, stem_pool, train)?;
        }
        for block in self.stages.iter().flatten() {
            x = block.forward_t(&x, train)?;
        }
        Ok(x)
    }

    /// The standard head in training mode (`train`) or not: logits [N, classes].
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let pooled = global_avg_pool(&self.features_t(x, train)?)?;
        let (n, c, _, _) = pooled.dims4()?;
        self.fc.forward(&pooled.reshape((n, c))?)
    }

    /// The standard head: global average pool, then fc. Returns logits [N, classes].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let scores = self.forward_dense(x, DenseWindow::Global)?;
        let (n, k, _, _) = scores.dims4()?;
        scores.reshape((n, k))
    }

    /// The dense head for fully-convolutional testing: the fc applied at every position of
    /// the pooled feature map. Returns class scores [N, classes, H', W'].
    pub fn forward_dense(&self, x: &Tensor, window: DenseWindow) -> Result<Tensor> {
        let features = self.features(x)?;
        let (_, _, fh, fw) = features.dims4()?;
        let pooled = match window {
            // One window covering the whole map is the global average; computing it the same
            // way keeps the dense head bit-identical to the standard one there.
            DenseWindow::Global => global_avg_pool(&features)?,
            DenseWindow::Pool(k) if k == fh && k == fw => global_avg_pool(&features)?,
            DenseWindow::Pool(k) if k == 0 || k > fh || k > fw => bail!(
                "dense head: a {k}x{k} pool does not fit the {fh}x{fw} feature map of a {}x{} input",
                x.dim(2)?,
                x.dim(3)?
            ),
            DenseWindow::Pool(k) => features.avg_pool2d_with_stride(k, 1)?,
        };
        let (n, c, h, w) = pooled.dims4()?;
        let positions = pooled.permute((0, 2, 3, 1))?.reshape((n * h * w, c))?;
        self.fc.forward(&positions)?.reshape((n, h, w, self.config.num_classes))?.permute((0, 3, 1, 2))?.contiguous()
    }
}

/// The 3x3/2 max pool after the stem. Its input comes out of a ReLU (≥ 0), so zero padding
/// is equivalent to PyTorch's −∞ padding.
/// ReLU. In training its gradient must be PyTorch's (zero where the input is exactly 0);
/// candle's `relu` passes the gradient at 0, so training multiplies by a constant mask instead.
fn relu(x: &Tensor, train: bool) -> Result<Tensor> {
    if train {
        x * x.gt(0f64)?.to_dtype(x.dtype())?
    } else {
        x.relu()
    }
}

/// `differentiable`: computed as the maximum of nine strided views, because candle has no
/// gradient for a pool whose window differs from its stride; the values are the same.
fn stem_max_pool(x: &Tensor, pool: StemPool, differentiable: bool) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let x = match pool {
        StemPool::Torch => x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?,
        StemPool::Caffe => {
            // Ceil mode: one more window whenever the last one would hang over the edge.
            let extra = |n: usize| {
                let out = (n.saturating_sub(3)).div_ceil(2) + 1;
                (out - 1) * 2 + 3 - n
            };
            x.pad_with_zeros(2, 0, extra(h))?.pad_with_zeros(3, 0, extra(w))?
        }
    };
    if !differentiable {
        return x.max_pool2d_with_stride(3, 2);
    }
    let (_, _, h, w) = x.dims4()?;
    let (out_h, out_w) = ((h - 3) / 2 + 1, (w - 3) / 2 + 1);
    let mut pooled: Option<Tensor> = None;
    for dy in 0..3 {
        let rows = strided_indices(dy, out_h, 2, x.device())?;
        let band = x.index_select(&rows, 2)?;
        for dx in 0..3 {
            let view = band.index_select(&strided_indices(dx, out_w, 2, x.device())?, 3)?;
            pooled = Some(match pooled {
                None => view,
                Some(p) => p.maximum(&view)?,
            });
        }
    }
    pooled.ok_or_else(|| candle_core::Error::Msg("empty pool window".into()))
}

/// Every `stride`-th row and column (`dims`: the height and width dimensions), starting at 0.
fn subsample(x: &Tensor, stride: usize, (h_dim, w_dim): (usize, usize)) -> Result<Tensor> {
    if stride == 1 {
        return Ok(x.clone());
    }
    let (h, w) = (x.dim(h_dim)?, x.dim(w_dim)?);
    let rows = strided_indices(0, h.div_ceil(stride), stride, x.device())?;
    let cols = strided_indices(0, w.div_ceil(stride), stride, x.device())?;
    x.index_select(&rows, h_dim)?.index_select(&cols, w_dim)
}

/// `start, start + step, …` (`count` indices) as a u32 tensor, for strided views that keep a gradient.
pub(crate) fn strided_indices(start: usize, count: usize, step: usize, device: &candle_core::Device) -> Result<Tensor> {
    let indices: Vec<u32> = (0..count).map(|i| (start + i * step) as u32).collect();
    Tensor::from_vec(indices, count, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_differentiable_stem_pool_computes_the_same_values() {
        let x = Tensor::randn(0f32, 1.0, (2, 3, 17, 22), &candle_core::Device::Cpu).unwrap().relu().unwrap();
        for pool in [StemPool::Torch, StemPool::Caffe] {
            let fast = stem_max_pool(&x, pool, false).unwrap();
            let slow = stem_max_pool(&x, pool, true).unwrap();
            assert_eq!(fast.dims(), slow.dims());
            let diff = (fast - slow).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
            assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0, "{pool:?}");
        }
    }

    #[test]
    fn option_a_split_puts_half_the_zero_channels_before_the_identity() {
        let plan = |shortcut| block_plans(&ResNetConfig::cifar(20, shortcut, 10))[1][0].shortcut;
        assert_eq!(plan(CifarShortcut::A), ShortcutPlan::ZeroPad { stride: 2, before: 0, after: 16 });
        assert_eq!(plan(CifarShortcut::ASplit), ShortcutPlan::ZeroPad { stride: 2, before: 8, after: 8 });
        let x = Tensor::new(&[1f32, 2.], &candle_core::Device::Cpu).unwrap().reshape((1, 2, 1, 1)).unwrap();
        let padded = Shortcut::ZeroPad { stride: 1, before: 1, after: 1 }.forward_t(&x, false).unwrap();
        assert_eq!(padded.flatten_all().unwrap().to_vec1::<f32>().unwrap(), [0., 1., 2., 0.]);
    }
}
