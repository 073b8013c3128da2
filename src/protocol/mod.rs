//! The test protocols (i)–(iv): how one image becomes model inputs ("views"), and how the
//! views' outputs become one probability vector. Every knob the sources leave open is a field,
//! defaulting to the most literal reading of its source (see docs/PROTOCOLS.md).

pub mod ensemble;
pub mod sweep;
pub mod views;

use serde::{Deserialize, Serialize};

use crate::transform::{Interpolation, Resampling, ResizePolicy};

pub use sweep::{expand, Sweep, SweepError, SweepKnob, SweepVariant, MAX_COMBINATIONS};
pub use views::{combine, prepare, Head, ProtocolError, ViewGroup};

/// One protocol of an experiment: an id, its definition, and optionally the knobs to sweep.
/// Parsing checks the sweep (knob names, values, size) with [`sweep::expand`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawProtocolEntry")]
pub struct ProtocolEntry {
    pub id: String,
    /// The protocol as written. The sweep is deliberately not part of it: the store hashes the
    /// spec, so results stored before sweeps existed keep their keys.
    #[serde(flatten)]
    pub spec: ProtocolSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Sweep>,
}

/// [`ProtocolEntry`] before its sweep is checked. Fields other than `id` and `sweep` go to the
/// spec, whose structs reject unknown ones.
#[derive(Deserialize)]
struct RawProtocolEntry {
    id: String,
    #[serde(flatten)]
    spec: ProtocolSpec,
    #[serde(default)]
    sweep: Option<Sweep>,
}

impl TryFrom<RawProtocolEntry> for ProtocolEntry {
    type Error = SweepError;

