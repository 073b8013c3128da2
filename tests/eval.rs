//! `resnet-audit eval` end to end: the table, the per-image store, resuming a killed run,
//! ensembles from the store, bad images, and the errors a user sees.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{fixture, fixture_image_folder, narrow_experiment, IMAGES};
use polars::prelude::*;

/// A class-per-folder dataset of the fixture images (`copies` of each) in a 20-class list, and
/// an experiment over it with the narrow fixture ResNet-50 under v1.5 and v1 strides.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(copies: usize, protocols: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        fixture_image_folder(dir.path(), copies);
        let setup = Self { dir };
        setup.write_experiment(protocols, extra);
        setup
    }

    fn write_experiment(&self, protocols: &str, extra: &str) {
        std::fs::write(self.experiment(), narrow_experiment("eval test", protocols, extra)).unwrap();
    }

    fn experiment(&self) -> PathBuf {
        self.dir.path().join("experiment.yaml")
    }

    fn store(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, store: &str, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_resnet-audit"));
        command.arg("eval").arg(self.experiment()).arg("--store").arg(self.store(store)).args(args);
        command
    }

    fn eval(&self, store: &str, args: &[&str]) -> Output {
        self.command(store, args).output().unwrap()
    }
}

const SMALL_PROTOCOLS: &str = "  - {id: center, kind: center-crop, resize: {shorter-side: 72}, crop: 64}\n  \
    - {id: ten, kind: ten-crop, resize: {shorter-side: 72}, crop: 64, combine: logit-sum}\n  \
    - {id: fcn, kind: fully-convolutional, scales: [224, 256], flips: true}\n  \
    - {id: both, kind: ensemble, members: [{model: narrow, protocol: center}, {model: narrow-v1, protocol: center}]}\n";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn success(output: &Output) -> String {
    assert!(output.status.success(), "eval failed:\n{}", text(&output.stderr));
    text(&output.stdout)
}

fn failure(output: &Output) -> String {
    assert!(!output.status.success(), "eval should fail; stdout:\n{}", text(&output.stdout));
    text(&output.stderr)
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(parquet_files(&path));
        } else if path.extension().is_some_and(|e| e == "parquet") {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn read_frame(path: &Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap()).finish().unwrap()
}

