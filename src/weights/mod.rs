//! Weights: reading safetensors files, checking them against a ResNet's tensors, loading.

mod checked;
mod file;
pub mod provenance;
mod source;

pub use checked::{load_resnet, tensor_specs, LoadOptions, TensorSpec};
pub use file::{encode_safetensors, write_safetensors, StoredTensor, WeightsFile};
pub use provenance::{InputConvention, Origin, Provenance, SourceFormat};
pub use source::{HubSettings, WeightsSource};

use std::fmt;
use std::path::PathBuf;

/// Why weights could not be found, read or matched to a model.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("cannot read weights file {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path} is not a readable safetensors file: {reason}")]
    NotSafetensors { path: PathBuf, reason: String },
    #[error("invalid weights source `{spec}`: {reason}")]
    BadSource { spec: String, reason: String },
    #[error(
        "{spec} is not in the Hugging Face cache at {cache} (looked for {expected}), and \
         HF_HUB_OFFLINE forbids downloading it; fetch it with `{command}` (where the network is \
         allowed), unset HF_HUB_OFFLINE, or point HF_HUB_CACHE/HF_HOME at a cache that has it"
    )]
    NotCached { spec: String, cache: PathBuf, expected: PathBuf, command: String },
    #[error("cannot download {spec}: {reason}")]
    Download { spec: String, reason: String },
    #[error("{path} does not hold the weights of {model} ({} problem{}):\n{}",
        problems.len(), if problems.len() == 1 { "" } else { "s" }, list(problems))]
    Mismatch { path: PathBuf, model: String, problems: Vec<Problem> },
    #[error("{path} holds values no model can compute with ({} tensor{}):\n{}",
        problems.len(), if problems.len() == 1 { "" } else { "s" }, list(problems))]
    Unusable { path: PathBuf, problems: Vec<Problem> },
    #[error("building {model} from {path}: {error}")]
    Build { path: PathBuf, model: String, error: Box<candle_core::Error> },
    #[error("{path}: {error}")]
    Provenance { path: PathBuf, error: provenance::ProvenanceError },
    #[error("cannot write {path}: tensor `{tensor}`: {reason}")]
    Encode { path: PathBuf, tensor: String, reason: String },
    #[error(transparent)]
    Write(#[from] crate::fsio::WriteError),
}

/// One way a weights file differs from what a model needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Missing {
        name: String,
        expected: Vec<usize>,
    },
    Shape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    Dtype {
        name: String,
        found: String,
    },
    /// Tensors the model does not use (torchvision's `num_batches_tracked` excepted).
    Unexpected {
        names: Vec<String>,
    },
    /// NaN or infinite values (a diverged training run): the model's outputs would be NaN, and
    /// NaN logits rank classes by index, which looks like a chance-level model.
    NonFinite {
        name: String,
        count: usize,
        first_index: usize,
    },
    /// A BatchNorm running variance below zero: its square root is NaN.
    NegativeVariance {
        name: String,
        count: usize,
        first_index: usize,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing { name, expected } => write!(f, "missing tensor `{name}` (expected shape {expected:?})"),
            Problem::Shape { name, expected, found } => {
                write!(f, "tensor `{name}`: expected shape {expected:?}, found {found:?}")?;
                if name.starts_with("fc.") && expected.first() != found.first() {
                    write!(
                        f,
                        " (the file has {} classes, the model is configured for {})",
                        found.first().unwrap_or(&0),
                        expected.first().unwrap_or(&0)
                    )?;
                }
                Ok(())
            }
            Problem::Dtype { name, found } => {
                write!(f, "tensor `{name}` is stored as {found}; expected f32, f16 or bf16")
            }
            Problem::NonFinite { name, count, first_index } => {
                write!(f, "tensor `{name}`: {count} NaN or infinite value(s), the first at index {first_index}")
            }
            Problem::NegativeVariance { name, count, first_index } => {
                write!(f, "tensor `{name}`: {count} negative running variance(s), the first at index {first_index}")
            }
            Problem::Unexpected { names } => {
                let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
                write!(f, "{} unexpected tensor(s): {}", names.len(), quoted.join(", "))
            }
        }
    }
}

fn list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
}
