//! The CI regression gate on the embedded demo: the demo experiment matches the baselines
//! recorded in its YAML (shown as `baseline`, never as a reproduced published claim), a changed
//! protocol knob makes the gate fail, a `--limit` run is a subset that passes, and a report with
//! a file missing or changed after its manifest fails `check` with exit status 2.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use resnet_audit::audit::{self, AuditOptions, CheckOptions};
use resnet_audit::report::{ClaimKind, ProtocolKind, Status};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn options(paths: Vec<PathBuf>, out: &Path, store: &Path) -> AuditOptions {
    common::audit_options(paths, out, store, "cargo test --test demo_gate")
}

/// The demo experiment with its relative paths made absolute, so a modified copy runs from a temp dir.
fn demo_text() -> String {
    let text = std::fs::read_to_string(repo().join("experiments/demo.yaml")).unwrap();
    text.replace("../", &format!("{}/", repo().display()))
}

fn check_binary(report: &Path) -> std::process::Output {
    check_binary_with(report, &[])
}

fn check_binary_with(report: &Path, flags: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_resnet-audit")).arg("check").arg(report).args(flags).output().unwrap()
}

#[test]
fn the_demo_matches_its_recorded_baselines_and_a_changed_knob_fails_the_gate() {
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    let out = work.path().join("report");
    let report = audit::run(&options(vec![repo().join("experiments/demo.yaml")], &out, &store)).unwrap();

    // All four protocols measured, every claim reproduced, sweep settings beside center crop.
    for kind in
        [ProtocolKind::CenterCrop, ProtocolKind::TenCrop, ProtocolKind::FullyConvolutional, ProtocolKind::Ensemble]
    {
        assert!(report.rows.iter().any(|r| r.protocol_kind == kind && r.top1.is_some()), "{kind:?} not measured");
    }
    let failing: Vec<_> =
        report.rows.iter().filter(|r| matches!(r.status, Status::Drift | Status::Regressed)).collect();
    assert!(failing.is_empty(), "drift or regression on the demo: {failing:#?}");
    // The demo's numbers are this project's own: baselines, none presented as reproduced.
    let matched = report.rows.iter().filter(|r| r.status == Status::Baseline).count();
    assert!(matched >= 20, "only {matched} rows match their recorded baseline");
    assert!(report.rows.iter().all(|r| r.status != Status::Reproduced), "a baseline shown as reproduced");
    assert!(report.rows.iter().filter(|r| r.claim_kind.is_some()).all(|r| r.claim_kind == Some(ClaimKind::Baseline)));
    assert!(report.rows.iter().any(|r| r.setting.is_some()), "no sweep rows");
    for file in ["results.parquet", "results.csv", "report.md", "report.html", "manifest.json", "experiments/demo.yaml"]
    {
        assert!(out.join(file).is_file(), "{file} not written");
    }
    for chart in &report.charts {
        assert!(out.join(&chart.png).is_file() && out.join(&chart.svg).is_file(), "{} missing", chart.title);
    }
    assert_eq!(report.charts.len(), 3);
    let outcome = audit::check(&out, CheckOptions::default()).unwrap();
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert!(check_binary(&out).status.success());
    // The CSV carries timm's columns and the one-word status beside its reason.
    let records = common::csv_records(&std::fs::read_to_string(out.join("results.csv")).unwrap());
    let header: Vec<&str> = records[0].iter().map(String::as_str).collect();
    for column in [
        "top1",
        "top5",
        "img_size",
        "crop_pct",
        "interpolation",
        "antialias",
        "weights",
        "weights_sha256",
        "status",
        "reason",
        "claim_kind",
    ] {
        assert!(header.contains(&column), "results.csv lacks `{column}`: {header:?}");
    }
    let status = header.iter().position(|c| *c == "status").unwrap();
    let words: std::collections::BTreeSet<&str> = records[1..].iter().map(|r| r[status].as_str()).collect();
    assert_eq!(words, ["baseline", "measured"].into(), "one word per status");

    // The same experiment with one knob of protocol (i) changed (a larger resize before the center
    // crop, as a re-implementation might pick): the gate must catch it.
    let changed = demo_text().replace(
        "resize: {shorter-side: 64}\n    crop: 56\n    interpolation: bilinear",
        "resize: {shorter-side: 80}\n    crop: 56\n    interpolation: bilinear",
    );
    assert_ne!(changed, demo_text(), "the knob to change was not found in demo.yaml");
    let path = work.path().join("demo.yaml");
    std::fs::write(&path, changed).unwrap();
    let out_changed = work.path().join("report-changed");
    let report = audit::run(&options(vec![path], &out_changed, &store)).unwrap();
    let regressed: Vec<&str> =
        report.rows.iter().filter(|r| r.status == Status::Regressed).map(|r| r.model.as_str()).collect();
    assert!(!regressed.is_empty(), "changing the center-crop resize moved no result beyond tolerance");
    let outcome = audit::check(&out_changed, CheckOptions::default()).unwrap();
    assert!(!outcome.failures.is_empty());
    assert!(
        outcome
            .failures
            .iter()
            .all(|f| f.contains("/center-crop") && f.contains("regressed") && f.contains("recorded baseline")),
        "{:?}",
        outcome.failures
    );
    let output = check_binary(&out_changed);
    // 1 is the gate's verdict; 2 would mean the report could not be read.
    assert_eq!(output.status.code(), Some(1), "check on a drifted report");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("regressed") && stderr.contains("gate failed"), "{stderr}");

    // A report with a file missing or changed after the audit is incomplete: an error (2) that
    // names the file, never a pass.
    let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    for file in ["report.html", "results.parquet", "experiments/demo.yaml"] {
        assert!(manifest.contains(&format!("\"{file}\"")), "{file} not listed in the manifest");
    }
    let html = std::fs::read(out.join("report.html")).unwrap();
    std::fs::write(out.join("report.html"), &html[..html.len() / 2]).unwrap();
    let output = check_binary(&out);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "check on a truncated report: {stderr}");
    assert!(stderr.contains("report.html") && stderr.contains("incomplete"), "{stderr}");
    std::fs::write(out.join("report.html"), &html).unwrap();
    assert!(check_binary(&out).status.success(), "restored, the report is whole again");
    std::fs::remove_file(out.join("results.csv")).unwrap();
    let output = check_binary(&out);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "check with a listed file missing: {stderr}");
    assert!(stderr.contains("results.csv") && stderr.contains("missing"), "{stderr}");
    std::fs::remove_file(out.join("manifest.json")).unwrap();
    let output = check_binary(&out);
    assert_eq!(output.status.code(), Some(2), "check without the manifest (written last)");
}

#[test]
fn a_limited_run_is_a_subset_never_drift_and_passes_the_gate() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("report");
    let mut options = options(vec![repo().join("experiments/demo.yaml")], &out, &work.path().join("store"));
    options.limit = Some(20);
    let report = audit::run(&options).unwrap();
    let claimed: Vec<_> = report.rows.iter().filter(|r| r.claim_kind.is_some()).collect();
    assert!(claimed.len() >= 20, "{} claimed rows", claimed.len());
    for row in claimed {
        assert_eq!(row.status, Status::Subset("subset: 20 of 600 images".into()), "{}/{}", row.model, row.protocol);
        assert!(row.top1.is_some_and(|m| m.low < m.err && m.err < m.high), "the subset's interval is shown");
    }
    let outcome = audit::check(&out, CheckOptions::default()).unwrap();
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert!(outcome.subsets >= 20);
    let output = check_binary(&out);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("--strict-subsets"));
    let output = check_binary_with(&out, &["--strict-subsets"]);
    assert_eq!(output.status.code(), Some(1), "a subset fails a strict gate");
    assert!(String::from_utf8_lossy(&output.stderr).contains("subset: 20 of 600 images"));
}
