//! Decoding and resizing against Pillow/torchvision: fixtures/generate_preprocess.py wrote
//! the images in fixtures/images and what Pillow and torchvision make of them.

mod common;

use candle_core::{DType, Tensor};
use std::collections::HashMap;

use common::{fixture, IMAGES};
use image::RgbImage;
use resnet_audit::decode::decode_rgb;
use resnet_audit::transform::{resize, Interpolation, Resampling, ResizePolicy};

/// Every reference array (uint8 [H, W, 3]), read once.
fn reference() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture("parity/preprocess.expected.safetensors"), &candle_core::Device::Cpu)
        .expect("committed fixture")
}

fn reference_image(reference: &HashMap<String, Tensor>, key: &str) -> RgbImage {
    let tensor = reference.get(key).unwrap_or_else(|| panic!("no reference `{key}`"));
    let (h, w, _) = tensor.dims3().unwrap();
    let bytes: Vec<u8> = tensor.to_dtype(DType::U8).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    RgbImage::from_raw(w as u32, h as u32, bytes).unwrap()
}

/// (max |Δ|, mean |Δ|) over all channels.
fn difference(a: &RgbImage, b: &RgbImage) -> (u8, f64) {
    assert_eq!(a.dimensions(), b.dimensions(), "sizes differ");
    let diffs: Vec<u8> = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| x.abs_diff(*y)).collect();
    let max = diffs.iter().copied().max().unwrap_or(0);
    (max, diffs.iter().map(|&d| d as f64).sum::<f64>() / diffs.len() as f64)
}

#[test]
fn decoding_matches_pillow() {
    let reference = reference();
    let mut worst = 0;
    for name in IMAGES {
        let ours = decode_rgb(&fixture(&format!("images/{name}"))).unwrap();
        let (max, mean) = difference(&ours, &reference_image(&reference, &format!("decoded/{name}")));
        println!("decode {name}: max |Δ| {max}, mean |Δ| {mean:.3}");
        worst = worst.max(max);
        // The same libjpeg-turbo code and the same CMYK arithmetic as Pillow: exact.
        assert_eq!(max, 0, "{name}: decoded pixels differ from Pillow's (mean |Δ| {mean:.3})");
    }
    println!("decode: worst max |Δ| {worst}");
}

fn policy(name: &str) -> (ResizePolicy, Resampling) {
    let (kind, interp) = name.split_once('-').unwrap();
    let antialias = kind == "pil";
    let interpolation = match interp.split('-').next().unwrap() {
        "nearest" => Interpolation::Nearest,
        "bilinear" => Interpolation::Bilinear,
        "bicubic" => Interpolation::Bicubic,
        other => panic!("{other}"),
    };
    let resize = if name.ends_with("warp-48x64") {
        ResizePolicy::Warp { height: 48, width: 64 }
    } else if name.ends_with("up-160") {
        ResizePolicy::ShorterSide(160)
    } else {
        ResizePolicy::ShorterSide(64)
    };
    (resize, Resampling { interpolation, antialias })
}

/// Resizing the Pillow-decoded pixels (so decoder differences do not enter) with each policy.
#[test]
fn resizing_matches_pillow_and_torch() {
    let reference = reference();
    let keys: Vec<&String> = reference.keys().filter(|k| k.starts_with("resize/")).collect();
    assert!(keys.len() >= 50, "expected the full policy table, found {}", keys.len());
    let mut worst = std::collections::BTreeMap::<String, u8>::new();
    for key in keys {
        let mut parts = key.splitn(3, '/');
        let (_, policy_name, image) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        let source = reference_image(&reference, &format!("decoded/{image}"));
        let expected = reference_image(&reference, key);
        let (resize_policy, resampling) = policy(policy_name);
        let (w, h) = resize_policy.target_size(source.width(), source.height());
        assert_eq!((w, h), expected.dimensions(), "{key}: size");
        let ours = resize(&source, w, h, resampling);
        let (max, _) = difference(&ours, &expected);
        let entry = worst.entry(policy_name.to_string()).or_default();
        *entry = (*entry).max(max);
        assert!(max <= 1, "{key}: max |Δ| {max} exceeds 1/255");
    }
    for (policy, max) in worst {
        println!("{policy:<28} max |Δ| {max}/255");
    }
}

#[test]
fn crop_pct_follows_timm() {
    // timm: resize to floor(224 / 0.875) = 256, then crop 224.
    let policy = ResizePolicy::CropPct { crop: 224, crop_pct: 0.875 };
    assert_eq!(policy.target_size(500, 375), (341, 256));
    let policy = ResizePolicy::CropPct { crop: 224, crop_pct: 0.95 };
    assert_eq!(policy.target_size(375, 500), (235, 313));
}

#[test]
fn bad_images_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("truncated.JPEG");
    let bytes = std::fs::read(fixture("images/landscape_320x240.JPEG")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let text = dir.path().join("notes.JPEG");
    std::fs::write(&text, b"not an image").unwrap();
    for (path, expected) in [
        (truncated, "cannot decode image"),
        (text.clone(), "is not an image format we read"),
        (dir.path().join("absent.JPEG"), "cannot read image"),
    ] {
        let Err(error) = decode_rgb(&path) else { panic!("{} should not decode", path.display()) };
        let message = error.to_string();
        println!("{message}");
        assert!(message.contains(expected) && message.contains(&path.display().to_string()), "{message}");
    }
}

/// Real photos (`RESNET_AUDIT_PHOTOS`, not committed: ImageNet's terms) decode and resize;
/// skipped with a notice where the variable is unset.
#[test]
fn real_photos_smoke_test() {
    let Some(dir) = common::sample_photos() else {
        println!("skipped: RESNET_AUDIT_PHOTOS is not set");
        return;
    };
    let entries = std::fs::read_dir(&dir).unwrap();
    let mut count = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let image = decode_rgb(&path).unwrap_or_else(|e| panic!("{e}"));
        let policy = ResizePolicy::ShorterSide(256);
        let (w, h) = policy.target_size(image.width(), image.height());
        let resized = resize(&image, w, h, Resampling { interpolation: Interpolation::Bilinear, antialias: true });
        assert_eq!(resized.width().min(resized.height()), 256, "{}", path.display());
        count += 1;
    }
    println!("decoded and resized {count} photos from {}", dir.display());
    assert!(count >= 100, "expected the 103 sample photos, found {count}");
}
