//! The `kind: training` experiment: models this project trains (recipes under
//! `experiments/train/`), each run for some seeds, with the claimed final test error of the
//! source (e.g. the paper's CIFAR-10 Table 6). The audit trains (or resumes) them when their data
//! is present; this module only reads and checks the file and its recipes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::validate::{check_id, Problem};
use super::ExperimentError;
use crate::train::run::Recipe;
use crate::yaml::{self, YamlError};

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingExperiment {
    pub kind: TrainingKind,
    #[serde(default)]
    pub description: String,
    pub runs: Vec<TrainingRun>,
}

#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrainingKind {
    Training,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingRun {
    pub id: String,
    /// The recipe, relative to the experiment file.
    pub recipe: PathBuf,
    /// Seeds `recipe.seed` … `recipe.seed + seeds − 1`; a claim is compared with their mean.
    #[serde(default = "one_seed")]
    pub seeds: u64,
    #[serde(default)]
    pub claim: Option<TrainingClaim>,
}

fn one_seed() -> u64 {
    1
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingClaim {
    /// Claimed final top-1 test error, percent (a mean over seeds when the source gives one).
    pub top1: f64,
    pub tolerance: f64,
    pub source: String,
}

/// A training run with its recipe read.
#[derive(Debug, Clone)]
pub struct LoadedRun {
    pub run: TrainingRun,
    /// The recipe's path (the experiment's folder joined with `run.recipe`).
    pub recipe_path: PathBuf,
    pub recipe: Recipe,
}

/// A training experiment read from a file, every recipe read and checked.
#[derive(Debug, Clone)]
pub struct LoadedTraining {
    pub path: PathBuf,
    pub description: String,
    pub runs: Vec<LoadedRun>,
}

#[derive(serde::Deserialize)]
struct KindPeek {
    #[serde(default)]
    kind: Option<String>,
}

/// Whether `file` declares `kind: training`. Only the top-level `kind:` decides; the file is
/// then read by the schema it names, so an unreadable file is reported by that reader.
pub fn is_training_experiment(file: &Path) -> bool {
    yaml::read::<KindPeek>(file).is_ok_and(|peek| peek.kind.as_deref() == Some("training"))
}

impl TrainingExperiment {
    /// Reads the file and every run's recipe; run ids follow the rules of model ids (they name
    /// folders of the store) and each run trains at least one seed.
    pub fn read(path: &Path) -> Result<LoadedTraining, ExperimentError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ExperimentError::Yaml(YamlError::Io { path: path.to_path_buf(), error }))?;
        let experiment: TrainingExperiment = yaml::parse(&text, path)?;
        let invalid = |problem: Problem| ExperimentError::invalid(path, &text, problem);
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut ids = BTreeSet::new();
        let mut runs = Vec::with_capacity(experiment.runs.len());
        for run in &experiment.runs {
            check_id("run", &run.id).map_err(invalid)?;
            if !ids.insert(run.id.as_str()) {
                return Err(invalid(Problem::DuplicateId { kind: "run", id: run.id.clone() }));
            }
            if run.seeds == 0 {
                return Err(invalid(Problem::NoSeeds { run: run.id.clone() }));
            }
            let recipe_path = base.join(&run.recipe);
            let recipe: Recipe = yaml::read(&recipe_path)?;
            runs.push(LoadedRun { run: run.clone(), recipe_path, recipe });
        }
        Ok(LoadedTraining { path: path.to_path_buf(), description: experiment.description, runs })
    }
}
