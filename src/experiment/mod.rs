//! The experiment file: which models, which dataset, which protocols, and what the sources claim.
//! Relative paths in it are resolved against the directory of the file itself, so an experiment
//! runs from anywhere.
//!
//! Shared pieces (the ImageNet dataset, the paper's protocols, a model's preprocessing) live in
//! library files listed under `imports:` and are referenced by name: `dataset: NAME`,
//! `input: NAME`, and a protocol list item that is just `NAME`. [`LoadedExperiment::read`]
//! resolves every reference, so the rest of the crate sees a plain [`Experiment`].

pub mod training;
mod validate;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::{DatasetSpec, OutputOrder};
use crate::engine::{OnBadImage, Settings};
use crate::model::{StemPool, StridePlacement};
use crate::protocol::{ProtocolEntry, ProtocolSpec};
pub use crate::report::ClaimKind;
use crate::scoring::LabelSetSpec;
use crate::transform::InputSpec;
use crate::yaml::{self, Position, YamlError};

pub use training::{
    is_training_experiment, LoadedRun, LoadedTraining, TrainingClaim, TrainingExperiment, TrainingKind, TrainingRun,
};
pub use validate::{ClaimField, Problem, Reference, Undefined, MAX_ID_CHARS, MAX_RESIZE_SIDE};

/// An experiment with every reference resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    #[serde(default)]
    pub description: String,
    /// The question the experiment answers, in one sentence, for the top of the report (its
    /// verdict box); the description stands in when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    /// Library files (relative to this file) whose named datasets, inputs and protocols this file uses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<PathBuf>,
    pub dataset: Named<DatasetSpec>,
    pub models: Vec<ModelEntry>,
    pub protocols: Vec<Named<ProtocolEntry>>,
    /// The label sets every result is scored under (`original`, `real`, `{subset: …}`), the
    /// first one the experiment's main rows, the others rows beside them. Not part of any store
    /// key: a label set added later re-scores what is stored (`--no-compute`).
    #[serde(default = "crate::scoring::default_label_sets")]
    pub labels: Vec<LabelSetSpec>,
    /// What the sources claim, compared by the audit.
    #[serde(default)]
    pub claims: Vec<Claim>,
    /// `fail` (default): a bad image stops the run with its name; `skip`: it is recorded as skipped.
    #[serde(default)]
    pub on_bad_image: OnBadImage,
    /// The largest image (width × height), checked on the file's header before decoding and on
    /// every resized image; a larger one is a bad image. Default: Pillow's MAX_IMAGE_PIXELS.
    #[serde(default = "default_max_pixels")]
    pub max_pixels: u64,
    #[serde(default)]
    pub run: Settings,
}

/// A model under audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub id: String,
    /// A safetensors path or `hf://org/name[@revision]/file.safetensors`.
    pub weights: String,
    /// Bottleneck stride placement, when the file's metadata does not record it (v1 and v1.5
    /// have identical tensors, so it cannot be detected).
    #[serde(default)]
    pub stride: Option<StridePlacement>,
    /// The 3x3/2 pool after the stem: `torch` (padded) or `caffe` (ceil mode); default: the
    /// file's metadata, else torch.
    #[serde(default)]
    pub stem_pool: Option<StemPool>,
    /// A CIFAR model's option-A variant (`A`: zeros appended, `A-split`: on both sides) or `B`;
    /// default: the file's metadata, else A (A and A-split have identical tensors).
    #[serde(default)]
    pub cifar_shortcut: Option<crate::model::CifarShortcut>,
    /// The input convention: `torchvision` or an explicit channel order, scale, mean and std.
    pub input: InputChoice,
    /// The order of the model's outputs relative to the dataset's classes.
    #[serde(default)]
    pub outputs: OutputOrder,
    /// How to obtain the weights (e.g. the `convert caffe` command). When given, a model whose
    /// weights are absent is listed as not run, with this, instead of failing the experiment.
    #[serde(default)]
    pub obtain: Option<String>,
}

