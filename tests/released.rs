//! The real released CIFAR-10 ResNet-20 (akamaster/pytorch_resnet_cifar10), read as released
//! (a legacy `torch.save` checkpoint), against the release's own PyTorch model on the first
//! 846 CIFAR-10 test images (`fixtures/generate_released.py`): per-image logits to 1e-4 on
//! both backends, the same errors, and option A-split mattering. Then `eval` end to end on
//! `experiments/cifar10-released.yaml`: the file converted once into the store and reused.

mod common;

use std::path::Path;
use std::process::Command;

use candle_core::{Device, Tensor};
use common::fixture;
use resnet_audit::import::convert::convert;
use resnet_audit::import::WeightsFormat;
use resnet_audit::inspect::inspect;
use resnet_audit::model::{Backend, BuildOptions, CifarShortcut, ResNetConfig, Topology};
use resnet_audit::weights::{encode_safetensors, load_resnet, LoadOptions, WeightsFile};

const WEIGHTS: &str = "released/resnet20-12fca82f.th";
const BATCH: &str = "released/cifar10-test-first846/test_batch.bin";
const REFERENCE: &str = "released/resnet20-first846.expected.safetensors";

/// The checkpoint converted in memory, as `eval` converts it.
fn converted() -> WeightsFile {
    let path = fixture(WEIGHTS);
    let converted = convert(&path).unwrap_or_else(|e| panic!("{e}"));
    let bytes = encode_safetensors(&path, &converted.tensors, &converted.provenance.to_metadata()).unwrap();
    WeightsFile::from_bytes(&path, &bytes).unwrap()
}

/// The batch as the release's validation transform gives it: RGB planes / 255, minus
/// torchvision's mean, over its std. Written out here, apart from the harness's normalizer.
fn images_and_labels() -> (Tensor, Vec<usize>) {
    const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
    const STD: [f32; 3] = [0.229, 0.224, 0.225];
    let bytes = std::fs::read(fixture(BATCH)).unwrap();
    let records: Vec<&[u8]> = bytes.chunks_exact(3073).collect();
    let mut pixels = Vec::with_capacity(records.len() * 3072);
    for record in &records {
        for (i, &value) in record[1..].iter().enumerate() {
            let channel = i / 1024;
            pixels.push((f32::from(value) / 255.0 - MEAN[channel]) / STD[channel]);
        }
    }
    let images = Tensor::from_vec(pixels, (records.len(), 3, 32, 32), &Device::Cpu).unwrap();
    (images, records.iter().map(|r| usize::from(r[0])).collect())
}

fn logits(file: &WeightsFile, config: &ResNetConfig, backend: Backend) -> Vec<Vec<f32>> {
    let options = LoadOptions { build: BuildOptions { backend, ..BuildOptions::default() }, ..LoadOptions::default() };
    let model = load_resnet(file, config, &options).unwrap_or_else(|e| panic!("{e}"));
    let (images, _) = images_and_labels();
    model.forward(&images).unwrap().to_vec2().unwrap()
}

fn reference() -> (Vec<Vec<f32>>, usize) {
    let file = WeightsFile::read(&fixture(REFERENCE)).expect("committed fixture");
    let logits = file.tensors["logits"].tensor.as_ref().unwrap().to_vec2().unwrap();
    let errors = file.metadata["errors"].parse().unwrap();
    (logits, errors)
}

fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap()
}

fn max_difference(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn the_checkpoint_is_recognised_by_content() {
    assert_eq!(WeightsFormat::detect(&fixture(WEIGHTS)).unwrap(), WeightsFormat::PytorchLegacy);
}

#[test]
fn the_conversion_records_a_split_option_a_and_what_it_inferred() {
    let file = converted();
    let provenance = file.provenance().unwrap();
    assert_eq!(provenance.cifar_shortcut, Some(CifarShortcut::ASplit));
    assert!(provenance.inferred.iter().any(|n| n.contains("linear")), "{:?}", provenance.inferred);
    assert!(file.metadata["source_sha256"].starts_with("12fca82f"), "the name's hash prefix");
    let inspection = inspect(&file).unwrap();
    assert_eq!(inspection.config, ResNetConfig::cifar(20, CifarShortcut::ASplit, 10));
}

#[test]
fn per_image_logits_match_the_release_s_own_pytorch_model() {
    let file = converted();
    let config = inspect(&file).unwrap().config;
    let (expected, expected_errors) = reference();
    let (_, labels) = images_and_labels();
    for backend in [Backend::Fast, Backend::Candle] {
        let ours = logits(&file, &config, backend);
        let worst = max_difference(&ours, &expected);
        assert!(worst <= 1e-4, "{backend:?}: max |Δ logit| {worst:e} > 1e-4");
        let errors = ours.iter().zip(&labels).filter(|(row, &label)| argmax(row) != label).count();
        assert_eq!(errors, expected_errors, "{backend:?}: errors in {} images", labels.len());
    }
}

#[test]
fn appending_the_zero_channels_instead_changes_the_logits() {
    // fb.resnet.torch's option A on these weights: same tensors, a different model.
    let file = converted();
    let appended = ResNetConfig::cifar(20, CifarShortcut::A, 10);
    assert!(matches!(appended.topology, Topology::Cifar { shortcut: CifarShortcut::A, .. }));
    let (expected, _) = reference();
    for backend in [Backend::Fast, Backend::Candle] {
        let worst = max_difference(&logits(&file, &appended, backend), &expected);
        assert!(worst > 0.1, "{backend:?}: option A and A-split agree to {worst:e}");
    }
}

fn eval(store: &Path) -> String {
    let experiment = fixture("../experiments/cifar10-released.yaml");
    let output = Command::new(env!("CARGO_BIN_EXE_resnet-audit"))
        .args(["eval", experiment.to_str().unwrap(), "--store", store.to_str().unwrap()])
        .env_remove("CIFAR10")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    text
}

#[test]
fn eval_reads_the_release_as_released_and_converts_it_once() {
    let store = tempfile::tempdir().unwrap();
    let (_, expected_errors) = reference();
    let expected = format!("{:.2}", 100.0 * expected_errors as f64 / 846.0);
    let first = eval(store.path());
    let rows: Vec<&str> = first.lines().filter(|l| l.starts_with("akamaster-resnet20/") && l.contains(" [")).collect();
    assert_eq!(rows.len(), 2, "{first}");
    for row in rows {
        assert!(row.contains(" 846 ") && row.contains(&expected), "{row}");
    }
    let cached: Vec<_> =
        std::fs::read_dir(store.path().join("converted")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert!(cached[0].file_name().unwrap().to_str().unwrap().starts_with("12fca82f"));
    let written = std::fs::metadata(&cached[0]).unwrap().modified().unwrap();
    // A fresh store for results, the same converted copy: read, not rewritten.
    for entry in std::fs::read_dir(store.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() != "converted" {
            std::fs::remove_dir_all(&path).unwrap();
        }
    }
    let second = eval(store.path());
    assert!(second.contains(&expected), "{second}");
    assert_eq!(std::fs::metadata(&cached[0]).unwrap().modified().unwrap(), written);
}
