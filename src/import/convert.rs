//! Any released weights file → our safetensors, by content: the one conversion `eval`, `audit`,
//! `inspect` and `convert` share. A converted copy is cached as
//! `<store>/converted/<source sha256>.safetensors`: keyed by the source's bytes (not its path or
//! mtime), so a second run reads the copy, and a changed source gets a new one. The copy's
//! [`Provenance`] records the format, the source SHA-256 and what the converter inferred.

use std::path::{Path, PathBuf};

use candle_core::Tensor;
use sha2::{Digest, Sha256};

use super::caffe::{CaffeError, CaffeModel};
use super::pytorch::{read_checkpoint, PytorchError};
use super::torch7::{read_resnet, Torch7Error};
use super::{DetectError, WeightsFormat};
use crate::model::CifarShortcut;
use crate::weights::{write_safetensors, Origin, Provenance, SourceFormat, WeightsError};

/// The folder under a result store that holds converted copies.
pub const CONVERTED_DIR: &str = "converted";

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Detect(#[from] DetectError),
    #[error(transparent)]
    Caffe(#[from] CaffeError),
    #[error(transparent)]
    Pytorch(#[from] PytorchError),
    #[error(transparent)]
    Torch7(#[from] Torch7Error),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("cannot read {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path}: {reason}")]
    Model { path: PathBuf, reason: String },
    #[error("{path} is already a safetensors file; nothing to convert")]
    AlreadySafetensors { path: PathBuf },
}

/// A released file's tensors in torchvision names, with their provenance.
pub struct Converted {
    pub tensors: Vec<(String, Tensor)>,
    pub provenance: Provenance,
}

/// SHA-256 (hex) of a file's bytes.
pub fn file_sha256(path: &Path) -> Result<String, ImportError> {
    let bytes = std::fs::read(path).map_err(|error| ImportError::Io { path: path.to_owned(), error })?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

fn origin(format: SourceFormat, path: &Path, sha256: &str) -> Origin {
    Origin::Converted {
        format,
        source: path.display().to_string(),
        source_sha256: sha256.to_string(),
        tool: format!("resnet-audit {} convert", env!("CARGO_PKG_VERSION")),
    }
}

/// Reads a non-safetensors weights file (Caffe, Torch7, PyTorch checkpoint) into torchvision
/// names.
pub fn convert(path: &Path) -> Result<Converted, ImportError> {
    match WeightsFormat::detect(path)? {
        WeightsFormat::Safetensors => Err(ImportError::AlreadySafetensors { path: path.to_owned() }),
        WeightsFormat::Caffe => {
            let model = CaffeModel::read(path)?;
            let tensors = model
                .tensors()?
                .into_iter()
                .map(|(name, blob)| {
                    Tensor::from_vec(blob.data, blob.shape.as_slice(), &candle_core::Device::Cpu)
                        .map(|t| (name.clone(), t))
                        .map_err(|e| ImportError::Model { path: path.to_owned(), reason: format!("{name}: {e}") })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Converted { tensors, provenance: model.provenance(None) })
        }
        WeightsFormat::Torch7 => {
            let sha256 = file_sha256(path)?;
            let model = read_resnet(path)?;
            let config = model.config().map_err(|reason| ImportError::Model { path: path.to_owned(), reason })?;
            let cifar_shortcut = match config.topology {
                crate::model::Topology::Cifar { shortcut, .. } => Some(shortcut),
                crate::model::Topology::Imagenet { .. } => None,
            };
            let provenance = Provenance {
                origin: Some(origin(SourceFormat::Torch7, path, &sha256)),
                architecture: Some(format!("resnet{}", model.depth)),
                stride: (model.block == crate::model::BlockKind::Bottleneck).then_some(model.stride),
                stem_pool: model.stem_pool,
                cifar_shortcut,
                // Read from the module tree, not inferred; the notes say what was converted.
                inferred: model.notes.clone(),
                bn_eps: Some(model.bn_eps),
                num_classes: Some(model.num_classes),
                base_width: Some(model.base_width),
                ..Provenance::default()
            };
            Ok(Converted { tensors: model.tensors, provenance })
        }
        WeightsFormat::PytorchZip | WeightsFormat::PytorchLegacy => {
            let sha256 = file_sha256(path)?;
            let checkpoint = read_checkpoint(path)?;
            let mut inferred = Vec::new();
            if let Some(prefix) = &checkpoint.stripped_prefix {
                inferred.push(format!("removed the `{prefix}` prefix (DataParallel) from every name"));
            }
            if !checkpoint.nesting.is_empty() {
                inferred.push(format!("state dict read from `{}`", checkpoint.nesting.join(".")));
            }
            let tensors = torchvision_names(checkpoint.tensors, &mut inferred);
            let has = |name: &str| tensors.iter().any(|(n, _)| n == name);
            let is_cifar = tensors.iter().any(|(n, t)| n == "conv1.weight" && t.dims().len() == 4 && t.dims()[2] == 3)
                && !has("layer4.0.conv1.weight");
            // Option A and A-split have the same (no) shortcut tensors. The PyTorch CIFAR
            // ResNets released as checkpoints (akamaster/pytorch_resnet_cifar10 and its copies)
            // pad on both sides; fb.resnet.torch, which appends, released .t7 files.
            let cifar_shortcut = match (is_cifar, has("layer2.0.downsample.0.weight")) {
                (false, _) => None,
                (true, true) => Some(CifarShortcut::B),
                (true, false) => {
                    inferred.push(
                        "cifar_shortcut A-split: shortcuts without parameters, zero channels assumed padded on \
                         both sides as PyTorch CIFAR ResNets do (the tensors cannot tell A from A-split; set \
                         `cifar_shortcut` in the experiment to override)"
                            .to_string(),
                    );
                    Some(CifarShortcut::ASplit)
                }
            };
            let provenance = Provenance {
                origin: Some(origin(SourceFormat::PyTorch, path, &sha256)),
                cifar_shortcut,
                inferred,
                ..Provenance::default()
            };
            Ok(Converted { tensors, provenance })
        }
    }
}

/// Renames the layouts PyTorch re-implementations use onto torchvision's: a `linear` classifier
/// (CIFAR ResNets) becomes `fc`, a `shortcut.{0,1}` projection becomes `downsample.{0,1}`.
fn torchvision_names(tensors: Vec<(String, Tensor)>, inferred: &mut Vec<String>) -> Vec<(String, Tensor)> {
    let has_fc = tensors.iter().any(|(n, _)| n.starts_with("fc."));
    let mut renamed_linear = false;
    let mut renamed_shortcut = false;
    let out = tensors
        .into_iter()
        .map(|(name, tensor)| {
            let name = match name.strip_prefix("linear.") {
                Some(rest) if !has_fc => {
                    renamed_linear = true;
                    format!("fc.{rest}")
                }
                _ => name,
            };
            let name = if name.contains(".shortcut.") {
                renamed_shortcut = true;
                name.replace(".shortcut.", ".downsample.")
            } else {
                name
            };
            (name, tensor)
        })
        .collect();
    if renamed_linear {
        inferred.push("classifier `linear.*` renamed to torchvision's `fc.*`".to_string());
    }
    if renamed_shortcut {
        inferred.push("projection shortcut `*.shortcut.{0,1}.*` renamed to torchvision's `downsample`".to_string());
    }
    out
}

/// Converts `path` to a safetensors file at `out`; returns what was recorded.
pub fn convert_to(path: &Path, out: &Path) -> Result<Provenance, ImportError> {
    let converted = convert(path)?;
    write_safetensors(out, &converted.tensors, &converted.provenance.to_metadata())?;
    Ok(converted.provenance)
}

/// A safetensors path for any weights file: the file itself when it is one, else its converted
/// copy under `store_dir/converted/`, made on first use.
pub fn as_safetensors(path: &Path, store_dir: &Path) -> Result<PathBuf, ImportError> {
    if WeightsFormat::detect(path)?.is_safetensors() {
        return Ok(path.to_owned());
    }
    let cached = store_dir.join(CONVERTED_DIR).join(format!("{}.safetensors", file_sha256(path)?));
    if !cached.is_file() {
        if let Some(dir) = cached.parent() {
            std::fs::create_dir_all(dir).map_err(|error| ImportError::Io { path: dir.to_owned(), error })?;
        }
        convert_to(path, &cached)?;
    }
    Ok(cached)
}
