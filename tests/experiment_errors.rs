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

/// Reads `text` as `broken.yaml` in `dir` and returns the error message (fails if it loads).
fn error_in(dir: &Path, text: &str) -> (String, PathBuf) {
    let path = write(dir, "broken.yaml", text);
    match LoadedExperiment::read(&path) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => (e.to_string(), path),
    }
}

/// Sizes no image could satisfy are errors when the file is read, naming file, line and field,
/// not failures (or a backtrace) once computing has started.
#[test]
fn impossible_protocol_sizes_name_file_line_and_field() {
    let center = "  - id: center-crop\n    kind: center-crop\n";
    let scales = "    scales: [224, 256]\n";
    let cases = [
        // The crop is larger than every resized image (shorter side 128).
        (
            BASE.replace(center, &format!("{center}    resize: {{shorter-side: 128}}\n    crop: 160\n")),
            "line 14 column 5",
            "`crop` 160",
        ),
        (BASE.replace(center, &format!("{center}    crop: 100000\n")), "line 13 column 5", "`crop` 100000"),
        (BASE.replace(scales, "    scales: [100000]\n"), "line 15 column 5", "`scales` has 100000"),
        (BASE.replace(scales, &format!("{scales}    pool: 0\n")), "line 16 column 5", "`pool` 0"),
        (BASE.replace(scales, &format!("{scales}    max_side: 0\n")), "line 16 column 5", "`max_side` is 0"),
        (
            BASE.replace(center, &format!("{center}    resize: {{shorter-side: 100000}}\n")),
            "line 13 column 5",
            "`resize`",
        ),
    ];
    for (text, position, field) in cases {
        let (message, path) = error_of(&text);
        assert_mentions(&message, &[&path.display().to_string(), position, field]);
    }
}

#[test]
fn zero_batch_and_chunk_sizes_name_file_line_and_field() {
    for field in ["batch_size", "chunk_size"] {
        let (message, path) = error_of(&format!("{BASE}run: {{{field}: 0}}\n"));
        assert_mentions(&message, &[&path.display().to_string(), "line 24 column 7", &format!("`{field}` is 0")]);
    }
}

#[test]
fn an_id_too_long_for_a_file_name_is_an_error() {
    let long = "p".repeat(300);
    let text = BASE.replace("  - id: center-crop\n", &format!("  - id: {long}\n"));
    let (message, path) = error_of(&text);
    assert_mentions(&message, &[&path.display().to_string(), "line 11 column 9", "300 characters"]);
    // At the limit it loads (its claim renamed with it).
    let fits = "p".repeat(resnet_audit::experiment::MAX_ID_CHARS);
    let dir = tempfile::tempdir().unwrap();
    let text = BASE
        .replace("id: center-crop", &format!("id: {fits}"))
        .replace("protocol: center-crop", &format!("protocol: {fits}"));
    LoadedExperiment::read(&write(dir.path(), "fits.yaml", &text)).unwrap();
}

#[test]
fn weights_that_cannot_be_a_file_are_errors_with_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("m1.safetensors")).unwrap();
    let (message, path) = error_in(dir.path(), BASE);
    assert_mentions(&message, &[&path.display().to_string(), "line 5 column 5", "`weights`", "is a folder"]);

    let text = BASE.replace("weights: m1.safetensors", "weights: /dev/zero");
    let (message, _) = error_of(&text);
    assert_mentions(&message, &["line 5 column 5", "`weights` /dev/zero", "not a regular file"]);

    // Absent weights are not a mistake in the file: the audit lists them as not run.
    let dir = tempfile::tempdir().unwrap();
    LoadedExperiment::read(&write(dir.path(), "absent.yaml", BASE)).unwrap();
}

#[test]
fn sweep_settings_pass_the_same_size_checks() {
    let center = "  - id: center-crop\n    kind: center-crop\n";
    let (message, _) = error_of(&BASE.replace(center, &format!("{center}    sweep: {{crop: [224, 100000]}}\n")));
    assert_mentions(&message, &["line 13 column 5", "sweep setting crop=100000", "`crop` 100000"]);
    // A protocol may not take the id a sweep setting is stored under.
    let taken = BASE.replace(
        center,
        &format!("{center}    sweep: {{crop: [224, 192]}}\n  - id: center-crop.sweep1\n    kind: center-crop\n"),
    );
    let (message, _) = error_of(&taken);
    assert_mentions(&message, &["protocol id `center-crop.sweep1`", "sweep setting of protocol `center-crop`"]);
}
