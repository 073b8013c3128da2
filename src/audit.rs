//! `audit`: every experiment file → measured rows beside their claims → `results.parquet` /
//! `results.csv`, charts, `report.md` / `report.html`, and the copies that make the report
//! reproducible. `check` is the gate over a written report.
//!
//! An experiment whose inputs are absent (an unset variable, a missing dataset folder, weights
//! not on disk) is not an error: its rows say `not run` with the fix. A malformed file is an
//! error, so a typo never passes as "not run".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::dataset::DatasetError;
use crate::device::DeviceKind;
use crate::eval::{self, EvalError, EvalOptions, EvalReport};
use crate::experiment::{Claim, ExperimentError, LoadedExperiment};
use crate::metrics::Proportion;
use crate::model::complexity::{multiply_adds, parameter_count};
use crate::model::Backend;
use crate::model::ResNetConfig;
use crate::protocol::{sweep, ProtocolEntry, ProtocolSpec};
use crate::report::{
    charts, document, AuditReport, ChartFiles, ExperimentInfo, Measured, ModelInfo, ProtocolInfo, ProtocolKind,
    ResultRow, Status,
};
use crate::transform::{InputSpec, MeanSpec};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Experiment(#[from] ExperimentError),
    #[error("{path}: {error}")]
    Eval { path: PathBuf, error: Box<EvalError> },
    #[error("{path}: protocol sweep: {error}")]
    Sweep { path: PathBuf, error: Box<sweep::SweepError> },
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("training {recipe} (seed {seed}): {error}")]
    Train { recipe: PathBuf, seed: u64, error: Box<crate::train::run::TrainError> },
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error(transparent)]
    Chart(#[from] charts::ChartError),
    #[error(transparent)]
    Document(#[from] document::DocumentError),
    #[error("{0}")]
    Usage(String),
}

/// What to audit and where to write.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// Experiment files, or folders whose `*.yaml` files are experiments (not recursive).
    pub paths: Vec<PathBuf>,
    pub out: PathBuf,
    pub store_dir: PathBuf,
    pub device: DeviceKind,
    /// The inference implementation (the fast CPU path by default).
    pub backend: Backend,
    /// At most this many images per experiment (quick looks; stored separately).
    pub limit: Option<usize>,
    /// The command line, recorded in the report.
    pub command: String,
}

/// The protocol column of a training experiment's rows.
pub const TRAINING_PROTOCOL: &str = "final-test-error";

/// The sweep variants of a protocol are evaluated under ids `<protocol>.sweep<k>`.
const SWEEP_SEPARATOR: &str = ".sweep";

/// The experiment files named by `paths`, sorted within each folder.
pub fn experiment_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, AuditError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let read =
                std::fs::read_dir(path).map_err(|e| AuditError::Read { path: path.clone(), reason: e.to_string() })?;
            let mut found: Vec<PathBuf> = read
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            found.sort();
            files.extend(found);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            return Err(AuditError::Usage(format!("{}: no such experiment file or folder", path.display())));
        }
    }
    if files.is_empty() {
        return Err(AuditError::Usage("no experiment files (*.yaml) found".into()));
    }
    Ok(files)
}

/// Why an experiment cannot run here, when the cause is absent input rather than a mistake.
fn absent_input(error: &EvalError) -> Option<String> {
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
    let copies = options.out.join("experiments");
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| AuditError::Write { path, reason: e.to_string() }
    };
    std::fs::create_dir_all(&copies).map_err(write_err(&copies))?;
    let mut experiments = Vec::new();
    let mut rows = Vec::new();
    for file in &files {
        let name = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if is_training_experiment(file)? {
            let (info, experiment_rows) = audit_training(file, &name, &copies, options)?;
            experiments.push(info);
            rows.extend(experiment_rows);
            continue;
        }
        let loaded = LoadedExperiment::read(file)?;
        let copied = copy_experiment(&loaded, &name, &copies)?;
        let (info, experiment_rows) = audit_experiment(&loaded, &name, &copied, options)?;
        experiments.push(info);
        rows.extend(experiment_rows);
    }
    let report = AuditReport {
        title: "resnet-audit report".into(),
        generated_at: now_utc(),
        software: software_version(),
        command: options.command.clone(),
        experiments,
        charts: Vec::new(),
        rows,
    };
    write_report(report, &options.out)
}

