//! Resolution of named references and every check an experiment passes before anything runs:
//! each failure is a [`Problem`] naming the entry and field, which [`super::LoadedExperiment::read`]
//! places at a line and column of the file.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use super::{Experiment, Library, Named, UnknownInput, TORCHVISION_INPUT};
use crate::dataset::{resolve_path, DatasetError};
use crate::protocol::{FullyConvolutional, PoolWindow, ProtocolEntry, ProtocolSpec};
use crate::scoring::LabelSetSpec;
use crate::transform::ResizePolicy;
use crate::weights::WeightsSource;

/// Ids name store files (`<model>/<protocol>.sweep<k>-<hash>.parts-<n>/`, plus a temporary name
/// with host and pid while writing): beyond this length the file name would pass the 255-byte
/// limit of common file systems, which surfaced only when the first result was stored.
pub const MAX_ID_CHARS: usize = 64;

/// The largest shorter side a center or ten crop may resize to. No test protocol of the sources
/// goes past 640; far larger values are typos that would allocate gigabytes per image.
pub const MAX_RESIZE_SIDE: u32 = 4096;

/// What kind of thing a reference names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    Dataset,
    Input,
    Protocol,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reference::Dataset => "dataset",
            Reference::Input => "input",
            Reference::Protocol => "protocol",
        })
    }
}

/// A reference to a name that no imported file defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undefined {
    pub what: Reference,
    pub name: String,
    /// The model whose field holds the reference (for inputs).
    pub model: Option<String>,
    /// The imported files searched (empty: the file has no `imports:`).
    pub imported: Vec<PathBuf>,
}

impl std::error::Error for Undefined {}

impl fmt::Display for Undefined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Undefined { what, name, model, imported } = self;
        if let Some(model) = model {
            write!(f, "model `{model}`: ")?;
        }
        if imported.is_empty() {
            write!(f, "{what} `{name}` is not defined here and the file has no `imports:`")
        } else {
            let files: Vec<String> = imported.iter().map(|p| p.display().to_string()).collect();
            write!(f, "{what} `{name}` is defined in none of the imported files ({})", files.join(", "))
        }
    }
}

/// Which field of a claim an out-of-range number is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimField {
    Top1,
    Top5,
    Tolerance,
}

impl fmt::Display for ClaimField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClaimField::Top1 => "top1",
            ClaimField::Top5 => "top5",
            ClaimField::Tolerance => "tolerance",
        })
    }
}

