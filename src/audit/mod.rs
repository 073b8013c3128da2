//! `audit`: every experiment file → measured rows beside their claims → `results.parquet` /
//! `results.csv`, charts, `report.md` / `report.html`, and the copies that make the report
//! reproducible. `check` is the gate over a written report.
//!
//! An experiment whose inputs are absent (an unset variable, a missing dataset folder, weights
//! not on disk) is not an error: its rows say `not run` with the fix. A malformed file is an
//! error, so a typo never passes as "not run".
//!
//! `rows.rs` judges rows against claims, `table.rs` is the results table's one schema (written
//! here, read by `check`), `training.rs` audits `kind: training` experiments, `manifest.rs`
//! records date, version and the whole report.

pub mod bands;
pub mod calibration;
pub mod flips;
pub mod images;
mod leftovers;
mod manifest;
pub mod per_class;
mod rows;
pub mod table;
mod training;

use std::path::{Path, PathBuf};

pub use images::{flip_list, FlipList, ImagesError};
pub use leftovers::remove_abandoned_temp_files;
pub use manifest::{software_version, ManifestError, MANIFEST};
pub use table::{Column, TableError};
pub use training::TRAINING_PROTOCOL;

use crate::dataset::DatasetError;
use crate::device::{DeviceError, Runtime};
use crate::eval::{self, EvalError, EvalOptions};
use crate::experiment::{is_training_experiment, ExperimentError, LoadedExperiment, TrainingExperiment};
use crate::report::{
    charts, document, AuditReport, ChartFiles, ExperimentInfo, ImageByImage, ModelInfo, ProtocolInfo, ResultRow,
};
use crate::train::run::TrainError;
use crate::transform::InputSpec;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Experiment(#[from] ExperimentError),
    #[error("{path}: {error}")]
    Eval { path: PathBuf, error: Box<EvalError> },
    #[error("{path}: no such experiment file or folder")]
    NoSuchPath { path: PathBuf },
    #[error("no experiment files (*.yaml) found in {}", list(.paths))]
    NoExperiments { paths: Vec<PathBuf> },
    #[error("cannot list {path}: {error}")]
    ListFolder { path: PathBuf, error: std::io::Error },
    #[error("cannot create {path}: {error}")]
    CreateFolder { path: PathBuf, error: std::io::Error },
    #[error("cannot remove the earlier report's {path}: {error}")]
    RemoveManifest { path: PathBuf, error: std::io::Error },
    #[error("cannot copy {from} to {to}: {error}")]
    Copy { from: PathBuf, to: PathBuf, error: std::io::Error },
    #[error("{path}: {error}")]
    NoImageScored { path: PathBuf, error: rows::RowsError },
    #[error("{path}: image by image: {error}")]
    Images { path: PathBuf, error: images::ImagesError },
    #[error("{path}: {error}")]
    Device { path: PathBuf, error: DeviceError },
    #[error("{path}: run `{run}`, seed {seed}: training failed: {error}")]
    Training { path: PathBuf, run: String, seed: u64, error: Box<TrainError> },
    #[error(transparent)]
    Table(#[from] TableError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Chart(#[from] charts::ChartError),
    #[error(transparent)]
    Document(#[from] document::DocumentError),
}

fn list(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// What to audit and where to write.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// Experiment files, or folders whose `*.yaml` files are experiments (not recursive).
    pub paths: Vec<PathBuf>,
    pub out: PathBuf,
    pub store_dir: PathBuf,
    /// Device, dtype, backend: in every store key, and recorded in the report.
    pub runtime: Runtime,
    /// At most this many images per experiment (quick looks; stored separately).
    pub limit: Option<usize>,
    /// The command line, recorded in the report.
    pub command: String,
    /// Compute nothing: every result must be stored whole or in parts (the merge after shards).
    pub no_compute: bool,
}

impl AuditOptions {
    /// What `eval` computes for the audit (every protocol and sweep setting) in `mode`; the one
    /// mapping for the audit, its shards and its merge.
    pub fn eval_options(&self, mode: eval::RunMode) -> EvalOptions {
        EvalOptions {
            models: Vec::new(),
            protocols: Vec::new(),
            limit: self.limit,
            runtime: self.runtime,
            store_dir: self.store_dir.clone(),
            sweeps: true,
            mode,
        }
    }
}

/// The experiment files named by `paths`, sorted within each folder.
pub fn experiment_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, AuditError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let read = std::fs::read_dir(path).map_err(|error| AuditError::ListFolder { path: path.clone(), error })?;
            let mut found: Vec<PathBuf> = read
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            found.sort();
            files.extend(found);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            return Err(AuditError::NoSuchPath { path: path.clone() });
        }
    }
    if files.is_empty() {
        return Err(AuditError::NoExperiments { paths: paths.to_vec() });
    }
    Ok(files)
}

