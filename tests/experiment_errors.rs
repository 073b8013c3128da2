//! Every class of mistake in an experiment file is an error that names the file, and the line and
//! column of the mistake (serde_yaml's position for syntax and types; the reference's position for
//! dangling names), before anything runs.

use std::path::{Path, PathBuf};

use resnet_audit::experiment::LoadedExperiment;

/// A valid experiment to break in one place per test.
const BASE: &str = r#"description: mistakes
dataset: {kind: image-folder, root: images}
models:
  - id: m1
    weights: m1.safetensors
    input: torchvision
  - id: m2
    weights: m2.safetensors
    input: torchvision
protocols:
  - id: center-crop
    kind: center-crop
  - id: multi-scale
    kind: fully-convolutional
    scales: [224, 256]
  - id: ensemble
    kind: ensemble
    members:
      - {model: m1, protocol: multi-scale}
      - {model: m2, protocol: multi-scale}
claims:
  - {model: m1, protocol: center-crop, top1: 24.7, top5: 7.8, tolerance: 0.3, source: README}
  - {protocol: ensemble, top1: 20.0, tolerance: 0.5, source: a paper}
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Reads `text` as an experiment and returns the error message (the test fails if it loads).
fn error_of(text: &str) -> (String, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "broken.yaml", text);
    let message = match LoadedExperiment::read(&path) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    };
    (message, path)
}

fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "`{part}` missing from: {message}");
    }
}

#[test]
fn the_base_experiment_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ok.yaml", BASE);
    let loaded = LoadedExperiment::read(&path).unwrap();
    assert_eq!(loaded.experiment.claims.len(), 2);
}

#[test]
fn unknown_fields_name_file_line_and_column() {
    let cases = [
        (BASE.replace("description: mistakes", "descripton: mistakes"), "descripton", "line 1 column 1"),
        (BASE.replace("    weights: m1.safetensors", "    weigths: m1.safetensors"), "weigths", "line 5"),
        (BASE.replace("    kind: center-crop", "    kind: center-crop\n    crops: 224"), "crops", "line 11"),
        (BASE.replace("tolerance: 0.3, source: README}", "tolerance: 0.3, source: README, tol: 1}"), "tol", "line 22"),
    ];
    for (text, field, position) in cases {
        let (message, path) = error_of(&text);
        assert_mentions(&message, &[&path.display().to_string(), &format!("unknown field `{field}`"), position]);
    }
}

#[test]
fn wrong_types_name_file_line_and_column() {
    // Inside a protocol (a flattened map) serde_yaml can only point at the entry's first line.
    let (message, path) = error_of(&BASE.replace("scales: [224, 256]", "scales: [224, big]"));
    assert_mentions(&message, &[&path.display().to_string(), "protocols[1]", "\"big\"", "line 13 column 5"]);
    let (message, _) = error_of(&BASE.replace("top1: 24.7", "top1: high"));
    assert_mentions(&message, &["line 22", "column"]);
}

#[test]
fn dangling_references_name_the_reference_and_its_position() {
    // A claim naming a protocol that does not exist.
    let (message, path) = error_of(&BASE.replace("protocol: center-crop, top1", "protocol: centre-crop, top1"));
    assert_mentions(
        &message,
        &[&path.display().to_string(), "line 22 column", "`centre-crop` does not exist", "center-crop, multi-scale"],
    );
    // A claim naming a model that does not exist.
    let (message, _) =
        error_of(&BASE.replace("- {model: m1, protocol: center-crop", "- {model: m9, protocol: center-crop"));
    assert_mentions(&message, &["line 22 column", "model `m9` does not exist"]);
    // An ensemble member that does not exist.
    let (message, _) =
        error_of(&BASE.replace("- {model: m2, protocol: multi-scale}", "- {model: m3, protocol: multi-scale}"));
    assert_mentions(&message, &["line 20 column", "no model `m3`"]);
    // A named dataset, input or protocol without imports.
    let (message, _) = error_of(&BASE.replace("dataset: {kind: image-folder, root: images}", "dataset: imagenet-val"));
    assert_mentions(&message, &["line 2 column 10", "dataset `imagenet-val`", "no `imports:`"]);
    let (message, _) =
        error_of(&BASE.replace("    input: torchvision\n  - id: m2", "    input: caffe-bgr\n  - id: m2"));
    assert_mentions(&message, &["model `m1`", "input `caffe-bgr`"]);
    let (message, _) =
        error_of(&BASE.replace("  - id: center-crop\n    kind: center-crop\n", "  - paper-center-crop\n"));
    assert_mentions(&message, &["line 11 column 5", "protocol `paper-center-crop`"]);
}

