//! Every committed experiment file parses and validates (a researcher adds one by adding a file),
//! and so does every training recipe and example.

use std::path::Path;

use resnet_audit::experiment::validate_file;

fn yaml_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_committed_experiment_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut files = yaml_files(&root);
    files.extend(yaml_files(&root.join("examples")));
    for path in &files {
        validate_file(path).unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(files.len() >= 6, "found {} experiment files", files.len());
}

#[test]
fn every_training_recipe_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/train");
    let files = yaml_files(&dir);
    for path in &files {
        resnet_audit::yaml::read::<resnet_audit::train::run::Recipe>(path).unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(files.len() >= 7, "found {} recipes", files.len());
}
