//! The experiment file: which models, which dataset, which protocols. Relative paths in it are
//! resolved against the directory of the file itself, so an experiment runs from anywhere.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dataset::{DatasetSpec, OutputOrder};
use crate::engine::{OnBadImage, Settings};
use crate::model::{StemPool, StridePlacement};
use crate::protocol::{ProtocolEntry, ProtocolSpec};
use crate::transform::InputSpec;
use crate::yaml::{self, YamlError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    #[serde(default)]
    pub description: String,
    pub dataset: DatasetSpec,
    pub models: Vec<ModelEntry>,
    pub protocols: Vec<ProtocolEntry>,
    /// `fail` (default): a bad image stops the run with its name; `skip`: it is recorded as skipped.
    #[serde(default)]
    pub on_bad_image: OnBadImage,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InputChoice {
    Preset(InputPreset),
    Explicit(InputSpec),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputPreset {
    /// RGB, 0–1, ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).
    Torchvision,
}

impl InputChoice {
    pub fn spec(&self) -> InputSpec {
        match self {
            InputChoice::Preset(InputPreset::Torchvision) => InputSpec::torchvision(),
            InputChoice::Explicit(spec) => spec.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// An experiment read from a file, with the directory its relative paths start from.
#[derive(Debug, Clone)]
pub struct LoadedExperiment {
    pub path: PathBuf,
    pub base: PathBuf,
    pub experiment: Experiment,
}

impl LoadedExperiment {
    pub fn read(path: &Path) -> Result<Self, ExperimentError> {
        let experiment: Experiment = yaml::read(path)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };
        experiment.validate().map_err(|reason| ExperimentError::Invalid { path: path.to_path_buf(), reason })?;
        Ok(Self { path: path.to_path_buf(), base, experiment })
    }

    pub fn settings(&self) -> Settings {
        Settings { on_bad_image: self.experiment.on_bad_image, ..self.experiment.run }
    }
}

/// Ids name store files and table rows: keep them to letters, digits, `.`, `_`, `-`.
fn check_id(kind: &str, id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && !id.starts_with('.')
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!("{kind} id `{id}`: use letters, digits, `.`, `_` and `-` only (not starting with `.`)"))
    }
}

impl Experiment {
    pub fn validate(&self) -> Result<(), String> {
        if self.models.is_empty() {
            return Err("`models` is empty".into());
        }
        if self.protocols.is_empty() {
            return Err("`protocols` is empty".into());
        }
        let mut models = BTreeSet::new();
        for m in &self.models {
            check_id("model", &m.id)?;
            if !models.insert(m.id.as_str()) {
                return Err(format!("model id `{}` appears twice", m.id));
            }
        }
        let mut protocols = BTreeSet::new();
        for p in &self.protocols {
            check_id("protocol", &p.id)?;
            if !protocols.insert(p.id.as_str()) {
                return Err(format!("protocol id `{}` appears twice", p.id));
            }
        }
        for p in &self.protocols {
            match &p.spec {
                ProtocolSpec::Ensemble(e) => {
                    if e.members.len() < 2 {
                        return Err(format!("ensemble `{}` needs at least two members", p.id));
                    }
                    for member in &e.members {
                        if !models.contains(member.model.as_str()) {
                            return Err(format!("ensemble `{}`: no model `{}` in `models`", p.id, member.model));
                        }
                        match self.protocol(&member.protocol) {
                            None => {
                                return Err(format!("ensemble `{}`: no protocol `{}`", p.id, member.protocol));
                            }
                            Some(ProtocolSpec::Ensemble(_)) => {
                                return Err(format!(
                                    "ensemble `{}`: member protocol `{}` is itself an ensemble",
                                    p.id, member.protocol
                                ))
                            }
                            Some(_) => {}
                        }
                    }
                }
                ProtocolSpec::CenterCrop(c) if c.crop == 0 => return Err(format!("protocol `{}`: crop is 0", p.id)),
                ProtocolSpec::TenCrop(t) if t.crop == 0 => return Err(format!("protocol `{}`: crop is 0", p.id)),
                ProtocolSpec::FullyConvolutional(f) if f.scales.is_empty() || f.scales.contains(&0) => {
                    return Err(format!("protocol `{}`: scales must be a non-empty list of positive sizes", p.id))
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn protocol(&self, id: &str) -> Option<&ProtocolSpec> {
        self.protocols.iter().find(|p| p.id == id).map(|p| &p.spec)
    }

    pub fn model(&self, id: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.id == id)
    }
}
