//! The PyTorch checkpoint and Torch7 readers against files written by `torch.save` and by the
//! Torch7 writer of `fixtures/generate_torch_formats.py` (checked there by `torchfile`), the
//! real released CIFAR ResNet-20, and hostile inputs: each must fail naming the file and what
//! is wrong, without running anything and without allocating what a file merely claims.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use common::fixture;
use resnet_audit::import::pytorch::{read_checkpoint, CheckpointFormat, PytorchError};
use resnet_audit::import::torch7::{module_tree, read_file, read_resnet, Family, Torch7Shortcut};
use resnet_audit::model::{BlockKind, CifarShortcut, ResNetConfig, StridePlacement, Topology};
use resnet_audit::weights::tensor_specs;

fn formats(name: &str) -> PathBuf {
    fixture(&format!("torch-formats/{name}"))
}

/// The tensors and metadata of a generator's `*.expected.safetensors`.
struct Expected {
    tensors: HashMap<String, Tensor>,
    metadata: HashMap<String, String>,
}

impl Expected {
    fn read(stem: &str) -> Expected {
        let path = formats(&format!("{stem}.expected.safetensors"));
        let tensors = candle_core::safetensors::load(&path, &Device::Cpu).expect("committed fixture");
        let bytes = std::fs::read(&path).expect("committed fixture");
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).expect("safetensors header");
        Expected { tensors, metadata: header.metadata().clone().unwrap_or_default() }
    }

    fn meta(&self, key: &str) -> &str {
        self.metadata.get(key).map_or("", String::as_str)
    }

    fn order(&self) -> Vec<String> {
        serde_json::from_str(self.meta("order")).expect("order is a JSON list")
    }
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).and_then(|t| t.flatten_all()).and_then(|t| t.to_vec1()).expect("numeric tensor")
}

/// Same names in the same order, same dtypes and shapes, values within `tolerance`.
fn assert_tensors(ours: &[(String, Tensor)], expected: &Expected, tolerance: f64) {
    let names: Vec<&String> = ours.iter().map(|(n, _)| n).collect();
    let order = expected.order();
    assert_eq!(names, order.iter().collect::<Vec<_>>());
    for (name, tensor) in ours {
        let want = &expected.tensors[name];
        assert_eq!(tensor.dtype(), want.dtype(), "{name}");
        assert_eq!(tensor.dims(), want.dims(), "{name}");
        let worst = values(tensor).iter().zip(values(want)).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst <= tolerance, "{name}: differs by {worst}");
    }
}

/// The error's message, which must name the file.
fn message(path: &Path, error: impl std::fmt::Display) -> String {
    let message = error.to_string();
    println!("{message}");
    assert!(message.contains(&path.display().to_string()), "the error must name the file: {message}");
    message
}

fn checkpoint_error(path: &Path) -> String {
    message(path, read_checkpoint(path).expect_err("the checkpoint must be refused"))
}

// ------------------------------------------------------------------ PyTorch checkpoints

#[test]
fn checkpoints_in_both_formats_read_as_torch_saved_them() {
    for format in ["zip", "legacy"] {
        for kind in ["state_dict", "nested_module", "doubly_nested", "dtypes"] {
            let stem = format!("{format}_{kind}");
            let checkpoint = read_checkpoint(&formats(&format!("{stem}.pth"))).unwrap_or_else(|e| panic!("{e}"));
            let expected = Expected::read(&stem);
            let want_format = if format == "zip" { CheckpointFormat::Zip } else { CheckpointFormat::Legacy };
            assert_eq!(checkpoint.format, want_format, "{stem}");
            let nesting: Vec<String> = serde_json::from_str(expected.meta("nesting")).expect("nesting is a JSON list");
            assert_eq!(checkpoint.nesting, nesting, "{stem}");
            let prefix = Some(expected.meta("stripped_prefix").to_owned()).filter(|p| !p.is_empty());
            assert_eq!(checkpoint.stripped_prefix, prefix, "{stem}");
            // Values are copied, never converted: exact.
            assert_tensors(&checkpoint.tensors, &expected, 0.0);
        }
    }
}

#[test]
fn entries_beside_the_state_dict_are_reported_as_skipped() {
    let checkpoint = read_checkpoint(&formats("legacy_nested_module.pth")).unwrap();
    assert_eq!(checkpoint.skipped, ["epoch", "best_prec1", "optimizer"]);
}