/// Writes tables, charts, documents and the manifest for `report` into `out`.
pub fn write_report(mut report: AuditReport, out: &Path) -> Result<AuditReport, AuditError> {
    write_tables(&report.rows, out)?;
    report.charts = write_charts(&report.rows, out)?;
    document::write_markdown(&report, out)?;
    document::write_html(&report, out)?;
    let manifest = out.join("manifest.json");
    let text = serde_json::to_string_pretty(&report)
        .map_err(|e| AuditError::Write { path: manifest.clone(), reason: e.to_string() })?;
    write_atomic(&manifest, text.as_bytes())?;
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
        written.push(charts::protocol_ladder(rows, out, "protocol-ladder")?);
    }
    if rows.iter().any(|r| r.top1.is_some() && r.gmacs_per_image.is_some()) {
        written.push(charts::error_vs_compute(rows, out, "error-vs-compute")?);
    }
    if claimed_and_measured {
        written.push(charts::claim_deltas(rows, out, "claim-deltas")?);
    }
    Ok(written)
}

/// Copies the experiment and its imports into the report (`<name>.yaml`, imports under `<name>.imports/`).
fn copy_experiment(loaded: &LoadedExperiment, name: &str, copies: &Path) -> Result<String, AuditError> {
    let copy = |from: &Path, to: &Path| -> Result<(), AuditError> {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| AuditError::Write { path: parent.into(), reason: e.to_string() })?;
        }
        std::fs::copy(from, to).map(|_| ()).map_err(|e| AuditError::Write { path: to.into(), reason: e.to_string() })
    };
    let file_name = format!("{name}.yaml");
    copy(&loaded.path, &copies.join(&file_name))?;
    for import in &loaded.experiment.imports {
        // At the same relative place, so the copied experiment reads its copied imports; an
        // import outside the experiment's folder goes to `<name>.imports/` (and the copy says so).
        let inside = import.is_relative() && import.components().all(|c| matches!(c, std::path::Component::Normal(_)));
        let target = if inside {
            copies.join(import)
        } else {
            copies.join(format!("{name}.imports")).join(import.file_name().unwrap_or(import.as_os_str()))
        };
        copy(&loaded.base.join(import), &target)?;
    }
    Ok(format!("experiments/{file_name}"))
}

/// The experiment with each sweep setting added as a protocol `<id>.sweep<k>`; and the map from
/// those ids back to (protocol id, setting label).
/// Sweep protocol id → (the protocol it varies, the setting's label).
type SweepSettings = BTreeMap<String, (String, String)>;

fn with_sweeps(loaded: &LoadedExperiment) -> Result<(LoadedExperiment, SweepSettings), AuditError> {
    let mut expanded = loaded.clone();
    let mut settings = BTreeMap::new();
    let entries: Vec<ProtocolEntry> = loaded.experiment.protocol_entries().cloned().collect();
    for entry in &entries {
        let variants = sweep::expand(entry)
            .map_err(|error| AuditError::Sweep { path: loaded.path.clone(), error: Box::new(error) })?;
        for (k, variant) in variants.into_iter().enumerate() {
            let id = format!("{}{SWEEP_SEPARATOR}{}", entry.id, k + 1);
            settings.insert(id.clone(), (entry.id.clone(), variant.label));
            expanded.experiment.protocols.push(crate::experiment::Named::Inline(ProtocolEntry {
                id,
                spec: variant.spec,
                sweep: None,
            }));
        }
    }
    Ok((expanded, settings))
}