/// One mistake in an experiment file. Messages quote the names a reader searches for in
/// backquotes; the position of the rarest of them (or of the field, see [`Problem::field`]) is
/// where the error points.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error(transparent)]
    Undefined(Undefined),
    #[error("the dataset is an unresolved name")]
    UnresolvedDataset,
    #[error("protocol `{0}` is an unresolved name")]
    UnresolvedProtocol(String),
    #[error("`{0}` is empty")]
    Empty(&'static str),
    #[error("{kind} id `{id}`: use letters, digits, `.`, `_` and `-` only (not starting with `.`)")]
    BadId { kind: &'static str, id: String },
    #[error(
        "{kind} id `{id}` has {chars} characters, more than {MAX_ID_CHARS}: ids become file names in the \
         store, and file systems limit their length"
    )]
    LongId { kind: &'static str, id: String, chars: usize },
    #[error("{kind} id `{id}` appears twice")]
    DuplicateId { kind: &'static str, id: String },
    #[error("ensemble `{0}` needs at least two members")]
    EnsembleTooSmall(String),
    #[error("ensemble `{ensemble}`: no model `{model}` in `models`")]
    EnsembleModel { ensemble: String, model: String },
    #[error("ensemble `{ensemble}`: no protocol `{protocol}`")]
    EnsembleProtocol { ensemble: String, protocol: String },
    #[error("ensemble `{ensemble}`: member protocol `{protocol}` is itself an ensemble")]
    NestedEnsemble { ensemble: String, protocol: String },
    #[error("protocol `{protocol}`: `{field}` is 0")]
    ZeroSize { protocol: String, field: &'static str },
    #[error("protocol `{0}`: scales must be a non-empty list of positive sizes")]
    NoScales(String),
    #[error(
        "protocol `{protocol}`: `crop` {crop} is larger than the shorter side {side} of the resized image \
         ({resize}): no image could be cropped"
    )]
    CropExceedsResize { protocol: String, crop: u32, side: u32, resize: ResizePolicy },
    #[error(
        "protocol `{protocol}`: `resize` ({resize}) makes a shorter side of {side}, more than \
         {MAX_RESIZE_SIDE} (no source resizes past 640; is it a typo?)"
    )]
    ResizeTooLarge { protocol: String, side: u32, resize: ResizePolicy },
    #[error(
        "protocol `{protocol}`: `scales` has {scale}, more than `max_side` {max_side}: every image would be \
         too large at that scale (raise `max_side` if that is meant)"
    )]
    ScaleOverMaxSide { protocol: String, scale: u32, max_side: u32 },
    #[error("protocol `{0}`: `pool` 0 is no window: give a window of at least 1, or `global`")]
    ZeroPool(String),
    #[error("run: `{0}` is 0: it must be at least 1")]
    ZeroSetting(&'static str),
    #[error("model `{model}`: {error}")]
    UnknownInput { model: String, error: UnknownInput },
    #[error("model `{model}`: `weights` {path} is a folder, not a safetensors file")]
    WeightsFolder { model: String, path: PathBuf },
    #[error("model `{model}`: `weights` {path} is not a regular file but a device, pipe or socket")]
    WeightsNotAFile { model: String, path: PathBuf },
    #[error("model `{model}`: `weights`: {error}")]
    WeightsPath { model: String, error: DatasetError },
    #[error("claims[{claim}]: protocol `{protocol}` does not exist (protocols: {ids})")]
    ClaimProtocol { claim: usize, protocol: String, ids: String },
    #[error(
        "claims[{claim}]: protocol `{protocol}` is an ensemble: drop `model: {model}` (the members are in the protocol)"
    )]
    ClaimModelOnEnsemble { claim: usize, protocol: String, model: String },
    #[error("claims[{claim}]: protocol `{protocol}` needs `model:` (one of the models)")]
    ClaimNeedsModel { claim: usize, protocol: String },
    #[error("claims[{claim}]: model `{model}` does not exist (models: {ids})")]
    ClaimModel { claim: usize, model: String, ids: String },
    #[error("claims[{0}]: give `top1` and/or `top5` (claimed error, percent)")]
    ClaimNoError(usize),
    #[error("claims[{claim}]: {field} {value} is not a percentage in [0, 100]")]
    ClaimNotPercentage { claim: usize, field: ClaimField, value: f64 },
    #[error("claims[{0}]: `source` is empty: name the paper table, README or URL")]
    ClaimNoSource(usize),
    #[error("claims[{0}]: `test_images: 0`: give the size of the test set the number was measured on")]
    ClaimNoTestImages(usize),
    #[error("claims[{claim}]: a second claim for ({model}, {protocol}) under labels `{labels}`")]
    ClaimTwice { claim: usize, model: String, protocol: String, labels: String },
    #[error("claims[{claim}]: labels `{labels}` is not one of the experiment's label sets ({ids})")]
    ClaimLabels { claim: usize, labels: String, ids: String },
    #[error("labels: `{0}` appears twice")]
    DuplicateLabels(String),
    #[error("labels: `real` needs the ImageNet validation images (`kind: imagenet-val`); the dataset is {0}")]
    RealNeedsImagenetVal(String),
    #[error("protocol id `{id}` is also the id of a sweep setting of protocol `{protocol}`: rename it")]
    SweepIdTaken { id: String, protocol: String },
    #[error("protocol `{protocol}`: sweep setting {label}: {problem}")]
    SweepSetting { protocol: String, label: String, problem: Box<Problem> },
    #[error("run `{run}`: `seeds` is 0: train at least one seed")]
    NoSeeds { run: String },
}

