//! Caffe import against an independent emulation: fixtures/generate_caffe.py writes narrow
//! Caffe ResNets (current and legacy encodings, BN with a non-unit scale factor) and computes
//! their logits with a PyTorch model written to Caffe's semantics (stride on the first 1x1,
//! unpadded ceil-mode pool1, BatchNorm/Scale split).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_close, fixture, parity_file, tensor};
use prost::Message;
use resnet_audit::import::caffe::proto::{BlobProto, BlobShape, LayerParameter, NetParameter};
use resnet_audit::import::caffe::{read_mean, CaffeModel};
use resnet_audit::inspect::inspect;
use resnet_audit::model::{StemPool, StridePlacement, Topology};
use resnet_audit::weights::{load_resnet, InputConvention, LoadOptions, Origin, SourceFormat, WeightsFile};

fn convert(model: &str, dir: &Path) -> PathBuf {
    let out = dir.join(format!("{model}.safetensors"));
    CaffeModel::read(&fixture(&format!("parity/{model}.caffemodel")))
        .expect("fixture converts")
        .write_safetensors(&out, None)
        .expect("writes");
    out
}

fn logits(weights: &Path, input: &str, expected: &WeightsFile) -> candle_core::Tensor {
    let file = WeightsFile::read(weights).unwrap();
    let config = inspect(&file).unwrap().config;
    let model = load_resnet(&file, &config, &LoadOptions::default()).unwrap();
    model.forward(&tensor(expected, input)).unwrap()
}

#[test]
fn converted_tensors_equal_the_reference_conversion() {
    let dir = tempfile::tempdir().unwrap();
    let ours = WeightsFile::read(&convert("caffe_r50_w8", dir.path())).unwrap();
    let reference = parity_file("caffe_r50_w8.torchvision");
    let names: Vec<&String> = ours.tensors.keys().collect();
    let wanted: Vec<&String> = reference.tensors.keys().filter(|k| !k.ends_with("num_batches_tracked")).collect();
    assert_eq!(names, wanted, "tensor names");
    for name in names {
        assert_close(&tensor(&ours, name), &tensor(&reference, name), 1e-6, name);
    }
    let config = inspect(&ours).unwrap().config;
    assert_eq!(
        config.topology,
        Topology::Imagenet { depth: 50, stride: StridePlacement::V1, stem_pool: StemPool::Caffe }
    );
    assert_eq!(ours.metadata.get("source_sha256").map(String::len), Some(64));
    let provenance = ours.provenance().unwrap();
    assert!(matches!(provenance.origin, Some(Origin::Converted { format: SourceFormat::Caffe, .. })), "{provenance:?}");
    assert_eq!(provenance.input, Some(InputConvention::CaffeMeanImage));
}

#[test]
fn resnet50_logits_match_the_caffe_semantics_reference() {
    let dir = tempfile::tempdir().unwrap();
    let weights = convert("caffe_r50_w8", dir.path());
    let expected = parity_file("caffe_r50_w8.expected");
    assert_close(&logits(&weights, "x224", &expected), &tensor(&expected, "logits_x224"), 1e-4, "caffe r50 @224");
    assert_close(&logits(&weights, "x64", &expected), &tensor(&expected, "logits_x64_global"), 1e-4, "caffe r50 @64");
}

#[test]
fn resnet101_topology_converts_and_matches() {
    let dir = tempfile::tempdir().unwrap();
    let weights = convert("caffe_r101_w4", dir.path());
    let inputs = parity_file("caffe_r50_w8.expected"); // the inputs are stored once
    let expected = parity_file("caffe_r101_w4.expected");
    assert_close(&logits(&weights, "x224", &inputs), &tensor(&expected, "logits_x224"), 1e-4, "caffe r101 @224");
}

#[test]
fn the_legacy_layers_encoding_gives_the_same_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let current = WeightsFile::read(&convert("caffe_r50_w8", dir.path())).unwrap();
    let legacy = WeightsFile::read(&convert("caffe_r50_w8_legacy", dir.path())).unwrap();
    assert_eq!(current.tensors.len(), legacy.tensors.len());
    for name in current.tensors.keys() {
        assert_close(&tensor(&legacy, name), &tensor(&current, name), 0.0, name);
    }
}

#[test]
fn the_mean_binaryproto_becomes_a_mean_image() {
    let mean = read_mean(&fixture("parity/caffe_mean_64.binaryproto")).unwrap();
    assert_eq!(mean.shape, vec![3, 64, 64]);
    let blue: f32 = mean.data[..64 * 64].iter().sum::<f32>() / 4096.0;
    assert!((blue - 104.0).abs() < 10.0, "BGR order kept: channel 0 is blue, mean {blue}");
}

fn bytes_of(model: &str) -> Vec<u8> {
    std::fs::read(fixture(&format!("parity/{model}.caffemodel"))).unwrap()
}

