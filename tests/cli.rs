//! Command-line conventions: counts that would silently do nothing are refused, and the exit
//! status tells "could not run" (2) from the gate's verdict (1, see tests/demo_gate.rs).

use std::process::{Command, Output};

fn resnet_audit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_resnet-audit")).args(args).output().unwrap()
}

#[test]
fn zero_limits_and_thread_counts_are_refused_before_anything_runs() {
    for args in [
        &["eval", "experiments/demo.yaml", "--limit", "0"][..],
        &["audit", "experiments/demo.yaml", "--limit", "0"],
        &["-j", "0", "check", "reports/none"],
        &["check", "reports/none", "--threads", "0"],
    ] {
        let out = resnet_audit(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("at least 1"), "{args:?}: {stderr}");
    }
}

#[test]
fn an_unreadable_report_is_an_error_not_a_failed_gate() {
    let dir = tempfile::tempdir().unwrap();
    let out = resnet_audit(&["check", dir.path().join("no-such-report").to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no-such-report"), "{stderr}");
}

#[test]
fn threads_flag_is_global_and_documented() {
    let help = String::from_utf8_lossy(&resnet_audit(&["eval", "--help"]).stdout).into_owned();
    assert!(help.contains("-j, --threads <N>"), "{help}");
    for option in ["--device", "--backend", "--store", "--limit"] {
        let line = help.lines().find(|l| l.trim_start().starts_with(option)).unwrap_or_default();
        // Every option carries its own help text after the name.
        assert!(line.split_whitespace().count() > 2, "{option} has no help: {line:?}");
    }
}