/// A claimed result: the error a source reports for (model, protocol), and how far a measurement
/// may be from it before the audit calls it drift (a published claim) or a regression (a
/// recorded baseline).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// The model id; omitted for an ensemble protocol (its members are in the protocol).
    #[serde(default)]
    pub model: Option<String>,
    pub protocol: String,
    /// Claimed top-1 error, percent.
    #[serde(default)]
    pub top1: Option<f64>,
    /// Claimed top-5 error, percent.
    #[serde(default)]
    pub top5: Option<f64>,
    /// Allowed |measured − claimed|, in points.
    pub tolerance: f64,
    /// Where the number comes from: paper table, README, URL; for a baseline, the run that recorded it.
    pub source: String,
    /// `published` (default): a number from outside the project; `baseline`: a number this
    /// project recorded from its own run, a regression reference rather than a reproduction.
    #[serde(default)]
    pub kind: ClaimKind,
    /// How many images the claimed number was measured on; a run on fewer is a subset, shown but
    /// not judged. Default: the size of the experiment's dataset.
    #[serde(default)]
    pub test_images: Option<usize>,
    /// The label set the number was measured under (`real`, `subset:imagenet-a`, … as in the
    /// `labels` column); default: the experiment's first label set (`original` unless `labels:`
    /// says otherwise).
    #[serde(default)]
    pub labels: Option<String>,
}

/// Either a name defined in an imported library file, or the thing itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Named<T> {
    Name(String),
    Inline(T),
}

// By hand rather than `untagged`: a map goes straight to T's own deserializer, so a typo inside it
// keeps serde_yaml's "unknown field `x`, expected one of …" with line and column.
impl<'de, T: Deserialize<'de>> Deserialize<'de> for Named<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
            type Value = Named<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a name defined in an imported file, or a mapping")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Named<T>, E> {
                Ok(Named::Name(name.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Named<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Named::Inline)
            }
        }
        deserializer.deserialize_any(Visitor(std::marker::PhantomData))
    }
}

impl<T> Named<T> {
    /// The inline value; `None` for a name (an unresolved reference).
    pub fn inline(&self) -> Option<&T> {
        match self {
            Named::Inline(value) => Some(value),
            Named::Name(_) => None,
        }
    }
}

/// A library file of shared pieces (`experiments/shared/*.yaml`), referenced by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Library {
    #[serde(default)]
    pub datasets: std::collections::BTreeMap<String, DatasetSpec>,
    #[serde(default)]
    pub inputs: std::collections::BTreeMap<String, InputSpec>,
    /// Referenced by their `id`.
    #[serde(default)]
    pub protocols: Vec<ProtocolEntry>,
}

/// A model's input convention: `torchvision`, a name from an imported library, or explicit.
pub type InputChoice = Named<InputSpec>;

/// The one built-in input name: RGB, 0–1, ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).
pub const TORCHVISION_INPUT: &str = "torchvision";

#[derive(Debug, thiserror::Error)]
#[error("input `{0}` is not defined: use `torchvision`, an explicit {{channel_order, scale, mean, std}}, or a name from an imported file's `inputs:`")]
pub struct UnknownInput(pub String);