impl Problem {
    /// The entry (an id or a top-level key) and the field within it that the problem is about,
    /// when it is about one field: the error then points at that field's line.
    pub fn field(&self) -> Option<(&str, &str)> {
        match self {
            Problem::ZeroSize { protocol, field } => Some((protocol, field)),
            Problem::NoScales(protocol) | Problem::ScaleOverMaxSide { protocol, .. } => Some((protocol, "scales")),
            Problem::CropExceedsResize { protocol, .. } => Some((protocol, "crop")),
            Problem::ResizeTooLarge { protocol, .. } => Some((protocol, "resize")),
            Problem::ZeroPool(protocol) => Some((protocol, "pool")),
            Problem::ZeroSetting(field) => Some(("run", field)),
            Problem::WeightsFolder { model, .. }
            | Problem::WeightsNotAFile { model, .. }
            | Problem::WeightsPath { model, .. } => Some((model, "weights")),
            Problem::SweepSetting { protocol, .. } => Some((protocol, "sweep")),
            Problem::NoSeeds { run } => Some((run, "seeds")),
            Problem::DuplicateLabels(_) | Problem::RealNeedsImagenetVal(_) => Some(("labels", "labels")),
            _ => None,
        }
    }
}

/// Ids name store files and table rows: letters, digits, `.`, `_`, `-`, and not too long.
pub(crate) fn check_id(kind: &'static str, id: &str) -> Result<(), Problem> {
    let ok = !id.is_empty()
        && !id.starts_with('.')
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(Problem::BadId { kind, id: id.to_string() });
    }
    let chars = id.chars().count();
    if chars > MAX_ID_CHARS {
        return Err(Problem::LongId { kind, id: id.to_string(), chars });
    }
    Ok(())
}

