//! What a ResNet is: the configuration that fixes its topology, and the stage plan derived
//! from it. Model construction, weight checking and complexity counts all read the plan, so
//! the depth → block-count table lives here and nowhere else.

use serde::{Deserialize, Serialize};

/// Residual block type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlockKind {
    /// Two 3x3 convolutions (ResNet-18/34, CIFAR ResNets).
    Basic,
    /// 1x1 → 3x3 → 1x1, expansion 4 (ResNet-50 and deeper).
    Bottleneck,
}

impl BlockKind {
    /// Output channels of a block relative to its inner width.
    pub fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// Where a downsampling bottleneck puts its stride.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StridePlacement {
    /// On the first 1x1 convolution: the 2015 Caffe release.
    #[serde(rename = "v1")]
    V1,
    /// On the 3x3 convolution: fb.resnet.torch, torchvision ("ResNet v1.5").
    #[serde(rename = "v1.5")]
    V1_5,
}

impl StridePlacement {
    pub fn name(self) -> &'static str {
        match self {
            StridePlacement::V1 => "v1",
            StridePlacement::V1_5 => "v1.5",
        }
    }
}

/// The 3x3/2 max pool after conv1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StemPool {
    /// PyTorch: padding 1, output size rounded down.
    Torch,
    /// Caffe: no padding, output size rounded up (ceil mode).
    Caffe,
}

/// Shortcut used by CIFAR ResNets when a stage changes width (paper section 3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CifarShortcut {
    /// Identity with stride-2 subsampling; the extra channels are zeros appended after the
    /// identity ones (fb.resnet.torch's shortcutType 'A'). No parameters.
    A,
    /// Option A as popular PyTorch CIFAR ResNets write it (akamaster/pytorch_resnet_cifar10):
    /// `F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))`, the zero channels
    /// split evenly before and after the identity ones. Same tensors as `A`, different sums.
    #[serde(rename = "A-split")]
    ASplit,
    /// 1x1 projection + BN, as in the ImageNet models.
    B,
}

impl CifarShortcut {
    /// The spelling of experiment files and `inspect`.
    pub fn name(self) -> &'static str {
        match self {
            CifarShortcut::A => "A",
            CifarShortcut::ASplit => "A-split",
            CifarShortcut::B => "B",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [CifarShortcut::A, CifarShortcut::ASplit, CifarShortcut::B].into_iter().find(|s| s.name() == text)
    }
}

/// The paper's words: `option A` (zero-padded identity), `option A-split` (zeros on both sides),
/// `option B` (projection).
impl std::fmt::Display for CifarShortcut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "option {}", self.name())
    }
}

/// Which of the paper's two families, with the knobs that only make sense in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "family")]
pub enum Topology {
    /// ImageNet ResNets: depth 18, 34, 50, 101, 152 or 200 (or the small 14 and 26).
    Imagenet { depth: usize, stride: StridePlacement, stem_pool: StemPool },
    /// CIFAR ResNets of section 4.2: 6n+2 layers (20, 32, 44, 56, 110, 1202, ...).
    Cifar { depth: usize, shortcut: CifarShortcut },
}

/// Everything that fixes a ResNet's tensors and computation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ResNetConfig {
    pub topology: Topology,
    pub num_classes: usize,
    /// Channels of the first stage: 64 for ImageNet ResNets, 16 for CIFAR ones. Narrow
    /// copies of the real topologies (tests, demos) use less.
    pub base_width: usize,
    /// Batch-norm epsilon (1e-5 in torchvision and Caffe).
    pub bn_eps: f64,
}

/// One stage of residual blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StagePlan {
    pub blocks: usize,
    /// Inner width of the blocks (the 3x3 convolution's channels).
    pub width: usize,
    /// Stride of the stage's first block.
    pub stride: usize,
}

/// The ImageNet depths the paper (and fb.resnet.torch for 200) defines, plus timm's small bottleneck
/// nets 14 and 26 (one and two blocks per stage), which the CPU-trained demo models use.
pub const IMAGENET_DEPTHS: [usize; 8] = [14, 18, 26, 34, 50, 101, 152, 200];

/// Blocks per stage for an ImageNet depth.
pub fn imagenet_blocks(depth: usize) -> Option<(BlockKind, [usize; 4])> {
    Some(match depth {
        14 => (BlockKind::Bottleneck, [1, 1, 1, 1]),
        18 => (BlockKind::Basic, [2, 2, 2, 2]),
        26 => (BlockKind::Bottleneck, [2, 2, 2, 2]),
        34 => (BlockKind::Basic, [3, 4, 6, 3]),
        50 => (BlockKind::Bottleneck, [3, 4, 6, 3]),
        101 => (BlockKind::Bottleneck, [3, 4, 23, 3]),
        152 => (BlockKind::Bottleneck, [3, 8, 36, 3]),
        200 => (BlockKind::Bottleneck, [3, 24, 36, 3]),
        _ => return None,
    })
}