#[test]
fn the_released_cifar_resnet20_reads_as_a_cifar_resnet20() {
    let path = fixture("released/resnet20-12fca82f.th");
    let checkpoint = read_checkpoint(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(checkpoint.format, CheckpointFormat::Legacy);
    assert_eq!(checkpoint.stripped_prefix.as_deref(), Some("module."));
    assert_eq!(checkpoint.nesting, ["state_dict"]);
    assert_eq!(checkpoint.skipped, ["best_prec1"]);
    // Option A has no projection tensors, so the model's own list of names and shapes must
    // match the file's exactly (BN's num_batches_tracked postdates this file), except that
    // this repository calls the classifier `linear` where torchvision says `fc`: the reader
    // returns names as stored.
    let config = ResNetConfig::cifar(20, CifarShortcut::A, 10);
    let mut want: Vec<(String, Vec<usize>)> =
        tensor_specs(&config).unwrap().into_iter().map(|s| (s.name, s.shape)).collect();
    let mut got: Vec<(String, Vec<usize>)> =
        checkpoint.tensors.iter().map(|(n, t)| (n.replace("linear.", "fc."), t.dims().to_vec())).collect();
    assert!(checkpoint.tensors.iter().any(|(n, _)| n == "linear.weight"));
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert!(checkpoint.tensors.iter().all(|(_, t)| t.dtype() == DType::F32));
    let parameters: usize =
        checkpoint.tensors.iter().filter(|(n, _)| !n.contains("running_")).map(|(_, t)| t.elem_count()).sum();
    assert_eq!(parameters, 269_722, "the README's 0.27M parameters");
}

#[test]
fn a_pickle_calling_os_system_is_refused_not_run() {
    for format in ["zip", "legacy"] {
        let path = formats(&format!("hostile_os_system_{format}.pth"));
        let message = checkpoint_error(&path);
        // Written on Linux, where os.system lives in `posix`.
        assert!(message.contains("refused global `posix.system`"), "{message}");
        assert!(!Path::new("PWNED-by-checkpoint").exists() && !fixture("../PWNED-by-checkpoint").exists());
    }
}

#[test]
fn a_pickled_module_is_refused_naming_its_class() {
    for format in ["zip", "legacy"] {
        let message = checkpoint_error(&formats(&format!("hostile_module_{format}.pth")));
        assert!(message.contains("refused global `torch.nn.modules.linear.Linear`"), "{message}");
    }
}

#[test]
fn a_storage_longer_than_the_file_is_refused_before_allocation() {
    let message = checkpoint_error(&formats("hostile_storage_larger_than_file.pth"));
    assert!(
        message.contains("storage `0`") && message.contains("1099511627776 elements of 4 bytes do not fit"),
        "{message}"
    );
    let message = checkpoint_error(&formats("hostile_short_zip_entry.pth"));
    assert!(message.contains("8 bytes of data for 4 FloatStorage elements"), "{message}");
}

/// A legacy file's three header pickles (magic, protocol, system info) followed by `body`.
fn legacy_with_body(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
    let valid = std::fs::read(formats("legacy_state_dict.pth")).unwrap();
    let mut pos = 0;
    for _ in 0..3 {
        pos = resnet_audit::import::pytorch::pickle::Pickle::parse(&valid, pos).unwrap().1;
    }
    let mut bytes = valid[..pos].to_vec();
    bytes.extend_from_slice(body);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn recursion_bombs_fail_quickly_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // 100,000 nested MARKs (tuples of tuples).
    let mut deep = b"\x80\x02".to_vec();
    deep.extend(std::iter::repeat_n(b'(', 100_000));
    let message = checkpoint_error(&legacy_with_body(dir.path(), "deep.pth", &deep));
    assert!(message.contains("MARKs nest deeper than 256"), "{message}");

    // 100,000 nested lists without marks: `[[[...]]]` by EMPTY_LIST then APPEND.
    let mut lists = b"\x80\x02".to_vec();
    lists.extend(std::iter::repeat_n(b']', 100_000));
    lists.extend(std::iter::repeat_n(b'a', 99_999));
    lists.push(b'.');
    let message = checkpoint_error(&legacy_with_body(dir.path(), "lists.pth", &lists));
    assert!(message.contains("the saved object is a list, not a dict of tensors"), "{message}");

    // "Billion laughs": each list holds ten references to the previous one, 40 levels deep
    // (10^40 elements if references were copies).
    let mut laughs = b"\x80\x02]q\x00".to_vec();
    for level in 1..=40u8 {
        laughs.push(b'(');
        for _ in 0..10 {
            laughs.extend_from_slice(&[b'h', level - 1]);
        }
        laughs.extend_from_slice(&[b'l', b'q', level]);
    }
    laughs.push(b'.');
    let started = Instant::now();
    let message = checkpoint_error(&legacy_with_body(dir.path(), "laughs.pth", &laughs));
    assert!(message.contains("is a list, not a dict of tensors"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn truncated_checkpoints_fail_at_every_offset() {
    let dir = tempfile::tempdir().unwrap();
    for stem in ["zip_state_dict", "legacy_state_dict", "legacy_nested_module"] {
        let bytes = std::fs::read(formats(&format!("{stem}.pth"))).unwrap();
        for cut in [0, 1, 2, 14, 30, 200, bytes.len() / 2, bytes.len() - 300, bytes.len() - 1] {
            let path = dir.path().join(format!("{stem}_{cut}.pth"));
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let message = checkpoint_error(&path);
            assert!(!message.is_empty());
        }
    }
}

#[test]
fn a_file_of_another_kind_is_not_a_checkpoint() {
    let path = formats("cifar8_a.t7");
    let error = read_checkpoint(&path).unwrap_err();
    assert!(matches!(error, PytorchError::NotACheckpoint { .. }), "{error}");
    message(&path, error);
}

// ------------------------------------------------------------------ Torch7

#[test]
fn fb_resnet_torch_models_map_onto_torchvision_names() {
    for stem in [
        "cifar8_a",
        "cifar8_b_cuda_oldbn",
        "resnet18_c_shared_transposed",
        "resnet14_b_cuda_bias",
        "resnet14_b_stride1x1",
    ] {
        let model = read_resnet(&formats(&format!("{stem}.t7"))).unwrap_or_else(|e| panic!("{e}"));
        let expected = Expected::read(stem);
        let family = if expected.meta("family") == "cifar" { Family::Cifar } else { Family::Imagenet };
        assert_eq!(model.family, family, "{stem}");
        let block = if expected.meta("block") == "basic" { BlockKind::Basic } else { BlockKind::Bottleneck };
        assert_eq!(model.block, block, "{stem}");
        assert_eq!(model.depth.to_string(), expected.meta("depth"), "{stem}");
        assert_eq!(format!("{:?}", model.shortcut), expected.meta("shortcut"), "{stem}");
        assert_eq!(model.stride.name(), expected.meta("stride"), "{stem}");
        assert_eq!(model.base_width.to_string(), expected.meta("base_width"), "{stem}");
        assert_eq!(model.num_classes.to_string(), expected.meta("classes"), "{stem}");
        assert_eq!(model.bn_eps, 1e-5);
        // Folding a bias or converting running_std rounds once in f32.
        assert_tensors(&model.tensors, &expected, 1e-6);
    }
}

#[test]
fn torch7_conversions_are_reported() {
    let old = read_resnet(&formats("cifar8_b_cuda_oldbn.t7")).unwrap();
    assert!(
        old.notes.iter().any(|n| n == "bn1: running_var computed from the old running_std (1/sqrt(var + eps))"),
        "{:?}",
        old.notes
    );
    let biased = read_resnet(&formats("resnet14_b_cuda_bias.t7")).unwrap();
    assert!(
        biased.notes.iter().any(|n| n == "layer2.0.downsample.0: bias folded into layer2.0.downsample.1.running_mean"),
        "{:?}",
        biased.notes
    );
}

#[test]
fn torch7_models_give_harness_configs_where_the_harness_has_the_shortcut() {
    let cifar_a = read_resnet(&formats("cifar8_a.t7")).unwrap().config().unwrap();
    assert_eq!(cifar_a.topology, Topology::Cifar { depth: 8, shortcut: CifarShortcut::A });
    assert_eq!((cifar_a.base_width, cifar_a.num_classes), (4, 10));
    let cifar_b = read_resnet(&formats("cifar8_b_cuda_oldbn.t7")).unwrap().config().unwrap();
    assert_eq!(cifar_b.topology, Topology::Cifar { depth: 8, shortcut: CifarShortcut::B });
    let bottleneck = read_resnet(&formats("resnet14_b_cuda_bias.t7")).unwrap().config().unwrap();
    assert!(matches!(bottleneck.topology, Topology::Imagenet { depth: 14, stride: StridePlacement::V1_5, .. }));
    // The config's own tensor list is exactly what the reader produced.
    let model = read_resnet(&formats("resnet14_b_cuda_bias.t7")).unwrap();
    let specs: Vec<(String, Vec<usize>)> =
        tensor_specs(&bottleneck).unwrap().into_iter().map(|s| (s.name, s.shape)).collect();
    let mut got: Vec<(String, Vec<usize>)> =
        model.tensors.iter().map(|(n, t)| (n.clone(), t.dims().to_vec())).collect();
    let mut want = specs;
    got.sort();
    want.sort();
    assert_eq!(got, want);
    let c = read_resnet(&formats("resnet18_c_shared_transposed.t7")).unwrap();
    assert_eq!(c.shortcut, Torch7Shortcut::C);
    assert!(c.config().unwrap_err().contains("shortcut type C"));
}

#[test]
fn the_module_tree_is_read_in_order() {
    let path = formats("cifar8_a.t7");
    let file = read_file(&path).unwrap();
    let tree = module_tree(&path, &file).unwrap();
    let kinds: Vec<&str> = tree.children.iter().map(|m| m.class.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "nn.SpatialConvolution",
            "nn.SpatialBatchNormalization",
            "nn.ReLU",
            "nn.Sequential",
            "nn.Sequential",
            "nn.Sequential",
            "nn.SpatialAveragePooling",
            "nn.View",
            "nn.Linear"
        ]
    );
    assert_eq!(tree.children[4].children[0].at, "model.modules[5].modules[1]");
}

fn torch7_error(path: &Path) -> String {
    message(path, read_resnet(path).expect_err("the .t7 must be refused"))
}

#[test]
fn a_torch7_reference_loop_is_refused() {
    let message = torch7_error(&formats("hostile_loop.t7"));
    assert!(message.contains("reference loop: the module at model.modules[2] contains itself"), "{message}");
}

#[test]
fn a_torch7_tensor_striding_past_its_storage_is_refused() {
    let message = torch7_error(&formats("hostile_stride_past_storage.t7"));
    assert!(message.contains("module at model.modules[1] (nn.SpatialConvolution): `weight`"), "{message}");
    assert!(message.contains("but its storage holds 108 elements"), "{message}");
}

#[test]
fn a_torch7_storage_longer_than_the_file_is_refused() {
    let message = torch7_error(&formats("hostile_storage_larger_than_file.t7"));
    assert!(message.contains("the file ends early"), "{message}");
}

#[test]
fn deeply_nested_torch7_tables_are_refused() {
    let message = torch7_error(&formats("hostile_deep.t7"));
    assert!(message.contains("values nest deeper than 200"), "{message}");
}

#[test]
fn truncated_torch7_files_fail_at_every_offset() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(formats("cifar8_a.t7")).unwrap();
    for cut in [0, 3, 4, 9, 100, 1000, bytes.len() / 2, bytes.len() - 8, bytes.len() - 1] {
        let path = dir.path().join(format!("cut_{cut}.t7"));
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let message = torch7_error(&path);
        assert!(message.contains("the file ends early"), "{message}");
    }
}

#[test]
fn every_format_is_recognised_by_content_whatever_its_name() {
    use resnet_audit::import::WeightsFormat;
    let dir = tempfile::tempdir().unwrap();
    for (name, format) in [
        ("cifar8_a.t7", WeightsFormat::Torch7),
        ("zip_state_dict.pth", WeightsFormat::PytorchZip),
        ("legacy_state_dict.pth", WeightsFormat::PytorchLegacy),
    ] {
        // Renamed to a misleading extension: content decides.
        let renamed = dir.path().join(format!("{name}.caffemodel"));
        std::fs::copy(formats(name), &renamed).unwrap();
        assert_eq!(WeightsFormat::detect(&renamed).unwrap(), format, "{name}");
    }
}

#[test]
fn inspect_shows_a_t7_module_tree_and_what_was_read() {
    let text =
        resnet_audit::inspect::inspect_path(&formats("resnet14_b_stride1x1.t7")).unwrap_or_else(|e| panic!("{e}"));
    for expected in [
        "a Torch7 .t7 file",
        "depth",
        "14",
        "stride placement",
        "v1 (from the file's metadata",
        "module tree:",
        "ConcatTable",
        "CAddTable",
        "parameters",
    ] {
        assert!(text.contains(expected), "`{expected}` missing from:\n{text}");
    }
    let text = resnet_audit::inspect::inspect_path(&formats("cifar8_a.t7")).unwrap();
    assert!(text.contains("shortcut              option A\n"), "fb.resnet.torch appends the zeros:\n{text}");
}

#[test]
fn inspect_lists_a_checkpoint_s_tensors_in_torchvision_names() {
    let text = resnet_audit::inspect::inspect_path(&fixture("released/resnet20-12fca82f.th")).unwrap();
    for expected in
        ["a PyTorch checkpoint (legacy pickle)", "12fca82f", "option A-split", "269,722", "fc.weight", "inferred"]
    {
        assert!(text.contains(expected), "`{expected}` missing from:\n{text}");
    }
}

#[test]
fn convert_writes_any_format_to_safetensors_with_its_provenance() {
    let dir = tempfile::tempdir().unwrap();
    for (name, format) in [("cifar8_a.t7", "torch7"), ("zip_nested_module.pth", "pytorch")] {
        let out = dir.path().join(format!("{name}.safetensors"));
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_resnet-audit"))
            .args(["convert", formats(name).to_str().unwrap(), "--out", out.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
        let file = resnet_audit::weights::WeightsFile::read(&out).unwrap();
        assert_eq!(file.metadata["source_format"], format);
        assert_eq!(file.metadata["source_sha256"].len(), 64);
    }
}
