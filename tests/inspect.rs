//! `inspect` detects architectures from tensor names and shapes, and counts like PyTorch.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use common::{fixture, parity_file};
use resnet_audit::inspect::{inspect, StrideEvidence};
use resnet_audit::model::complexity::parameter_count;
use resnet_audit::model::{CifarShortcut, ResNetConfig, StridePlacement, Topology};
use resnet_audit::weights::{tensor_specs, WeightsFile};

/// PyTorch's `sum(p.numel() for p in model.parameters())`, recorded by fixtures/generate.py.
fn pytorch_parameters(file: &WeightsFile) -> u64 {
    file.metadata["parameters"].parse().unwrap()
}

#[test]
fn fixtures_are_recognised() {
    let cases = [
        ("resnet18_w8", ResNetConfig::imagenet(18, 17).with_base_width(8), StrideEvidence::NotApplicable),
        (
            "resnet50_w8",
            ResNetConfig::imagenet(50, 100).with_base_width(8),
            StrideEvidence::Metadata(StridePlacement::V1_5),
        ),
        ("cifar_resnet20_a", ResNetConfig::cifar(20, CifarShortcut::A, 10), StrideEvidence::NotApplicable),
    ];
    for (name, config, stride) in cases {
        let file = parity_file(name);
        let found = inspect(&file).unwrap();
        assert_eq!(found.config, config, "{name}");
        assert_eq!(found.stride, stride, "{name}");
        assert_eq!(found.parameters, pytorch_parameters(&file), "{name}: parameters from the file");
        assert_eq!(parameter_count(&config), pytorch_parameters(&file), "{name}: parameters from the config");
    }
}

/// A full-size ResNet-50 (zeros), written in a temp dir: 25,557,032 parameters as torchvision
/// counts them, and the stride cannot be told from the tensors.
#[test]
fn full_size_resnet50_counts_match_torchvision() {
    let config = ResNetConfig::imagenet(50, 1000);
    let tensors: HashMap<String, Tensor> = tensor_specs(&config)
        .unwrap()
        .into_iter()
        .map(|spec| (spec.name, Tensor::zeros(spec.shape, DType::F16, &Device::Cpu).unwrap()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resnet50.safetensors");
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let found = inspect(&WeightsFile::read(&path).unwrap()).unwrap();
    assert!(matches!(found.config.topology, Topology::Imagenet { depth: 50, .. }));
    assert_eq!(found.config.num_classes, 1000);
    assert_eq!(found.parameters, 25_557_032);
    assert_eq!(found.stride, StrideEvidence::Unknown);
    let table = found.to_string();
    println!("{table}");
    assert!(table.contains("25,557,032"), "{table}");
    assert!(table.contains("4.089 G (v1.5), 3.858 G (v1)"), "{table}");
    assert!(table.contains("unknown: v1 (stride on the first 1x1) and v1.5 (on the 3x3) have identical tensors"));
}

/// `resnet-audit inspect` on a fixture file, as a user runs it.
fn run_inspect(fixture_path: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_resnet-audit"))
        .args(["inspect", fixture(fixture_path).to_str().unwrap()])
        .output()
        .unwrap()
}

#[test]
fn the_command_prints_the_table() {
    let out = run_inspect("parity/resnet50_w8.safetensors");
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    for row in ["depth                   50", "classes                 100", "parameters              399,852"] {
        assert!(stdout.contains(row), "{row:?} not in\n{stdout}");
    }
}

#[test]
fn the_command_reports_bad_input_without_panicking() {
    let out = run_inspect("parity/inputs.safetensors");
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("inputs.safetensors: no `conv1.weight` tensor"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
