//! Result rows: an eval report's (model, protocol) results beside their claims, judged
//! `reproduced` / `drift` against a published claim, `baseline` / `regressed` against a recorded
//! baseline, `subset` when measured on fewer images than the claim's test set, `measured`
//! without a claim, `empty` when every image was skipped, and the `not run` rows of what could
//! not run.

use std::collections::BTreeMap;

use super::calibration::{calibration, CalibrationError};
use crate::eval::EvalReport;
use crate::experiment::{Claim, LoadedExperiment};
use crate::metrics::Proportion;
use crate::model::complexity::{multiply_adds, parameter_count};
use crate::model::ResNetConfig;
use crate::protocol::ProtocolSpec;
use crate::report::{ClaimKind, Measured, ProtocolKind, ResultRow, RowSetup, Status};

impl ResultRow {
    /// A row with identity, protocol and status set and every measurement and claim column empty.
    pub fn blank(
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
            labels: "original".into(),
            labels_excluded: 0,
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
            claim_kind: None,
            claim_test_images: None,
            nll: None,
            ece: None,
            setup: RowSetup::default(),
            status,
        }
    }

    /// [`ResultRow::blank`] for a protocol as specified: its kind, summary and resampling from `spec`.
    fn for_protocol(experiment: &str, model: &str, protocol: &str, spec: &ProtocolSpec, status: Status) -> ResultRow {
        let mut row = ResultRow::blank(experiment, model, protocol, kind_of(spec), spec.summary(), status);
        row.setup = setup_of(spec);
        row
    }
}

/// timm's view of a protocol: the crop (`img_size`), the crop over the resized shorter side
/// (`crop_pct`, when the resize fixes one), and the resampling.
fn setup_of(spec: &ProtocolSpec) -> RowSetup {
    use crate::transform::{Interpolation, ResizePolicy};
    let crop_pct = |resize: &ResizePolicy, crop: u32| match resize {
        ResizePolicy::ShorterSide(side) => Some(f64::from(crop) / f64::from(*side)),
        ResizePolicy::CropPct { crop_pct, .. } => Some(*crop_pct),
        ResizePolicy::Warp { .. } => None,
    };
    let kernel = |i: Interpolation| {
        match i {
            Interpolation::Nearest => "nearest",
            Interpolation::Bilinear => "bilinear",
            Interpolation::Bicubic => "bicubic",
        }
        .to_string()
    };
    let (img_size, crop_pct, interpolation, antialias) = match spec {
        ProtocolSpec::CenterCrop(c) => {
            (Some(c.crop), crop_pct(&c.resize, c.crop), Some(c.interpolation), Some(c.antialias))
        }
        ProtocolSpec::TenCrop(t) => {
            (Some(t.crop), crop_pct(&t.resize, t.crop), Some(t.interpolation), Some(t.antialias))
        }
        ProtocolSpec::FullyConvolutional(f) => (None, None, Some(f.interpolation), Some(f.antialias)),
        ProtocolSpec::Ensemble(_) => (None, None, None, None),
    };
    RowSetup { img_size, crop_pct, interpolation: interpolation.map(kernel), antialias, ..RowSetup::default() }
}

pub(super) fn kind_of(spec: &ProtocolSpec) -> ProtocolKind {
    match spec {
        ProtocolSpec::CenterCrop(_) => ProtocolKind::CenterCrop,
        ProtocolSpec::TenCrop(_) => ProtocolKind::TenCrop,
        ProtocolSpec::FullyConvolutional(_) => ProtocolKind::FullyConvolutional,
        ProtocolSpec::Ensemble(_) => ProtocolKind::Ensemble,
    }
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

/// The claim about (model, protocol) under the label set `labels` (a claim without `labels:` is
/// about the experiment's first label set).
fn claim_for<'a>(
    experiment: &'a crate::experiment::Experiment,
    model: Option<&str>,
    protocol: &str,
    labels: &str,
) -> Option<&'a Claim> {
    experiment
        .claims
        .iter()
        .find(|c| c.protocol == protocol && c.model.as_deref() == model && experiment.claim_labels(c) == labels)
}

/// The experiment's label set ids, the first one the main rows'.
fn label_ids(experiment: &crate::experiment::Experiment) -> Vec<String> {
    let ids: Vec<String> = experiment.labels.iter().map(|l| l.id()).collect();
    if ids.is_empty() {
        vec![experiment.primary_labels()]
    } else {
        ids
    }
}

