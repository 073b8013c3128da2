//! Where a weights file came from and what its tensor names cannot say, as one type that is the
//! only writer and reader of our safetensors metadata keys.
//!
//! Importers (`convert caffe`, later Torch7 and PyTorch checkpoints) and `train` build a
//! [`Provenance`]; `inspect` reads one back. A file written by another tool (timm's
//! `{"format": "pt"}`) has none of our keys: every field is then `None` and its keys are kept in
//! `other`, untouched.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::model::{CifarShortcut, StemPool, StridePlacement};
use crate::transform::{ChannelOrder, PixelScale};

/// The format a converted file was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    /// A `.caffemodel` (the 2015 MSRA release), or a Caffe mean `.binaryproto`.
    Caffe,
    /// A Torch7 `.t7` file (fb.resnet.torch).
    Torch7,
    /// A PyTorch checkpoint (`.pth`, zip or legacy pickle).
    PyTorch,
}

impl SourceFormat {
    pub fn name(self) -> &'static str {
        match self {
            SourceFormat::Caffe => "caffe",
            SourceFormat::Torch7 => "torch7",
            SourceFormat::PyTorch => "pytorch",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [SourceFormat::Caffe, SourceFormat::Torch7, SourceFormat::PyTorch].into_iter().find(|f| f.name() == text)
    }
}

/// How the file was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Converted from another format by `tool` (e.g. `resnet-audit 0.1.0 convert caffe`).
    Converted { format: SourceFormat, source: String, source_sha256: String, tool: String },
    /// Trained by `tool` from `recipe` (JSON) with `seed`. `earlier_recipes` (JSON, oldest
    /// first) are the recipes of the steps before a resume that was allowed to change the recipe.
    Trained { tool: String, seed: u64, recipe: String, earlier_recipes: Vec<String> },
}

/// The input a model expects.
#[derive(Debug, Clone, PartialEq)]
pub enum InputConvention {
    /// Caffe's: BGR, 0–255, minus the mean image.
    CaffeMeanImage,
    /// An explicit convention (a trained model's recipe), stored as JSON.
    Spec(crate::transform::InputSpec),
    /// Recorded in words by an earlier version or another tool.
    Described(String),
}

/// The words `convert caffe` has always written for [`InputConvention::CaffeMeanImage`].
const CAFFE_INPUT: &str = "BGR, 0-255, minus the mean image (Caffe)";

/// The pixel layout of an image-valued tensor (a mean image).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelLayout {
    pub channel_order: ChannelOrder,
    pub scale: PixelScale,
}

/// Everything our metadata records. `None` fields were not recorded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Provenance {
    pub origin: Option<Origin>,
    /// `resnet50` and the like, in words.
    pub architecture: Option<String>,
    /// The bottleneck stride (v1 and v1.5 have identical tensors). `None` also for basic blocks,
    /// recorded as `n/a`.
    pub stride: Option<StridePlacement>,
    pub stem_pool: Option<StemPool>,
    /// A CIFAR model's option-A variant (A and A-split have identical tensors, like v1/v1.5).
    pub cifar_shortcut: Option<CifarShortcut>,
    /// What a converter decided that the source file did not state, in words (one per item),
    /// so that `inspect` and the report can show it was a choice.
    pub inferred: Vec<String>,
    pub bn_eps: Option<f64>,
    pub num_classes: Option<usize>,
    pub base_width: Option<usize>,
    pub input: Option<InputConvention>,
    /// The mean image converted with the weights: its source path and shape.
    pub mean: Option<(String, Vec<usize>)>,
    /// For image-valued files (a mean image): how its values are laid out.
    pub pixels: Option<PixelLayout>,
    /// Keys we do not own (another tool's), kept as they are.
    pub other: BTreeMap<String, String>,
}

