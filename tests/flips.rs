//! What changed image by image on the embedded demo: flips between protocols (their counts are
//! the McNemar table's off-diagonal cells, as `eval` prints them and as the report lists them),
//! the thumbnail gallery, the per-class table, calibration columns and reliability diagrams, all
//! listed in the manifest and byte-identical when the report is written again.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use resnet_audit::audit::{self, CheckOptions};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn demo() -> PathBuf {
    repo().join("experiments/demo.yaml")
}

fn binary(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_resnet-audit")).arg("-q").args(args).output().unwrap();
    assert!(output.status.success(), "{args:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The number right after `before` in `text`.
fn number_after(text: &str, before: &str) -> usize {
    let rest = &text[text.find(before).unwrap_or_else(|| panic!("no `{before}` in:\n{text}")) + before.len()..];
    rest.trim_start().split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
}

#[test]
fn the_flips_command_lists_the_mcnemar_off_diagonal_cells_eval_prints() {
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    let store = store.to_str().unwrap();
    let demo = demo();
    let demo = demo.to_str().unwrap();
    let common = ["--limit", "90", "--store", store];
    let mut eval = vec!["eval", demo, "--model", "paper-s1", "--protocol", "center-crop", "--protocol", "multi-scale"];
    eval.extend(common);
    let table = binary(&eval);
    let line = table.lines().find(|l| l.contains("paper-s1: center-crop vs multi-scale")).expect("McNemar line");
    let (only_first, only_second) =
        (number_after(line, "only first correct"), number_after(line, "only second correct"));

    let mut flips = vec!["flips", demo, "--model", "paper-s1", "--from", "center-crop", "--to", "multi-scale"];
    flips.extend(common);
    let listed = binary(&flips);
    let head = listed.lines().next().unwrap();
    assert_eq!(number_after(head, "scored,"), only_second, "fixed = only the second correct: {head}");
    assert_eq!(number_after(head, "fixed,"), only_first, "broken = only the first correct: {head}");
    assert!(only_first + only_second > 0, "no flip at all on 90 demo images: the test shows nothing");
    // One line per flipped image under its heading, each with the label and both guesses.
    let images: Vec<&str> = listed.lines().filter(|l| l.starts_with("  ")).collect();
    assert_eq!(images.len(), only_first + only_second);
    assert!(images
        .iter()
        .all(|l| l.contains("\tlabel ") && l.contains("\tcenter-crop: ") && l.contains("\tmulti-scale: ")));
    // The other way round, fixed and broken swap.
    let mut back = vec!["flips", demo, "--model", "paper-s1", "--from", "multi-scale", "--to", "center-crop"];
    back.extend(common);
    let head = binary(&back);
    let head = head.lines().next().unwrap();
    assert_eq!((number_after(head, "scored,"), number_after(head, "fixed,")), (only_first, only_second));

    // An unknown protocol is an error naming it.
    let output = Command::new(env!("CARGO_BIN_EXE_resnet-audit"))
        .args(["-q", "flips", demo, "--model", "paper-s1", "--from", "center-crop", "--to", "nine-crop"])
        .args(common)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("nine-crop"));
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path.to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

#[test]
fn the_demo_report_shows_flips_per_class_changes_and_calibration() {
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    let out = work.path().join("report");
    let mut options = common::audit_options(vec![demo()], &out, &store, "cargo test --test flips");
    options.limit = Some(60);
    let report = audit::run(&options).unwrap();
    let info = report.experiments.iter().find(|e| e.name == "demo").unwrap();
    let analysis = report.image_by_image.iter().find(|a| a.experiment == "demo").expect("image by image");

    // Every McNemar comparison has its flips, with the same counts, in the same order.
    assert_eq!(analysis.pairs.len(), info.paired.len());
    for (pair, line) in analysis.pairs.iter().zip(&info.paired) {
        assert!(line.starts_with(&format!("{}: {} vs {}:", pair.model, pair.from, pair.to)), "{line}");
        assert_eq!(pair.broken, number_after(line, "only the first correct on"), "{line}");
        assert_eq!(pair.fixed, number_after(line, "only the second on"), "{line}");
        assert_eq!(pair.paired, number_after(line.rsplit('(').next().unwrap(), ""), "{line}");
        assert_eq!(pair.fixed_shown.len(), pair.fixed.min(audit::images::GALLERY_SIZE));
        assert_eq!(pair.broken_shown.len(), pair.broken.min(audit::images::GALLERY_SIZE));
        let compared = pair.from_kind == resnet_audit::report::ProtocolKind::CenterCrop
            && pair.to_kind != resnet_audit::report::ProtocolKind::Ensemble;
        // Only (i) → (ii)/(iii) lists classes (none when every flip of a class cancels out).
        assert!(pair.class_changes.is_empty() || compared, "{line}");
        assert!(pair.class_changes.len() <= audit::images::CLASS_CHANGES_SHOWN);
    }
    assert!(analysis.pairs.iter().any(|p| !p.class_changes.is_empty()), "no class changed between protocols");
    let shown: Vec<_> = analysis.pairs.iter().flat_map(|p| p.fixed_shown.iter().chain(&p.broken_shown)).collect();
    assert!(!shown.is_empty(), "no flipped image on the demo");
    for image in &shown {
        let thumbnail = image.thumbnail.as_ref().expect("the demo's images have thumbnails");
        assert!(thumbnail.starts_with("flips/demo/") && out.join(thumbnail).is_file(), "{thumbnail}");
        assert!((0.0..=1.0).contains(&image.from.probability) && (0.0..=1.0).contains(&image.to.probability));
    }
    assert!(analysis.notes.is_empty(), "{:?}", analysis.notes);

    // Calibration: one entry per (model, protocol) as written, and the same numbers in the table.
    let written: Vec<_> = report.rows.iter().filter(|r| r.setting.is_none() && r.top1.is_some()).collect();
    assert_eq!(analysis.calibration.len(), written.len());
    for c in &analysis.calibration {
        let row = written
            .iter()
            .find(|r| {
                r.model == c.model && r.protocol == c.protocol || r.protocol == c.protocol && c.model == "ensemble"
            })
            .unwrap();
        assert_eq!((row.nll, row.ece), (Some(c.nll), Some(c.ece)), "{}/{}", c.model, c.protocol);
        assert!(c.nll > 0.0 && (0.0..=1.0).contains(&c.ece));
        assert_eq!(c.bins.iter().map(|b| b.images).sum::<usize>(), row.images);
    }
    assert!(report.rows.iter().filter(|r| r.top1.is_some()).all(|r| r.nll.is_some() && r.ece.is_some()));
    assert_eq!(analysis.charts.len(), 7, "one reliability diagram per model and one for the ensembles");
    let records = common::csv_records(&std::fs::read_to_string(out.join("results.csv")).unwrap());
    assert!(records[0].iter().any(|h| h == "nll") && records[0].iter().any(|h| h == "ece"));

    // The per-class table: every class of every (model, protocol) as written, counts adding up.
    let per_class = common::csv_records(&std::fs::read_to_string(out.join("per_class.csv")).unwrap());
    assert_eq!(
        per_class[0],
        ["experiment", "model", "protocol", "class", "class_name", "images", "top1_errors", "top1_err"]
    );
    assert_eq!(per_class.len() - 1, written.len() * 10, "10 demo classes per (model, protocol)");
    let images: usize = per_class[1..11].iter().map(|r| r[5].parse::<usize>().unwrap()).sum();
    assert_eq!(images, 60);

    // The documents show it; the manifest lists every new file; the gate passes.
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(md.contains("## What changed, image by image") && md.contains("Classes whose top-1 error changed most"));
    assert!(html.contains("<details class=\"flips\">") && html.contains("<img src=\"flips/demo/"));
    let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    for file in shown.iter().filter_map(|i| i.thumbnail.as_ref()).chain(analysis.charts.iter().map(|c| &c.png)) {
        assert!(manifest.contains(&format!("\"{file}\"")), "{file} not in the manifest");
    }
    assert!(manifest.contains("\"per_class.parquet\""));
    assert!(audit::check(&out, CheckOptions::default()).unwrap().failures.is_empty());

    // Written again into the same folder, an earlier report's thumbnails do not stay behind.
    let stale = out.join("flips/demo/stale-00000000.png");
    std::fs::write(&stale, b"old").unwrap();
    audit::run(&options).unwrap();
    assert!(!stale.exists() && audit::check(&out, CheckOptions::default()).is_ok());

    // Determinism: the report written again from the store has the same thumbnails, tables and charts.
    let again = work.path().join("again");
    let mut options = common::audit_options(vec![demo()], &again, &store, "cargo test --test flips");
    options.limit = Some(60);
    audit::run(&options).unwrap();
    let (first, second) = (files_under(&out.join("flips")), files_under(&again.join("flips")));
    assert_eq!(first.len(), second.len());
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap(), "{a} differs");
    }
    for file in ["per_class.parquet", "per_class.csv", "results.csv", "reliability-demo-paper-s1.png"] {
        assert_eq!(std::fs::read(out.join(file)).unwrap(), std::fs::read(again.join(file)).unwrap(), "{file} differs");
    }
}
