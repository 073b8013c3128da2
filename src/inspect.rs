//! `resnet-audit inspect`: what a weights file holds — architecture, classes, size, cost.

use std::fmt;
use std::path::Path;

use crate::import::caffe::{CaffeError, CaffeModel};
use crate::import::convert::{convert, file_sha256, ImportError};
use crate::import::{torch7, DetectError, WeightsFormat};
use crate::model::complexity::multiply_adds;
use crate::model::config::imagenet_depth_of;
use crate::model::{BlockKind, BuildOptions, CifarShortcut, ResNetConfig, StemPool, StridePlacement, Topology};
use crate::weights::{encode_safetensors, load_resnet, LoadOptions, WeightsError, WeightsFile};

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("{path}: {reason}")]
    NotAResNet { path: String, reason: String },
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Detect(#[from] DetectError),
    #[error(transparent)]
    Caffe(#[from] CaffeError),
    #[error(transparent)]
    Import(#[from] ImportError),
}

/// The `inspect` listing of any weights file, its reader chosen by content
/// ([`WeightsFormat::detect`]): a safetensors file's architecture table, a Caffe model's layers,
/// or for a Torch7 file or PyTorch checkpoint the table of its conversion (what `eval` runs),
/// what the conversion inferred, and the module tree (Torch7) or the tensor list (PyTorch).
pub fn inspect_path(path: &Path) -> Result<String, InspectError> {
    let format = WeightsFormat::detect(path)?;
    match format {
        WeightsFormat::Safetensors => Ok(inspect(&WeightsFile::read(path)?)?.to_string()),
        WeightsFormat::Caffe => Ok(CaffeModel::read(path)?.to_string()),
        WeightsFormat::Torch7 | WeightsFormat::PytorchZip | WeightsFormat::PytorchLegacy => {
            let converted = convert(path)?;
            let bytes = encode_safetensors(path, &converted.tensors, &converted.provenance.to_metadata())?;
            let mut inspection = inspect(&WeightsFile::from_bytes(path, &bytes)?)?;
            // The table names the released file, not the in-memory conversion.
            inspection.sha256 = file_sha256(path)?;
            let mut out = format!("{:<18}{}\n", "format", format.description());
            out.push_str(&inspection.to_string());
            for note in &converted.provenance.inferred {
                out.push_str(&format!("{:<18}{note}\n", "inferred"));
            }
            if format == WeightsFormat::Torch7 {
                out.push_str("\nmodule tree:\n");
                let file = torch7::read_file(path).map_err(ImportError::from)?;
                write_tree(&mut out, &torch7::module_tree(path, &file).map_err(ImportError::from)?, 1);
            } else {
                out.push_str("\ntensors (torchvision names):\n");
                for (name, tensor) in &converted.tensors {
                    out.push_str(&format!("  {name:<40} {:?}\n", tensor.dims()));
                }
            }
            Ok(out)
        }
    }
}

/// One line per module, indented by depth; runs of identical leaf siblings stay separate so the
/// tree reads like the file.
fn write_tree(out: &mut String, module: &torch7::Module, depth: usize) {
    out.push_str(&format!("{}{}\n", "  ".repeat(depth), module.class));
    for child in &module.children {
        write_tree(out, child, depth + 1);
    }
}

/// What the file says about the bottleneck stride, which its tensor shapes cannot show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrideEvidence {
    /// Basic blocks: there is no 1x1 to put it on.
    NotApplicable,
    /// Recorded in the file's metadata (`stride_placement`).
    Metadata(StridePlacement),
    /// Unknown: v1 and v1.5 have identical tensors.
    Unknown,
}

/// The result of inspecting a weights file.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub path: String,
    pub sha256: String,
    /// The detected architecture (v1.5 strides assumed when the file cannot tell).
    pub config: ResNetConfig,
    pub stride: StrideEvidence,
    pub blocks_per_stage: Vec<usize>,
    /// Parameters counted from the file's tensors (BN running statistics excluded).
    pub parameters: u64,
    pub stored_dtypes: Vec<String>,
    pub tensor_count: usize,
}

fn shape_of<'a>(file: &'a WeightsFile, name: &str) -> Option<&'a [usize]> {
    file.tensors.get(name).map(|t| t.shape.as_slice())
}

fn blocks_in(file: &WeightsFile, stage: usize) -> usize {
    (0..).take_while(|j| file.tensors.contains_key(&format!("layer{stage}.{j}.conv1.weight"))).count()
}

