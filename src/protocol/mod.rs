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

/// `corners + center of the whole image` / `… of its central square`.
impl std::fmt::Display for CropRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CropRegion::Whole => "corners + center of the whole image",
            CropRegion::CentralSquare => "corners + center of its central square",
        })
    }
}

impl std::fmt::Display for Combine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Combine::SoftmaxMean => "softmax averaged",
            Combine::LogitSum => "logits summed",
        })
    }
}

/// `7×7 sliding pool` (Caffe's pool5 sliding over a larger feature map) or `global average pool`.
impl std::fmt::Display for PoolWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PoolWindow::Sliding(k) => write!(f, "{k}×{k} sliding pool"),
            PoolWindow::Global(_) => f.write_str("global average pool"),
        }
    }
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

    /// A short human description for tables and logs, as a paper words it: `resize shorter side
    /// 256 (bilinear), center 224×224 crop`.
    pub fn summary(&self) -> String {
        let resample = |interpolation: Interpolation, antialias: bool| Resampling { interpolation, antialias };
        match self {
            ProtocolSpec::CenterCrop(p) => format!(
                "resize {} ({}), center {}×{} crop",
                p.resize,
                resample(p.interpolation, p.antialias),
                p.crop,
                p.crop
            ),
            ProtocolSpec::TenCrop(p) => format!(
                "resize {} ({}), ten {}×{} crops ({}, and their mirror images), {}",
                p.resize,
                resample(p.interpolation, p.antialias),
                p.crop,
                p.crop,
                p.region,
                p.combine
            ),
            ProtocolSpec::FullyConvolutional(p) => {
                let scales: Vec<String> = p.scales.iter().map(u32::to_string).collect();
                format!(
                    "fully-convolutional at shorter sides {}{} ({}), {}, scores averaged",
                    scales.join(", "),
                    if p.flips { " and their mirror images" } else { "" },
                    resample(p.interpolation, p.antialias),
                    p.pool
                )
            }
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

    /// What the report shows for a protocol: a researcher's words, never a Rust debug string.
    #[test]
    fn summaries_are_written_as_a_paper_writes_them() {
        let summary = |yaml: &str| parse(yaml).unwrap().spec.summary();
        assert_eq!(summary("{id: c, kind: center-crop}"), "resize shorter side 256 (bilinear), center 224×224 crop");
        assert_eq!(
            summary(
                "{id: t, kind: ten-crop, resize: {crop-pct: {crop: 224, crop_pct: 0.875}}, \
                 interpolation: bicubic, antialias: false, region: central-square, combine: logit-sum}"
            ),
            "resize shorter side 256 (crop_pct 0.875 of 224) (bicubic, no antialias (torch)), ten 224×224 crops \
             (corners + center of its central square, and their mirror images), logits summed"
        );
        assert_eq!(
            summary("{id: f, kind: fully-convolutional}"),
            "fully-convolutional at shorter sides 224, 256, 384, 480, 640 (bilinear), 7×7 sliding pool, scores averaged"
        );
        let global = summary("{id: g, kind: fully-convolutional, pool: global, flips: true, scales: [224]}");
        assert_eq!(
            global,
            "fully-convolutional at shorter sides 224 and their mirror images (bilinear), global average pool, \
             scores averaged"
        );
        let warp = summary("{id: w, kind: center-crop, resize: {warp: {height: 256, width: 256}}}");
        assert!(warp.starts_with("resize 256×256 (aspect not kept) (bilinear)"), "{warp}");
    }

    #[test]
    fn a_misspelt_knob_is_an_error_naming_it() {
        let err = parse("{id: c, kind: center-crop, crop_size: 224}").unwrap_err().to_string();
        assert!(err.contains("crop_size"), "{err}");
        let err = parse("{id: c, kind: five-crop}").unwrap_err().to_string();
        assert!(err.contains("five-crop"), "{err}");
    }
}