/// The main rows (an experiment's first label set, and every row of an experiment that names
/// none) and the rows under its other label sets. `labels`: the experiment's label set ids.
pub(super) fn split_label_rows(rows: Vec<ResultRow>, labels: &[String]) -> (Vec<ResultRow>, Vec<ResultRow>) {
    match labels.first() {
        None => (rows, Vec::new()),
        Some(primary) => rows.into_iter().partition(|row| &row.labels == primary),
    }
}

/// Fills claim columns and the status of a measured row. `dataset_images`: the full test set a
/// claim without `test_images` refers to. A row on fewer images than that is a `subset`: its
/// deltas are shown, but a smaller sample is not the claimed measurement, so it is not judged.
fn judge(row: &mut ResultRow, claim: Option<&Claim>, dataset_images: usize) {
    let Some(claim) = claim else {
        row.status = Status::Measured;
        return;
    };
    *row = with_claim(row.clone(), Some(claim));
    row.delta_top1 = claim.top1.zip(row.top1).map(|(c, m)| m.err - c);
    row.delta_top5 = claim.top5.zip(row.top5).map(|(c, m)| m.err - c);
    let test_images = claim.test_images.unwrap_or(dataset_images);
    row.claim_test_images = Some(test_images);
    if row.images < test_images {
        row.status = Status::Subset(format!(
            "subset: {} of {} images",
            crate::report::thousands(row.images),
            crate::report::thousands(test_images)
        ));
        return;
    }
    let outside = [row.delta_top1, row.delta_top5].iter().flatten().any(|d| d.abs() > claim.tolerance);
    row.status = match (claim.kind, outside) {
        (ClaimKind::Published, false) => Status::Reproduced,
        (ClaimKind::Published, true) => Status::Drift,
        (ClaimKind::Baseline, false) => Status::Baseline,
        (ClaimKind::Baseline, true) => Status::Regressed,
    };
}

/// A row with the claim's columns filled (a not-run row still shows what is claimed for it).
fn with_claim(mut row: ResultRow, claim: Option<&Claim>) -> ResultRow {
    if let Some(claim) = claim {
        row.claimed_top1_err = claim.top1;
        row.claimed_top5_err = claim.top5;
        row.tolerance = Some(claim.tolerance);
        row.claim_source = Some(claim.source.clone());
        row.claim_kind = Some(claim.kind);
        row.claim_test_images = claim.test_images;
    }
    row
}

/// A (model, protocol) that scored no image although nothing was skipped: no number to show or
/// judge, and no reason the user asked for, so the audit stops on it.
#[derive(Debug, thiserror::Error)]
#[error("{model}/{protocol}: no image was scored (the dataset or the selection is empty)")]
pub struct NoImageScored {
    pub model: String,
    pub protocol: String,
}

/// Why measured rows could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RowsError {
    #[error(transparent)]
    NoImageScored(#[from] NoImageScored),
    #[error("{model}/{protocol}: {error}")]
    Calibration { model: String, protocol: String, error: CalibrationError },
}