impl Named<InputSpec> {
    /// The input convention; a name other than `torchvision` must have been resolved from imports.
    pub fn spec(&self) -> Result<InputSpec, UnknownInput> {
        match self {
            Named::Inline(spec) => Ok(spec.clone()),
            Named::Name(name) if name == TORCHVISION_INPUT => Ok(InputSpec::torchvision()),
            Named::Name(name) => Err(UnknownInput(name.clone())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// Unreadable, not YAML, or not the schema (serde_yaml's message, with line and column).
    #[error(transparent)]
    Yaml(#[from] YamlError),
    /// Parsed, but wrong: a dangling reference, a duplicate id, an impossible size.
    #[error("{path}: {}{problem}", located(.at))]
    Invalid { path: PathBuf, at: Option<Position>, problem: Box<Problem> },
}

fn located(at: &Option<Position>) -> String {
    at.map(|at| format!("{at}: ")).unwrap_or_default()
}

impl ExperimentError {
    /// `problem` in the file `path` whose text is `text`, placed at its field or, failing that,
    /// at the rarest name its message quotes.
    pub(crate) fn invalid(path: &Path, text: &str, problem: Problem) -> Self {
        let at = problem
            .field()
            .and_then(|(entry, field)| yaml::field_position(text, entry, field))
            .or_else(|| yaml::position(text, &problem.to_string()));
        ExperimentError::Invalid { path: path.to_path_buf(), at, problem: Box::new(problem) }
    }
}

/// An experiment read from a file, with the directory its relative paths start from.
#[derive(Debug, Clone)]
pub struct LoadedExperiment {
    pub path: PathBuf,
    pub base: PathBuf,
    pub experiment: Experiment,
}

impl LoadedExperiment {
    /// Reads the file and its imports, resolves every named reference, and validates.
    pub fn read(path: &Path) -> Result<Self, ExperimentError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ExperimentError::Yaml(YamlError::Io { path: path.to_path_buf(), error }))?;
        let mut experiment: Experiment = yaml::parse(&text, path)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };
        let invalid = |problem: Problem| ExperimentError::invalid(path, &text, problem);
        let libraries = experiment
            .imports
            .iter()
            .map(|import| {
                let file = base.join(import);
                yaml::read::<Library>(&file).map(|library| (file, library))
            })
            .collect::<Result<Vec<_>, _>>()?;
        experiment.resolve(&libraries).map_err(invalid)?;
        experiment.validate().map_err(invalid)?;
        experiment.validate_weights_paths(&base).map_err(invalid)?;
        Ok(Self { path: path.to_path_buf(), base, experiment })
    }

    pub fn settings(&self) -> Settings {
        Settings {
            on_bad_image: self.experiment.on_bad_image,
            max_pixels: self.experiment.max_pixels,
            ..self.experiment.run
        }
    }
}

fn default_max_pixels() -> u64 {
    crate::decode::DEFAULT_MAX_PIXELS
}

impl Experiment {
    /// The dataset (after [`LoadedExperiment::read`] resolved any name).
    pub fn dataset(&self) -> Result<&DatasetSpec, Problem> {
        self.dataset.inline().ok_or(Problem::UnresolvedDataset)
    }

    /// The protocols (resolved ones; unresolved names are skipped, and `validate` rejects them).
    pub fn protocol_entries(&self) -> impl Iterator<Item = &ProtocolEntry> {
        self.protocols.iter().filter_map(Named::inline)
    }

    pub fn protocol(&self, id: &str) -> Option<&ProtocolSpec> {
        self.protocol_entries().find(|p| p.id == id).map(|p| &p.spec)
    }

    pub fn model(&self, id: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.id == id)
    }

    /// The id of the first label set: the one the main rows and claims without `labels:` use.
    pub fn primary_labels(&self) -> String {
        self.labels.first().map_or_else(|| "original".to_string(), LabelSetSpec::id)
    }

    /// The label set a claim is about (its `labels`, else the first label set).
    pub fn claim_labels(&self, claim: &Claim) -> String {
        claim.labels.clone().unwrap_or_else(|| self.primary_labels())
    }
}

/// Reads an experiment file of either kind (a training experiment with its recipes) without
/// running anything: what `audit` would reject, this rejects.
pub fn validate_file(file: &Path) -> Result<(), ExperimentError> {
    if is_training_experiment(file) {
        TrainingExperiment::read(file).map(|_| ())
    } else {
        LoadedExperiment::read(file).map(|_| ())
    }
}
