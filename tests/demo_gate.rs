//! The CI drift gate on the embedded demo: the demo experiment reproduces the claims recorded in
//! its YAML, and a changed protocol knob makes the gate fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use resnet_audit::audit::{self, AuditOptions};
use resnet_audit::report::{ProtocolKind, Status};

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
    Command::new(env!("CARGO_BIN_EXE_resnet-audit")).arg("check").arg(report).output().unwrap()
}

#[test]
fn the_demo_reproduces_its_recorded_claims_and_a_changed_knob_fails_the_gate() {
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
    let drift: Vec<_> = report.rows.iter().filter(|r| r.status == Status::Drift).collect();
    assert!(drift.is_empty(), "drift on the demo: {drift:#?}");
    let claimed = report.rows.iter().filter(|r| r.status == Status::Reproduced).count();
    assert!(claimed >= 20, "only {claimed} rows have a reproduced claim");
    assert!(report.rows.iter().any(|r| r.setting.is_some()), "no sweep rows");
    for file in ["results.parquet", "results.csv", "report.md", "report.html", "manifest.json", "experiments/demo.yaml"]
    {
        assert!(out.join(file).is_file(), "{file} not written");
    }
    for chart in &report.charts {
        assert!(out.join(&chart.png).is_file() && out.join(&chart.svg).is_file(), "{} missing", chart.title);
    }
    assert_eq!(report.charts.len(), 3);
    let outcome = audit::check(&out, false).unwrap();
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    assert!(check_binary(&out).status.success());

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
    let drifted: Vec<&str> =
        report.rows.iter().filter(|r| r.status == Status::Drift).map(|r| r.model.as_str()).collect();
    assert!(!drifted.is_empty(), "changing the center-crop resize moved no result beyond tolerance");
    let outcome = audit::check(&out_changed, false).unwrap();
    assert!(!outcome.failures.is_empty());
    assert!(
        outcome.failures.iter().all(|f| f.contains("/center-crop") && f.contains("drift")),
        "{:?}",
        outcome.failures
    );
    let output = check_binary(&out_changed);
    // 1 is the gate's verdict; 2 would mean the report could not be read.
    assert_eq!(output.status.code(), Some(1), "check on a drifted report");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("drift") && stderr.contains("gate failed"), "{stderr}");
}