/// Why an experiment cannot run here, when the cause is absent input rather than a mistake.
pub(crate) fn absent_input(error: &EvalError) -> Option<String> {
    match error {
        EvalError::Dataset(DatasetError::UnsetVariable { field, var, .. }) => Some(format!(
            "{field} needs the environment variable {var}: set {var}=/path/to/it (e.g. `make audit {var}=/data/…`)"
        )),
        EvalError::Dataset(DatasetError::NotADirectory { path, field }) => Some(format!(
            "{field}: {} is not there; point the experiment (or its variable) at the data",
            path.display()
        )),
        EvalError::Dataset(DatasetError::Io { path, field, error }) if error.kind() == std::io::ErrorKind::NotFound => {
            Some(format!(
                "{field}: {} is not there; point the experiment (or its variable) at the data",
                path.display()
            ))
        }
        _ => None,
    }
}

/// Runs every experiment and writes the report folder. Returns the report that was written.
pub fn run(options: &AuditOptions) -> Result<AuditReport, AuditError> {
    let files = experiment_files(&options.paths)?;
    for folder in [&options.store_dir, &options.out] {
        for removed in remove_abandoned_temp_files(folder) {
            eprintln!("audit: removed {} (left by a process that is gone)", removed.display());
        }
    }
    let copies = options.out.join("experiments");
    create_folder(&copies)?;
    let mut experiments = Vec::new();
    let (mut rows, mut label_rows) = (Vec::new(), Vec::new());
    let (mut image_by_image, mut per_class_rows) = (Vec::new(), Vec::new());
    for file in &files {
        let name = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let (info, experiment_rows) = if is_training_experiment(file) {
            let loaded = TrainingExperiment::read(file)?;
            copy_file(file, &copies.join(format!("{name}.yaml")))?;
            training::audit_training(&loaded, &name, options)?
        } else {
            let loaded = LoadedExperiment::read(file)?;
            let copied = copy_experiment(&loaded, &name, &copies)?;
            let (info, rows, images) = audit_experiment(&loaded, &name, &copied, options)?;
            if let Some((analysis, table)) = images {
                image_by_image.push(analysis);
                per_class_rows.extend(table);
            }
            (info, rows)
        };
        let (main, other) = rows::split_label_rows(experiment_rows, &info.labels);
        experiments.push(info);
        rows.extend(main);
        label_rows.extend(other);
    }
    let report = AuditReport {
        title: "resnet-audit report".into(),
        generated_at: manifest::now_utc(),
        software: software_version(),
        command: options.command.clone(),
        runtime: options.runtime.to_string(),
        experiments,
        charts: Vec::new(),
        bands: bands::sweep_bands(&rows),
        rows,
        label_rows,
        image_by_image,
    };
    if !report.image_by_image.is_empty() {
        per_class::write_per_class(&per_class_rows, &options.out)?;
    }
    write_report(report, &options.out)
}

/// Writes tables, charts, documents and the manifest for `report` into `out`.
pub fn write_report(mut report: AuditReport, out: &Path) -> Result<AuditReport, AuditError> {
    // The manifest says the report is whole: an earlier one goes first, so a run that dies
    // half-way leaves a report `check` refuses rather than old hashes over new files.
    match std::fs::remove_file(out.join(MANIFEST)) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(AuditError::RemoveManifest { path: out.join(MANIFEST), error })
        }
        _ => {}
    }
    table::write_tables(&report.table_rows(), out)?;
    report.charts = write_charts(&report.rows, out)?;
    for analysis in &mut report.image_by_image {
        analysis.charts = charts::reliability_diagrams(analysis, out)?;
    }
    document::write_markdown(&report, out)?;
    document::write_html(&report, out)?;
    manifest::write_manifest(&report, out)?;
    Ok(report)
}

fn write_charts(rows: &[ResultRow], out: &Path) -> Result<Vec<ChartFiles>, AuditError> {
    // Training experiments' rows are not test protocols: they stay out of the protocol charts.
    let rows: Vec<ResultRow> = rows.iter().filter(|r| r.protocol != TRAINING_PROTOCOL).cloned().collect();
    let rows = rows.as_slice();
    let measured = rows.iter().any(|r| r.top1.is_some());
    let claimed_and_measured = rows.iter().any(|r| r.top1.is_some() && r.claimed_top1_err.is_some());
    let mut written = Vec::new();
    if measured {
        written.extend(charts::protocol_ladders(rows, out, "protocol-ladder")?);
    }
    if rows.iter().any(|r| r.top1.is_some() && r.gmacs_per_image.is_some()) {
        written.push(charts::error_vs_compute(rows, out, "error-vs-compute")?);
    }
    if claimed_and_measured {
        written.push(charts::claim_deltas(rows, out, "claim-deltas")?);
    }
    Ok(written)
}