fn audit_experiment(
    loaded: &LoadedExperiment,
    name: &str,
    copied_file: &str,
    options: &AuditOptions,
) -> Result<(ExperimentInfo, Vec<ResultRow>), AuditError> {
    let experiment = &loaded.experiment;
    let (expanded, sweep_settings) = with_sweeps(loaded)?;
    // In `expand`'s order (the map sorts `p.sweep10` before `p.sweep2`).
    let sweep_order: Vec<String> = expanded.experiment.protocol_entries().map(|p| p.id.clone()).collect();
    let eval_options = EvalOptions {
        models: Vec::new(),
        protocols: Vec::new(),
        limit: options.limit,
        device: options.device,
        backend: options.backend,
        store_dir: options.store_dir.clone(),
    };
    eprintln!("audit: {}", loaded.path.display());
    let protocols: Vec<ProtocolInfo> = experiment
        .protocol_entries()
        .map(|p| ProtocolInfo {
            id: p.id.clone(),
            kind: kind_of(&p.spec),
            summary: p.spec.summary(),
            sweep: sweep_order
                .iter()
                .filter_map(|id| sweep_settings.get(id))
                .filter(|(id, _)| id == &p.id)
                .map(|(_, label)| label.clone())
                .collect(),
        })
        .collect();
    let mut info = ExperimentInfo {
        name: name.to_string(),
        copied_file: copied_file.to_string(),
        description: experiment.description.clone(),
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
    };
    let report = match eval::run(&expanded, &eval_options) {
        Ok(report) => report,
        Err(error) => match absent_input(&error) {
            Some(reason) => {
                info.not_run = Some(reason.clone());
                let rows = not_run_rows(loaded, name, &reason);
                return Ok((info, rows));
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
    info.paired = report
        .paired
        .iter()
        .filter(|p| !p.a.contains(SWEEP_SEPARATOR) && !p.b.contains(SWEEP_SEPARATOR))
        .map(|p| {
            format!(
                "{}: {} vs {}: only the first correct on {} images, only the second on {}, McNemar exact p = {:.3e} ({} images)",
                p.model, p.a, p.b, p.test.only_a_correct, p.test.only_b_correct, p.test.p_value, p.images
            )
        })
        .collect();
    Ok((info, measured_rows(loaded, name, &report, &sweep_settings)))
}

fn kind_of(spec: &ProtocolSpec) -> ProtocolKind {
    match spec {
        ProtocolSpec::CenterCrop(_) => ProtocolKind::CenterCrop,
        ProtocolSpec::TenCrop(_) => ProtocolKind::TenCrop,
        ProtocolSpec::FullyConvolutional(_) => ProtocolKind::FullyConvolutional,
        ProtocolSpec::Ensemble(_) => ProtocolKind::Ensemble,
    }
}

fn describe_dataset(spec: &crate::dataset::DatasetSpec) -> String {
    serde_json::to_string(spec).unwrap_or_default()
}

fn describe_input(input: &InputSpec) -> String {
    let mean = match &input.mean {
        MeanSpec::Channel(m) => format!("mean {m:?}"),
        MeanSpec::Image { image, .. } => format!("mean image {}", image.display()),
    };
    format!("{:?}, {:?} scale, {mean}, std {:?}", input.channel_order, input.scale, input.std)
}

fn percent(p: &Proportion) -> Option<Measured> {
    (p.trials > 0).then_some(Measured { err: 100.0 * p.estimate, low: 100.0 * p.low, high: 100.0 * p.high })
}

/// Test-time multiply-adds per image, in billions, for a 4:3 image (the most common ImageNet
/// shape; multi-scale cost depends on the aspect). `None` for ensembles (summed by the caller).
fn gmacs(config: &ResNetConfig, spec: &ProtocolSpec) -> Option<f64> {
    let at = |h: u32, w: u32| multiply_adds(config, h as usize, w as usize) as f64;
    let macs = match spec {
        ProtocolSpec::CenterCrop(c) => at(c.crop, c.crop),
        ProtocolSpec::TenCrop(t) => 10.0 * at(t.crop, t.crop),
        ProtocolSpec::FullyConvolutional(f) => {
            let views = if f.flips { 2.0 } else { 1.0 };
            f.scales.iter().map(|&s| views * at(s, (s as f64 * 4.0 / 3.0).round() as u32)).sum()
        }
        ProtocolSpec::Ensemble(_) => return None,
    };
    Some(macs / 1e9)
}

fn claim_for<'a>(claims: &'a [Claim], model: Option<&str>, protocol: &str) -> Option<&'a Claim> {
    claims.iter().find(|c| c.protocol == protocol && c.model.as_deref() == model)
}

/// Fills claim columns and the status of a measured row.
fn judge(row: &mut ResultRow, claim: Option<&Claim>) {
    let Some(claim) = claim else {
        row.status = Status::Measured;
        return;
    };
    row.claimed_top1_err = claim.top1;
    row.claimed_top5_err = claim.top5;
    row.tolerance = Some(claim.tolerance);
    row.claim_source = Some(claim.source.clone());
    row.delta_top1 = claim.top1.zip(row.top1).map(|(c, m)| m.err - c);
    row.delta_top5 = claim.top5.zip(row.top5).map(|(c, m)| m.err - c);
    let drift = [row.delta_top1, row.delta_top5].iter().flatten().any(|d| d.abs() > claim.tolerance);
    row.status = if drift { Status::Drift } else { Status::Reproduced };
}

fn empty_row(experiment: &str, model: &str, protocol: &str, spec: &ProtocolSpec, status: Status) -> ResultRow {
    blank_row(experiment, model, protocol, kind_of(spec), spec.summary(), status)
}

/// A row with identity, protocol and status set and every measurement and claim column empty.
fn blank_row(
    experiment: &str,
    model: &str,
    protocol: &str,
    protocol_kind: ProtocolKind,
    protocol_summary: String,
    status: Status,
) -> ResultRow {
    ResultRow {
        experiment: experiment.into(),
        model: model.into(),
        protocol: protocol.into(),
        protocol_kind,
        setting: None,
        protocol_summary,
        top1: None,
        top5: None,
        images: 0,
        skipped: 0,
        param_count_m: None,
        gmacs_per_image: None,
        claimed_top1_err: None,
        claimed_top5_err: None,
        delta_top1: None,
        delta_top5: None,
        tolerance: None,
        claim_source: None,
        status,
    }
}

fn measured_rows(
    loaded: &LoadedExperiment,
    name: &str,
    report: &EvalReport,
    sweep_settings: &SweepSettings,
) -> Vec<ResultRow> {
    let experiment = &loaded.experiment;
    let configs: BTreeMap<&str, &ResNetConfig> = report.models.iter().map(|m| (m.id.as_str(), &m.config)).collect();
    let mut rows: Vec<ResultRow> = Vec::new();
    for row in &report.rows {
        let (protocol_id, setting) = match sweep_settings.get(&row.protocol) {
            Some((id, label)) => (id.clone(), Some(label.clone())),
            None => (row.protocol.clone(), None),
        };
        let Some(spec) = experiment.protocol(&row.protocol).or_else(|| {
            loaded.experiment.protocol(&protocol_id) // a sweep variant's spec is described by its base
        }) else {
            continue;
        };
        let is_ensemble = matches!(spec, ProtocolSpec::Ensemble(_));
        let model = if is_ensemble { protocol_id.clone() } else { row.model.clone() };
        let mut out = empty_row(name, &model, &protocol_id, spec, Status::Measured);
        out.setting = setting.clone();
        out.protocol_summary = row.summary.clone();
        out.top1 = percent(&row.rates.top1);
        out.top5 = percent(&row.rates.top5);
        out.images = row.rates.top1.trials as usize;
        out.skipped = row.skipped().len();
        match spec {
            ProtocolSpec::Ensemble(e) => {
                let members: Vec<(&ResNetConfig, &ProtocolSpec)> = e
                    .members
                    .iter()
                    .filter_map(|m| Some((*configs.get(m.model.as_str())?, experiment.protocol(&m.protocol)?)))
                    .collect();
                if members.len() == e.members.len() {
                    out.gmacs_per_image = members.iter().map(|(c, s)| gmacs(c, s)).sum();
                    out.param_count_m = Some(members.iter().map(|(c, _)| parameter_count(c) as f64 / 1e6).sum());
                }
            }
            _ => {
                if let Some(config) = configs.get(row.model.as_str()) {
                    out.gmacs_per_image = gmacs(config, spec);
                    out.param_count_m = Some(parameter_count(config) as f64 / 1e6);
                }
            }
        }
        // A claim is about the protocol as written, not a sweep variant.
        let claim_model = if is_ensemble { None } else { Some(row.model.as_str()) };
        let claim = if setting.is_none() { claim_for(&experiment.claims, claim_model, &protocol_id) } else { None };
        judge(&mut out, claim);
        rows.push(out);
    }
    // Models listed as not run: one row per protocol of theirs, and per ensemble they belong to.
    for (model, reason) in &report.not_run {
        for protocol in experiment.protocol_entries() {
            match &protocol.spec {
                ProtocolSpec::Ensemble(e) if e.members.iter().any(|m| &m.model == model) => {
                    if !rows.iter().any(|r| r.protocol == protocol.id) {
                        let why = format!("member {model}: {reason}");
                        rows.push(with_claim(
                            empty_row(name, &protocol.id, &protocol.id, &protocol.spec, Status::NotRun(why)),
                            claim_for(&experiment.claims, None, &protocol.id),
                        ));
                    }
                }
                ProtocolSpec::Ensemble(_) => {}
                spec => rows.push(with_claim(
                    empty_row(name, model, &protocol.id, spec, Status::NotRun(reason.clone())),
                    claim_for(&experiment.claims, Some(model), &protocol.id),
                )),
            }
        }
    }
    rows
}

/// A not-run row that still shows what is claimed for it.
fn with_claim(mut row: ResultRow, claim: Option<&Claim>) -> ResultRow {
    if let Some(claim) = claim {
        row.claimed_top1_err = claim.top1;
        row.claimed_top5_err = claim.top5;
        row.tolerance = Some(claim.tolerance);
        row.claim_source = Some(claim.source.clone());
    }
    row
}

/// Every (model, protocol) of an experiment that could not run, with the reason.
fn not_run_rows(loaded: &LoadedExperiment, name: &str, reason: &str) -> Vec<ResultRow> {
    let experiment = &loaded.experiment;
    let mut rows = Vec::new();
    for model in &experiment.models {
        for protocol in experiment.protocol_entries().filter(|p| !matches!(p.spec, ProtocolSpec::Ensemble(_))) {
            rows.push(with_claim(
                empty_row(name, &model.id, &protocol.id, &protocol.spec, Status::NotRun(reason.into())),
                claim_for(&experiment.claims, Some(&model.id), &protocol.id),
            ));
        }
    }
    for protocol in experiment.protocol_entries().filter(|p| matches!(p.spec, ProtocolSpec::Ensemble(_))) {
        rows.push(with_claim(
            empty_row(name, &protocol.id, &protocol.id, &protocol.spec, Status::NotRun(reason.into())),
            claim_for(&experiment.claims, None, &protocol.id),
        ));
    }
    rows
}

/// Column names follow timm's results CSVs (`top1_err`, `top5_err`, `param_count`) where they exist.
fn table(rows: &[ResultRow]) -> Result<DataFrame, PolarsError> {
    let text = |f: &dyn Fn(&ResultRow) -> String| rows.iter().map(f).collect::<Vec<String>>();
    let opt_text = |f: &dyn Fn(&ResultRow) -> Option<String>| rows.iter().map(f).collect::<Vec<Option<String>>>();
    let num = |f: &dyn Fn(&ResultRow) -> Option<f64>| rows.iter().map(f).collect::<Vec<Option<f64>>>();
    df!(
        "experiment" => text(&|r| r.experiment.clone()),
        "model" => text(&|r| r.model.clone()),
        "protocol" => text(&|r| r.protocol.clone()),
        "protocol_kind" => text(&|r| format!("{} {}", r.protocol_kind.numeral(), r.protocol_kind.short_name())),
        "setting" => opt_text(&|r| r.setting.clone()),
        "top1_err" => num(&|r| r.top1.map(|m| m.err)),
        "top1_err_ci_low" => num(&|r| r.top1.map(|m| m.low)),
        "top1_err_ci_high" => num(&|r| r.top1.map(|m| m.high)),
        "top5_err" => num(&|r| r.top5.map(|m| m.err)),
        "top5_err_ci_low" => num(&|r| r.top5.map(|m| m.low)),
        "top5_err_ci_high" => num(&|r| r.top5.map(|m| m.high)),
        "images" => rows.iter().map(|r| r.images as u64).collect::<Vec<u64>>(),
        "skipped" => rows.iter().map(|r| r.skipped as u64).collect::<Vec<u64>>(),
        "param_count" => num(&|r| r.param_count_m),
        "gmacs_per_image" => num(&|r| r.gmacs_per_image),
        "claimed_top1_err" => num(&|r| r.claimed_top1_err),
        "claimed_top5_err" => num(&|r| r.claimed_top5_err),
        "delta_top1" => num(&|r| r.delta_top1),
        "delta_top5" => num(&|r| r.delta_top5),
        "tolerance" => num(&|r| r.tolerance),
        "claim_source" => opt_text(&|r| r.claim_source.clone()),
        "status" => text(&|r| r.status.label()),
        "protocol_summary" => text(&|r| r.protocol_summary.clone()),
    )
}

fn write_tables(rows: &[ResultRow], out: &Path) -> Result<(), AuditError> {
    let fail = |path: &Path| {
        let path = path.to_path_buf();
        move |e: PolarsError| AuditError::Write { path, reason: e.to_string() }
    };
    let parquet = out.join("results.parquet");
    let csv = out.join("results.csv");
    let mut frame = table(rows).map_err(fail(&parquet))?;
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes).finish(&mut frame).map_err(fail(&parquet))?;
    write_atomic(&parquet, &bytes)?;
    let mut bytes = Vec::new();
    CsvWriter::new(&mut bytes).finish(&mut frame).map_err(fail(&csv))?;
    write_atomic(&csv, &bytes)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AuditError> {
    let fail = |e: std::io::Error| AuditError::Write { path: path.to_path_buf(), reason: e.to_string() };
    // `<name>.tmp` beside it: results.parquet and results.csv must not share a temporary name.
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

fn now_utc() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `resnet-audit <version> (git <commit>[, modified])`, the commit read at run time when in a checkout.
pub fn software_version() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let version = env!("CARGO_PKG_VERSION");
    match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            format!("resnet-audit {version} (git {commit}{})", if dirty { ", with uncommitted changes" } else { "" })
        }
        None => format!("resnet-audit {version}"),
    }
}

