//! Shared helpers for the integration tests: fixture paths and numeric comparison.
#![allow(dead_code)]

use std::path::PathBuf;

use candle_core::{DType, Tensor};
use resnet_audit::model::{BuildOptions, ResNet, ResNetConfig};
use resnet_audit::weights::{load_resnet, LoadOptions, WeightsFile};

/// The images `fixtures/generate_preprocess.py` writes to `fixtures/images/`.
pub const IMAGES: [&str; 7] = [
    "cmyk_160x120.JPEG",
    "gray_180x120.JPEG",
    "landscape_320x240.JPEG",
    "png_named_150x150.JPEG",
    "portrait_200x300.JPEG",
    "progressive_257x193.JPEG",
    "tiny_48x36.JPEG",
];

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

pub fn parity_file(name: &str) -> WeightsFile {
    WeightsFile::read(&fixture(&format!("parity/{name}.safetensors"))).expect("committed fixture")
}

/// A tensor from a fixture file, as f32.
pub fn tensor(file: &WeightsFile, name: &str) -> Tensor {
    let stored = file.tensors.get(name).unwrap_or_else(|| panic!("{} has no tensor `{name}`", file.path.display()));
    stored.tensor.as_ref().expect("float tensor").to_dtype(DType::F32).unwrap()
}

pub fn input(name: &str) -> Tensor {
    tensor(&parity_file("inputs"), name)
}

/// A parity fixture model with the default backend (the fast path when `fold_bn`).
pub fn load(weights: &str, config: &ResNetConfig, fold_bn: bool) -> ResNet {
    load_with(weights, config, BuildOptions { fold_bn, ..BuildOptions::default() })
}

pub fn load_with(weights: &str, config: &ResNetConfig, build: BuildOptions) -> ResNet {
    let options = LoadOptions { build, ..LoadOptions::default() };
    load_resnet(&parity_file(weights), config, &options).expect("fixture weights load")
}

/// max |a − b| / max |b|: the error relative to the largest reference value.
pub fn relative_max_error(actual: &Tensor, expected: &Tensor) -> f32 {
    assert_eq!(actual.dims(), expected.dims(), "shapes differ");
    let diff = (actual - expected).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap();
    let scale = expected.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
    diff.to_scalar::<f32>().unwrap() / scale.to_scalar::<f32>().unwrap()
}

pub fn assert_close(actual: &Tensor, expected: &Tensor, tolerance: f32, what: &str) {
    let err = relative_max_error(actual, expected);
    println!("{what}: max |Δ| / max |ref| = {err:.2e} (tolerance {tolerance:.0e})");
    assert!(err <= tolerance, "{what}: relative error {err:.3e} exceeds {tolerance:.0e}");
}

/// The PyTorch outputs committed beside a fixture model.
pub fn expected(model: &str) -> WeightsFile {
    parity_file(&format!("{model}.expected"))
}

/// Audit options for a test: CPU, all images, `label` recorded as the command line.
pub fn audit_options(
    paths: Vec<PathBuf>,
    out: &std::path::Path,
    store: &std::path::Path,
    label: &str,
) -> resnet_audit::audit::AuditOptions {
    resnet_audit::audit::AuditOptions {
        paths,
        out: out.to_path_buf(),
        store_dir: store.to_path_buf(),
        runtime: resnet_audit::device::Runtime::default(),
        limit: None,
        command: label.into(),
        no_compute: false,
    }
}

/// The stdout of a `resnet-audit train` run that must have succeeded (its stderr otherwise).
pub fn success(output: std::process::Output) -> String {
    assert!(output.status.success(), "train failed:\n{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Two weights files with the same tensor names and every value equal bit for bit.
pub fn assert_same_weights(a: &std::path::Path, b: &std::path::Path) {
    let (a, b) = (WeightsFile::read(a).unwrap(), WeightsFile::read(b).unwrap());
    assert_eq!(a.tensors.keys().collect::<Vec<_>>(), b.tensors.keys().collect::<Vec<_>>());
    for name in a.tensors.keys() {
        let bits = |file: &WeightsFile| -> Vec<u32> {
            tensor(file, name).flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits()).collect()
        };
        assert_eq!(bits(&a), bits(&b), "{name} differs");
    }
}

/// A class-per-folder dataset in `dir`: `classes.txt` naming 20 classes, and `copies` of each
/// fixture image under `images/<class>/` (image `i` in class `i mod 3`), as eval, shard and CLI
/// tests use it.
pub fn fixture_image_folder(dir: &std::path::Path, copies: usize) {
    let classes: Vec<String> = (0..20).map(|c| format!("class{c:02}")).collect();
    std::fs::write(dir.join("classes.txt"), classes.join("\n")).unwrap();
    for (i, name) in IMAGES.iter().enumerate() {
        let folder = dir.join("images").join(&classes[i % 3]);
        std::fs::create_dir_all(&folder).unwrap();
        for copy in 0..copies {
            std::fs::copy(fixture(&format!("images/{name}")), folder.join(format!("{copy}_{name}"))).unwrap();
        }
    }
}

/// An experiment over [`fixture_image_folder`] with the narrow fixture ResNet-50 under v1.5
/// (`narrow`) and v1 (`narrow-v1`) strides: `protocols` are the `protocols:` list's lines,
/// `extra` any further top-level lines (`run: …`).
pub fn narrow_experiment(description: &str, protocols: &str, extra: &str) -> String {
    format!(
        "description: {description}\n\
         dataset: {{kind: image-folder, root: images, classes: classes.txt}}\n\
         models:\n  \
           - {{id: narrow, weights: {w}, input: torchvision}}\n  \
           - {{id: narrow-v1, weights: {w}, input: torchvision, stride: v1}}\n\
         protocols:\n{protocols}{extra}",
        w = fixture("parity/protocol_r50_w8.safetensors").display()
    )
}

/// A folder of real photos (`.JPEG`) for smoke tests, from `RESNET_AUDIT_PHOTOS` (e.g. 103 ImageNet
/// validation images, one per class; never committed: ImageNet's terms). `None` when unset.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn sample_photos() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("RESNET_AUDIT_PHOTOS")?);
    assert!(dir.is_dir(), "RESNET_AUDIT_PHOTOS={} is not a folder", dir.display());
    Some(dir)
}

/// The records of a CSV text (RFC 4180 quoting: `"a, b"` and `""` inside quotes), header first.
pub fn csv_records(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let (mut record, mut field, mut quoted, mut chars) = (Vec::new(), String::new(), false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => record.push(std::mem::take(&mut field)),
            ('\n', false) => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (c, _) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    records
}