fn create_folder(path: &Path) -> Result<(), AuditError> {
    std::fs::create_dir_all(path).map_err(|error| AuditError::CreateFolder { path: path.to_path_buf(), error })
}

fn copy_file(from: &Path, to: &Path) -> Result<(), AuditError> {
    if let Some(parent) = to.parent() {
        create_folder(parent)?;
    }
    std::fs::copy(from, to).map(|_| ()).map_err(|error| AuditError::Copy {
        from: from.to_path_buf(),
        to: to.to_path_buf(),
        error,
    })
}

/// Copies the experiment and its imports into the report (`<name>.yaml`, imports under `<name>.imports/`).
fn copy_experiment(loaded: &LoadedExperiment, name: &str, copies: &Path) -> Result<String, AuditError> {
    let file_name = format!("{name}.yaml");
    copy_file(&loaded.path, &copies.join(&file_name))?;
    for import in &loaded.experiment.imports {
        // At the same relative place, so the copied experiment reads its copied imports; an
        // import outside the experiment's folder goes to `<name>.imports/` (and the copy says so).
        let inside = import.is_relative() && import.components().all(|c| matches!(c, std::path::Component::Normal(_)));
        let target = if inside {
            copies.join(import)
        } else {
            copies.join(format!("{name}.imports")).join(import.file_name().unwrap_or(import.as_os_str()))
        };
        copy_file(&loaded.base.join(import), &target)?;
    }
    Ok(format!("experiments/{file_name}"))
}

fn audit_experiment(
    loaded: &LoadedExperiment,
    name: &str,
    copied_file: &str,
    options: &AuditOptions,
) -> Result<(ExperimentInfo, Vec<ResultRow>, Option<(ImageByImage, Vec<per_class::PerClassRow>)>), AuditError> {
    let experiment = &loaded.experiment;
    let eval_options =
        options.eval_options(if options.no_compute { eval::RunMode::StoredOnly } else { eval::RunMode::Complete });
    eprintln!("audit: {}", loaded.path.display());
    let sweep_error = |error| AuditError::Eval { path: loaded.path.clone(), error: Box::new(EvalError::Sweep(error)) };
    let protocols = experiment
        .protocol_entries()
        .map(|p| {
            Ok(ProtocolInfo {
                id: p.id.clone(),
                kind: rows::kind_of(&p.spec),
                summary: p.spec.summary(),
                sweep: crate::protocol::expand(p).map_err(sweep_error)?.iter().map(|v| v.label()).collect(),
            })
        })
        .collect::<Result<Vec<_>, AuditError>>()?;
    let mut info = ExperimentInfo {
        name: name.to_string(),
        copied_file: copied_file.to_string(),
        description: experiment.description.clone(),
        question: experiment.question.clone(),
        dataset: experiment.dataset().map(describe_dataset).unwrap_or_default(),
        images: None,
        not_run: None,
        models: experiment
            .models
            .iter()
            .map(|m| ModelInfo {
                id: m.id.clone(),
                architecture: String::new(),
                weights: m.weights.clone(),
                sha256: None,
                input: m.input.spec().map(|s| describe_input(&s)).unwrap_or_default(),
            })
            .collect(),
        protocols,
        notes: Vec::new(),
        paired: Vec::new(),
        labels: experiment.labels.iter().map(|l| l.id()).collect(),
    };
    let report = match eval::run(loaded, &eval_options) {
        Ok(report) => report,
        Err(error) => match absent_input(&error) {
            Some(reason) => {
                info.not_run = Some(reason.clone());
                let rows = rows::not_run_rows(loaded, name, &reason);
                return Ok((info, rows, None));
            }
            None => return Err(AuditError::Eval { path: loaded.path.clone(), error: Box::new(error) }),
        },
    };
    info.images = Some(report.images);
    info.dataset = format!("{} ({} images)", report.dataset, report.images);
    for model in &mut info.models {
        if let Some(ran) = report.models.iter().find(|r| r.id == model.id) {
            model.architecture = ran.config.name();
            model.sha256 = Some(ran.weights_sha256.clone());
        }
    }
    info.notes = report.notes.clone();
    // Eval compares protocols as written only (sweep settings are read as bands).
    info.paired = report
        .paired
        .iter()
        .map(|p| {
            format!(
                "{}: {} vs {}: only the first correct on {} images, only the second on {}, McNemar exact p = {:.3e} ({} images)",
                p.model, p.a, p.b, p.test.only_a_correct, p.test.only_b_correct, p.test.p_value, p.images
            )
        })
        .collect();
    let rows = rows::measured_rows(loaded, name, &report)
        .map_err(|error| AuditError::NoImageScored { path: loaded.path.clone(), error })?;
    let images = images::analyse(loaded, name, &report, &options.out)
        .map_err(|error| AuditError::Images { path: loaded.path.clone(), error })?;
    Ok((info, rows, Some(images)))
}