/// Inverse of [`imagenet_blocks`]: the depth with these blocks per stage.
pub fn imagenet_depth_of(kind: BlockKind, blocks: &[usize]) -> Option<usize> {
    IMAGENET_DEPTHS.into_iter().find(|&d| imagenet_blocks(d).is_some_and(|(k, b)| k == kind && b[..] == *blocks))
}

/// Why a configuration cannot be built.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("ImageNet ResNet depth {0} is not one of 14, 18, 26, 34, 50, 101, 152, 200")]
    ImagenetDepth(usize),
    #[error("CIFAR ResNet depth {0} is not of the form 6n+2 with n ≥ 1 (20, 32, 44, 56, 110, 1202, ...)")]
    CifarDepth(usize),
    #[error("num_classes must be at least 1")]
    NoClasses,
    #[error("base_width must be at least 1")]
    NoWidth,
    #[error("bn_eps must be positive and finite, got {0}")]
    BnEps(f64),
}

impl ResNetConfig {
    /// A full-width ImageNet ResNet with torchvision's defaults (v1.5 strides, torch stem pool).
    pub fn imagenet(depth: usize, num_classes: usize) -> Self {
        Self {
            topology: Topology::Imagenet { depth, stride: StridePlacement::V1_5, stem_pool: StemPool::Torch },
            num_classes,
            base_width: 64,
            bn_eps: 1e-5,
        }
    }

    /// This CIFAR model with another shortcut variant of the same tensors: A ↔ A-split (B has
    /// projection tensors, so it is told by the file, never chosen).
    pub fn with_cifar_shortcut(self, shortcut: CifarShortcut) -> Result<Self, String> {
        match self.topology {
            Topology::Cifar { depth, shortcut: current } if current == shortcut => {
                Ok(Self { topology: Topology::Cifar { depth, shortcut }, ..self })
            }
            Topology::Cifar { depth, shortcut: current }
                if current != CifarShortcut::B && shortcut != CifarShortcut::B =>
            {
                Ok(Self { topology: Topology::Cifar { depth, shortcut }, ..self })
            }
            Topology::Cifar { shortcut: current, .. } => Err(format!(
                "cifar_shortcut {} does not fit this file: its tensors are option {}'s",
                shortcut.name(),
                current.name()
            )),
            Topology::Imagenet { .. } => {
                Err(format!("cifar_shortcut {} is given for an ImageNet ResNet", shortcut.name()))
            }
        }
    }

    /// A full-width CIFAR ResNet (16 channels in the first stage).
    pub fn cifar(depth: usize, shortcut: CifarShortcut, num_classes: usize) -> Self {
        Self { topology: Topology::Cifar { depth, shortcut }, num_classes, base_width: 16, bn_eps: 1e-5 }
    }

    pub fn with_stride(mut self, placement: StridePlacement) -> Self {
        if let Topology::Imagenet { stride, .. } = &mut self.topology {
            *stride = placement;
        }
        self
    }

    pub fn with_stem_pool(mut self, pool: StemPool) -> Self {
        if let Topology::Imagenet { stem_pool, .. } = &mut self.topology {
            *stem_pool = pool;
        }
        self
    }

    pub fn with_base_width(mut self, base_width: usize) -> Self {
        self.base_width = base_width;
        self
    }

