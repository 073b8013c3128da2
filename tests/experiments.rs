//! Every committed experiment file parses and validates (a researcher adds one by adding a file).

use resnet_audit::experiment::LoadedExperiment;

#[test]
fn every_committed_experiment_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let loaded = LoadedExperiment::read(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!loaded.experiment.models.is_empty());
            count += 1;
        }
    }
    assert!(count >= 3, "found {count} experiment files");
}
