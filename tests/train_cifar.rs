//! Training on CIFAR-10's binary batches, with a tiny fake CIFAR-10 folder (five training batches
//! of 20 images and a test batch of 20, each class its own colour): curves as CSV and Parquet
//! that agree, the per-seed summary, bit-exact reruns and resumes, the training-batch selection,
//! the errors for missing, truncated and unnamed data, and `--device cuda` in a CPU-only build.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{assert_same_weights, success};
use resnet_audit::train::resume::Resume;
use resnet_audit::train::run::{train_seed, EpochRow, Recipe};

const PLANE: usize = 32 * 32;
const RECORD: usize = 1 + 3 * PLANE;
const PER_BATCH: usize = 20;

/// An image of class `label`: the class's colour plus a little position- and index-dependent
/// texture, so that the classes are easy but the images are not all alike.
fn record(label: u8, index: usize) -> Vec<u8> {
    const COLOURS: [[u8; 3]; 10] = [
        [220, 30, 30],
        [30, 220, 30],
        [30, 30, 220],
        [220, 220, 30],
        [220, 30, 220],
        [30, 220, 220],
        [240, 240, 240],
        [20, 20, 20],
        [128, 64, 0],
        [0, 128, 128],
    ];
    let mut bytes = Vec::with_capacity(RECORD);
    bytes.push(label);
    for colour in COLOURS[label as usize] {
        bytes.extend((0..PLANE).map(|p| colour.saturating_add(((p * 7 + index * 31) % 24) as u8)));
    }
    bytes
}

fn batch_bytes(first: usize) -> Vec<u8> {
    (0..PER_BATCH).flat_map(|i| record((i % 10) as u8, first + i)).collect()
}

/// `dir/cifar-10-batches-bin/` with `data_batch_1.bin` … `data_batch_5.bin` and `test_batch.bin`.
fn fake_cifar(dir: &Path) -> PathBuf {
    let root = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&root).unwrap();
    for b in 1..=5 {
        std::fs::write(root.join(format!("data_batch_{b}.bin")), batch_bytes((b - 1) * PER_BATCH)).unwrap();
    }
    std::fs::write(root.join("test_batch.bin"), batch_bytes(5 * PER_BATCH)).unwrap();
    root
}

/// A CIFAR ResNet-8 (width 4) recipe; `data` is the YAML of the `data:` entry.
fn recipe_text(data: &str, epochs: u64) -> String {
    format!(
        "description: tiny fake CIFAR-10\n\
         data: {data}\n\
         model: {{family: cifar, depth: 8, base_width: 4, shortcut: A}}\n\
         input: torchvision\n\
         augment:\n  - {{kind: pad-crop, pad: 4, size: 32}}\n\
         val: {{resize: 32, crop: 32}}\n\
         optimizer: {{momentum: 0.9, nesterov: false, weight_decay: 1e-4, decay_scope: conv-and-fc-weights}}\n\
         schedule: {{kind: steps, base: 0.1, milestones: [10]}}\n\
         batch_size: 16\nepochs: {epochs}\nseed: 1\ncheckpoint_every: 3\n"
    )
}

fn write_recipe(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn parse(text: &str) -> Recipe {
    resnet_audit::yaml::parse(text, Path::new("recipe.yaml")).unwrap()
}

fn train_cli(recipe: &Path, out: &Path, cifar: Option<&Path>, extra: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_resnet-audit"));
    command.arg("train").arg(recipe).arg("--out").arg(out).args(extra);
    match cifar {
        Some(root) => command.env("CIFAR10", root),
        None => command.env_remove("CIFAR10"),
    };
    command.output().unwrap()
}

fn csv_curve(path: &Path) -> Vec<EpochRow> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("epoch,lr,train_loss,train_error,val_error"));
    lines
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            EpochRow {
                epoch: f[0].parse().unwrap(),
                lr: f[1].parse().unwrap(),
                train_loss: f[2].parse().unwrap(),
                train_error: f[3].parse().unwrap(),
                val_error: f[4].parse().unwrap(),
            }
        })
        .collect()
}

