//! The released 2015 Caffe ResNets: read a `.caffemodel` (current or legacy encoding) and a
//! mean `.binaryproto`, and convert them to our safetensors naming with Caffe's semantics:
//! BatchNorm blobs are mean·s, variance·s and s (divided out here; s = 0 gives zeros, as in
//! Caffe), the following Scale layer holds γ and β, the stride sits on the first 1x1 (v1), and
//! pool1 is Caffe's unpadded ceil-mode pool (metadata `stem_pool: caffe`).

pub mod proto;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use prost::Message;
use sha2::{Digest, Sha256};

use crate::model::config::imagenet_depth_of;
use crate::model::{BlockKind, ResNetConfig, StemPool, StridePlacement};
use crate::transform::{ChannelOrder, PixelScale};
use crate::weights::provenance::PixelLayout;
use crate::weights::{
    tensor_specs, write_safetensors, InputConvention, Origin, Provenance, SourceFormat, WeightsError,
};
use candle_core::{Device, Tensor};
use proto::{BlobProto, NetParameter};

#[derive(Debug, thiserror::Error)]
pub enum CaffeError {
    #[error("cannot read {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path} is not a Caffe {what}: {reason}")]
    NotCaffe { path: PathBuf, what: &'static str, reason: String },
    #[error("{path}: layer `{layer}`: {reason}")]
    Layer { path: PathBuf, layer: String, reason: String },
    #[error("{path}: no layer `{layer}` ({why})")]
    MissingLayer { path: PathBuf, layer: String, why: String },
    #[error("{path}: BatchNorm layer `{bn}` has no Scale layer `{scale}` after it (gamma and beta live there)")]
    MissingScale { path: PathBuf, bn: String, scale: String },
    #[error("{path}: not a bottleneck ResNet of a known depth: {reason}")]
    NotAResNet { path: PathBuf, reason: String },
    #[error(transparent)]
    Write(#[from] WeightsError),
}

/// One layer as stored: name, type and blobs (shape, f32 data).
#[derive(Debug, Clone)]
pub struct Layer {
    pub name: String,
    pub kind: String,
    pub blobs: Vec<Blob>,
    pub bn_eps: Option<f32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Blob {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, CaffeError> {
    std::fs::read(path).map_err(|error| CaffeError::Io { path: path.to_path_buf(), error })
}

/// A blob's shape (`shape`, else the legacy num/channels/height/width) and data (float or double).
fn blob(proto: &BlobProto) -> Result<Blob, String> {
    let shape: Vec<usize> = match &proto.shape {
        Some(shape) => shape
            .dim
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension {d}")))
            .collect::<Result<_, _>>()?,
        None => [proto.num, proto.channels, proto.height, proto.width]
            .iter()
            .map(|d| usize::try_from(d.unwrap_or(0)).map_err(|_| "negative legacy dimension".to_string()))
            .collect::<Result<_, _>>()?,
    };
    let data: Vec<f32> =
        if proto.data.is_empty() { proto.double_data.iter().map(|&x| x as f32).collect() } else { proto.data.clone() };
    let count: usize = shape.iter().product();
    if count != data.len() {
        return Err(format!("shape {shape:?} holds {count} values but the blob has {}", data.len()));
    }
    Ok(Blob { shape, data })
}

/// Reads every layer of a `.caffemodel`, from `layer` or, in old files, `layers`.
pub fn read_layers(path: &Path) -> Result<Vec<Layer>, CaffeError> {
    let bytes = read_bytes(path)?;
    let not_caffe = |reason: String| CaffeError::NotCaffe { path: path.to_path_buf(), what: "model", reason };
    let net = NetParameter::decode(bytes.as_slice()).map_err(|e| not_caffe(format!("protobuf: {e}")))?;
    let raw: Vec<(String, String, &Vec<BlobProto>, Option<f32>)> = if !net.layer.is_empty() {
        net.layer
            .iter()
            .map(|l| {
                let eps = l.batch_norm_param.as_ref().and_then(|p| p.eps);
                (l.name.clone().unwrap_or_default(), l.r#type.clone().unwrap_or_default(), &l.blobs, eps)
            })
            .collect()
    } else {
        net.layers
            .iter()
            .map(|l| {
                let kind = proto::v1_type_name(l.r#type.unwrap_or(0)).to_string();
                (l.name.clone().unwrap_or_default(), kind, &l.blobs, None)
            })
            .collect()
    };
    if raw.is_empty() || raw.iter().all(|(name, ..)| name.is_empty()) {
        return Err(not_caffe("no named layers".into()));
    }
    raw.into_iter()
        .map(|(name, kind, blobs, bn_eps)| {
            let blobs = blobs.iter().enumerate().map(|(i, b)| {
                blob(b).map_err(|reason| CaffeError::Layer {
                    path: path.to_path_buf(),
                    layer: name.clone(),
                    reason: format!("blob {i}: {reason}"),
                })
            });
            Ok(Layer { blobs: blobs.collect::<Result<_, _>>()?, name, kind, bn_eps })
        })
        .collect()
}

/// The mean image of a `.binaryproto`: [3, H, W] values in Caffe's (BGR, 0–255) convention.
pub fn read_mean(path: &Path) -> Result<Blob, CaffeError> {
    let bytes = read_bytes(path)?;
    let not_mean = |reason: String| CaffeError::NotCaffe { path: path.to_path_buf(), what: "mean binaryproto", reason };
    let proto = BlobProto::decode(bytes.as_slice()).map_err(|e| not_mean(format!("protobuf: {e}")))?;
    let mut mean = blob(&proto).map_err(not_mean)?;
    if mean.shape.len() == 4 && mean.shape[0] == 1 {
        mean.shape.remove(0);
    }
    match mean.shape.as_slice() {
        [3, h, w] if *h > 0 && *w > 0 => Ok(mean),
        other => Err(not_mean(format!("expected a 3-channel image ([1, 3, H, W] or [3, H, W]), found {other:?}"))),
    }
}

/// Caffe block names of one stage, in order: `a`, then `b`, `c`, … or `b1`, `b2`, ….
fn stage_blocks(names: &HashMap<&str, &Layer>, stage: usize) -> Vec<String> {
    let mut blocks: Vec<String> = names
        .keys()
        .filter_map(|n| n.strip_prefix(&format!("res{stage}"))?.strip_suffix("_branch2a").map(str::to_string))
        .collect();
    let key = |b: &String| -> (usize, usize) {
        match b.as_str() {
            "a" => (0, 0),
            s if s.len() == 1 => (1, s.as_bytes()[0] as usize),
            s => (1, s.get(1..).and_then(|n| n.parse().ok()).unwrap_or(usize::MAX)),
        }
    };
    blocks.sort_by_key(key);
    blocks
}

/// Architecture of a Caffe ResNet: depth from the block names, widths and classes from blobs.
pub struct CaffeModel {
    pub path: PathBuf,
    pub sha256: String,
    pub layers: Vec<Layer>,
    pub config: ResNetConfig,
    /// Caffe name of each stage's blocks.
    pub blocks: Vec<Vec<String>>,
    pub fc_layer: String,
}

impl CaffeModel {
    pub fn read(path: &Path) -> Result<Self, CaffeError> {
        let layers = read_layers(path)?;
        let sha256 = format!("{:x}", Sha256::digest(read_bytes(path)?));
        let by_name: HashMap<&str, &Layer> = layers.iter().map(|l| (l.name.as_str(), l)).collect();
        let not_resnet = |reason: String| CaffeError::NotAResNet { path: path.to_path_buf(), reason };
        let blocks: Vec<Vec<String>> = (2..=5).map(|s| stage_blocks(&by_name, s)).collect();
        let counts: Vec<usize> = blocks.iter().map(Vec::len).collect();
        let depth = imagenet_depth_of(BlockKind::Bottleneck, &counts)
            .ok_or_else(|| not_resnet(format!("blocks per stage {counts:?} (res2…res5 `*_branch2a` layers)")))?;
        let conv1 = by_name.get("conv1").ok_or_else(|| CaffeError::MissingLayer {
            path: path.to_path_buf(),
            layer: "conv1".into(),
            why: "the stem convolution".into(),
        })?;
        let base_width = conv1.blobs.first().and_then(|b| b.shape.first().copied()).ok_or_else(|| {
            CaffeError::Layer { path: path.to_path_buf(), layer: "conv1".into(), reason: "has no weight blob".into() }
        })?;
        let fc =
            layers.iter().rev().find(|l| l.kind == "InnerProduct" || l.name.starts_with("fc")).ok_or_else(|| {
                CaffeError::MissingLayer {
                    path: path.to_path_buf(),
                    layer: "fc1000".into(),
                    why: "no InnerProduct layer".into(),
                }
            })?;
        let classes = fc.blobs.first().and_then(|b| b.shape.iter().rev().nth(1).copied()).ok_or_else(|| {
            CaffeError::Layer { path: path.to_path_buf(), layer: fc.name.clone(), reason: "has no weight blob".into() }
        })?;
        let eps: Vec<f32> = layers.iter().filter(|l| l.kind == "BatchNorm").map(|l| l.bn_eps.unwrap_or(1e-5)).collect();
        let bn_eps = eps.first().copied().unwrap_or(1e-5);
        if let Some(other) = eps.iter().find(|&&e| e != bn_eps) {
            return Err(not_resnet(format!("BatchNorm layers use different eps ({bn_eps} and {other})")));
        }
        let mut config = ResNetConfig::imagenet(depth, classes)
            .with_base_width(base_width)
            .with_stride(StridePlacement::V1)
            .with_stem_pool(StemPool::Caffe);
        config.bn_eps = bn_eps as f64;
        let fc_layer = fc.name.clone();
        Ok(Self { path: path.to_path_buf(), sha256, layers, config, blocks, fc_layer })
    }

    /// torchvision tensor name → (Caffe layer, blob index, how to derive it).
    fn sources(&self) -> BTreeMap<String, (String, usize, Derive)> {
        let mut map = BTreeMap::new();
        let mut add = |conv_name: String, conv: &str, bn_prefix: String, bn: String, scale: String| {
            map.insert(conv_name, (conv.to_string(), 0, Derive::Copy));
            map.insert(format!("{bn_prefix}.running_mean"), (bn.clone(), 0, Derive::DivideByScaleFactor));
            map.insert(format!("{bn_prefix}.running_var"), (bn, 1, Derive::DivideByScaleFactor));
            map.insert(format!("{bn_prefix}.weight"), (scale.clone(), 0, Derive::Copy));
            map.insert(format!("{bn_prefix}.bias"), (scale, 1, Derive::Copy));
        };
        add("conv1.weight".into(), "conv1", "bn1".into(), "bn_conv1".into(), "scale_conv1".into());
        for (s, blocks) in self.blocks.iter().enumerate() {
            for (j, block) in blocks.iter().enumerate() {
                let caffe = format!("{}{block}", s + 2);
                let torch = format!("layer{}.{j}", s + 1);
                for (k, branch) in ["2a", "2b", "2c"].iter().enumerate() {
                    add(
                        format!("{torch}.conv{}.weight", k + 1),
                        &format!("res{caffe}_branch{branch}"),
                        format!("{torch}.bn{}", k + 1),
                        format!("bn{caffe}_branch{branch}"),
                        format!("scale{caffe}_branch{branch}"),
                    );
                }
                if j == 0 {
                    add(
                        format!("{torch}.downsample.0.weight"),
                        &format!("res{caffe}_branch1"),
                        format!("{torch}.downsample.1"),
                        format!("bn{caffe}_branch1"),
                        format!("scale{caffe}_branch1"),
                    );
                }
            }
        }
        map.insert("fc.weight".into(), (self.fc_layer.clone(), 0, Derive::Copy));
        map.insert("fc.bias".into(), (self.fc_layer.clone(), 1, Derive::Copy));
        map
    }

    /// Every tensor in torchvision naming, shapes checked against the architecture.
    pub fn tensors(&self) -> Result<BTreeMap<String, Blob>, CaffeError> {
        let by_name: HashMap<&str, &Layer> = self.layers.iter().map(|l| (l.name.as_str(), l)).collect();
        let specs = tensor_specs(&self.config)
            .map_err(|e| CaffeError::NotAResNet { path: self.path.clone(), reason: format!("{e}") })?;
        let sources = self.sources();
        let mut out = BTreeMap::new();
        for spec in specs {
            let Some((layer_name, index, derive)) = sources.get(&spec.name) else {
                return Err(CaffeError::NotAResNet {
                    path: self.path.clone(),
                    reason: format!("no Caffe source for `{}`", spec.name),
                });
            };
            let layer = match by_name.get(layer_name.as_str()) {
                Some(layer) => *layer,
                None if layer_name.starts_with("scale") => {
                    return Err(CaffeError::MissingScale {
                        path: self.path.clone(),
                        bn: layer_name.replacen("scale", "bn", 1),
                        scale: layer_name.clone(),
                    })
                }
                None => {
                    return Err(CaffeError::MissingLayer {
                        path: self.path.clone(),
                        layer: layer_name.clone(),
                        why: format!("needed for `{}`", spec.name),
                    })
                }
            };
            let layer_err =
                |reason: String| CaffeError::Layer { path: self.path.clone(), layer: layer.name.clone(), reason };
            let blob = layer
                .blobs
                .get(*index)
                .ok_or_else(|| layer_err(format!("has {} blob(s), needs blob {index}", layer.blobs.len())))?;
            let data = match derive {
                Derive::Copy => blob.data.clone(),
                Derive::DivideByScaleFactor => {
                    let factor = layer.blobs.get(2).and_then(|b| b.data.first().copied()).ok_or_else(|| {
                        layer_err("BatchNorm needs a third blob (the moving-average scale factor)".into())
                    })?;
                    // As Caffe does: multiply by 1/s (not divide by s), and a zero factor scales by 0.
                    let inverse = if factor == 0.0 { 0.0 } else { 1.0 / factor };
                    blob.data.iter().map(|&x| x * inverse).collect()
                }
            };
            let count: usize = spec.shape.iter().product();
            if data.len() != count || !compatible(&blob.shape, &spec.shape) {
                return Err(layer_err(format!(
                    "blob {index} has shape {:?}, expected {:?} for a ResNet-{} of base width {} (`{}`)",
                    blob.shape,
                    spec.shape,
                    self.config.depth(),
                    self.config.base_width,
                    spec.name
                )));
            }
            out.insert(spec.name.clone(), Blob { shape: spec.shape.clone(), data });
        }
        Ok(out)
    }

    pub fn parameter_count(&self) -> usize {
        self.layers.iter().filter(|l| l.kind != "BatchNorm").flat_map(|l| &l.blobs).map(|b| b.data.len()).sum()
    }

    /// What the converted file records: the source, what Caffe's semantics fix (v1 strides,
    /// the Caffe stem pool, BN eps, the BGR 0–255 mean-image input) and the mean image, if any.
    pub fn provenance(&self, mean: Option<(&Path, &Blob)>) -> Provenance {
        Provenance {
            origin: Some(converted_from(&self.path, &self.sha256)),
            architecture: Some(format!("resnet{}", self.config.depth())),
            stride: Some(StridePlacement::V1),
            stem_pool: Some(StemPool::Caffe),
            bn_eps: Some(self.config.bn_eps),
            num_classes: Some(self.config.num_classes),
            base_width: Some(self.config.base_width),
            input: Some(InputConvention::CaffeMeanImage),
            mean: mean.map(|(path, blob)| (path.display().to_string(), blob.shape.clone())),
            ..Provenance::default()
        }
    }

    /// Writes the converted weights with their [`CaffeModel::provenance`].
    pub fn write_safetensors(&self, out: &Path, mean: Option<(&Path, &Blob)>) -> Result<(), CaffeError> {
        write(out, &self.tensors()?, &self.provenance(mean))
    }
}

fn converted_from(source: &Path, sha256: &str) -> Origin {
    Origin::Converted {
        format: SourceFormat::Caffe,
        source: source.display().to_string(),
        source_sha256: sha256.to_string(),
        tool: format!("resnet-audit {} convert caffe", env!("CARGO_PKG_VERSION")),
    }
}

fn compatible(stored: &[usize], expected: &[usize]) -> bool {
    // Legacy 4-D blobs pad vectors and matrices with leading 1s (num=1, channels=1, …).
    let trimmed: Vec<usize> = stored.iter().copied().skip_while(|&d| d == 1).collect();
    let wanted: Vec<usize> = expected.iter().copied().skip_while(|&d| d == 1).collect();
    stored == expected || trimmed == wanted
}

#[derive(Debug, Clone, Copy)]
enum Derive {
    Copy,
    DivideByScaleFactor,
}

/// Writes blobs as f32 tensors to a safetensors file, atomically.
pub fn write(out: &Path, tensors: &BTreeMap<String, Blob>, provenance: &Provenance) -> Result<(), CaffeError> {
    let tensors = tensors
        .iter()
        .map(|(name, blob)| {
            Tensor::from_vec(blob.data.clone(), blob.shape.as_slice(), &Device::Cpu).map(|t| (name.clone(), t)).map_err(
                |e| WeightsError::Encode { path: out.to_path_buf(), tensor: name.clone(), reason: e.to_string() },
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(write_safetensors(out, &tensors, &provenance.to_metadata())?)
}

/// The mean image as a safetensors file (tensor `mean` [3, H, W], BGR, 0–255).
pub fn write_mean(out: &Path, source: &Path, mean: &Blob) -> Result<(), CaffeError> {
    let sha = format!("{:x}", Sha256::digest(read_bytes(source)?));
    let provenance = Provenance {
        origin: Some(converted_from(source, &sha)),
        pixels: Some(PixelLayout { channel_order: ChannelOrder::Bgr, scale: PixelScale::Byte }),
        ..Provenance::default()
    };
    write(out, &BTreeMap::from([("mean".to_string(), mean.clone())]), &provenance)
}

impl fmt::Display for CaffeModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<24}{}", "file", self.path.display())?;
        writeln!(f, "{:<24}{}", "sha256", self.sha256)?;
        writeln!(
            f,
            "{:<24}Caffe ResNet-{} (bottleneck, stride on the first 1x1, ceil-mode pool1)",
            "architecture",
            self.config.depth()
        )?;
        let counts: Vec<usize> = self.blocks.iter().map(Vec::len).collect();
        writeln!(f, "{:<24}{counts:?}", "blocks per stage")?;
        writeln!(f, "{:<24}{}", "classes", self.config.num_classes)?;
        writeln!(f, "{:<24}{}", "base width", self.config.base_width)?;
        writeln!(f, "{:<24}{:e}", "BatchNorm eps", self.config.bn_eps)?;
        writeln!(f, "{:<24}{}", "parameters", crate::inspect::thousands(self.parameter_count() as u64))?;
        writeln!(f, "{:<24}{}", "layers", self.layers.len())?;
        for layer in &self.layers {
            let shapes: Vec<String> = layer.blobs.iter().map(|b| format!("{:?}", b.shape)).collect();
            writeln!(f, "  {:<28} {:<14} {}", layer.name, layer.kind, shapes.join(" "))?;
        }
        Ok(())
    }
}