/// A `kind: training` experiment: models this project trains (recipes under `experiments/train/`),
/// each run for some seeds, with the claimed final test error of the source (e.g. the paper's
/// CIFAR-10 Table 6). The audit trains (or resumes) them when their data is present.
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

#[derive(serde::Deserialize)]
struct KindPeek {
    #[serde(default)]
    kind: Option<String>,
}

/// Reads an experiment file of either kind (a training experiment with its recipes) without
/// running anything: what `audit` would reject, this rejects.
pub fn validate_file(file: &Path) -> Result<(), AuditError> {
    if is_training_experiment(file)? {
        let experiment: TrainingExperiment = crate::yaml::read(file).map_err(ExperimentError::from)?;
        let base = file.parent().unwrap_or(Path::new("."));
        for run in &experiment.runs {
            crate::yaml::read::<crate::train::run::Recipe>(&base.join(&run.recipe)).map_err(ExperimentError::from)?;
        }
        return Ok(());
    }
    LoadedExperiment::read(file).map(|_| ()).map_err(AuditError::from)
}

fn is_training_experiment(file: &Path) -> Result<bool, AuditError> {
    // Only the top-level `kind:` decides; the full file is then read by the schema it names.
    let peek: KindPeek = crate::yaml::read(file).or_else(|_| Ok::<_, AuditError>(KindPeek { kind: None }))?;
    Ok(peek.kind.as_deref() == Some("training"))
}

