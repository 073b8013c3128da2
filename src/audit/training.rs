//! The audit of a `kind: training` experiment: each run's seeds trained (or resumed) when the
//! recipe's data is present, their mean final test error compared with the claim; otherwise
//! not-run rows with the variable to set and the command that trains them.

use std::path::Path;

use super::rows::with_training_claim;
use super::{describe_input, AuditError, AuditOptions};
use crate::dataset::DatasetError;
use crate::experiment::{LoadedRun, LoadedTraining};
use crate::report::{ExperimentInfo, Measured, ModelInfo, ProtocolKind, ResultRow, Status};
use crate::train::resume::Resume;
use crate::train::run::{summarize, train_seed_on, TrainData};

/// The protocol column of a training experiment's rows.
pub const TRAINING_PROTOCOL: &str = "final-test-error";

pub(super) fn audit_training(
    loaded: &LoadedTraining,
    name: &str,
    options: &AuditOptions,
) -> Result<(ExperimentInfo, Vec<ResultRow>), AuditError> {
    let mut info = ExperimentInfo {
        name: name.to_string(),
        copied_file: format!("experiments/{name}.yaml"),
        description: loaded.description.clone(),
        question: None,
        dataset: String::new(),
        images: None,
        not_run: None,
        models: Vec::new(),
        protocols: Vec::new(),
        notes: vec!["Training experiment: each row is the final test error of the recipe's last epoch, the mean over its seeds; the interval is the range (min–max) over seeds, not a Wilson interval.".into()],
        paired: Vec::new(),
        labels: Vec::new(),
    };
    let mut rows = Vec::new();
    for loaded_run in &loaded.runs {
        let LoadedRun { run, recipe_path, recipe } = loaded_run;
        let recipe_base = recipe_path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let out = options.store_dir.join("runs").join(name).join(&run.id);
        let command =
            format!("resnet-audit train {} --seeds {} --out {}", recipe_path.display(), run.seeds, out.display());
        info.models.push(ModelInfo {
            id: run.id.clone(),
            // The name does not depend on the class count.
            architecture: recipe.model.config(0).name(),
            weights: format!("trained: {command}"),
            sha256: None,
            input: recipe.input.spec().map(|s| describe_input(&s)).unwrap_or_default(),
        });
        let summary =
            format!("the recipe's validation transform after its last epoch, mean over {} seed(s)", run.seeds);
        let mut row =
            ResultRow::blank(name, &run.id, TRAINING_PROTOCOL, ProtocolKind::CenterCrop, summary, Status::Measured);
        if let TrainData::Cifar10 { root, .. } = &recipe.data {
            info.dataset = format!("CIFAR-10 binary batches at {}", root.display());
            let absent = match crate::dataset::resolve_path(&recipe_base, "data.root", root) {
                Err(DatasetError::UnsetVariable { var, .. }) => Some(format!(
                    "set {var}=/path/to/cifar-10-batches-bin (data_batch_1.bin … test_batch.bin, from \
                     https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz); the audit then trains {} seed(s) \
                     (`{command}`, add `--device cuda` on a GPU build)",
                    run.seeds
                )),
                Ok(path) if !path.join("data_batch_1.bin").is_file() => Some(format!(
                    "{} holds no data_batch_1.bin: point CIFAR10 at the extracted cifar-10-batches-bin",
                    path.display()
                )),
                _ => None,
            };
            if let Some(why) = absent {
                info.not_run = Some(why.clone());
                row.status = Status::NotRun(why);
                rows.push(with_training_claim(row, run.claim.as_ref()));
                continue;
            }
        }
        let device =
            options.runtime.device.open().map_err(|error| AuditError::Device { path: loaded.path.clone(), error })?;
        let mut runs = Vec::new();
        for k in 0..run.seeds {
            let seed = recipe.seed + k;
            let dir = out.join(format!("seed-{seed}"));
            let trained =
                train_seed_on(recipe, &recipe_base, seed, &dir, Resume::SameRecipe, &device).map_err(|error| {
                    AuditError::Training {
                        path: loaded.path.clone(),
                        run: run.id.clone(),
                        seed,
                        error: Box::new(error),
                    }
                })?;
            runs.push(trained);
        }
        let summary = summarize(&runs);
        let finals: Vec<f64> = summary.rows.iter().map(|r| 100.0 * r.final_val_error).collect();
        let low = finals.iter().copied().fold(f64::INFINITY, f64::min);
        let high = finals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        row.top1 = Some(Measured { err: 100.0 * summary.mean_val_error, low, high });
        info.notes.push(format!(
            "{}: final test error over {} seed(s): {:.2} ± {:.2} % (mean ± sample std)",
            run.id,
            finals.len(),
            100.0 * summary.mean_val_error,
            100.0 * summary.std_val_error
        ));
        let mut row = with_training_claim(row, run.claim.as_ref());
        if let (Some(claim), Some(measured)) = (&run.claim, row.top1) {
            row.delta_top1 = Some(measured.err - claim.top1);
            row.status =
                if (measured.err - claim.top1).abs() > claim.tolerance { Status::Drift } else { Status::Reproduced };
        }
        rows.push(row);
    }
    Ok((info, rows))
}