    fn try_from(raw: RawProtocolEntry) -> Result<Self, SweepError> {
        let entry = ProtocolEntry { id: raw.id, spec: raw.spec, sweep: raw.sweep };
        sweep::expand(&entry)?;
        Ok(entry)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ProtocolSpec {
    /// (i) resize, one center crop (released-model README: shorter side 256, center 224).
    CenterCrop(CenterCrop),
    /// (ii) four corners + center, and the same of the mirror image (AlexNet).
    TenCrop(TenCrop),
    /// (iii) the dense head over the uncropped image at several scales (VGG, PReLU-net).
    FullyConvolutional(FullyConvolutional),
    /// (iv) average the probabilities of stored (model, protocol) results.
    Ensemble(Ensemble),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CenterCrop {
    #[serde(default = "default_resize")]
    pub resize: ResizePolicy,
    #[serde(default = "default_crop")]
    pub crop: u32,
    #[serde(default = "default_interpolation")]
    pub interpolation: Interpolation,
    #[serde(default = "yes")]
    pub antialias: bool,
}

/// Where the ten crops come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CropRegion {
    /// Corners of the whole resized image (torchvision's TenCrop).
    Whole,
    /// Corners of its central square (AlexNet's 256×256 images).
    CentralSquare,
}

/// How the outputs of several views become one prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Combine {
    /// Average the softmax probabilities (the paper, AlexNet, VGG).
    SoftmaxMean,
    /// Sum the raw logits (fb.resnet.torch's `computeScore`); stored probabilities are the
    /// softmax of the mean logit, which ranks classes identically.
    LogitSum,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenCrop {
    #[serde(default = "default_resize")]
    pub resize: ResizePolicy,
    #[serde(default = "default_crop")]
    pub crop: u32,
    #[serde(default = "default_interpolation")]
    pub interpolation: Interpolation,
    #[serde(default = "yes")]
    pub antialias: bool,
    #[serde(default = "whole")]
    pub region: CropRegion,
    #[serde(default = "softmax_mean")]
    pub combine: Combine,
}

/// The averaging window of the dense head: `7` (Caffe's pool5, sliding with stride 1 on
/// larger inputs) or `global` (one average over the whole feature map).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PoolWindow {
    Sliding(usize),
    Global(GlobalWord),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GlobalWord {
    Global,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FullyConvolutional {
    /// Shorter side of each scale (the paper's {224, 256, 384, 480, 640}).
    #[serde(default = "paper_scales")]
    pub scales: Vec<u32>,
    /// Also the mirror image at each scale (VGG did; the ResNet paper does not say).
    #[serde(default)]
    pub flips: bool,
    #[serde(default = "caffe_pool5")]
    pub pool: PoolWindow,
    #[serde(default = "default_interpolation")]
    pub interpolation: Interpolation,
    #[serde(default = "yes")]
    pub antialias: bool,
    /// Largest allowed side of a resized image: a bigger one is a bad image (an error, or
    /// skipped with `on_bad_image: skip`) instead of an unbounded allocation.
    #[serde(default = "default_max_side")]
    pub max_side: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ensemble {
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub model: String,
    pub protocol: String,
}

fn default_resize() -> ResizePolicy {
    ResizePolicy::ShorterSide(256)
}
fn default_crop() -> u32 {
    224
}
fn default_interpolation() -> Interpolation {
    Interpolation::Bilinear
}
fn yes() -> bool {
    true
}
fn whole() -> CropRegion {
    CropRegion::Whole
}
fn softmax_mean() -> Combine {
    Combine::SoftmaxMean
}
fn paper_scales() -> Vec<u32> {
    vec![224, 256, 384, 480, 640]
}
fn caffe_pool5() -> PoolWindow {
    PoolWindow::Sliding(7)
}
fn default_max_side() -> u32 {
    2048
}

impl ProtocolSpec {
    /// The resampling the protocol applies (None for ensembles, which see no pixels).
    pub fn resampling(&self) -> Option<Resampling> {
        let (interpolation, antialias) = match self {
            ProtocolSpec::CenterCrop(p) => (p.interpolation, p.antialias),
            ProtocolSpec::TenCrop(p) => (p.interpolation, p.antialias),
            ProtocolSpec::FullyConvolutional(p) => (p.interpolation, p.antialias),
            ProtocolSpec::Ensemble(_) => return None,
        };
        Some(Resampling { interpolation, antialias })
    }

    /// A short human description for tables and logs.
    pub fn summary(&self) -> String {
        let resample = |i: Interpolation, aa: bool| format!("{i:?}{}", if aa { "" } else { ", no antialias" });
        match self {
            ProtocolSpec::CenterCrop(p) => {
                format!("center {} of {:?} ({})", p.crop, p.resize, resample(p.interpolation, p.antialias))
            }
            ProtocolSpec::TenCrop(p) => format!(
                "10-crop {} of {:?}, {:?}, {:?} ({})",
                p.crop,
                p.resize,
                p.region,
                p.combine,
                resample(p.interpolation, p.antialias)
            ),
            ProtocolSpec::FullyConvolutional(p) => format!(
                "fully-convolutional at {:?}{}, pool {:?} ({})",
                p.scales,
                if p.flips { " + flips" } else { "" },
                p.pool,
                resample(p.interpolation, p.antialias)
            ),
            ProtocolSpec::Ensemble(e) => {
                let members: Vec<String> = e.members.iter().map(|m| format!("{}/{}", m.model, m.protocol)).collect();
                format!("ensemble of {}", members.join(" + "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<ProtocolEntry, serde_yaml::Error> {
        serde_yaml::from_str(yaml)
    }

    #[test]
    fn defaults_are_the_literal_readings() {
        let p = parse("{id: fcn, kind: fully-convolutional}").unwrap();
        let ProtocolSpec::FullyConvolutional(f) = p.spec else { panic!("wrong kind") };
        assert_eq!(f.scales, vec![224, 256, 384, 480, 640]);
        assert_eq!(f.pool, PoolWindow::Sliding(7));
        assert!(!f.flips);
        let p = parse("{id: ten, kind: ten-crop}").unwrap();
        let ProtocolSpec::TenCrop(t) = p.spec else { panic!("wrong kind") };
        assert_eq!((t.region, t.combine, t.crop), (CropRegion::Whole, Combine::SoftmaxMean, 224));
    }

    #[test]
    fn every_knob_parses() {
        let p = parse(
            "{id: t, kind: ten-crop, resize: {crop-pct: {crop: 224, crop_pct: 0.875}}, crop: 224, \
             interpolation: bicubic, antialias: false, region: central-square, combine: logit-sum}",
        )
        .unwrap();
        let ProtocolSpec::TenCrop(t) = p.spec else { panic!("wrong kind") };
        assert_eq!(t.combine, Combine::LogitSum);
        assert_eq!(t.region, CropRegion::CentralSquare);
        assert_eq!(t.resize, ResizePolicy::CropPct { crop: 224, crop_pct: 0.875 });
        let p = parse("{id: g, kind: fully-convolutional, pool: global, flips: true, scales: [224]}").unwrap();
        let ProtocolSpec::FullyConvolutional(f) = p.spec else { panic!("wrong kind") };
        assert_eq!(f.pool, PoolWindow::Global(GlobalWord::Global));
    }

    #[test]
    fn a_misspelt_knob_is_an_error_naming_it() {
        let err = parse("{id: c, kind: center-crop, crop_size: 224}").unwrap_err().to_string();
        assert!(err.contains("crop_size"), "{err}");
        let err = parse("{id: c, kind: five-crop}").unwrap_err().to_string();
        assert!(err.contains("five-crop"), "{err}");
    }
}