impl Experiment {
    /// Replaces named datasets, inputs and protocols with their definitions from `libraries`.
    pub(super) fn resolve(&mut self, libraries: &[(PathBuf, Library)]) -> Result<(), Problem> {
        let missing = |what: Reference, name: &str, model: Option<&str>| {
            Problem::Undefined(Undefined {
                what,
                name: name.to_string(),
                model: model.map(str::to_string),
                imported: libraries.iter().map(|(p, _)| p.clone()).collect(),
            })
        };
        if let Named::Name(name) = &self.dataset {
            let found = libraries
                .iter()
                .find_map(|(_, l)| l.datasets.get(name))
                .ok_or_else(|| missing(Reference::Dataset, name, None))?;
            self.dataset = Named::Inline(found.clone());
        }
        for model in &mut self.models {
            if let Named::Name(name) = &model.input {
                if name == TORCHVISION_INPUT {
                    continue;
                }
                let found = libraries
                    .iter()
                    .find_map(|(_, l)| l.inputs.get(name))
                    .ok_or_else(|| missing(Reference::Input, name, Some(&model.id)))?;
                model.input = Named::Inline(found.clone());
            }
        }
        for protocol in &mut self.protocols {
            if let Named::Name(name) = protocol {
                let found = libraries
                    .iter()
                    .find_map(|(_, l)| l.protocols.iter().find(|p| &p.id == name))
                    .ok_or_else(|| missing(Reference::Protocol, name, None))?;
                *protocol = Named::Inline(found.clone());
            }
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), Problem> {
        self.dataset()?;
        if let Some(Named::Name(name)) = self.protocols.iter().find(|p| p.inline().is_none()) {
            return Err(Problem::UnresolvedProtocol(name.clone()));
        }
        if self.models.is_empty() {
            return Err(Problem::Empty("models"));
        }
        if self.protocols.is_empty() {
            return Err(Problem::Empty("protocols"));
        }
        for (field, value) in [("batch_size", self.run.batch_size), ("chunk_size", self.run.chunk_size)] {
            if value == 0 {
                return Err(Problem::ZeroSetting(field));
            }
        }
        if self.max_pixels == 0 {
            return Err(Problem::ZeroSetting("max_pixels"));
        }
        let mut models = BTreeSet::new();
        for m in &self.models {
            check_id("model", &m.id)?;
            if !models.insert(m.id.as_str()) {
                return Err(Problem::DuplicateId { kind: "model", id: m.id.clone() });
            }
        }
        let mut protocols = BTreeSet::new();
        for p in self.protocol_entries() {
            check_id("protocol", &p.id)?;
            if !protocols.insert(p.id.as_str()) {
                return Err(Problem::DuplicateId { kind: "protocol", id: p.id.clone() });
            }
        }
        for p in self.protocol_entries() {
            self.validate_protocol(p, &models, &protocols)?;
        }
        for model in &self.models {
            model.input.spec().map_err(|error| Problem::UnknownInput { model: model.id.clone(), error })?;
        }
        self.validate_labels()?;
        self.validate_claims(&models)
    }

    fn validate_protocol(
        &self,
        p: &ProtocolEntry,
        models: &BTreeSet<&str>,
        protocols: &BTreeSet<&str>,
    ) -> Result<(), Problem> {
        let protocol = || p.id.clone();
        match &p.spec {
            ProtocolSpec::Ensemble(e) => {
                if e.members.len() < 2 {
                    return Err(Problem::EnsembleTooSmall(protocol()));
                }
                for member in &e.members {
                    if !models.contains(member.model.as_str()) {
                        return Err(Problem::EnsembleModel { ensemble: protocol(), model: member.model.clone() });
                    }
                    match self.protocol(&member.protocol) {
                        None => {
                            return Err(Problem::EnsembleProtocol {
                                ensemble: protocol(),
                                protocol: member.protocol.clone(),
                            })
                        }
                        Some(ProtocolSpec::Ensemble(_)) => {
                            return Err(Problem::NestedEnsemble {
                                ensemble: protocol(),
                                protocol: member.protocol.clone(),
                            })
                        }
                        Some(_) => {}
                    }
                }
                Ok(())
            }
            spec => {
                check_views(&p.id, spec)?;
                // Each sweep setting is a protocol run like the written one: the same checks.
                let variants = crate::protocol::sweep::expand(p).unwrap_or_default(); // parsing checked the sweep
                for variant in variants {
                    if protocols.contains(variant.id().as_str()) {
                        return Err(Problem::SweepIdTaken { id: variant.id(), protocol: protocol() });
                    }
                    check_views(&p.id, &variant.spec).map_err(|problem| Problem::SweepSetting {
                        protocol: protocol(),
                        label: variant.label(),
                        problem: Box::new(problem),
                    })?;
                }
                Ok(())
            }
        }
    }

    /// At least one label set, each once; `real` only on the ImageNet validation images.
    fn validate_labels(&self) -> Result<(), Problem> {
        if self.labels.is_empty() {
            return Err(Problem::Empty("labels"));
        }
        let mut seen = BTreeSet::new();
        for labels in &self.labels {
            if !seen.insert(labels.id()) {
                return Err(Problem::DuplicateLabels(labels.id()));
            }
            if *labels == LabelSetSpec::Real {
                let dataset = self.dataset()?;
                if !matches!(dataset, crate::dataset::DatasetSpec::ImagenetVal { .. }) {
                    return Err(Problem::RealNeedsImagenetVal(dataset.to_string()));
                }
            }
        }
        Ok(())
    }

    fn validate_claims(&self, models: &BTreeSet<&str>) -> Result<(), Problem> {
        let mut seen = BTreeSet::new();
        for (claim_index, claim) in self.claims.iter().enumerate() {
            let protocol = self.protocol(&claim.protocol).ok_or_else(|| Problem::ClaimProtocol {
                claim: claim_index,
                protocol: claim.protocol.clone(),
                ids: self.protocol_entries().map(|p| p.id.as_str()).collect::<Vec<_>>().join(", "),
            })?;
            match (&claim.model, protocol) {
                (Some(model), ProtocolSpec::Ensemble(_)) => {
                    return Err(Problem::ClaimModelOnEnsemble {
                        claim: claim_index,
                        protocol: claim.protocol.clone(),
                        model: model.clone(),
                    })
                }
                (None, spec) if !matches!(spec, ProtocolSpec::Ensemble(_)) => {
                    return Err(Problem::ClaimNeedsModel { claim: claim_index, protocol: claim.protocol.clone() })
                }
                (Some(model), _) if !models.contains(model.as_str()) => {
                    return Err(Problem::ClaimModel {
                        claim: claim_index,
                        model: model.clone(),
                        ids: models.iter().copied().collect::<Vec<_>>().join(", "),
                    });
                }
                _ => {}
            }
            if claim.top1.is_none() && claim.top5.is_none() {
                return Err(Problem::ClaimNoError(claim_index));
            }
            let numbers = [
                (ClaimField::Top1, claim.top1),
                (ClaimField::Top5, claim.top5),
                (ClaimField::Tolerance, Some(claim.tolerance)),
            ];
            for (field, value) in numbers {
                if let Some(value) = value.filter(|v| !(0.0..=100.0).contains(v)) {
                    return Err(Problem::ClaimNotPercentage { claim: claim_index, field, value });
                }
            }
            if claim.source.trim().is_empty() {
                return Err(Problem::ClaimNoSource(claim_index));
            }
            if claim.test_images == Some(0) {
                return Err(Problem::ClaimNoTestImages(claim_index));
            }
            let labels = self.claim_labels(claim);
            if !self.labels.iter().any(|l| l.id() == labels) {
                let ids = self.labels.iter().map(LabelSetSpec::id).collect::<Vec<_>>().join(", ");
                return Err(Problem::ClaimLabels { claim: claim_index, labels, ids });
            }
            if !seen.insert((claim.model.clone(), claim.protocol.clone(), labels.clone())) {
                return Err(Problem::ClaimTwice {
                    claim: claim_index,
                    model: claim.model.clone().unwrap_or_else(|| "ensemble".into()),
                    protocol: claim.protocol.clone(),
                    labels,
                });
            }
        }
        Ok(())
    }

    /// Local weights that exist but cannot be a weights file (a folder, a device such as
    /// /dev/zero) are mistakes found now; absent weights are not (they make a not-run row, or
    /// fail with the path when the model is loaded).
    pub(super) fn validate_weights_paths(&self, base: &Path) -> Result<(), Problem> {
        for model in &self.models {
            // A malformed hub address is reported, with its reason, when the model is loaded.
            let Ok(WeightsSource::Local(path)) = WeightsSource::parse(&model.weights) else { continue };
            let path = match resolve_path(base, "weights", &path) {
                Ok(path) => path,
                Err(DatasetError::UnsetVariable { .. }) => continue, // absent input: not run
                Err(error) => return Err(Problem::WeightsPath { model: model.id.clone(), error }),
            };
            let Ok(metadata) = std::fs::metadata(&path) else { continue };
            if metadata.is_dir() {
                return Err(Problem::WeightsFolder { model: model.id.clone(), path });
            }
            if !metadata.is_file() {
                return Err(Problem::WeightsNotAFile { model: model.id.clone(), path });
            }
        }
        Ok(())
    }
}

/// The checks of a protocol that makes views: sizes that no image could satisfy.
fn check_views(protocol: &str, spec: &ProtocolSpec) -> Result<(), Problem> {
    match spec {
        ProtocolSpec::CenterCrop(c) => check_crop(protocol, c.crop, c.resize),
        ProtocolSpec::TenCrop(t) => check_crop(protocol, t.crop, t.resize),
        ProtocolSpec::FullyConvolutional(f) => check_fully_convolutional(protocol, f),
        ProtocolSpec::Ensemble(_) => Ok(()),
    }
}

/// The shorter side a resize policy gives every image (all three policies fix it).
fn shorter_side(resize: ResizePolicy) -> u32 {
    match resize {
        ResizePolicy::ShorterSide(n) => n,
        ResizePolicy::Warp { height, width } => height.min(width),
        ResizePolicy::CropPct { crop, crop_pct } => (crop as f64 / crop_pct).floor() as u32,
    }
}

fn check_crop(protocol: &str, crop: u32, resize: ResizePolicy) -> Result<(), Problem> {
    let protocol = protocol.to_string();
    if crop == 0 {
        return Err(Problem::ZeroSize { protocol, field: "crop" });
    }
    let side = shorter_side(resize);
    if side == 0 {
        return Err(Problem::ZeroSize { protocol, field: "resize" });
    }
    if side > MAX_RESIZE_SIDE {
        return Err(Problem::ResizeTooLarge { protocol, side, resize });
    }
    if crop > side {
        return Err(Problem::CropExceedsResize { protocol, crop, side, resize });
    }
    Ok(())
}

fn check_fully_convolutional(protocol: &str, f: &FullyConvolutional) -> Result<(), Problem> {
    let protocol = protocol.to_string();
    if f.scales.is_empty() || f.scales.contains(&0) {
        return Err(Problem::NoScales(protocol));
    }
    if f.max_side == 0 {
        return Err(Problem::ZeroSize { protocol, field: "max_side" });
    }
    if let Some(&scale) = f.scales.iter().find(|&&s| s > f.max_side) {
        return Err(Problem::ScaleOverMaxSide { protocol, scale, max_side: f.max_side });
    }
    if f.pool == PoolWindow::Sliding(0) {
        return Err(Problem::ZeroPool(protocol));
    }
    Ok(())
}
