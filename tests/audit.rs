//! The audit end to end: experiments whose inputs are absent listed as not run with their fix, a
//! training experiment trained and compared, and the gate over a missing report. The gate on the
//! embedded demo is `demo_gate.rs`.

mod common;

use std::path::{Path, PathBuf};

use resnet_audit::audit::{self, AuditOptions, CheckOptions};
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
    assert!(audit::check(&out, CheckOptions::default()).unwrap().failures.is_empty());
    let strict = CheckOptions { require_all: true, ..CheckOptions::default() };
    assert_eq!(audit::check(&out, strict).unwrap().failures.len(), 1);
}

#[test]
fn check_names_a_missing_report() {
    let work = tempfile::tempdir().unwrap();
    let message = audit::check(work.path(), CheckOptions::default()).unwrap_err().to_string();
    assert!(message.contains("manifest.json") && message.contains("resnet-audit audit"), "{message}");
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

/// An image-folder experiment of `n` truncated JPEGs (every one a bad image) with `on_bad_image:
/// skip`, a published claim on its one protocol, and the narrow fixture ResNet-50.
fn all_bad_images_experiment(dir: &Path, n: usize) -> PathBuf {
    let bytes = std::fs::read(common::fixture("images/landscape_320x240.JPEG")).unwrap();
    let folder = dir.join("images/class00");
    std::fs::create_dir_all(&folder).unwrap();
    for i in 0..n {
        std::fs::write(folder.join(format!("truncated_{i}.JPEG")), &bytes[..bytes.len() / 2]).unwrap();
    }
    // The fixture model has 20 outputs.
    let classes: Vec<String> = (0..20).map(|c| format!("class{c:02}")).collect();
    std::fs::write(dir.join("classes.txt"), classes.join("\n")).unwrap();
    let path = dir.join("all-bad.yaml");
    std::fs::write(
        &path,
        format!(
            "description: every image is bad\n\
             dataset: {{kind: image-folder, root: images, classes: classes.txt}}\n\
             models:\n  - {{id: narrow, weights: {}, input: torchvision}}\n\
             protocols:\n  - {{id: center, kind: center-crop, resize: {{shorter-side: 72}}, crop: 64}}\n\
             claims:\n  - {{model: narrow, protocol: center, top1: 50.0, tolerance: 50.0, source: test}}\n\
             on_bad_image: skip\n",
            common::fixture("parity/protocol_r50_w8.safetensors").display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_row_whose_every_image_was_skipped_is_empty_and_fails_the_gate() {
    let work = tempfile::tempdir().unwrap();
    let experiment = all_bad_images_experiment(work.path(), 3);
    let out = work.path().join("report");
    // A temporary file a dead writer left in the report folder is removed by the next audit.
    std::fs::create_dir_all(&out).unwrap();
    let leftover = out.join(format!(".results.csv.tmp-{}-9999999-0", resnet_audit::fsio::host_name()));
    std::fs::write(&leftover, b"half").unwrap();
    let report = audit::run(&options(vec![experiment], &out, &work.path().join("store"))).unwrap();
    assert!(!leftover.exists(), "a dead writer's temp file was left");
    assert_eq!(report.rows.len(), 1);
    let row = &report.rows[0];
    // A 50 ± 50 claim would take any number: with no image scored there is none to judge.
    let Status::Empty(why) = &row.status else { panic!("{:?}", row.status) };
    assert!(why.contains("all 3 images skipped"), "{why}");
    assert!((row.images, row.skipped, row.top1) == (0, 3, None), "{row:?}");
    let outcome = audit::check(&out, CheckOptions::default()).unwrap();
    assert_eq!(outcome.failures.len(), 1, "{:?}", outcome.failures);
    assert!(outcome.failures[0].contains("empty"), "{:?}", outcome.failures);
    let output =
        std::process::Command::new(env!("CARGO_BIN_EXE_resnet-audit")).arg("check").arg(&out).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "the gate's verdict on an empty row");
}

#[test]
fn eval_results_file_writes_the_audit_table_for_one_experiment() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("results.csv");
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("experiments/demo.yaml");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_resnet-audit"))
        .arg("eval")
        .arg(&demo)
        .args(["--model", "paper-s1", "--protocol", "center-crop", "--limit", "10", "--store"])
        .arg(work.path().join("store"))
        .arg("--results-file")
        .arg(&file)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let records = common::csv_records(&std::fs::read_to_string(&file).unwrap());
    let (header, row) = (&records[0], &records[1]);
    let audit_header: Vec<&str> = audit::Column::ALL.iter().map(|c| c.name()).collect();
    assert_eq!(header, &audit_header, "the same columns as results.csv");
    assert_eq!(records.len(), 2, "one row");
    let cell = |name: &str| row[header.iter().position(|c| c == name).unwrap()].as_str();
    assert_eq!((cell("model"), cell("status"), cell("reason")), ("paper-s1", "subset", "subset: 10 of 600 images"));
    assert_eq!((cell("img_size"), cell("crop_pct"), cell("interpolation")), ("56", "0.875", "bilinear"));
    // Percentages to two decimals, top-1 accuracy beside the error.
    let (top1, err): (f64, f64) = (cell("top1").parse().unwrap(), cell("top1_err").parse().unwrap());
    assert!((top1 + err - 100.0).abs() < 0.011 && cell("top1_err").split('.').nth(1).is_none_or(|d| d.len() <= 2));
    assert_eq!(cell("weights_sha256").len(), 64);
}