/// Writes one experiment's eval results as the audit's results table (CSV, the columns of
/// `results.csv`): `eval --results-file`, timm's flag.
pub fn write_results_file(loaded: &LoadedExperiment, report: &eval::EvalReport, file: &Path) -> Result<(), AuditError> {
    let name = loaded.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let rows = rows::measured_rows(loaded, &name, report)
        .map_err(|error| AuditError::NoImageScored { path: loaded.path.clone(), error })?;
    Ok(table::write_csv(&rows, file)?)
}

fn describe_dataset(spec: &crate::dataset::DatasetSpec) -> String {
    spec.to_string()
}

fn describe_input(input: &InputSpec) -> String {
    input.to_string()
}

/// What the gate fails on besides drift, regressions and empty rows.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// Rows not run fail too.
    pub require_all: bool,
    /// Rows measured on a subset of the claimed test set fail too (by default they are shown,
    /// not judged: a `--limit` run passes).
    pub strict_subsets: bool,
}

/// The gate's verdict over a written report.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    pub rows: usize,
    /// Rows not run (they fail only with `require_all`).
    pub not_run: usize,
    /// Rows measured on a subset of their claim's test set (they fail only with `strict_subsets`).
    pub subsets: usize,
    /// `experiment/model/protocol: …` for each failing row.
    pub failures: Vec<String>,
}

/// Reads a report folder: first its completeness (every file `manifest.json` lists, with its
/// SHA-256), then `results.parquet`. Fails rows in `drift` (a published claim), `regressed` (a
/// recorded baseline) and `empty` (every image skipped); `not-run` and `subset` rows only when
/// `options` asks.
pub fn check(dir: &Path, options: CheckOptions) -> Result<CheckOutcome, AuditError> {
    manifest::verify_complete(dir)?;
    let table = table::WrittenTable::read(dir)?;
    let (experiment, model, protocol, setting, status, reason, kind) = (
        table.text(Column::Experiment)?,
        table.text(Column::Model)?,
        table.text(Column::Protocol)?,
        table.text(Column::Setting)?,
        table.text(Column::Status)?,
        table.text(Column::Reason)?,
        table.text(Column::ClaimKind)?,
    );
    let (measured, claimed, delta, tolerance) = (
        table.numbers(Column::Top1Err)?,
        table.numbers(Column::ClaimedTop1Err)?,
        table.numbers(Column::DeltaTop1)?,
        table.numbers(Column::Tolerance)?,
    );
    let delta5 = table.numbers(Column::DeltaTop5)?;
    let is = |i: usize, word: &str| status[i].as_deref() == Some(word);
    let count = |word: &str| (0..table.height()).filter(|&i| is(i, word)).count();
    let mut failures = Vec::new();
    for i in 0..table.height() {
        let name = format!(
            "{}/{}/{}{}",
            experiment[i].clone().unwrap_or_default(),
            model[i].clone().unwrap_or_default(),
            protocol[i].clone().unwrap_or_default(),
            setting[i].as_ref().map(|s| format!(" [{s}]")).unwrap_or_default()
        );
        let shown = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.2}"));
        let why = reason[i].clone().unwrap_or_default();
        if is(i, "drift") || is(i, "regressed") {
            let against = match kind[i].as_deref() {
                Some("baseline") => "recorded baseline",
                _ => "published claim",
            };
            failures.push(format!(
                "{name}: {}: top-1 error {} vs {against} {} (Δ {} top-1, {} top-5; tolerance ±{})",
                status[i].as_deref().unwrap_or_default(),
                shown(measured[i]),
                shown(claimed[i]),
                shown(delta[i]),
                shown(delta5[i]),
                shown(tolerance[i])
            ));
        } else if is(i, "empty")
            || (options.require_all && is(i, "not-run"))
            || (options.strict_subsets && is(i, "subset"))
        {
            failures.push(format!("{name}: {}: {why}", status[i].as_deref().unwrap_or_default()));
        }
    }
    Ok(CheckOutcome { rows: table.height(), not_run: count("not-run"), subsets: count("subset"), failures })
}