fn parquet_curve(path: &Path) -> Vec<EpochRow> {
    use polars::prelude::{ParquetReader, SerReader};
    let frame = ParquetReader::new(std::fs::File::open(path).unwrap()).finish().unwrap();
    let f64s = |name: &str| -> Vec<f64> { frame.column(name).unwrap().f64().unwrap().into_no_null_iter().collect() };
    let epochs: Vec<u64> = frame.column("epoch").unwrap().u64().unwrap().into_no_null_iter().collect();
    let (lr, loss, train, val) = (f64s("lr"), f64s("train_loss"), f64s("train_error"), f64s("val_error"));
    (0..frame.height())
        .map(|i| EpochRow {
            epoch: epochs[i],
            lr: lr[i],
            train_loss: loss[i],
            train_error: train[i],
            val_error: val[i],
        })
        .collect()
}

/// The `step` a checkpoint was written at, from its metadata.
fn checkpoint_step(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    header.metadata().as_ref().unwrap()["step"].parse().unwrap()
}

#[test]
fn cifar10_trains_with_matching_curves_a_summary_and_repeats_bit_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let root = fake_cifar(dir.path());
    let recipe = write_recipe(dir.path(), "cifar.yaml", &recipe_text("{kind: cifar10, root: \"${CIFAR10}\"}", 2));
    let stdout = success(train_cli(&recipe, &dir.path().join("a"), Some(&root), &["--seeds", "2"]));
    assert!(stdout.contains("over 2 seed(s):") && stdout.contains('±'), "{stdout}");

    for seed in [1, 2] {
        let run = dir.path().join(format!("a/seed-{seed}"));
        let csv = csv_curve(&run.join("curve.csv"));
        assert_eq!(csv.len(), 2, "one row per epoch");
        assert!(csv.iter().all(|r| r.train_loss.is_finite()), "{csv:?}");
        // Written from the same rows, read back exactly (CSV floats round-trip).
        assert_eq!(parquet_curve(&run.join("curve.parquet")), csv, "seed {seed}");
    }

    // The curves chart of both seeds (PNG that decodes, SVG naming the axes).
    let png = image::open(dir.path().join("a/curves.png")).unwrap();
    assert!(png.width() >= 800 && png.height() >= 400);
    let svg = std::fs::read_to_string(dir.path().join("a/curves.svg")).unwrap();
    assert!(svg.contains("epoch") && svg.contains("seed 1") && svg.contains("seed 2"));

    let summary = std::fs::read_to_string(dir.path().join("a/summary.csv")).unwrap();
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(lines[0], "seed,final_val_error,final_train_error,epochs,weights");
    assert_eq!(lines.len(), 1 + 2, "one row per seed:\n{summary}");
    for (line, seed) in lines[1..].iter().zip([1u64, 2]) {
        let f: Vec<&str> = line.split(',').collect();
        let last = csv_curve(&dir.path().join(format!("a/seed-{seed}/curve.csv"))).pop().unwrap();
        assert_eq!(f[0].parse::<u64>().unwrap(), seed);
        assert_eq!(f[1].parse::<f64>().unwrap(), last.val_error);
        assert_eq!(f[2].parse::<f64>().unwrap(), last.train_error);
        assert_eq!(f[3], "2");
        assert!(Path::new(f[4]).is_file(), "{line}");
    }

    // The same seed again: the same weights, bit for bit, and the same curve.
    success(train_cli(&recipe, &dir.path().join("b"), Some(&root), &[]));
    assert_same_weights(
        &dir.path().join("a/seed-1/weights.safetensors"),
        &dir.path().join("b/seed-1/weights.safetensors"),
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a/seed-1/curve.csv")).unwrap(),
        std::fs::read_to_string(dir.path().join("b/seed-1/curve.csv")).unwrap()
    );
}