/// A key of ours holding a value we cannot read.
#[derive(Debug, thiserror::Error)]
#[error("metadata `{key}` is `{value}`; expected {expected}")]
pub struct ProvenanceError {
    pub key: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// A unit enum's serde name (`bgr`, `byte`), the spelling experiment files use.
fn serde_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

fn from_serde_name<T: DeserializeOwned>(name: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
}

impl Provenance {
    /// The metadata map, keys sorted (so the file's bytes depend on the values only).
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        let mut out = self.other.clone();
        let mut put = |key: &str, value: String| {
            out.insert(key.to_string(), value);
        };
        match &self.origin {
            Some(Origin::Converted { format, source, source_sha256, tool }) => {
                put("source_format", format.name().to_string());
                put("source", source.clone());
                put("source_sha256", source_sha256.clone());
                put("converted_by", tool.clone());
            }
            Some(Origin::Trained { tool, seed, recipe, earlier_recipes }) => {
                put("trained_by", tool.clone());
                put("seed", seed.to_string());
                put("recipe", recipe.clone());
                if !earlier_recipes.is_empty() {
                    put("earlier_recipes", serde_json::to_string(earlier_recipes).unwrap_or_default());
                }
            }
            None => {}
        }
        if let Some(architecture) = &self.architecture {
            put("architecture", architecture.clone());
        }
        if let Some(stride) = self.stride {
            put("stride_placement", stride.name().to_string());
        }
        if let Some(pool) = self.stem_pool {
            put("stem_pool", serde_name(&pool));
        }
        if let Some(shortcut) = self.cifar_shortcut {
            put("cifar_shortcut", shortcut.name().to_string());
        }
        if !self.inferred.is_empty() {
            put("inferred", serde_json::to_string(&self.inferred).unwrap_or_default());
        }
        if let Some(eps) = self.bn_eps {
            put("bn_eps", format!("{eps:e}"));
        }
        if let Some(classes) = self.num_classes {
            put("num_classes", classes.to_string());
        }
        if let Some(width) = self.base_width {
            put("base_width", width.to_string());
        }
        match &self.input {
            Some(InputConvention::CaffeMeanImage) => put("input", CAFFE_INPUT.to_string()),
            Some(InputConvention::Spec(spec)) => put("input", serde_json::to_string(spec).unwrap_or_default()),
            Some(InputConvention::Described(words)) => put("input", words.clone()),
            None => {}
        }
        if let Some((source, shape)) = &self.mean {
            put("mean_source", source.clone());
            put("mean_shape", format!("{shape:?}"));
        }
        if let Some(pixels) = self.pixels {
            put("channel_order", serde_name(&pixels.channel_order));
            put("scale", serde_name(&pixels.scale));
        }
        out
    }

    /// Reads our keys back; other keys go to `other`. Files from before `source_format` existed
    /// name their converter in `converted_by` (`… convert caffe`).
    pub fn from_metadata(metadata: &BTreeMap<String, String>) -> Result<Self, ProvenanceError> {
        let mut rest = metadata.clone();
        let mut take = |key: &str| rest.remove(key);
        let bad = |key: &'static str, value: &str, expected: &'static str| ProvenanceError {
            key,
            value: value.to_string(),
            expected,
        };
        let number = |key: &'static str, value: Option<String>| -> Result<Option<usize>, ProvenanceError> {
            value.map(|v| v.parse().map_err(|_| bad(key, &v, "a whole number"))).transpose()
        };
        let (format, source, sha, converted_by) =
            (take("source_format"), take("source"), take("source_sha256"), take("converted_by"));
        let (trained_by, seed, recipe, earlier) =
            (take("trained_by"), take("seed"), take("recipe"), take("earlier_recipes"));
        let origin = if let Some(tool) = trained_by {
            let seed = match seed {
                Some(s) => s.parse().map_err(|_| bad("seed", &s, "a whole number"))?,
                None => 0,
            };
            let earlier_recipes = match earlier {
                Some(text) => serde_json::from_str(&text).map_err(|_| bad("earlier_recipes", &text, "a JSON list"))?,
                None => Vec::new(),
            };
            Some(Origin::Trained { tool, seed, recipe: recipe.unwrap_or_default(), earlier_recipes })
        } else {
            let format = match format {
                Some(name) => Some(
                    SourceFormat::parse(&name)
                        .ok_or_else(|| bad("source_format", &name, "caffe, torch7 or pytorch"))?,
                ),
                None if converted_by.as_deref().is_some_and(|t| t.ends_with("convert caffe")) => {
                    Some(SourceFormat::Caffe)
                }
                None => None,
            };
            match (format, source, sha) {
                (Some(format), Some(source), Some(source_sha256)) => {
                    Some(Origin::Converted { format, source, source_sha256, tool: converted_by.unwrap_or_default() })
                }
                // Not ours: put back what we took.
                (format, source, sha) => {
                    let keys = [("source_format", format.map(|f| f.name().to_string())), ("source", source)];
                    for (key, value) in keys.into_iter().chain([("source_sha256", sha), ("converted_by", converted_by)])
                    {
                        if let Some(value) = value {
                            rest.insert(key.to_string(), value);
                        }
                    }
                    // `seed` and `recipe` without `trained_by` are someone else's too.
                    for (key, value) in [("seed", seed), ("recipe", recipe)] {
                        if let Some(value) = value {
                            rest.insert(key.to_string(), value);
                        }
                    }
                    None
                }
            }
        };
        let mut take = |key: &str| rest.remove(key);
        let stride = match take("stride_placement").as_deref() {
            None | Some("n/a") => None,
            Some("v1") => Some(StridePlacement::V1),
            Some("v1.5") => Some(StridePlacement::V1_5),
            Some(other) => return Err(bad("stride_placement", other, "v1, v1.5 or n/a")),
        };
        let stem_pool = match take("stem_pool") {
            None => None,
            Some(name) => Some(from_serde_name(&name).ok_or_else(|| bad("stem_pool", &name, "torch or caffe"))?),
        };
        let cifar_shortcut = match take("cifar_shortcut") {
            None => None,
            Some(name) => {
                Some(CifarShortcut::parse(&name).ok_or_else(|| bad("cifar_shortcut", &name, "A, A-split or B"))?)
            }
        };
        let inferred = match take("inferred") {
            None => Vec::new(),
            Some(text) => serde_json::from_str(&text).map_err(|_| bad("inferred", &text, "a JSON list of strings"))?,
        };
        let bn_eps = match take("bn_eps") {
            None => None,
            Some(v) => Some(v.parse::<f64>().map_err(|_| bad("bn_eps", &v, "a number"))?),
        };
        let num_classes = number("num_classes", take("num_classes"))?;
        let base_width = number("base_width", take("base_width"))?;
        let input = take("input").map(|text| {
            if text == CAFFE_INPUT {
                InputConvention::CaffeMeanImage
            } else {
                serde_json::from_str(&text).map(InputConvention::Spec).unwrap_or(InputConvention::Described(text))
            }
        });
        let mean = match (take("mean_source"), take("mean_shape")) {
            (Some(source), Some(shape)) => {
                let parsed: Vec<usize> =
                    serde_json::from_str(&shape).map_err(|_| bad("mean_shape", &shape, "a list like [3, 224, 224]"))?;
                Some((source, parsed))
            }
            (None, None) => None,
            (Some(_), None) => return Err(bad("mean_shape", "", "the shape of `mean_source`")),
            (None, Some(_)) => return Err(bad("mean_source", "", "the source of `mean_shape`")),
        };
        let pixels = match (take("channel_order"), take("scale")) {
            (Some(order), Some(scale)) => Some(PixelLayout {
                channel_order: from_serde_name(&order).ok_or_else(|| bad("channel_order", &order, "rgb or bgr"))?,
                scale: from_serde_name(&scale).ok_or_else(|| bad("scale", &scale, "unit or byte"))?,
            }),
            (order, scale) => {
                // One without the other is not ours.
                for (key, value) in [("channel_order", order), ("scale", scale)] {
                    if let Some(value) = value {
                        rest.insert(key.to_string(), value);
                    }
                }
                None
            }
        };
        let architecture = rest.remove("architecture");
        Ok(Self {
            origin,
            architecture,
            stride,
            stem_pool,
            cifar_shortcut,
            inferred,
            bn_eps,
            num_classes,
            base_width,
            input,
            mean,
            pixels,
            other: rest,
        })
    }
}