/// One row per (model, protocol[, sweep setting]) the eval measured, judged against its claim,
/// then the not-run rows of models whose weights are absent.
pub(super) fn measured_rows(
    loaded: &LoadedExperiment,
    name: &str,
    report: &EvalReport,
) -> Result<Vec<ResultRow>, RowsError> {
    let experiment = &loaded.experiment;
    let sha256: BTreeMap<&str, &str> =
        report.models.iter().map(|m| (m.id.as_str(), m.weights_sha256.as_str())).collect();
    let configs: BTreeMap<&str, &ResNetConfig> = report.models.iter().map(|m| (m.id.as_str(), &m.config)).collect();
    let mut rows: Vec<ResultRow> = Vec::new();
    for row in &report.rows {
        // A sweep setting is tabulated under the protocol it varies, with the setting beside it.
        let (protocol_id, setting) = match &row.sweep {
            Some(variant) => (variant.protocol.as_str(), Some(variant.label())),
            None => (row.protocol.as_str(), None),
        };
        let Some(written) = experiment.protocol(protocol_id) else { continue };
        let spec = row.sweep.as_ref().map_or(written, |variant| &variant.spec);
        let is_ensemble = matches!(spec, ProtocolSpec::Ensemble(_));
        let model = if is_ensemble { protocol_id } else { row.model.as_str() };
        let mut out = ResultRow::for_protocol(name, model, protocol_id, spec, Status::Measured);
        out.setting = setting.clone();
        out.labels = row.labels.clone();
        out.labels_excluded = row.excluded;
        out.protocol_summary = row.summary.clone();
        out.top1 = percent(&row.rates.top1);
        out.top5 = percent(&row.rates.top5);
        out.images = row.rates.top1.trials as usize;
        out.skipped = row.skipped().len();
        let calibrated = calibration(&row.results).map_err(|error| RowsError::Calibration {
            model: model.to_string(),
            protocol: row.protocol.clone(),
            error,
        })?;
        (out.nll, out.ece) = (calibrated.as_ref().map(|c| c.nll), calibrated.as_ref().map(|c| c.ece));
        if !is_ensemble {
            out.setup.weights = experiment.model(&row.model).map(|m| m.weights.clone());
            out.setup.weights_sha256 = sha256.get(row.model.as_str()).map(|s| s.to_string());
        }
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
        // A claim is about the protocol as written, not a sweep setting.
        let claim_model = if is_ensemble { None } else { Some(row.model.as_str()) };
        let claim = match setting {
            None => claim_for(experiment, claim_model, protocol_id, &row.labels),
            Some(_) => None,
        };
        if out.images == 0 {
            // Nothing scored: no error rate exists, whatever the claim says.
            if out.skipped == 0 {
                return Err(NoImageScored { model: model.to_string(), protocol: row.protocol.clone() }.into());
            }
            let why = format!("empty: all {} images skipped as bad (on_bad_image: skip)", out.skipped);
            out = with_claim(out, claim);
            out.status = Status::Empty(why);
        } else {
            judge(&mut out, claim, report.dataset_images);
        }
        rows.push(out);
    }
    // Models listed as not run: one row per protocol of theirs, and per ensemble they belong to,
    // under every label set.
    for (model, reason) in &report.not_run {
        for labels in label_ids(experiment) {
            for protocol in experiment.protocol_entries() {
                let mut row = match &protocol.spec {
                    ProtocolSpec::Ensemble(e) if e.members.iter().any(|m| &m.model == model) => {
                        if rows.iter().any(|r| r.protocol == protocol.id && r.labels == labels) {
                            continue;
                        }
                        let why = Status::NotRun(format!("member {model}: {reason}"));
                        let row = ResultRow::for_protocol(name, &protocol.id, &protocol.id, &protocol.spec, why);
                        with_claim(row, claim_for(experiment, None, &protocol.id, &labels))
                    }
                    ProtocolSpec::Ensemble(_) => continue,
                    spec => {
                        let row =
                            ResultRow::for_protocol(name, model, &protocol.id, spec, Status::NotRun(reason.clone()));
                        with_claim(row, claim_for(experiment, Some(model), &protocol.id, &labels))
                    }
                };
                row.labels = labels.clone();
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

/// Every (model, protocol) of an experiment that could not run, with the reason.
pub(super) fn not_run_rows(loaded: &LoadedExperiment, name: &str, reason: &str) -> Vec<ResultRow> {
    let experiment = &loaded.experiment;
    let not_run = |model: &str, protocol: &crate::protocol::ProtocolEntry, claim_model: Option<&str>, labels: &str| {
        let row = ResultRow::for_protocol(name, model, &protocol.id, &protocol.spec, Status::NotRun(reason.into()));
        let mut row = with_claim(row, claim_for(experiment, claim_model, &protocol.id, labels));
        row.labels = labels.to_string();
        row
    };
    let is_ensemble = |p: &&crate::protocol::ProtocolEntry| matches!(p.spec, ProtocolSpec::Ensemble(_));
    let mut rows = Vec::new();
    for labels in label_ids(experiment) {
        for model in &experiment.models {
            for protocol in experiment.protocol_entries().filter(|p| !is_ensemble(p)) {
                rows.push(not_run(&model.id, protocol, Some(&model.id), &labels));
            }
        }
        for protocol in experiment.protocol_entries().filter(is_ensemble) {
            rows.push(not_run(&protocol.id, protocol, None, &labels));
        }
    }
    rows
}

/// A training run's row with its claim's columns filled.
pub(super) fn with_training_claim(mut row: ResultRow, claim: Option<&crate::experiment::TrainingClaim>) -> ResultRow {
    if let Some(claim) = claim {
        row.claimed_top1_err = Some(claim.top1);
        row.tolerance = Some(claim.tolerance);
        row.claim_source = Some(claim.source.clone());
        row.claim_kind = Some(ClaimKind::Published);
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(top1: Option<f64>, top5: Option<f64>, tolerance: f64) -> Claim {
        Claim {
            model: Some("m".into()),
            protocol: "p".into(),
            top1,
            top5,
            tolerance,
            source: "s".into(),
            kind: ClaimKind::Published,
            test_images: None,
            labels: None,
        }
    }

    fn measured(top1: f64, top5: f64) -> ResultRow {
        let mut row = ResultRow::blank("e", "m", "p", ProtocolKind::CenterCrop, "summary".into(), Status::Measured);
        row.images = 600;
        row.top1 = Some(Measured { err: top1, low: top1 - 1.0, high: top1 + 1.0 });
        row.top5 = Some(Measured { err: top5, low: top5 - 1.0, high: top5 + 1.0 });
        row
    }

    #[test]
    fn judging_compares_every_claimed_error_with_the_tolerance() {
        let mut row = measured(25.0, 8.0);
        judge(&mut row, Some(&claim(Some(24.8), Some(7.9), 0.3)), 600);
        assert_eq!(row.status, Status::Reproduced);
        assert_eq!((row.claimed_top1_err, row.claimed_top5_err, row.tolerance), (Some(24.8), Some(7.9), Some(0.3)));
        assert!((row.delta_top1.unwrap() - 0.2).abs() < 1e-9 && (row.delta_top5.unwrap() - 0.1).abs() < 1e-9);

        // Top-5 alone beyond the tolerance is drift.
        let mut row = measured(25.0, 8.5);
        judge(&mut row, Some(&claim(Some(24.8), Some(7.9), 0.3)), 600);
        assert_eq!(row.status, Status::Drift);

        // A claim of top-1 only leaves top-5 unjudged.
        let mut row = measured(25.0, 50.0);
        judge(&mut row, Some(&claim(Some(25.1), None, 0.3)), 600);
        assert_eq!((row.status.clone(), row.delta_top5), (Status::Reproduced, None));

        let mut row = measured(25.0, 8.0);
        judge(&mut row, None, 600);
        assert_eq!((row.status.clone(), row.claimed_top1_err), (Status::Measured, None));
    }

    #[test]
    fn a_baseline_is_baseline_or_regressed_never_reproduced_or_drift() {
        let baseline = Claim { kind: ClaimKind::Baseline, ..claim(Some(24.8), Some(7.9), 0.3) };
        let mut row = measured(25.0, 8.0);
        judge(&mut row, Some(&baseline), 600);
        assert_eq!((row.status.clone(), row.claim_kind), (Status::Baseline, Some(ClaimKind::Baseline)));
        let mut row = measured(26.0, 8.0);
        judge(&mut row, Some(&baseline), 600);
        assert_eq!(row.status, Status::Regressed);
    }

    #[test]
    fn fewer_images_than_the_claimed_test_set_is_a_subset_never_judged() {
        // Far outside the tolerance, but on 20 of the dataset's 600 images: shown, not judged.
        let mut row = measured(60.0, 30.0);
        row.images = 20;
        judge(&mut row, Some(&claim(Some(24.8), Some(7.9), 0.3)), 600);
        assert_eq!(row.status, Status::Subset("subset: 20 of 600 images".into()));
        assert!(row.delta_top1.is_some() && row.top1.is_some(), "the subset's numbers stay visible");
        // A declared test set wins over the dataset's size (846 of CIFAR's 10,000).
        let mut row = measured(25.0, 8.0);
        row.images = 846;
        judge(&mut row, Some(&Claim { test_images: Some(10_000), ..claim(Some(25.0), None, 0.3) }), 846);
        assert_eq!(
            (row.status.clone(), row.claim_test_images),
            (Status::Subset("subset: 846 of 10,000 images".into()), Some(10_000))
        );
    }

    #[test]
    fn a_blank_row_has_identity_and_status_only() {
        let row = ResultRow::blank("e", "m", "p", ProtocolKind::TenCrop, "ten".into(), Status::NotRun("why".into()));
        assert_eq!((row.experiment.as_str(), row.model.as_str(), row.protocol.as_str()), ("e", "m", "p"));
        assert_eq!((row.protocol_kind, row.protocol_summary.as_str()), (ProtocolKind::TenCrop, "ten"));
        assert!(row.top1.is_none() && row.claimed_top1_err.is_none() && row.setting.is_none() && row.images == 0);
    }
}
