//! `resnet-audit train` end to end on a tiny generated demo: outputs, determinism, seeds, and
//! resuming a killed run to the same weights.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_same_weights, success};
use resnet_audit::weights::WeightsFile;

fn recipe(dir: &Path, epochs: u64) -> PathBuf {
    recipe_with_lr(dir, epochs, "0.1")
}

/// The tiny recipe with the schedule's base learning rate `lr` (written as YAML writes it).
fn recipe_with_lr(dir: &Path, epochs: u64, lr: &str) -> PathBuf {
    let text = format!(
        "description: tiny demo run\n\
         data: {{kind: demo, dir: data, spec: {{seed: 7, train_per_class: 6, test_per_class: 2, min_side: 36, max_side: 48}}}}\n\
         model: {{family: cifar, depth: 8, base_width: 8, shortcut: A}}\n\
         input: torchvision\n\
         augment:\n  - {{kind: scale-augment, min: 36, max: 44, size: 32}}\n  - {{kind: color-jitter, brightness: 0.4, contrast: 0.4, saturation: 0.4}}\n\
         val: {{resize: 36, crop: 32}}\n\
         optimizer: {{momentum: 0.9, nesterov: true, weight_decay: 1e-4, decay_scope: all}}\n\
         schedule: {{kind: steps, base: {lr}, milestones: [6]}}\n\
         batch_size: 16\nepochs: {epochs}\nseed: 1\ncheckpoint_every: 2\n"
    );
    let path = dir.join(format!("recipe-{epochs}-lr{lr}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn command(recipe: &Path, out: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_resnet-audit"));
    c.arg("train").arg(recipe).arg("--out").arg(recipe.parent().unwrap().join(out)).args(extra);
    c
}

#[test]
fn train_writes_curves_weights_and_a_seed_summary_and_repeats_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = recipe(dir.path(), 3);
    let stdout = success(command(&recipe, "a", &["--seeds", "2"]).output().unwrap());
    assert!(stdout.contains("over 2 seed(s):") && stdout.contains('±'), "{stdout}");
    let curve = std::fs::read_to_string(dir.path().join("a/seed-1/curve.csv")).unwrap();
    assert_eq!(curve.lines().count(), 1 + 3, "a header and one row per epoch:\n{curve}");
    // The weights are an ordinary model file: the architecture is detected from it.
    let weights = dir.path().join("a/seed-2/weights.safetensors");
    let inspection = resnet_audit::inspect::inspect(&WeightsFile::read(&weights).unwrap()).unwrap();
    assert_eq!(inspection.config.depth(), 8);
    // The same recipe again: the same numbers.
    success(command(&recipe, "b", &[]).output().unwrap());
    assert_eq!(curve, std::fs::read_to_string(dir.path().join("b/seed-1/curve.csv")).unwrap());
    assert_same_weights(
        &dir.path().join("a/seed-1/weights.safetensors"),
        &dir.path().join("b/seed-1/weights.safetensors"),
    );
    // And the same bytes, metadata included: the file's SHA-256 (and every store key built on
    // it) does not depend on the order a hash map happened to iterate in.
    for file in ["weights.safetensors", "checkpoint.safetensors"] {
        let bytes = |run: &str| std::fs::read(dir.path().join(run).join("seed-1").join(file)).unwrap();
        assert!(bytes("a") == bytes("b"), "two identical runs wrote different {file} bytes");
    }
}

#[test]
fn a_diverging_run_fails_naming_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = recipe_with_lr(dir.path(), 3, "1e4");
    let output = command(&recipe, "diverged", &[]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a diverged run must fail:\n{stdout}\n{stderr}");
    assert!(stderr.contains("the run diverged") && stderr.contains("at step "), "{stderr}");
    assert!(!stdout.contains("final validation error"), "{stdout}");
    assert!(!dir.path().join("diverged/seed-1/weights.safetensors").exists());
}

#[test]
fn resuming_under_a_changed_recipe_names_the_field_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    success(command(&recipe_with_lr(dir.path(), 1, "0.1"), "run", &[]).output().unwrap());
    // Lengthening the run is not a change of recipe.
    let longer = recipe_with_lr(dir.path(), 2, "0.1");
    success(command(&longer, "run", &["--resume"]).output().unwrap());

    let changed = recipe_with_lr(dir.path(), 3, "0.05");
    let output = command(&changed, "run", &["--resume"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("`schedule.base`: 0.1 -> 0.05") && stderr.contains("--allow-recipe-change"), "{stderr}");
    assert!(!stderr.contains("epochs"), "lengthening is not listed: {stderr}");

    success(command(&changed, "run", &["--resume", "--allow-recipe-change"]).output().unwrap());
    let weights = WeightsFile::read(&dir.path().join("run/seed-1/weights.safetensors")).unwrap();
    let recipe = |json: &str| serde_json::from_str::<serde_json::Value>(json).unwrap();
    assert_eq!(recipe(&weights.metadata["recipe"])["schedule"]["base"], 0.05);
    let earlier: Vec<String> = serde_json::from_str(&weights.metadata["earlier_recipes"]).unwrap();
    let earlier = recipe(&earlier[0]);
    assert_eq!(earlier["recipe"]["schedule"]["base"], 0.1);
    assert_eq!(earlier["until_step"], 8, "two epochs of 4 steps under the first recipe");
}

#[test]
fn a_killed_run_resumes_to_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = recipe(dir.path(), 12);
    success(command(&recipe, "straight", &[]).output().unwrap());

    let checkpoint = dir.path().join("killed/seed-1/checkpoint.safetensors");
    let weights = dir.path().join("killed/seed-1/weights.safetensors");
    let mut child = command(&recipe, "killed", &[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    while !checkpoint.exists() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(checkpoint.exists(), "no checkpoint was written");
    assert!(!weights.exists(), "the run finished before it was killed: make it longer");

    let output = command(&recipe, "killed", &["--resume"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    success(output);
    assert!(stderr.contains("resuming at step"), "{stderr}");
    assert_same_weights(&dir.path().join("straight/seed-1/weights.safetensors"), &weights);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("straight/seed-1/curve.csv")).unwrap(),
        std::fs::read_to_string(dir.path().join("killed/seed-1/curve.csv")).unwrap()
    );
}

#[test]
fn a_bad_recipe_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "data: {kind: demo, dir: d}\nmodel: {family: cifar, depth: 8, base_width: 8, shortcut: A}\nepochz: 3\n",
    )
    .unwrap();
    let output =
        Command::new(env!("CARGO_BIN_EXE_resnet-audit")).arg("train").arg(&path).args(["--out", "x"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("bad.yaml") && stderr.contains("epochz"), "{stderr}");
}
