//! Every way a weights file can be wrong gives an error that names the file and the tensor.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use common::{fixture, parity_file};
use resnet_audit::model::ResNetConfig;
use resnet_audit::weights::{load_resnet, LoadOptions, WeightsError, WeightsFile, WeightsSource};

fn resnet18() -> ResNetConfig {
    ResNetConfig::imagenet(18, 17).with_base_width(8)
}

/// The float tensors of the ResNet-18 fixture (num_batches_tracked, int64, dropped).
fn resnet18_tensors() -> HashMap<String, Tensor> {
    parity_file("resnet18_w8").tensors.into_iter().filter_map(|(name, t)| t.tensor.map(|t| (name, t))).collect()
}

fn write(dir: &Path, name: &str, tensors: &HashMap<String, Tensor>) -> PathBuf {
    let path = dir.join(name);
    candle_core::safetensors::save(tensors, &path).unwrap();
    path
}

/// Loads `path` as the ResNet-18 fixture architecture and returns the error message.
fn load_error(path: &Path, config: &ResNetConfig) -> String {
    let err = WeightsFile::read(path)
        .and_then(|file| load_resnet(&file, config, &LoadOptions::default()).map(|_| ()))
        .expect_err("loading should fail");
    let message = err.to_string();
    println!("{message}");
    assert!(message.contains(&path.display().to_string()), "message must name the file: {message}");
    message
}

/// The load error for the ResNet-18 fixture after `edit` changes its tensors.
fn error_after(edit: impl FnOnce(&mut HashMap<String, Tensor>)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut tensors = resnet18_tensors();
    edit(&mut tensors);
    load_error(&write(dir.path(), "edited.safetensors", &tensors), &resnet18())
}

#[test]
fn missing_tensor_is_named_with_its_expected_shape() {
    let message = error_after(|tensors| {
        tensors.remove("layer3.1.bn2.running_var");
    });
    assert!(message.contains("missing tensor `layer3.1.bn2.running_var` (expected shape [32])"), "{message}");
    assert!(message.contains("1 problem"), "{message}");
}

#[test]
fn unexpected_tensors_are_all_listed() {
    let message = error_after(|tensors| {
        let extra = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
        tensors.insert("head.extra.weight".into(), extra.clone());
        tensors.insert("aux_logits.bias".into(), extra);
    });
    assert!(message.contains("2 unexpected tensor(s): `aux_logits.bias`, `head.extra.weight`"), "{message}");
}

#[test]
fn shape_mismatch_says_expected_and_found() {
    let message = error_after(|tensors| {
        tensors.insert("layer2.0.conv1.weight".into(), Tensor::zeros((16, 8, 1, 1), DType::F32, &Device::Cpu).unwrap());
    });
    assert!(
        message.contains("tensor `layer2.0.conv1.weight`: expected shape [16, 8, 3, 3], found [16, 8, 1, 1]"),
        "{message}"
    );
}

#[test]
fn a_checkpoint_with_more_classes_is_not_silently_sliced() {
    // The fixture has 17 classes; asking for 10 must fail on fc, not take the first 10 rows.
    let message =
        load_error(&fixture("parity/resnet18_w8.safetensors"), &ResNetConfig::imagenet(18, 10).with_base_width(8));
    assert!(message.contains("tensor `fc.weight`: expected shape [10, 64], found [17, 64]"), "{message}");
    assert!(message.contains("the file has 17 classes, the model is configured for 10"), "{message}");
    assert!(message.contains("tensor `fc.bias`: expected shape [10], found [17]"), "{message}");
}

#[test]
fn unsupported_dtype_is_named() {
    let message = error_after(|tensors| {
        let bias = tensors["fc.bias"].to_dtype(DType::F64).unwrap();
        tensors.insert("fc.bias".into(), bias);
    });
    assert!(message.contains("tensor `fc.bias` is stored as f64; expected f32, f16 or bf16"), "{message}");
}

#[test]
fn truncated_file_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("parity/resnet18_w8.safetensors")).unwrap();
    let path = dir.path().join("truncated.safetensors");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let message = load_error(&path, &resnet18());
    assert!(message.contains("not a readable safetensors file: truncated or corrupt"), "{message}");
}

#[test]
fn a_file_of_another_format_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.pth");
    // A PyTorch zip checkpoint starts with the zip magic: named as one, with how to use it.
    std::fs::write(&path, b"PK\x03\x04\x14\x00\x00\x00\x08\x00archive/data.pkl....").unwrap();
    let message = load_error(&path, &resnet18());
    assert!(message.contains("a PyTorch checkpoint (zip)") && message.contains("resnet-audit convert"), "{message}");
    let tiny = dir.path().join("tiny.safetensors");
    std::fs::write(&tiny, b"abc").unwrap();
    assert!(load_error(&tiny, &resnet18()).contains("only 3 bytes, too short for a safetensors header"));
}

#[test]
fn a_missing_file_is_named() {
    let err =
        WeightsSource::parse("no/such/weights.safetensors").unwrap().resolve(&hub_offline(Path::new("/nonexistent")));
    let message = err.unwrap_err().to_string();
    assert!(message.contains("no/such/weights.safetensors"), "{message}");
}

#[test]
fn several_problems_are_reported_together() {
    let message = error_after(|tensors| {
        tensors.remove("conv1.weight");
        tensors.insert("stray".into(), Tensor::zeros(1, DType::F32, &Device::Cpu).unwrap());
    });
    assert!(message.contains("(2 problems)"), "{message}");
    assert!(message.contains("missing tensor `conv1.weight`") && message.contains("`stray`"), "{message}");
}

fn hub_offline(cache: &Path) -> resnet_audit::weights::HubSettings {
    resnet_audit::weights::HubSettings::offline_at(cache)
}

#[test]
fn read_errors_are_typed() {
    // Library callers can match on the kind of failure, not only read the message.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.safetensors");
    std::fs::write(&path, b"abc").unwrap();
    assert!(matches!(WeightsFile::read(&path), Err(WeightsError::NotSafetensors { .. })));
}

/// A diverged training run's weights: NaN, infinities and a negative running variance are each
/// named with the file and tensor, instead of evaluating to chance-level numbers.
#[test]
fn non_finite_values_and_negative_variances_are_named() {
    let message = error_after(|tensors| {
        let mut values: Vec<f32> = tensors["layer2.0.conv1.weight"].flatten_all().unwrap().to_vec1().unwrap();
        values[5] = f32::NAN;
        values[9] = f32::INFINITY;
        let shape = tensors["layer2.0.conv1.weight"].dims().to_vec();
        tensors.insert("layer2.0.conv1.weight".into(), Tensor::from_vec(values, shape, &Device::Cpu).unwrap());
        let var = (tensors["bn1.running_var"].clone() * -1.0).unwrap();
        tensors.insert("bn1.running_var".into(), var);
    });
    assert!(message.contains("holds values no model can compute with (2 tensors)"), "{message}");
    assert!(
        message.contains("tensor `layer2.0.conv1.weight`: 2 NaN or infinite value(s), the first at index 5"),
        "{message}"
    );
    assert!(message.contains("tensor `bn1.running_var`: 8 negative running variance(s)"), "{message}");
}

#[test]
fn a_caffemodel_given_as_weights_says_how_to_convert_it() {
    let message = load_error(&fixture("parity/caffe_r50_w8.caffemodel"), &resnet18());
    assert!(message.contains("a Caffe .caffemodel") && message.contains("resnet-audit convert caffe"), "{message}");
}
