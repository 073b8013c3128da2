//! fb.resnet.torch's ResNet (models/resnet.lua) read off its module tree and renamed to
//! torchvision's tensor names.
//!
//! The tree: `Sequential` of the stem (`SpatialConvolution`, `SpatialBatchNormalization`,
//! `ReLU`, and `SpatialMaxPooling` for ImageNet), one `Sequential` per stage holding its
//! blocks, then `SpatialAveragePooling`, `View`, `Linear`. A block is
//! `Sequential(ConcatTable(branch, shortcut), CAddTable, ReLU)`; the branch is conv-BN-ReLU
//! repeated (two convolutions: basic, three: bottleneck); the shortcut is `Identity`, a
//! projection `Sequential(conv 1x1, BN)`, or option A's
//! `Sequential(SpatialAveragePooling(1,1,s,s), Concat(2)(Identity, MulConstant(0)))`, which
//! appends zero channels. `nn.` and `cudnn.` modules of the same kind read alike. Everything
//! that decides the harness's configuration (family, depth, block kind, where the stride sits,
//! the shortcut type, BN eps) is read from the tree, not assumed.

use super::file::T7File;
use super::{bool_field, number_field, tensor_field, Module, Torch7Error};
use crate::model::config::{
    imagenet_depth_of, BlockKind, CifarShortcut, ResNetConfig, StemPool, StridePlacement, Topology,
};
use candle_core::Tensor;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// 7x7/2 stem convolution and a max pool, four stages.
    Imagenet,
    /// 3x3/1 stem convolution, no pool, three stages.
    Cifar,
}

/// fb.resnet.torch's `shortcutType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Torch7Shortcut {
    /// Identity; where the shape changes, subsampled with zero channels appended.
    A,
    /// Projection only where the shape changes.
    B,
    /// Projection in every block.
    C,
}

/// A ResNet read from a `.t7` file: what the tree says, and its tensors in torchvision names.
#[derive(Debug)]
pub struct Torch7Resnet {
    pub family: Family,
    pub block: BlockKind,
    pub blocks_per_stage: Vec<usize>,
    pub depth: usize,
    pub base_width: usize,
    pub num_classes: usize,
    /// Where downsampling bottlenecks stride (basic blocks stride their first 3x3: `V1_5`).
    pub stride: StridePlacement,
    pub shortcut: Torch7Shortcut,
    /// ImageNet models only.
    pub stem_pool: Option<StemPool>,
    pub bn_eps: f64,
    /// What was converted on the way (folded biases, old BN statistics).
    pub notes: Vec<String>,
    pub tensors: Vec<(String, Tensor)>,
    pub tree: Module,
}

