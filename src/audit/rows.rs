//! Result rows: an eval report's (model, protocol) results beside their claims, judged
//! `reproduced` / `drift` / `measured`, and the `not run` rows of what could not run.

use std::collections::BTreeMap;

use crate::eval::EvalReport;
use crate::experiment::{Claim, LoadedExperiment};
use crate::metrics::Proportion;
use crate::model::complexity::{multiply_adds, parameter_count};
use crate::model::ResNetConfig;
use crate::protocol::ProtocolSpec;
use crate::report::{Measured, ProtocolKind, ResultRow, Status};

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

    /// [`ResultRow::blank`] for a protocol as specified: its kind and summary from `spec`.
    fn for_protocol(experiment: &str, model: &str, protocol: &str, spec: &ProtocolSpec, status: Status) -> ResultRow {
        ResultRow::blank(experiment, model, protocol, kind_of(spec), spec.summary(), status)
    }
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

fn claim_for<'a>(claims: &'a [Claim], model: Option<&str>, protocol: &str) -> Option<&'a Claim> {
    claims.iter().find(|c| c.protocol == protocol && c.model.as_deref() == model)
}

/// Fills claim columns and the status of a measured row.
fn judge(row: &mut ResultRow, claim: Option<&Claim>) {
    let Some(claim) = claim else {
        row.status = Status::Measured;
        return;
    };
    *row = with_claim(row.clone(), Some(claim));
    row.delta_top1 = claim.top1.zip(row.top1).map(|(c, m)| m.err - c);
    row.delta_top5 = claim.top5.zip(row.top5).map(|(c, m)| m.err - c);
    let drift = [row.delta_top1, row.delta_top5].iter().flatten().any(|d| d.abs() > claim.tolerance);
    row.status = if drift { Status::Drift } else { Status::Reproduced };
}

/// A row with the claim's columns filled (a not-run row still shows what is claimed for it).
fn with_claim(mut row: ResultRow, claim: Option<&Claim>) -> ResultRow {
    if let Some(claim) = claim {
        row.claimed_top1_err = claim.top1;
        row.claimed_top5_err = claim.top5;
        row.tolerance = Some(claim.tolerance);
        row.claim_source = Some(claim.source.clone());
    }
    row
}

/// One row per (model, protocol[, sweep setting]) the eval measured, judged against its claim,
/// then the not-run rows of models whose weights are absent.
pub(super) fn measured_rows(loaded: &LoadedExperiment, name: &str, report: &EvalReport) -> Vec<ResultRow> {
    let experiment = &loaded.experiment;
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
        // A claim is about the protocol as written, not a sweep setting.
        let claim_model = if is_ensemble { None } else { Some(row.model.as_str()) };
        let claim = if setting.is_none() { claim_for(&experiment.claims, claim_model, protocol_id) } else { None };
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
                        let row = ResultRow::for_protocol(
                            name,
                            &protocol.id,
                            &protocol.id,
                            &protocol.spec,
                            Status::NotRun(why),
                        );
                        rows.push(with_claim(row, claim_for(&experiment.claims, None, &protocol.id)));
                    }
                }
                ProtocolSpec::Ensemble(_) => {}
                spec => {
                    let row = ResultRow::for_protocol(name, model, &protocol.id, spec, Status::NotRun(reason.clone()));
                    rows.push(with_claim(row, claim_for(&experiment.claims, Some(model), &protocol.id)));
                }
            }
        }
    }
    rows
}

/// Every (model, protocol) of an experiment that could not run, with the reason.
pub(super) fn not_run_rows(loaded: &LoadedExperiment, name: &str, reason: &str) -> Vec<ResultRow> {
    let experiment = &loaded.experiment;
    let not_run = |model: &str, protocol: &crate::protocol::ProtocolEntry, claim_model: Option<&str>| {
        let row = ResultRow::for_protocol(name, model, &protocol.id, &protocol.spec, Status::NotRun(reason.into()));
        with_claim(row, claim_for(&experiment.claims, claim_model, &protocol.id))
    };
    let is_ensemble = |p: &&crate::protocol::ProtocolEntry| matches!(p.spec, ProtocolSpec::Ensemble(_));
    let mut rows = Vec::new();
    for model in &experiment.models {
        for protocol in experiment.protocol_entries().filter(|p| !is_ensemble(p)) {
            rows.push(not_run(&model.id, protocol, Some(&model.id)));
        }
    }
    for protocol in experiment.protocol_entries().filter(is_ensemble) {
        rows.push(not_run(&protocol.id, protocol, None));
    }
    rows
}

/// A training run's row with its claim's columns filled.
pub(super) fn with_training_claim(mut row: ResultRow, claim: Option<&crate::experiment::TrainingClaim>) -> ResultRow {
    if let Some(claim) = claim {
        row.claimed_top1_err = Some(claim.top1);
        row.tolerance = Some(claim.tolerance);
        row.claim_source = Some(claim.source.clone());
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(top1: Option<f64>, top5: Option<f64>, tolerance: f64) -> Claim {
        Claim { model: Some("m".into()), protocol: "p".into(), top1, top5, tolerance, source: "s".into() }
    }

    fn measured(top1: f64, top5: f64) -> ResultRow {
        let mut row = ResultRow::blank("e", "m", "p", ProtocolKind::CenterCrop, "summary".into(), Status::Measured);
        row.top1 = Some(Measured { err: top1, low: top1 - 1.0, high: top1 + 1.0 });
        row.top5 = Some(Measured { err: top5, low: top5 - 1.0, high: top5 + 1.0 });
        row
    }

    #[test]
    fn judging_compares_every_claimed_error_with_the_tolerance() {
        let mut row = measured(25.0, 8.0);
        judge(&mut row, Some(&claim(Some(24.8), Some(7.9), 0.3)));
        assert_eq!(row.status, Status::Reproduced);
        assert_eq!((row.claimed_top1_err, row.claimed_top5_err, row.tolerance), (Some(24.8), Some(7.9), Some(0.3)));
        assert!((row.delta_top1.unwrap() - 0.2).abs() < 1e-9 && (row.delta_top5.unwrap() - 0.1).abs() < 1e-9);

        // Top-5 alone beyond the tolerance is drift.
        let mut row = measured(25.0, 8.5);
        judge(&mut row, Some(&claim(Some(24.8), Some(7.9), 0.3)));
        assert_eq!(row.status, Status::Drift);

        // A claim of top-1 only leaves top-5 unjudged.
        let mut row = measured(25.0, 50.0);
        judge(&mut row, Some(&claim(Some(25.1), None, 0.3)));
        assert_eq!((row.status.clone(), row.delta_top5), (Status::Reproduced, None));

        let mut row = measured(25.0, 8.0);
        judge(&mut row, None);
        assert_eq!((row.status.clone(), row.claimed_top1_err), (Status::Measured, None));
    }

    #[test]
    fn a_blank_row_has_identity_and_status_only() {
        let row = ResultRow::blank("e", "m", "p", ProtocolKind::TenCrop, "ten".into(), Status::NotRun("why".into()));
        assert_eq!((row.experiment.as_str(), row.model.as_str(), row.protocol.as_str()), ("e", "m", "p"));
        assert_eq!((row.protocol_kind, row.protocol_summary.as_str()), (ProtocolKind::TenCrop, "ten"));
        assert!(row.top1.is_none() && row.claimed_top1_err.is_none() && row.setting.is_none() && row.images == 0);
    }
}
