//! The training recipe: every knob the paper and fb.resnet.torch differ in, as a YAML file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::augment::Augmentation;
use super::schedule::{Schedule, Warmup};
use super::SgdConfig;
use crate::demo::DemoSpec;
use crate::experiment::InputChoice;
use crate::model::{CifarShortcut, ResNetConfig, StridePlacement};

/// What to train on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TrainData {
    /// Class-per-folder trees for training and validation.
    ImageFolder { train: PathBuf, val: PathBuf },
    /// The generated demo dataset, written to `dir` first when absent.
    Demo {
        dir: PathBuf,
        #[serde(default)]
        spec: DemoSpec,
    },
    /// CIFAR-10's binary distribution: `root` holds `data_batch_1.bin` … `data_batch_5.bin`
    /// (training) and `test_batch.bin` (validation).
    #[serde(rename = "cifar10")]
    Cifar10 {
        root: PathBuf,
        /// Which training batches (1–5, order irrelevant); all five when absent.
        #[serde(default)]
        train_batches: Option<Vec<u32>>,
    },
}

/// The network to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ModelSpec {
    Imagenet { depth: usize, base_width: usize, stride: StridePlacement },
    Cifar { depth: usize, base_width: usize, shortcut: CifarShortcut },
}

/// Validation: resize the shorter side, then a center crop (protocol (i)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValTransform {
    pub resize: u32,
    pub crop: u32,
}

/// A training recipe: every knob the paper and fb.resnet.torch differ in is a field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    #[serde(default)]
    pub description: String,
    pub data: TrainData,
    pub model: ModelSpec,
    pub input: InputChoice,
    /// Applied in order; the last must produce images of one fixed size.
    pub augment: Vec<Augmentation>,
    pub val: ValTransform,
    pub optimizer: SgdConfig,
    pub schedule: Schedule,
    #[serde(default)]
    pub warmup: Option<Warmup>,
    pub batch_size: usize,
    pub epochs: u64,
    #[serde(default = "default_bn_momentum")]
    pub bn_momentum: f64,
    pub seed: u64,
    /// Steps between checkpoints (and one at every epoch's end).
    pub checkpoint_every: u64,
}

fn default_bn_momentum() -> f64 {
    0.1
}

impl ModelSpec {
    pub(crate) fn config(&self, classes: usize) -> ResNetConfig {
        match *self {
            ModelSpec::Imagenet { depth, base_width, stride } => {
                ResNetConfig::imagenet(depth, classes).with_base_width(base_width).with_stride(stride)
            }
            ModelSpec::Cifar { depth, base_width, shortcut } => {
                ResNetConfig::cifar(depth, shortcut, classes).with_base_width(base_width)
            }
        }
    }
}