#[test]
fn claims_must_fit_their_protocol() {
    let (message, _) =
        error_of(&BASE.replace("- {protocol: ensemble, top1: 20.0", "- {model: m1, protocol: ensemble, top1: 20.0"));
    assert_mentions(&message, &["claims[1]", "is an ensemble", "drop `model: m1`"]);
    let (message, _) = error_of(&BASE.replace("- {model: m1, protocol: center-crop", "- {protocol: center-crop"));
    assert_mentions(&message, &["claims[0]", "needs `model:`"]);
    let (message, _) = error_of(&BASE.replace("top1: 24.7, top5: 7.8, ", ""));
    assert_mentions(&message, &["claims[0]", "give `top1` and/or `top5`"]);
    let (message, _) = error_of(&BASE.replace("tolerance: 0.3", "tolerance: -1"));
    assert_mentions(&message, &["claims[0]", "tolerance -1 is not a percentage"]);
    let (message, _) = error_of(&BASE.replace("source: README", "source: \"\""));
    assert_mentions(&message, &["claims[0]", "`source` is empty"]);
    let doubled = BASE.replace(
        "  - {protocol: ensemble",
        "  - {model: m1, protocol: center-crop, top1: 25.0, tolerance: 0.3, source: other}\n  - {protocol: ensemble",
    );
    let (message, _) = error_of(&doubled);
    assert_mentions(&message, &["claims[1]", "a second claim for (m1, center-crop)"]);
}

#[test]
fn imports_resolve_names_and_their_mistakes_name_the_imported_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("shared")).unwrap();
    write(
        dir.path(),
        "shared/pieces.yaml",
        "datasets:\n  demo-folder: {kind: image-folder, root: images}\n\
         inputs:\n  caffe-like: {channel_order: bgr, scale: byte, mean: [104.0, 117.0, 123.0]}\n\
         protocols:\n  - {id: paper-center-crop, kind: center-crop, crop: 224}\n",
    );
    let text = BASE
        .replace("description: mistakes", "description: imports\nimports: [shared/pieces.yaml]")
        .replace("dataset: {kind: image-folder, root: images}", "dataset: demo-folder")
        .replace("    input: torchvision\n  - id: m2", "    input: caffe-like\n  - id: m2")
        .replace("  - id: center-crop\n    kind: center-crop\n", "  - paper-center-crop\n")
        .replace("protocol: center-crop, top1", "protocol: paper-center-crop, top1");
    let path = write(dir.path(), "uses.yaml", &text);
    let loaded = LoadedExperiment::read(&path).unwrap();
    let experiment = &loaded.experiment;
    assert!(experiment.protocol("paper-center-crop").is_some());
    assert!(experiment.dataset().is_ok());
    let m1 = experiment.model("m1").unwrap();
    assert_eq!(m1.input.spec().unwrap().mean, resnet_audit::transform::MeanSpec::Channel([104.0, 117.0, 123.0]));

    // A mistake inside the imported file names that file and its line.
    write(dir.path(), "shared/pieces.yaml", "datasets:\n  demo-folder: {kind: image-folder, rot: images}\n");
    let message = LoadedExperiment::read(&path).unwrap_err().to_string();
    assert_mentions(&message, &["shared/pieces.yaml", "unknown field `rot`", "line 2"]);
    // A missing import names the file.
    std::fs::remove_file(dir.path().join("shared/pieces.yaml")).unwrap();
    let message = LoadedExperiment::read(&path).unwrap_err().to_string();
    assert_mentions(&message, &["shared/pieces.yaml"]);
}