fn write_net(dir: &Path, net: &NetParameter) -> PathBuf {
    let path = dir.join("edited.caffemodel");
    std::fs::write(&path, net.encode_to_vec()).unwrap();
    path
}

fn error_of(path: &Path) -> String {
    match CaffeModel::read(path).and_then(|m| m.tensors().map(|_| ())) {
        Ok(()) => panic!("{} should not convert", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_file_that_is_not_a_caffemodel_is_named() {
    let err = error_of(&fixture("parity/resnet18_w8.safetensors"));
    assert!(err.contains("resnet18_w8.safetensors is not a Caffe model"), "{err}");
}

#[test]
fn a_missing_scale_layer_names_the_batchnorm() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = NetParameter::decode(bytes_of("caffe_r50_w8").as_slice()).unwrap();
    net.layer.retain(|l| l.name.as_deref() != Some("scale3b_branch2b"));
    let err = error_of(&write_net(dir.path(), &net));
    assert!(err.contains("`bn3b_branch2b` has no Scale layer `scale3b_branch2b`"), "{err}");
}

#[test]
fn a_wrong_blob_shape_names_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = NetParameter::decode(bytes_of("caffe_r50_w8").as_slice()).unwrap();
    let layer = net.layer.iter_mut().find(|l| l.name.as_deref() == Some("res4c_branch2b")).unwrap();
    let blob = &mut layer.blobs[0];
    let dims = &mut blob.shape.as_mut().unwrap().dim;
    // Same number of values, different shape: [out, in, 3, 3] → [out, in, 1, 9].
    dims[2] = 1;
    dims[3] = 9;
    let err = error_of(&write_net(dir.path(), &net));
    assert!(err.contains("layer `res4c_branch2b`") && err.contains("expected"), "{err}");
}

#[test]
fn missing_stages_are_not_a_resnet() {
    let dir = tempfile::tempdir().unwrap();
    let mut net = NetParameter::decode(bytes_of("caffe_r50_w8").as_slice()).unwrap();
    net.layer.retain(|l| !l.name.as_deref().unwrap_or_default().contains("res5c"));
    let err = error_of(&write_net(dir.path(), &net));
    assert!(err.contains("not a bottleneck ResNet") && err.contains("[3, 4, 6, 2]"), "{err}");
}

/// A full-size ResNet-50 in the release's layout (names written here from the prototxt's
/// conventions, not from the converter), random blobs: converts and runs at 224.
#[test]
fn a_full_size_resnet50_caffemodel_converts_and_runs() {
    let blob = |shape: &[usize], value: f32| BlobProto {
        shape: Some(BlobShape { dim: shape.iter().map(|&d| d as i64).collect() }),
        data: (0..shape.iter().product::<usize>()).map(|i| value * (((i * 7919) % 13) as f32 - 6.0) / 6.0).collect(),
        ..Default::default()
    };
    let constant = |shape: &[usize], value: f32| BlobProto {
        shape: Some(BlobShape { dim: shape.iter().map(|&d| d as i64).collect() }),
        data: vec![value; shape.iter().product()],
        ..Default::default()
    };
    let layer = |name: String, kind: &str, blobs: Vec<BlobProto>| LayerParameter {
        name: Some(name),
        r#type: Some(kind.to_string()),
        blobs,
        ..Default::default()
    };
    let mut layers = Vec::new();
    let mut conv_bn = |name: &str, bn: &str, out: usize, inp: usize, k: usize, fan: f32| {
        layers.push(layer(name.to_string(), "Convolution", vec![blob(&[out, inp, k, k], (2.0 / fan).sqrt())]));
        let statistics = vec![constant(&[out], 0.0), constant(&[out], 1.0), constant(&[1], 1.0)];
        layers.push(layer(bn.to_string(), "BatchNorm", statistics));
        layers.push(layer(bn.replacen("bn", "scale", 1), "Scale", vec![constant(&[out], 1.0), constant(&[out], 0.0)]));
    };
    conv_bn("conv1", "bn_conv1", 64, 3, 7, 147.0);
    let mut inp = 64;
    for (stage, (blocks, width)) in [(3, 64), (4, 128), (6, 256), (3, 512)].into_iter().enumerate() {
        for b in 0..blocks {
            let name = format!("{}{}", stage + 2, (b'a' + b as u8) as char);
            if b == 0 {
                conv_bn(&format!("res{name}_branch1"), &format!("bn{name}_branch1"), width * 4, inp, 1, inp as f32);
            }
            conv_bn(&format!("res{name}_branch2a"), &format!("bn{name}_branch2a"), width, inp, 1, inp as f32);
            conv_bn(&format!("res{name}_branch2b"), &format!("bn{name}_branch2b"), width, width, 3, 9.0 * width as f32);
            conv_bn(&format!("res{name}_branch2c"), &format!("bn{name}_branch2c"), width * 4, width, 1, width as f32);
            inp = width * 4;
        }
    }
    layers.push(layer("fc1000".into(), "InnerProduct", vec![blob(&[1000, 2048], 0.01), blob(&[1000], 0.0)]));
    let dir = tempfile::tempdir().unwrap();
    let path = write_net(dir.path(), &NetParameter { name: Some("ResNet-50".into()), layer: layers, layers: vec![] });
    let out = dir.path().join("resnet50.safetensors");
    let model = CaffeModel::read(&path).unwrap();
    assert_eq!(model.config.depth(), 50);
    model.write_safetensors(&out, None).unwrap();
    let file = WeightsFile::read(&out).unwrap();
    let inspection = inspect(&file).unwrap();
    assert_eq!(inspection.parameters, 25_557_032, "a full-size ResNet-50");
    let resnet = load_resnet(&file, &inspection.config, &LoadOptions::default()).unwrap();
    let x = candle_core::Tensor::zeros((1, 3, 224, 224), candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
    assert_eq!(resnet.forward(&x).unwrap().dims(), &[1, 1000]);
}

#[test]
fn the_cli_converts_with_the_mean_and_inspects_caffemodels() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r50.safetensors");
    let bin = env!("CARGO_BIN_EXE_resnet-audit");
    let status = Command::new(bin)
        .args(["convert", "caffe"])
        .arg(fixture("parity/caffe_r50_w8.caffemodel"))
        .arg("--mean")
        .arg(fixture("parity/caffe_mean_64.binaryproto"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let mean = WeightsFile::read(&dir.path().join("r50_mean.safetensors")).unwrap();
    assert_eq!(mean.tensors["mean"].shape, vec![3, 64, 64]);
    let listing = Command::new(bin).arg("inspect").arg(fixture("parity/caffe_r50_w8.caffemodel")).output().unwrap();
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(
        text.contains("Caffe ResNet-50") && text.contains("bn2a_branch2a") && text.contains("parameters"),
        "{text}"
    );
    // The content decides the reader, not the name.
    let renamed = dir.path().join("weights.bin");
    std::fs::copy(fixture("parity/caffe_r50_w8.caffemodel"), &renamed).unwrap();
    let listing = Command::new(bin).arg("inspect").arg(&renamed).output().unwrap();
    assert!(String::from_utf8_lossy(&listing.stdout).contains("Caffe ResNet-50"), "{listing:?}");
}

/// A converted Caffe model through `eval`: the mean image applies per pixel to views of its size
/// and per channel to other sizes, and the table says so; a model with an `obtain` recipe whose
/// weights are absent is listed as not run with the recipe.
#[test]
fn converted_models_run_in_eval_and_absent_ones_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_resnet-audit");
    let converted = Command::new(bin)
        .args(["convert", "caffe"])
        .arg(fixture("parity/caffe_r50_w8.caffemodel"))
        .arg("--mean")
        .arg(fixture("parity/caffe_mean_64.binaryproto"))
        .args(["--out", "r50.safetensors"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(converted.status.success(), "{}", String::from_utf8_lossy(&converted.stderr));
    let list: Vec<String> = common::IMAGES.iter().enumerate().map(|(i, n)| format!("{n} {i}")).collect();
    std::fs::write(dir.path().join("list.txt"), list.join("\n")).unwrap();
    let yaml = format!(
        "dataset: {{kind: list, root: {images}, file: list.txt, classes: {{count: 10}}}}\n\
         models:\n\
         \x20 - id: caffe\n    weights: r50.safetensors\n    input: {{channel_order: bgr, scale: byte, mean: {{image: r50_mean.safetensors}}}}\n\
         \x20 - id: absent\n    weights: \"${{RESNET_AUDIT_TEST_NEVER_SET}}/ResNet-50-model.safetensors\"\n    input: torchvision\n    obtain: resnet-audit convert caffe X.caffemodel --out Y.safetensors\n\
         protocols:\n\
         \x20 - {{id: center, kind: center-crop, resize: {{shorter-side: 72}}, crop: 64, antialias: false}}\n\
         \x20 - {{id: fcn, kind: fully-convolutional, scales: [96], pool: global}}\n",
        images = fixture("images").display()
    );
    std::fs::write(dir.path().join("caffe.yaml"), yaml).unwrap();
    let output =
        Command::new(bin).args(["eval", "caffe.yaml", "--store", "store"]).current_dir(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    println!("{stdout}");
    assert!(stdout.contains("caffe/center ") && stdout.contains("caffe/fcn "), "{stdout}");
    assert!(stdout.contains("per pixel on 64x64 views; other sizes: its per-channel mean"), "{stdout}");
    assert!(
        stdout.contains("absent: not run")
            && stdout.contains("RESNET_AUDIT_TEST_NEVER_SET")
            && stdout.contains("to obtain the weights: resnet-audit convert caffe X.caffemodel"),
        "{stdout}"
    );
}