impl fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caffe() -> Provenance {
        Provenance {
            origin: Some(Origin::Converted {
                format: SourceFormat::Caffe,
                source: "ResNet-50-model.caffemodel".into(),
                source_sha256: "ab".repeat(32),
                tool: "resnet-audit 0.1.0 convert caffe".into(),
            }),
            architecture: Some("resnet50".into()),
            stride: Some(StridePlacement::V1),
            stem_pool: Some(StemPool::Caffe),
            // Not a Caffe fact: exercises the two fields' round trip.
            cifar_shortcut: Some(crate::model::CifarShortcut::ASplit),
            inferred: vec!["classifier `linear.*` renamed to `fc.*`".into()],
            bn_eps: Some(1e-5),
            num_classes: Some(1000),
            base_width: Some(64),
            input: Some(InputConvention::CaffeMeanImage),
            mean: Some(("ResNet_mean.binaryproto".into(), vec![3, 224, 224])),
            pixels: None,
            other: BTreeMap::new(),
        }
    }

    #[test]
    fn round_trips_and_keeps_the_keys_earlier_versions_wrote() {
        let provenance = caffe();
        let metadata = provenance.to_metadata();
        assert_eq!(metadata["stride_placement"], "v1");
        assert_eq!(metadata["stem_pool"], "caffe");
        assert_eq!(metadata["bn_eps"], "1e-5");
        assert_eq!(metadata["input"], CAFFE_INPUT);
        assert_eq!(metadata["mean_shape"], "[3, 224, 224]");
        assert_eq!(Provenance::from_metadata(&metadata).unwrap(), provenance);
        // Before `source_format`: the converter's name says Caffe.
        let mut old = metadata.clone();
        old.remove("source_format");
        assert_eq!(Provenance::from_metadata(&old).unwrap(), provenance);
    }

    #[test]
    fn trained_and_foreign_metadata_round_trip() {
        let trained = Provenance {
            origin: Some(Origin::Trained {
                tool: "resnet-audit 0.1.0 train".into(),
                seed: 3,
                recipe: "{\"a\":1}".into(),
                earlier_recipes: vec!["{\"a\":0}".into()],
            }),
            stride: None,
            num_classes: Some(10),
            base_width: Some(16),
            ..Provenance::default()
        };
        let metadata = trained.to_metadata();
        assert_eq!(metadata.get("stride_placement"), None);
        assert_eq!(Provenance::from_metadata(&metadata).unwrap(), trained);
        let foreign = BTreeMap::from([("format".to_string(), "pt".to_string()), ("seed".into(), "x".into())]);
        let read = Provenance::from_metadata(&foreign).unwrap();
        assert_eq!(read.other, foreign);
        assert_eq!(read.to_metadata(), foreign);
    }

    #[test]
    fn a_bad_value_names_the_key() {
        let metadata = BTreeMap::from([("stride_placement".to_string(), "v2".to_string())]);
        let err = Provenance::from_metadata(&metadata).unwrap_err().to_string();
        assert!(err.contains("`stride_placement`") && err.contains("v2"), "{err}");
    }
}
