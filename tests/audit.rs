//! The audit end to end: experiments whose inputs are absent listed as not run with their fix, a
//! training experiment trained and compared, and the gate over a missing report. The gate on the
//! embedded demo is `demo_gate.rs`.

mod common;

use std::path::{Path, PathBuf};

use resnet_audit::audit::{self, AuditOptions};
use resnet_audit::report::Status;

fn options(paths: Vec<PathBuf>, out: &Path, store: &Path) -> AuditOptions {
    common::audit_options(paths, out, store, "cargo test --test audit")
}

#[test]
fn experiments_whose_inputs_are_absent_are_listed_as_not_run_with_the_fix() {
    let work = tempfile::tempdir().unwrap();
    let unset = "RESNET_AUDIT_TEST_NEVER_SET_DATA";
    let text = format!(
        "description: needs data\n\
         dataset: {{kind: imagenet-val, root: \"${{{unset}}}\"}}\n\
         models:\n  - {{id: r50, weights: r50.safetensors, input: torchvision, stride: v1}}\n\
         protocols:\n  - {{id: center-crop, kind: center-crop}}\n\
         claims:\n  - {{model: r50, protocol: center-crop, top1: 24.7, tolerance: 0.3, source: README}}\n"
    );
    let path = work.path().join("needs-data.yaml");
    std::fs::write(&path, text).unwrap();
    let out = work.path().join("report");
    let report = audit::run(&options(vec![path], &out, &work.path().join("store"))).unwrap();
    assert_eq!(report.rows.len(), 1);
    let row = &report.rows[0];
    let Status::NotRun(why) = &row.status else { panic!("{:?}", row.status) };
    assert!(why.contains(unset) && why.contains(&format!("set {unset}=")), "{why}");
    assert_eq!(row.claimed_top1_err, Some(24.7), "a not-run row still shows its claim");
    let experiment = &report.experiments[0];
    assert!(experiment.not_run.as_deref().is_some_and(|w| w.contains(unset)));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains(&format!("set {unset}=")), "the fix is not in the HTML report");
    // Not run passes the gate unless every row is required.
    assert!(audit::check(&out, false).unwrap().failures.is_empty());
    assert_eq!(audit::check(&out, true).unwrap().failures.len(), 1);
}

#[test]
fn check_names_a_missing_report() {
    let work = tempfile::tempdir().unwrap();
    let message = audit::check(work.path(), false).unwrap_err().to_string();
    assert!(message.contains("results.parquet") && message.contains("resnet-audit audit"), "{message}");
}

/// A tiny CIFAR-10 folder in the binary format: `n` records per batch, label byte + 3072 pixels.
fn fake_cifar(dir: &Path, n: usize) {
    let batch = |name: &str, offset: usize| {
        let mut bytes = Vec::new();
        for i in 0..n {
            let label = ((i + offset) % 10) as u8;
            bytes.push(label);
            // Class-dependent colour planes, so a tiny net has something to learn.
            for plane in 0..3u8 {
                bytes.extend(std::iter::repeat_n(label.wrapping_mul(25).wrapping_add(plane * 40), 1024));
            }
        }
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    for k in 1..=5 {
        batch(&format!("data_batch_{k}.bin"), k);
    }
    batch("test_batch.bin", 0);
}

#[test]
fn a_training_experiment_trains_its_seeds_and_compares_the_mean_with_the_claim() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("cifar");
    std::fs::create_dir(&data).unwrap();
    fake_cifar(&data, 10);
    std::fs::write(
        work.path().join("tiny.yaml"),
        format!(
            "data: {{kind: cifar10, root: {}}}\n\
             model: {{family: cifar, depth: 8, base_width: 4, shortcut: A}}\n\
             input: torchvision\naugment: [{{kind: pad-crop, pad: 4, size: 32}}]\nval: {{resize: 32, crop: 32}}\n\
             optimizer: {{momentum: 0.9, weight_decay: 1.0e-4, decay_scope: conv-and-fc-weights}}\n\
             schedule: {{kind: steps, base: 0.05, milestones: [100]}}\nbatch_size: 25\nepochs: 1\nseed: 3\ncheckpoint_every: 100\n",
            data.display()
        ),
    )
    .unwrap();
    let experiment = work.path().join("table.yaml");
    std::fs::write(
        &experiment,
        "kind: training\ndescription: tiny\nruns:\n  - {id: tiny, recipe: tiny.yaml, seeds: 2, claim: {top1: 0.0, tolerance: 100.0, source: test}}\n",
    )
    .unwrap();
    let out = work.path().join("report");
    let store = work.path().join("store");
    let report = audit::run(&options(vec![experiment], &out, &store)).unwrap();
    assert_eq!(report.rows.len(), 1);
    let row = &report.rows[0];
    let measured = row.top1.expect("trained and measured");
    assert!(measured.low <= measured.err && measured.err <= measured.high, "{measured:?}");
    assert_eq!(row.status, Status::Reproduced, "a 100-point tolerance always reproduces");
    assert!(store.join("runs/table/tiny/seed-3/weights.safetensors").is_file());
    assert!(store.join("runs/table/tiny/seed-4/weights.safetensors").is_file());
    assert!(report.experiments[0].notes.iter().any(|n| n.contains("tiny: final test error over 2 seed(s)")));
}