    pub fn depth(&self) -> usize {
        match self.topology {
            Topology::Imagenet { depth, .. } | Topology::Cifar { depth, .. } => depth,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.topology {
            Topology::Imagenet { depth, .. } if imagenet_blocks(depth).is_none() => {
                return Err(ConfigError::ImagenetDepth(depth))
            }
            Topology::Cifar { depth, .. } if depth < 8 || (depth - 2) % 6 != 0 => {
                return Err(ConfigError::CifarDepth(depth))
            }
            _ => {}
        }
        if self.num_classes == 0 {
            return Err(ConfigError::NoClasses);
        }
        if self.base_width == 0 {
            return Err(ConfigError::NoWidth);
        }
        if !(self.bn_eps > 0.0 && self.bn_eps.is_finite()) {
            return Err(ConfigError::BnEps(self.bn_eps));
        }
        Ok(())
    }

    pub fn block_kind(&self) -> BlockKind {
        match self.topology {
            Topology::Imagenet { depth, .. } => imagenet_blocks(depth).map_or(BlockKind::Basic, |(kind, _)| kind),
            Topology::Cifar { .. } => BlockKind::Basic,
        }
    }

    /// The stages, in order. Empty for an invalid depth (call [`Self::validate`] first).
    pub fn stages(&self) -> Vec<StagePlan> {
        let b = self.base_width;
        match self.topology {
            Topology::Imagenet { depth, .. } => imagenet_blocks(depth)
                .map(|(_, blocks)| {
                    blocks
                        .iter()
                        .zip([(b, 1), (2 * b, 2), (4 * b, 2), (8 * b, 2)])
                        .map(|(&blocks, (width, stride))| StagePlan { blocks, width, stride })
                        .collect()
                })
                .unwrap_or_default(),
            Topology::Cifar { depth, .. } => {
                let n = depth.saturating_sub(2) / 6;
                [(b, 1), (2 * b, 2), (4 * b, 2)]
                    .into_iter()
                    .map(|(width, stride)| StagePlan { blocks: n, width, stride })
                    .collect()
            }
        }
    }

    /// Channels entering the classifier.
    pub fn feature_channels(&self) -> usize {
        self.stages().last().map_or(self.base_width, |s| s.width * self.block_kind().expansion())
    }

    /// A short human name, e.g. "ResNet-50 v1.5" or "CIFAR ResNet-20 (option A)".
    pub fn name(&self) -> String {
        let width = match self.topology {
            Topology::Imagenet { .. } if self.base_width != 64 => format!(", base width {}", self.base_width),
            Topology::Cifar { .. } if self.base_width != 16 => format!(", base width {}", self.base_width),
            _ => String::new(),
        };
        match self.topology {
            Topology::Imagenet { depth, stride, stem_pool } => {
                let stride = if self.block_kind() == BlockKind::Bottleneck {
                    format!(" {}", stride.name())
                } else {
                    String::new()
                };
                let pool = if stem_pool == StemPool::Caffe { ", Caffe stem pool" } else { "" };
                format!("ResNet-{depth}{stride}{pool}{width}")
            }
            Topology::Cifar { depth, shortcut } => {
                format!("CIFAR ResNet-{depth} ({shortcut}{width})")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_as_the_paper_writes_them() {
        assert_eq!(ResNetConfig::cifar(20, CifarShortcut::A, 10).name(), "CIFAR ResNet-20 (option A)");
        assert_eq!(
            ResNetConfig::cifar(56, CifarShortcut::B, 10).with_base_width(8).name(),
            "CIFAR ResNet-56 (option B, base width 8)"
        );
        assert!(!ResNetConfig::imagenet(50, 1000).name().contains('{'));
    }

    #[test]
    fn depths_round_trip() {
        for d in IMAGENET_DEPTHS {
            let (kind, blocks) = imagenet_blocks(d).unwrap();
            assert_eq!(imagenet_depth_of(kind, &blocks), Some(d));
            // Depth counts weighted layers: convs in blocks, conv1 and fc.
            let per_block = if kind == BlockKind::Basic { 2 } else { 3 };
            assert_eq!(blocks.iter().sum::<usize>() * per_block + 2, d);
        }
    }

    #[test]
    fn invalid_configs_are_rejected() {
        assert_eq!(ResNetConfig::imagenet(42, 1000).validate(), Err(ConfigError::ImagenetDepth(42)));
        assert_eq!(ResNetConfig::cifar(21, CifarShortcut::A, 10).validate(), Err(ConfigError::CifarDepth(21)));
        assert_eq!(ResNetConfig::imagenet(50, 0).validate(), Err(ConfigError::NoClasses));
        assert!(ResNetConfig::cifar(1202, CifarShortcut::A, 10).validate().is_ok());
        assert_eq!(ResNetConfig::cifar(110, CifarShortcut::B, 10).stages()[0].blocks, 18);
    }

    #[test]
    fn the_cifar_shortcut_knob_swaps_only_variants_with_the_same_tensors() {
        let a = ResNetConfig::cifar(20, CifarShortcut::A, 10);
        let split = a.with_cifar_shortcut(CifarShortcut::ASplit).unwrap();
        assert_eq!(split.topology, Topology::Cifar { depth: 20, shortcut: CifarShortcut::ASplit });
        assert!(a.with_cifar_shortcut(CifarShortcut::B).unwrap_err().contains("option A's"));
        let b = ResNetConfig::cifar(20, CifarShortcut::B, 10);
        assert!(b.with_cifar_shortcut(CifarShortcut::ASplit).is_err());
        assert!(ResNetConfig::imagenet(50, 1000).with_cifar_shortcut(CifarShortcut::A).is_err());
        for shortcut in [CifarShortcut::A, CifarShortcut::ASplit, CifarShortcut::B] {
            let yaml: CifarShortcut = serde_yaml::from_str(shortcut.name()).unwrap();
            assert_eq!((yaml, CifarShortcut::parse(shortcut.name())), (shortcut, Some(shortcut)));
        }
    }
}