/// One epoch, then a resumed second epoch, equals two epochs straight; and `train_batches`
/// selects the batches (the step count shows how many images an epoch had).
#[test]
fn cifar10_resumes_exactly_and_selects_training_batches() {
    let dir = tempfile::tempdir().unwrap();
    fake_cifar(dir.path());
    // The shell's default form, relative to the recipe's folder (`base`).
    let data = "{kind: cifar10, root: \"${RESNET_AUDIT_TEST_UNSET_CIFAR:-cifar-10-batches-bin}\"}";
    let straight = dir.path().join("straight");
    let run = train_seed(&parse(&recipe_text(data, 2)), dir.path(), 1, &straight, Resume::Fresh).unwrap();
    assert_eq!(run.curve.len(), 2);
    // 100 training images in batches of 16: 7 steps an epoch.
    assert_eq!(checkpoint_step(&straight.join("checkpoint.safetensors")), 14);

    let resumed = dir.path().join("resumed");
    train_seed(&parse(&recipe_text(data, 1)), dir.path(), 1, &resumed, Resume::Fresh).unwrap();
    let run = train_seed(&parse(&recipe_text(data, 2)), dir.path(), 1, &resumed, Resume::SameRecipe).unwrap();
    assert_eq!(run.curve.len(), 2);
    assert_same_weights(&straight.join("weights.safetensors"), &resumed.join("weights.safetensors"));
    for file in ["curve.csv", "curve.parquet"] {
        assert_eq!(std::fs::read(straight.join(file)).unwrap(), std::fs::read(resumed.join(file)).unwrap(), "{file}");
    }

    let subset = "{kind: cifar10, root: cifar-10-batches-bin, train_batches: [4, 2]}";
    let selected = dir.path().join("selected");
    train_seed(&parse(&recipe_text(subset, 1)), dir.path(), 1, &selected, Resume::Fresh).unwrap();
    // 40 images in batches of 16: 3 steps.
    assert_eq!(checkpoint_step(&selected.join("checkpoint.safetensors")), 3);
}

#[test]
fn cifar10_errors_name_the_file_or_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let root = fake_cifar(dir.path());
    let train = |data: &str| {
        let out = dir.path().join("out");
        train_seed(&parse(&recipe_text(data, 1)), dir.path(), 1, &out, Resume::Fresh).unwrap_err().to_string()
    };
    let at_root = format!("{{kind: cifar10, root: \"{}\"}}", root.display());

    std::fs::remove_file(root.join("data_batch_4.bin")).unwrap();
    let err = train(&at_root);
    assert!(
        err.contains("data_batch_4.bin")
            && err.contains("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz")
            && err.contains("CIFAR10"),
        "{err}"
    );
    std::fs::write(root.join("data_batch_4.bin"), batch_bytes(0)).unwrap();

    let truncated = 3 * RECORD + 100;
    std::fs::write(root.join("data_batch_2.bin"), &batch_bytes(0)[..truncated]).unwrap();
    let err = train(&at_root);
    assert!(err.contains("data_batch_2.bin") && err.contains(&format!("{truncated} bytes")), "{err}");
    std::fs::write(root.join("data_batch_2.bin"), batch_bytes(0)).unwrap();

    let err = train("{kind: cifar10, root: \"${RESNET_AUDIT_TEST_NEVER_SET_CIFAR}\"}");
    assert!(err.contains("set RESNET_AUDIT_TEST_NEVER_SET_CIFAR=/path/to/cifar-10-batches-bin"), "{err}");
    let err = train(&format!("{{kind: cifar10, root: \"{}\", train_batches: [0, 1]}}", root.display()));
    assert!(err.contains("train_batches"), "{err}");

    // Through the binary, with CIFAR10 itself unset.
    let recipe = write_recipe(dir.path(), "cifar.yaml", &recipe_text("{kind: cifar10, root: \"${CIFAR10}\"}", 1));
    let output = train_cli(&recipe, &dir.path().join("cli"), None, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("set CIFAR10=/path/to/cifar-10-batches-bin"), "{stderr}");
}

#[test]
fn device_cuda_in_a_cpu_build_is_a_clean_error() {
    if cfg!(feature = "cuda") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = fake_cifar(dir.path());
    let recipe = write_recipe(dir.path(), "cifar.yaml", &recipe_text("{kind: cifar10, root: \"${CIFAR10}\"}", 1));
    let output = train_cli(&recipe, &dir.path().join("out"), Some(&root), &["--device", "cuda"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("--features cuda") && !stderr.contains("panicked"), "{stderr}");
}