/// Detects the architecture from tensor names and shapes (and metadata where shapes are
/// silent), then checks that the whole file loads as that architecture.
pub fn inspect(file: &WeightsFile) -> Result<Inspection, InspectError> {
    let path = file.path.display().to_string();
    let fail = |reason: String| InspectError::NotAResNet { path: path.clone(), reason };
    let stem = shape_of(file, "conv1.weight")
        .ok_or_else(|| fail("no `conv1.weight` tensor: not a torchvision-style ResNet".into()))?;
    let (base_width, kernel) = match *stem {
        [c, 3, k, k2] if k == k2 => (c, k),
        _ => {
            return Err(fail(format!(
                "`conv1.weight` has shape {stem:?}; expected [C, 3, 7, 7] (ImageNet) or [C, 3, 3, 3] (CIFAR)"
            )))
        }
    };
    let num_classes = match shape_of(file, "fc.weight") {
        Some([k, _]) => *k,
        other => return Err(fail(format!("`fc.weight` is {other:?}; expected a [classes, features] matrix"))),
    };
    let bottleneck = file.tensors.contains_key("layer1.0.conv3.weight");
    let provenance = file.provenance()?;
    let (topology, blocks, stride) = match kernel {
        7 => {
            let blocks: Vec<usize> = (1..=4).map(|i| blocks_in(file, i)).collect();
            let kind = if bottleneck { BlockKind::Bottleneck } else { BlockKind::Basic };
            let depth = imagenet_depth_of(kind, &blocks).ok_or_else(|| {
                fail(format!(
                    "{kind:?} blocks per stage {blocks:?} match no ResNet depth (14, 18, 26, 34, 50, 101, 152, 200)"
                ))
            })?;
            let stride = match (kind, provenance.stride) {
                (BlockKind::Basic, _) => StrideEvidence::NotApplicable,
                (_, Some(placement)) => StrideEvidence::Metadata(placement),
                (_, None) => StrideEvidence::Unknown,
            };
            let placement = match stride {
                StrideEvidence::Metadata(p) => p,
                _ => StridePlacement::V1_5,
            };
            let stem_pool = provenance.stem_pool.unwrap_or(StemPool::Torch);
            (Topology::Imagenet { depth, stride: placement, stem_pool }, blocks, stride)
        }
        3 => {
            let blocks: Vec<usize> = (1..=3).map(|i| blocks_in(file, i)).collect();
            let n = blocks[0];
            if n == 0 || blocks.iter().any(|&b| b != n) || bottleneck {
                return Err(fail(format!(
                    "CIFAR-style stem but blocks per stage {blocks:?}; expected three equal stages of basic blocks"
                )));
            }
            // A and A-split have the same (no) tensors: the metadata says which, else A.
            let shortcut = if file.tensors.contains_key("layer2.0.downsample.0.weight") {
                CifarShortcut::B
            } else {
                match provenance.cifar_shortcut {
                    Some(recorded @ (CifarShortcut::A | CifarShortcut::ASplit)) => recorded,
                    _ => CifarShortcut::A,
                }
            };
            (Topology::Cifar { depth: 6 * n + 2, shortcut }, blocks, StrideEvidence::NotApplicable)
        }
        k => return Err(fail(format!("`conv1.weight` has a {k}x{k} kernel; expected 7x7 (ImageNet) or 3x3 (CIFAR)"))),
    };
    let bn_eps = provenance.bn_eps.unwrap_or(1e-5);
    let config = ResNetConfig { topology, num_classes, base_width, bn_eps };
    let options =
        LoadOptions { build: BuildOptions { fold_bn: false, ..BuildOptions::default() }, ..LoadOptions::default() };
    load_resnet(file, &config, &options)?;

    let is_statistic = |name: &str| {
        name.ends_with("running_mean") || name.ends_with("running_var") || name.ends_with("num_batches_tracked")
    };
    let parameters = file
        .tensors
        .iter()
        .filter(|(name, _)| !is_statistic(name))
        .map(|(_, t)| t.shape.iter().product::<usize>() as u64)
        .sum();
    let mut stored_dtypes: Vec<String> = file
        .tensors
        .iter()
        .filter(|(name, _)| !name.ends_with("num_batches_tracked"))
        .map(|(_, t)| format!("{:?}", t.dtype).to_ascii_lowercase())
        .collect();
    stored_dtypes.sort();
    stored_dtypes.dedup();
    Ok(Inspection {
        path,
        sha256: file.sha256.clone(),
        config,
        stride,
        blocks_per_stage: blocks,
        parameters,
        stored_dtypes,
        tensor_count: file.tensors.len(),
    })
}

pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn giga(n: u64) -> String {
    format!("{:.3} G", n as f64 / 1e9)
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let (family, depth) = match c.topology {
            Topology::Imagenet { depth, .. } => ("ImageNet ResNet", depth),
            Topology::Cifar { depth, .. } => ("CIFAR ResNet (paper section 4.2)", depth),
        };
        let block = match c.block_kind() {
            BlockKind::Basic => "basic (3x3, 3x3)",
            BlockKind::Bottleneck => "bottleneck (1x1, 3x3, 1x1)",
        };
        let stride = match self.stride {
            StrideEvidence::NotApplicable => "n/a (basic blocks)".to_string(),
            StrideEvidence::Metadata(p) => format!("{} (from the file's metadata `stride_placement`)", p.name()),
            StrideEvidence::Unknown => {
                "unknown: v1 (stride on the first 1x1) and v1.5 (on the 3x3) have identical tensors; \
                 say which in the experiment"
                    .to_string()
            }
        };
        let mut rows: Vec<(&str, String)> = vec![
            ("file", self.path.clone()),
            ("sha256", self.sha256.clone()),
            ("family", family.to_string()),
            ("depth", depth.to_string()),
            ("block", block.to_string()),
            ("blocks per stage", format!("{:?}", self.blocks_per_stage)),
            ("stride placement", stride),
            ("classes", c.num_classes.to_string()),
            ("base width", c.base_width.to_string()),
        ];
        if let Topology::Cifar { shortcut, .. } = c.topology {
            rows.push(("shortcut", format!("option {}", shortcut.name())));
        }
        rows.push(("parameters", thousands(self.parameters)));
        rows.push(("stored dtype", self.stored_dtypes.join(", ")));
        rows.push(("tensors", self.tensor_count.to_string()));
        let side = if matches!(c.topology, Topology::Cifar { .. }) { 32 } else { 224 };
        let macs = match self.stride {
            StrideEvidence::Unknown => format!(
                "{} (v1.5), {} (v1)",
                giga(multiply_adds(&c.with_stride(StridePlacement::V1_5), side, side)),
                giga(multiply_adds(&c.with_stride(StridePlacement::V1), side, side))
            ),
            _ => giga(multiply_adds(c, side, side)),
        };
        rows.push((if side == 224 { "multiply-adds @224x224" } else { "multiply-adds @32x32" }, macs));
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (key, value) in rows {
            writeln!(f, "{key:<width$}  {value}")?;
        }
        Ok(())
    }
}