impl Torch7Resnet {
    /// The harness's configuration for this model, or why the harness's model cannot hold it
    /// (its ImageNet blocks project exactly where the shape changes, its CIFAR ones take A or B).
    pub fn config(&self) -> Result<ResNetConfig, String> {
        let topology = match (self.family, self.shortcut) {
            (Family::Cifar, Torch7Shortcut::A) => Topology::Cifar { depth: self.depth, shortcut: CifarShortcut::A },
            (Family::Cifar, Torch7Shortcut::B) => Topology::Cifar { depth: self.depth, shortcut: CifarShortcut::B },
            (Family::Imagenet, Torch7Shortcut::B) => Topology::Imagenet {
                depth: self.depth,
                stride: self.stride,
                stem_pool: self.stem_pool.unwrap_or(StemPool::Torch),
            },
            (family, shortcut) => {
                return Err(format!(
                    "{family:?} ResNet with shortcut type {shortcut:?}: the harness's model has no such shortcut"
                ))
            }
        };
        Ok(ResNetConfig { topology, num_classes: self.num_classes, base_width: self.base_width, bn_eps: self.bn_eps })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Conv {
    kernel: usize,
    stride: usize,
    pad: usize,
    input: usize,
    output: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shortcut {
    Identity,
    Projection,
    ZeroPad,
}

struct Interpreter<'a> {
    path: &'a Path,
    file: &'a T7File,
    tensors: Vec<(String, Tensor)>,
    notes: Vec<String>,
    eps: Vec<f64>,
}

pub(crate) fn interpret(path: &Path, file: &T7File, tree: Module) -> Result<Torch7Resnet, Torch7Error> {
    let mut it = Interpreter { path, file, tensors: Vec::new(), notes: Vec::new(), eps: Vec::new() };
    it.model(&tree)
}

impl Interpreter<'_> {
    fn error(&self, module: &Module, reason: impl Into<String>) -> Torch7Error {
        Torch7Error::Module {
            path: self.path.to_owned(),
            at: module.at.clone(),
            class: module.class.clone(),
            reason: reason.into(),
        }
    }

    fn model_error(&self, reason: impl Into<String>) -> Torch7Error {
        Torch7Error::Model { path: self.path.to_owned(), reason: reason.into() }
    }

    fn expect<'m>(&self, parent: &'m Module, index: usize, kind: &str) -> Result<&'m Module, Torch7Error> {
        match parent.children.get(index) {
            Some(child) if child.kind() == kind => Ok(child),
            Some(child) => Err(self.error(child, format!("expected a {kind} here"))),
            None => Err(self.error(parent, format!("ends after {index} modules where a {kind} was expected"))),
        }
    }

    fn number(&self, module: &Module, name: &str) -> Result<usize, Torch7Error> {
        match number_field(self.file, module, name) {
            Some(v) if v >= 0.0 && v.fract() == 0.0 && v < 1e9 => Ok(v as usize),
            Some(v) => Err(self.error(module, format!("`{name}` is {v}, not a size"))),
            None => Err(self.error(module, format!("no number `{name}`"))),
        }
    }

    fn tensor(&self, module: &Module, name: &str) -> Result<Option<Tensor>, Torch7Error> {
        tensor_field(self.path, self.file, module, name)
    }

    fn required(&self, module: &Module, name: &str) -> Result<Tensor, Torch7Error> {
        self.tensor(module, name)?.ok_or_else(|| self.error(module, format!("no tensor `{name}`")))
    }

    /// Kernel, stride and padding: square, as every ResNet convolution and pool is.
    fn window(&self, module: &Module) -> Result<(usize, usize, usize), Torch7Error> {
        let [kw, kh, dw, dh] = ["kW", "kH", "dW", "dH"].map(|n| self.number(module, n));
        let (kw, kh, dw, dh) = (kw?, kh?, dw?, dh?);
        // Torch7 pools and old convolutions may leave padding unset, meaning 0.
        let pad = |n: &str| number_field(self.file, module, n).map_or(Ok(0), |_| self.number(module, n));
        let (pw, ph) = (pad("padW")?, pad("padH")?);
        if kw != kh || dw != dh || pw != ph {
            return Err(
                self.error(module, format!("not square: kernel {kw}x{kh}, stride {dw}x{dh}, padding {pw}x{ph}"))
            );
        }
        Ok((kw, dw, pw))
    }

    fn candle(&self, module: &Module) -> impl Fn(candle_core::Error) -> Torch7Error + '_ {
        let module = module.clone();
        move |e| self.error(&module, e.to_string())
    }

    /// A convolution and the batch norm after it, stored as `{conv}.weight` and `{bn}.*`.
    fn conv_bn(&mut self, conv: &Module, bn: &Module, conv_name: &str, bn_name: &str) -> Result<Conv, Torch7Error> {
        let (kernel, stride, pad) = self.window(conv)?;
        let input = self.number(conv, "nInputPlane")?;
        let output = self.number(conv, "nOutputPlane")?;
        if pad != kernel / 2 {
            return Err(
                self.error(conv, format!("padding {pad} for a {kernel}x{kernel} kernel (ResNets pad {})", kernel / 2))
            );
        }
        // Old nn stored the weight as (out, in·k·k); reshaping checks the element count too.
        let weight =
            self.required(conv, "weight")?.reshape((output, input, kernel, kernel)).map_err(self.candle(conv))?;
        let bias = self.tensor(conv, "bias")?;

        let mean = self.required(bn, "running_mean")?;
        let channels = mean.elem_count();
        if channels != output {
            return Err(self.error(bn, format!("{channels} channels after a convolution with {output}")));
        }
        let eps = number_field(self.file, bn, "eps").ok_or_else(|| self.error(bn, "no number `eps`"))?;
        let var = match self.tensor(bn, "running_var")? {
            Some(var) => var,
            None => {
                // nn before 2016 kept 1/sqrt(var + eps) as `running_std`.
                let inv_std = self
                    .tensor(bn, "running_std")?
                    .ok_or_else(|| self.error(bn, "neither `running_var` nor `running_std`"))?;
                self.note(format!("{bn_name}: running_var computed from the old running_std (1/sqrt(var + eps))"));
                inv_std.sqr().and_then(|s| s.recip()).and_then(|v| v.affine(1.0, -eps)).map_err(self.candle(bn))?
            }
        };
        // A convolution bias before a batch norm only shifts the mean the norm subtracts.
        let mean = match bias {
            Some(bias) => {
                self.note(format!("{conv_name}: bias folded into {bn_name}.running_mean"));
                (&mean - bias.reshape(channels).map_err(self.candle(conv))?).map_err(self.candle(conv))?
            }
            None => mean,
        };
        let affine = bool_field(self.file, bn, "affine").unwrap_or(true);
        let (gamma, beta) = match (affine, self.tensor(bn, "weight")?, self.tensor(bn, "bias")?) {
            (true, Some(g), Some(b)) => (g, b),
            (false, _, _) => {
                let ones = mean.ones_like().map_err(self.candle(bn))?;
                (ones, mean.zeros_like().map_err(self.candle(bn))?)
            }
            _ => return Err(self.error(bn, "affine but without `weight` and `bias`")),
        };
        self.eps.push(eps);
        self.tensors.push((format!("{conv_name}.weight"), weight));
        for (suffix, t) in [("weight", gamma), ("bias", beta), ("running_mean", mean), ("running_var", var)] {
            let t = t.reshape(channels).map_err(self.candle(bn))?;
            self.tensors.push((format!("{bn_name}.{suffix}"), t));
        }
        Ok(Conv { kernel, stride, pad, input, output })
    }

    fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    fn model(&mut self, tree: &Module) -> Result<Torch7Resnet, Torch7Error> {
        if tree.kind() != "Sequential" {
            return Err(self.error(tree, "the model is not a Sequential"));
        }
        let conv1 = self.expect(tree, 0, "SpatialConvolution")?;
        let bn1 = self.expect(tree, 1, "SpatialBatchNormalization")?;
        self.expect(tree, 2, "ReLU")?;
        let stem = self.conv_bn(conv1, bn1, "conv1", "bn1")?;
        let mut next = 3;
        let (family, stem_pool) = match tree.children.get(next) {
            Some(pool) if pool.kind() == "SpatialMaxPooling" => {
                next += 1;
                let ceil = bool_field(self.file, pool, "ceil_mode").unwrap_or(false);
                let stem_pool = match (self.window(pool)?, ceil) {
                    ((3, 2, 1), false) => StemPool::Torch,
                    ((3, 2, 0), true) => StemPool::Caffe,
                    (window, _) => {
                        return Err(self.error(
                            pool,
                            format!("(kernel, stride, padding) {window:?}, ceil {ceil}: not a ResNet stem pool"),
                        ))
                    }
                };
                (Family::Imagenet, Some(stem_pool))
            }
            _ => (Family::Cifar, None),
        };
        let (expected_stem, stages_expected) = match family {
            Family::Imagenet => ((7, 2), 4),
            Family::Cifar => ((3, 1), 3),
        };
        if (stem.kernel, stem.stride) != expected_stem {
            return Err(
                self.error(conv1, format!("a {0}x{0}/{1} stem in a {family:?} ResNet", stem.kernel, stem.stride))
            );
        }

        let mut channels = stem.output;
        let mut blocks_per_stage = Vec::new();
        let mut kinds = Vec::new();
        let mut placements = Vec::new();
        let mut shortcuts = Vec::new();
        while let Some(stage) = tree.children.get(next).filter(|m| m.kind() == "Sequential") {
            next += 1;
            let s = blocks_per_stage.len() + 1;
            if stage.children.is_empty() {
                return Err(self.error(stage, "an empty stage"));
            }
            for (j, block) in stage.children.iter().enumerate() {
                let (kind, placement, shortcut, output) = self.block(block, &format!("layer{s}.{j}"), channels)?;
                kinds.push(kind);
                placements.extend(placement);
                shortcuts.push(shortcut);
                channels = output;
            }
            blocks_per_stage.push(stage.children.len());
        }
        if blocks_per_stage.len() != stages_expected {
            return Err(self
                .model_error(format!("{} stages, a {family:?} ResNet has {stages_expected}", blocks_per_stage.len())));
        }
        let pool = self.expect(tree, next, "SpatialAveragePooling")?;
        self.window(pool)?;
        self.expect(tree, next + 1, "View")?;
        let linear = self.expect(tree, next + 2, "Linear")?;
        if let Some(extra) = tree.children.get(next + 3) {
            return Err(self.error(extra, "a module after the classifier"));
        }
        let fc_weight = self.required(linear, "weight")?;
        let (num_classes, features) = fc_weight.dims2().map_err(self.candle(linear))?;
        if features != channels {
            return Err(self.error(linear, format!("{features} inputs after {channels} feature channels")));
        }
        self.tensors.push(("fc.weight".into(), fc_weight));
        let fc_bias = self.required(linear, "bias")?;
        self.tensors.push(("fc.bias".into(), fc_bias));

        let block = kinds[0];
        if kinds.iter().any(|&k| k != block) {
            return Err(self.model_error("basic and bottleneck blocks mixed"));
        }
        // Basic blocks stride their first 3x3, which is where v1.5 puts it too.
        let stride = placements.first().copied().unwrap_or(StridePlacement::V1_5);
        if placements.iter().any(|&p| p != stride) {
            return Err(self.model_error("downsampling blocks stride different convolutions"));
        }
        let shortcut = classify(&shortcuts)
            .ok_or_else(|| self.model_error(format!("shortcuts fit none of types A, B, C: {shortcuts:?}")))?;
        let depth = match family {
            Family::Imagenet => imagenet_depth_of(block, &blocks_per_stage).ok_or_else(|| {
                self.model_error(format!("{block:?} blocks per stage {blocks_per_stage:?} are no known ImageNet depth"))
            })?,
            Family::Cifar => {
                let n = blocks_per_stage[0];
                if block != BlockKind::Basic || blocks_per_stage.iter().any(|&b| b != n) {
                    return Err(self.model_error(format!("a CIFAR ResNet with {block:?} blocks {blocks_per_stage:?}")));
                }
                6 * n + 2
            }
        };
        let bn_eps = self.eps[0];
        if self.eps.iter().any(|&e| e != bn_eps) {
            return Err(self.model_error(format!("batch norms with different eps: {:?}", self.eps)));
        }
        let base_width = self
            .tensors
            .iter()
            .find(|(n, _)| n == "layer1.0.bn1.running_mean")
            .map_or(stem.output, |(_, t)| t.elem_count());
        Ok(Torch7Resnet {
            family,
            block,
            blocks_per_stage,
            depth,
            base_width,
            num_classes,
            stride,
            shortcut,
            stem_pool,
            bn_eps,
            notes: std::mem::take(&mut self.notes),
            tensors: std::mem::take(&mut self.tensors),
            tree: tree.clone(),
        })
    }

    /// One residual block; returns its kind, where it strides (if it does), its shortcut and
    /// its output channels.
    fn block(
        &mut self,
        block: &Module,
        name: &str,
        input: usize,
    ) -> Result<(BlockKind, Option<StridePlacement>, (Shortcut, bool), usize), Torch7Error> {
        let concat = self.expect(block, 0, "ConcatTable")?;
        self.expect(block, 1, "CAddTable")?;
        self.expect(block, 2, "ReLU")?;
        if block.children.len() != 3 || concat.children.len() != 2 {
            return Err(self.error(block, "not Sequential(ConcatTable(branch, shortcut), CAddTable, ReLU)"));
        }
        let branch = self.expect(concat, 0, "Sequential")?;
        let mut convs = Vec::new();
        let mut i = 0;
        loop {
            let conv = self.expect(branch, i, "SpatialConvolution")?;
            let bn = self.expect(branch, i + 1, "SpatialBatchNormalization")?;
            let k = convs.len() + 1;
            convs.push(self.conv_bn(conv, bn, &format!("{name}.conv{k}"), &format!("{name}.bn{k}"))?);
            if i + 2 == branch.children.len() {
                break;
            }
            self.expect(branch, i + 2, "ReLU")?;
            i += 3;
        }
        let kind = match convs.iter().map(|c| c.kernel).collect::<Vec<_>>()[..] {
            [3, 3] => BlockKind::Basic,
            [1, 3, 1] => BlockKind::Bottleneck,
            ref kernels => {
                return Err(self.error(
                    branch,
                    format!("convolutions of kernels {kernels:?} are neither a basic nor a bottleneck block"),
                ))
            }
        };
        let mut channels = input;
        for (k, conv) in convs.iter().enumerate() {
            if conv.input != channels {
                return Err(self.error(branch, format!("conv{} takes {} channels, gets {channels}", k + 1, conv.input)));
            }
            channels = conv.output;
        }
        let output = channels;
        let strided: Vec<usize> = convs.iter().enumerate().filter(|(_, c)| c.stride != 1).map(|(k, _)| k).collect();
        let (stride, placement) = match (strided.as_slice(), kind) {
            ([], _) => (1, None),
            ([0], BlockKind::Basic) => (convs[0].stride, Some(StridePlacement::V1_5)),
            ([0], BlockKind::Bottleneck) => (convs[0].stride, Some(StridePlacement::V1)),
            ([1], BlockKind::Bottleneck) => (convs[1].stride, Some(StridePlacement::V1_5)),
            _ => {
                return Err(
                    self.error(branch, format!("strides {:?}", convs.iter().map(|c| c.stride).collect::<Vec<_>>()))
                )
            }
        };
        let reshapes = stride != 1 || input != output;
        let shortcut = self.shortcut(&concat.children[1], name, input, output, stride)?;
        Ok((kind, placement, (shortcut, reshapes), output))
    }

    fn shortcut(
        &mut self,
        module: &Module,
        name: &str,
        input: usize,
        output: usize,
        stride: usize,
    ) -> Result<Shortcut, Torch7Error> {
        match module.kind() {
            "Identity" if input == output && stride == 1 => Ok(Shortcut::Identity),
            "Sequential" if module.children.first().is_some_and(|m| m.kind() == "SpatialConvolution") => {
                let conv = self.expect(module, 0, "SpatialConvolution")?;
                let bn = self.expect(module, 1, "SpatialBatchNormalization")?;
                let c = self.conv_bn(conv, bn, &format!("{name}.downsample.0"), &format!("{name}.downsample.1"))?;
                if module.children.len() != 2 || (c.kernel, c.stride, c.input, c.output) != (1, stride, input, output) {
                    return Err(
                        self.error(module, format!("not a 1x1/{stride} projection from {input} to {output} channels"))
                    );
                }
                Ok(Shortcut::Projection)
            }
            "Sequential" => {
                let pool = self.expect(module, 0, "SpatialAveragePooling")?;
                let concat = self.expect(module, 1, "Concat")?;
                let zero_pad = module.children.len() == 2
                    && self.window(pool)? == (1, stride, 0)
                    && number_field(self.file, concat, "dimension") == Some(2.0)
                    && concat.children.len() == 2
                    && concat.children[0].kind() == "Identity"
                    && concat.children[1].kind() == "MulConstant"
                    && number_field(self.file, &concat.children[1], "constant_scalar") == Some(0.0)
                    && output == 2 * input;
                if !zero_pad {
                    return Err(self.error(
                        module,
                        format!("not option A's zero-padded identity from {input} to {output} channels"),
                    ));
                }
                Ok(Shortcut::ZeroPad)
            }
            _ => {
                Err(self
                    .error(module, format!("not a shortcut from {input} to {output} channels with stride {stride}")))
            }
        }
    }
}

/// fb.resnet.torch's shortcut type from each block's (shortcut, whether the block reshapes).
fn classify(shortcuts: &[(Shortcut, bool)]) -> Option<Torch7Shortcut> {
    let all = |f: fn(Shortcut, bool) -> bool| shortcuts.iter().all(|&(s, r)| f(s, r));
    if all(|s, r| s == if r { Shortcut::ZeroPad } else { Shortcut::Identity }) {
        Some(Torch7Shortcut::A)
    } else if all(|s, r| s == if r { Shortcut::Projection } else { Shortcut::Identity }) {
        Some(Torch7Shortcut::B)
    } else if all(|s, _| s == Shortcut::Projection) {
        Some(Torch7Shortcut::C)
    } else {
        None
    }
}