/// Trains (or resumes) each run's seeds when the recipe's data is present; otherwise not-run rows
/// with the variable to set and the command that trains them.
fn audit_training(
    file: &Path,
    name: &str,
    copies: &Path,
    options: &AuditOptions,
) -> Result<(ExperimentInfo, Vec<ResultRow>), AuditError> {
    use crate::train::resume::Resume;
    use crate::train::run::{summarize, train_seed_on, Recipe, TrainData};
    let experiment: TrainingExperiment = crate::yaml::read(file).map_err(ExperimentError::from)?;
    let base = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let copied = copies.join(format!("{name}.yaml"));
    std::fs::copy(file, &copied).map_err(|e| AuditError::Write { path: copied.clone(), reason: e.to_string() })?;
    let mut info = ExperimentInfo {
        name: name.to_string(),
        copied_file: format!("experiments/{name}.yaml"),
        description: experiment.description.clone(),
        dataset: String::new(),
        images: None,
        not_run: None,
        models: Vec::new(),
        protocols: Vec::new(),
        notes: vec!["Training experiment: each row is the final test error of the recipe's last epoch, the mean over its seeds; the interval is the range (min–max) over seeds, not a Wilson interval.".into()],
        paired: Vec::new(),
    };
    let mut rows = Vec::new();
    for run in &experiment.runs {
        let recipe_path = base.join(&run.recipe);
        let recipe: Recipe = crate::yaml::read(&recipe_path).map_err(ExperimentError::from)?;
        let recipe_base = recipe_path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let out = options.store_dir.join("runs").join(name).join(&run.id);
        let command =
            format!("resnet-audit train {} --seeds {} --out {}", recipe_path.display(), run.seeds, out.display());
        info.models.push(ModelInfo {
            id: run.id.clone(),
            architecture: format!("{:?}", recipe.model),
            weights: format!("trained: {command}"),
            sha256: None,
            input: recipe.input.spec().map(|s| describe_input(&s)).unwrap_or_default(),
        });
        let summary =
            format!("the recipe's validation transform after its last epoch, mean over {} seed(s)", run.seeds);
        let mut row = blank_row(name, &run.id, TRAINING_PROTOCOL, ProtocolKind::CenterCrop, summary, Status::Measured);
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
        let mut runs = Vec::new();
        let device = options.device.open().map_err(|e| AuditError::Usage(format!("{}: {e}", file.display())))?;
        for k in 0..run.seeds {
            let seed = recipe.seed + k;
            let dir = out.join(format!("seed-{seed}"));
            let trained = train_seed_on(&recipe, &recipe_base, seed, &dir, Resume::SameRecipe, &device)
                .map_err(|error| AuditError::Train { recipe: recipe_path.clone(), seed, error: Box::new(error) })?;
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

fn with_training_claim(mut row: ResultRow, claim: Option<&TrainingClaim>) -> ResultRow {
    if let Some(claim) = claim {
        row.claimed_top1_err = Some(claim.top1);
        row.tolerance = Some(claim.tolerance);
        row.claim_source = Some(claim.source.clone());
    }
    row
}

/// The gate's verdict over a written report.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    pub rows: usize,
    /// Rows not run (they fail only with `require_all`).
    pub not_run: usize,
    /// `experiment/model/protocol: …` for each failing row.
    pub failures: Vec<String>,
}

/// Reads `dir/results.parquet`: rows in `drift` fail, and `not run` rows too with `require_all`.
pub fn check(dir: &Path, require_all: bool) -> Result<CheckOutcome, AuditError> {
    let path = dir.join("results.parquet");
    let fail = |reason: String| AuditError::Read { path: path.clone(), reason };
    let file = std::fs::File::open(&path)
        .map_err(|e| fail(format!("{e} (write it with `resnet-audit audit --out {}`)", dir.display())))?;
    let frame = ParquetReader::new(file).finish().map_err(|e| fail(e.to_string()))?;
    let column = |name: &str| -> Result<Vec<Option<String>>, AuditError> {
        let series = frame.column(name).map_err(|e| fail(format!("column `{name}`: {e}")))?;
        let strings = series.str().map_err(|e| fail(format!("column `{name}`: {e}")))?;
        Ok((0..strings.len()).map(|i| strings.get(i).map(str::to_string)).collect())
    };
    let numbers = |name: &str| -> Result<Vec<Option<f64>>, AuditError> {
        let series = frame.column(name).map_err(|e| fail(format!("column `{name}`: {e}")))?;
        let values = series.f64().map_err(|e| fail(format!("column `{name}`: {e}")))?;
        Ok((0..values.len()).map(|i| values.get(i)).collect())
    };
    let (experiment, model, protocol, setting, status) =
        (column("experiment")?, column("model")?, column("protocol")?, column("setting")?, column("status")?);
    let (measured, claimed, delta, tolerance) =
        (numbers("top1_err")?, numbers("claimed_top1_err")?, numbers("delta_top1")?, numbers("tolerance")?);
    let delta5 = numbers("delta_top5")?;
    let mut failures = Vec::new();
    let not_run = status.iter().filter(|s| s.as_deref().is_some_and(|s| s.starts_with("not run"))).count();
    for i in 0..frame.height() {
        let status = status[i].clone().unwrap_or_default();
        let name = format!(
            "{}/{}/{}{}",
            experiment[i].clone().unwrap_or_default(),
            model[i].clone().unwrap_or_default(),
            protocol[i].clone().unwrap_or_default(),
            setting[i].as_ref().map(|s| format!(" [{s}]")).unwrap_or_default()
        );
        let shown = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.2}"));
        if status == "drift" {
            failures.push(format!(
                "{name}: drift: top-1 error {} vs claimed {} (Δ {} top-1, {} top-5; tolerance ±{})",
                shown(measured[i]),
                shown(claimed[i]),
                shown(delta[i]),
                shown(delta5[i]),
                shown(tolerance[i])
            ));
        } else if require_all && status.starts_with("not run") {
            failures.push(format!("{name}: {status}"));
        }
    }
    Ok(CheckOutcome { rows: frame.height(), not_run, failures })
}