/// The printed top-1 error of `row` (e.g. "narrow/center"), in %.
fn printed_top1(stdout: &str, row: &str) -> f64 {
    let line =
        stdout.lines().find(|l| l.starts_with(&format!("{row} "))).unwrap_or_else(|| panic!("no row {row}:\n{stdout}"));
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

#[test]
fn eval_prints_the_table_and_stores_every_image() {
    let setup = Setup::new(1, SMALL_PROTOCOLS, "");
    let stdout = success(&setup.eval("store", &[]));
    println!("{stdout}");
    for row in ["narrow/center", "narrow/ten", "narrow/fcn", "narrow-v1/center", "ensemble/both"] {
        printed_top1(&stdout, row);
    }
    assert!(stdout.contains("McNemar"), "paired tests printed:\n{stdout}");
    // Six (model, protocol) results (the ensemble is not stored), each with every image.
    let files = parquet_files(&setup.store("store"));
    assert_eq!(files.len(), 6, "{files:?}");
    let center = files.iter().find(|f| f.to_string_lossy().contains("/narrow/center-")).unwrap();
    let frame = read_frame(center);
    assert_eq!(frame.height(), IMAGES.len());
    let probs = frame.column("probs").unwrap().list().unwrap().get_as_series(0).unwrap().len();
    assert_eq!(probs, 20, "one probability per class");
    // The printed error is the stored per-image outcomes' error.
    let labels: Vec<u32> = frame.column("label").unwrap().u32().unwrap().into_no_null_iter().collect();
    let lists = frame.column("top5_classes").unwrap().list().unwrap();
    let top: Vec<i64> =
        (0..lists.len()).map(|i| lists.get_as_series(i).unwrap().i64().unwrap().get(0).unwrap()).collect();
    let wrong = labels.iter().zip(&top).filter(|(l, t)| **l as i64 != **t).count();
    let stored = 100.0 * wrong as f64 / labels.len() as f64;
    assert!((printed_top1(&stdout, "narrow/center") - stored).abs() < 0.01, "printed vs stored {stored}");
}

#[test]
fn a_killed_eval_resumes_to_the_same_numbers() {
    let protocols = "  - {id: fcn, kind: fully-convolutional, scales: [224, 288], flips: true}\n";
    let setup = Setup::new(3, protocols, "run: {batch_size: 4, chunk_size: 2}\n");
    let straight = success(&setup.eval("straight", &["--model", "narrow"]));

    let mut child =
        setup.command("killed", &["--model", "narrow"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let parts =
        || parquet_files(&setup.store("killed")).iter().filter(|p| p.to_string_lossy().contains(".parts-")).count();
    let start = Instant::now();
    while parts() < 2 && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let finals =
        parquet_files(&setup.store("killed")).iter().filter(|p| !p.to_string_lossy().contains(".parts-")).count();
    assert_eq!(finals, 0, "the run finished before it was killed: make it longer");
    assert!(parts() >= 2, "no chunk was stored before the kill");

    let resumed = setup.eval("killed", &["--model", "narrow"]);
    let stderr = text(&resumed.stderr);
    assert!(stderr.contains("resuming"), "the second run should resume:\n{stderr}");
    assert_eq!(success(&resumed), straight, "same table as the uninterrupted run");
    let a = read_frame(&parquet_files(&setup.store("straight"))[0]);
    let b = read_frame(&parquet_files(&setup.store("killed"))[0]);
    assert!(a.equals_missing(&b), "same stored per-image results");
}

#[test]
fn an_ensemble_reads_its_members_from_the_store() {
    let setup = Setup::new(1, SMALL_PROTOCOLS, "");
    let first = success(&setup.eval("store", &["--protocol", "both"]));
    let again = setup.eval("store", &["--protocol", "both"]);
    let stderr = text(&again.stderr);
    assert!(!stderr.contains("images in"), "members were recomputed:\n{stderr}");
    assert_eq!(success(&again), first);
    assert_eq!(parquet_files(&setup.store("store")).len(), 2, "only the two members are stored");
}

#[test]
fn a_changed_protocol_never_reuses_an_old_file() {
    let setup = Setup::new(1, "  - {id: center, kind: center-crop, resize: {shorter-side: 72}, crop: 64}\n", "");
    success(&setup.eval("store", &["--model", "narrow"]));
    setup.write_experiment("  - {id: center, kind: center-crop, resize: {shorter-side: 72}, crop: 56}\n", "");
    let stderr = text(&setup.eval("store", &["--model", "narrow"]).stderr);
    assert!(stderr.contains("images in"), "a changed crop must be computed again:\n{stderr}");
    assert_eq!(parquet_files(&setup.store("store")).len(), 2, "old and new results side by side");
}

fn add_truncated_image(setup: &Setup) -> PathBuf {
    let bytes = std::fs::read(fixture("images/landscape_320x240.JPEG")).unwrap();
    let path = setup.dir.path().join("images/class00/zz_truncated.JPEG");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    path
}

#[test]
fn a_bad_image_stops_the_run_naming_it() {
    let setup = Setup::new(1, "  - {id: center, kind: center-crop, resize: {shorter-side: 72}, crop: 64}\n", "");
    let bad = add_truncated_image(&setup);
    let stderr = failure(&setup.eval("store", &["--model", "narrow"]));
    assert!(stderr.contains(&bad.display().to_string()), "{stderr}");
    assert!(stderr.contains("on_bad_image: skip"), "{stderr}");
}

#[test]
fn on_bad_image_skip_counts_and_lists_skipped_files() {
    let setup = Setup::new(
        1,
        "  - {id: center, kind: center-crop, resize: {shorter-side: 72}, crop: 64}\n",
        "on_bad_image: skip\n",
    );
    add_truncated_image(&setup);
    let stdout = success(&setup.eval("store", &["--model", "narrow"]));
    let row = stdout.lines().find(|l| l.starts_with("narrow/center ")).unwrap();
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!((fields[1], fields[2]), ("7", "1"), "7 scored, 1 skipped: {row}");
    assert!(stdout.contains("skipped by narrow/center:") && stdout.contains("class00/zz_truncated.JPEG"), "{stdout}");
}

#[test]
fn limit_takes_evenly_spaced_images() {
    let setup = Setup::new(1, "  - {id: center, kind: center-crop, resize: {shorter-side: 72}, crop: 64}\n", "");
    let stdout = success(&setup.eval("store", &["--model", "narrow", "--limit", "3"]));
    assert!(stdout.contains("(3 images evaluated)"), "{stdout}");
}

#[test]
fn unknown_ids_and_misspelt_fields_are_named() {
    let setup = Setup::new(1, SMALL_PROTOCOLS, "");
    let stderr = failure(&setup.eval("store", &["--model", "resnet50"]));
    assert!(stderr.contains("no model `resnet50`") && stderr.contains("narrow, narrow-v1"), "{stderr}");
    let stderr = failure(&setup.eval("store", &["--protocol", "five-crop"]));
    assert!(stderr.contains("no protocol `five-crop`"), "{stderr}");

    setup.write_experiment("  - {id: center, kind: center-crop, crop_size: 64}\n", "");
    let stderr = failure(&setup.eval("store", &[]));
    assert!(stderr.contains("experiment.yaml") && stderr.contains("crop_size"), "{stderr}");

    setup.write_experiment(
        "  - {id: e, kind: ensemble, members: [{model: narrow, protocol: nope}, {model: narrow, protocol: e}]}\n",
        "",
    );
    let stderr = failure(&setup.eval("store", &[]));
    assert!(stderr.contains("ensemble `e`: no protocol `nope`"), "{stderr}");
}

#[test]
fn cuda_without_the_feature_is_a_clear_error() {
    if cfg!(feature = "cuda") {
        return;
    }
    let setup = Setup::new(1, SMALL_PROTOCOLS, "");
    let stderr = failure(&setup.eval("store", &["--device", "cuda"]));
    assert!(stderr.contains("--features cuda"), "{stderr}");
}

#[test]
fn missing_weights_are_named() {
    let setup = Setup::new(1, SMALL_PROTOCOLS, "");
    let yaml = std::fs::read_to_string(setup.experiment()).unwrap().replace("protocol_r50_w8", "no_such_model");
    std::fs::write(setup.experiment(), yaml).unwrap();
    let stderr = failure(&setup.eval("store", &[]));
    assert!(stderr.contains("model `narrow`") && stderr.contains("no_such_model.safetensors"), "{stderr}");
}

/// Real photos (`RESNET_AUDIT_PHOTOS`, when set) through protocols (i) and (iii).
#[test]
fn real_photos_run_through_every_protocol_kind() {
    let Some(sample) = common::sample_photos() else {
        println!("skipped: RESNET_AUDIT_PHOTOS is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&sample)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".JPEG"))
        .collect();
    names.sort();
    let list: Vec<String> = names.iter().enumerate().map(|(i, n)| format!("{n} {}", i % 20)).collect();
    std::fs::write(dir.path().join("list.txt"), list.join("\n")).unwrap();
    let yaml = format!(
        "dataset: {{kind: list, root: {}, file: list.txt, classes: {{count: 20}}}}\n\
         models: [{{id: narrow, weights: {}, input: torchvision}}]\n\
         protocols:\n  - {{id: center, kind: center-crop}}\n  - {{id: fcn, kind: fully-convolutional, scales: [224, 288], pool: global}}\n",
        sample.display(),
        fixture("parity/protocol_r50_w8.safetensors").display()
    );
    std::fs::write(dir.path().join("real.yaml"), yaml).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_resnet-audit"))
        .args(["eval", "real.yaml", "--store", "store"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = success(&output);
    println!("{stdout}");
    for row in ["narrow/center", "narrow/fcn"] {
        let line = stdout.lines().find(|l| l.starts_with(&format!("{row} "))).unwrap();
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!((fields[1], fields[2]), (names.len().to_string().as_str(), "0"), "{line}");
    }
}

/// The narrow fixture model with every fc weight at f32::MAX: finite, so it passes any check of
/// the weights for NaN or infinity, but the logits overflow to infinity in the forward pass.
fn write_overflowing_weights(path: &Path) {
    let mut bytes = std::fs::read(fixture("parity/protocol_r50_w8.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let fc = &header["fc.weight"];
    assert_eq!(fc["dtype"], "F32");
    let offsets: Vec<usize> =
        fc["data_offsets"].as_array().unwrap().iter().map(|o| o.as_u64().unwrap() as usize).collect();
    let data = 8 + header_len;
    for value in bytes[data + offsets[0]..data + offsets[1]].chunks_exact_mut(4) {
        value.copy_from_slice(&f32::MAX.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn non_finite_logits_are_an_error_naming_the_image_and_the_model() {
    let setup = Setup::new(1, "  - {id: center, kind: center-crop, resize: {shorter-side: 72}, crop: 64}\n", "");
    let overflowing = setup.dir.path().join("overflowing.safetensors");
    write_overflowing_weights(&overflowing);
    let original = fixture("parity/protocol_r50_w8.safetensors").display().to_string();
    let yaml = std::fs::read_to_string(setup.experiment()).unwrap();
    std::fs::write(setup.experiment(), yaml.replace(&original, &overflowing.display().to_string())).unwrap();

    let stderr = failure(&setup.eval("store", &["--model", "narrow"]));
    assert!(stderr.contains("model `narrow`") && stderr.contains("non-finite logits"), "{stderr}");
    // The first image in the dataset's order is the one named (sorted: class00/0_cmyk_160x120.JPEG).
    let first = setup.dir.path().join("images/class00/0_cmyk_160x120.JPEG");
    assert!(stderr.contains(&first.display().to_string()), "the image is named:\n{stderr}");
    assert!(parquet_files(&setup.store("store")).is_empty(), "nothing was stored for the broken model");
}

/// The stored file of `model`'s `center` result.
fn center_file(setup: &Setup, store: &str, model: &str) -> PathBuf {
    let marker = format!("/{model}/center-");
    let files = parquet_files(&setup.store(store));
    files.into_iter().find(|f| f.to_string_lossy().contains(&marker)).unwrap_or_else(|| panic!("no {marker} file"))
}

fn set_aside_files(setup: &Setup, store: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![setup.store(store).join("set-aside")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// Runs `narrow/center` again after `damage` changed its stored file: the file must be set aside
/// (kept, and reported) and the result computed again, to the numbers of the first run.
fn assert_damaged_file_is_recomputed(damage: impl FnOnce(&Setup, &Path)) {
    let setup = Setup::new(1, "  - {id: center, kind: center-crop, resize: {shorter-side: 72}, crop: 64}\n", "");
    let first = success(&setup.eval("store", &["--model", "narrow"]));
    success(&setup.eval("store", &["--model", "narrow-v1"]));
    let file = center_file(&setup, "store", "narrow");
    damage(&setup, &file);

    let again = setup.eval("store", &["--model", "narrow"]);
    let stderr = text(&again.stderr);
    assert!(stderr.contains(&file.display().to_string()) && stderr.contains("cannot be used"), "reported:\n{stderr}");
    assert!(stderr.contains("images in"), "computed again:\n{stderr}");
    assert_eq!(success(&again), first, "the numbers of the first run");
    assert_eq!(set_aside_files(&setup, "store").len(), 1, "the damaged file is kept for inspection");
    let third = setup.eval("store", &["--model", "narrow"]);
    assert!(!text(&third.stderr).contains("images in"), "the recomputed file is used as it is");
}

#[test]
fn a_store_file_copied_over_another_models_is_set_aside_and_recomputed() {
    assert_damaged_file_is_recomputed(|setup, file| {
        std::fs::copy(center_file(setup, "store", "narrow-v1"), file).unwrap();
    });
}

#[test]
fn a_truncated_store_file_is_set_aside_and_recomputed() {
    assert_damaged_file_is_recomputed(|_, file| {
        let bytes = std::fs::read(file).unwrap();
        std::fs::write(file, &bytes[..bytes.len() / 2]).unwrap();
    });
}

/// Lines saying a result was computed (`<model>/<protocol>: N images in ...`).
fn computed_lines(stderr: &str) -> Vec<String> {
    stderr.lines().filter(|l| l.contains(" images in ")).map(str::to_string).collect()
}

#[test]
fn two_evals_on_one_store_compute_each_result_once() {
    let protocols = "  - {id: fcn, kind: fully-convolutional, scales: [224, 288], flips: true}\n";
    let setup = Setup::new(3, protocols, "run: {batch_size: 4, chunk_size: 2}\n");
    let spawn = || {
        setup.command("shared", &["--model", "narrow"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (table_a, table_b) = (success(&a), success(&b));
    assert_eq!(table_a, table_b, "both print the same table");
    let computed: Vec<String> =
        computed_lines(&text(&a.stderr)).into_iter().chain(computed_lines(&text(&b.stderr))).collect();
    assert_eq!(computed.len(), 1, "computed once, by one of them: {computed:?}");
    assert!(computed[0].contains(&format!("{} images in", 3 * IMAGES.len())), "all of it by one: {computed:?}");
    let locks: Vec<PathBuf> = std::fs::read_dir(setup.store("shared").join("narrow"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "lock"))
        .collect();
    assert!(locks.is_empty(), "locks are removed when released: {locks:?}");
}

#[test]
fn a_lock_left_by_a_dead_process_is_taken_over() {
    let setup = Setup::new(1, "  - {id: center, kind: center-crop, resize: {shorter-side: 72}, crop: 64}\n", "");
    let first = success(&setup.eval("store", &["--model", "narrow"]));
    // Leave the lock file a killed run leaves: this host, a process that no longer exists.
    let file = center_file(&setup, "store", "narrow");
    std::fs::remove_file(&file).unwrap();
    let mut ended = Command::new("true").spawn().unwrap();
    ended.wait().unwrap();
    let host = resnet_audit::fsio::host_name();
    std::fs::write(file.with_extension("lock"), format!("host {host} pid {}\n", ended.id())).unwrap();

    let again = setup.eval("store", &["--model", "narrow"]);
    let stderr = text(&again.stderr);
    assert!(stderr.contains("taking over the lock") && stderr.contains(&format!("pid {}", ended.id())), "{stderr}");
    assert_eq!(success(&again), first);
    assert!(!file.with_extension("lock").exists(), "the lock is released");
}
