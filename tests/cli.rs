//! Command-line conventions: counts that would silently do nothing are refused, and the exit
//! status tells "could not run" (2) from the gate's verdict (1, see tests/demo_gate.rs).

mod common;

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

/// Progress lines on stderr: the engine's per-run summary (`narrow/center: 7 images in …`) and
/// periodic lines, training's per-epoch lines.
fn progress_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(" images in ") || l.contains("images/s") || l.contains(" epoch ")).collect()
}

/// Runs `resnet-audit [-q] ARGS` and checks that it succeeded; returns its stdout and stderr.
fn run_ok(quiet: bool, args: &[&str]) -> (String, String) {
    let mut all = if quiet { vec!["-q"] } else { vec![] };
    all.extend_from_slice(args);
    let out = resnet_audit(&all);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{all:?}:\n{stderr}");
    (stdout.into_owned(), stderr.into_owned())
}

#[test]
fn quiet_silences_the_progress_of_eval_and_audit_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    common::fixture_image_folder(dir.path(), 1);
    let protocols = "  - {id: center, kind: center-crop, resize: {shorter-side: 72}, crop: 64}\n";
    let experiment = dir.path().join("experiment.yaml");
    std::fs::write(&experiment, common::narrow_experiment("quiet test", protocols, "")).unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let experiment = path("experiment.yaml");
    for quiet in [false, true] {
        // A fresh store for each run, so that each computes (a run that only reads prints no rate).
        let tag = if quiet { "quiet" } else { "loud" };
        let eval = run_ok(quiet, &["eval", &experiment, "--store", &path(&format!("eval-{tag}"))]);
        let report = path(&format!("report-{tag}"));
        let audit = run_ok(quiet, &["audit", &experiment, "--store", &path(&format!("audit-{tag}")), "--out", &report]);
        for (what, (stdout, stderr)) in [("eval", eval), ("audit", audit)] {
            let progress = progress_lines(&stderr);
            assert_eq!(progress.is_empty(), quiet, "{what}, quiet {quiet}: progress {progress:?}\n{stderr}");
            // Results are printed either way.
            assert!(stdout.contains("narrow") || stdout.contains("report"), "{what}: {stdout}");
        }
    }
}

#[test]
fn quiet_silences_the_epoch_lines_of_train() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("recipe.yaml");
    std::fs::write(
        &recipe,
        "description: tiny quiet run\n\
         data: {kind: demo, dir: data, spec: {seed: 7, train_per_class: 2, test_per_class: 1, min_side: 36, max_side: 40}}\n\
         model: {family: cifar, depth: 8, base_width: 4, shortcut: A}\n\
         input: torchvision\n\
         augment:\n  - {kind: scale-augment, min: 36, max: 40, size: 32}\n\
         val: {resize: 36, crop: 32}\n\
         optimizer: {momentum: 0.9, nesterov: true, weight_decay: 1e-4, decay_scope: all}\n\
         schedule: {kind: steps, base: 0.1, milestones: [6]}\n\
         batch_size: 16\nepochs: 2\nseed: 1\ncheckpoint_every: 2\n",
    )
    .unwrap();
    let recipe = recipe.display().to_string();
    for quiet in [false, true] {
        let out = dir.path().join(if quiet { "quiet" } else { "loud" }).display().to_string();
        let (stdout, stderr) = run_ok(quiet, &["train", &recipe, "--out", &out]);
        let epochs: Vec<&str> = stderr.lines().filter(|l| l.starts_with("seed 1 epoch ")).collect();
        assert_eq!(epochs.len(), if quiet { 0 } else { 2 }, "quiet {quiet}: {stderr}");
        assert!(stdout.contains("final validation error"), "the result is printed either way: {stdout}");
    }
}
