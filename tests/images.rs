//! Image memory is bounded: a pixel limit checked on the header before decoding (a small file
//! claiming a huge image is refused), resizes whose buffers would exceed it are bad images
//! (named, skippable with `on_bad_image: skip`), and the limit is the experiment's `max_pixels`.
//!
//! This binary's allocator refuses any single allocation over 1 GiB, so an unbounded decode or
//! resize aborts the test instead of eating the machine's memory (without the limits, the
//! 60000×60000 header asks for 10.8 GB and the 65500×1 strip's resize for 12.9 GB).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::process::{Command, Output};

use common::fixture;
use image::RgbImage;
use resnet_audit::decode::{decode_rgb_bytes, decode_rgb_bytes_within, DecodeError, DEFAULT_MAX_PIXELS};
use resnet_audit::protocol::views::prepare_within;
use resnet_audit::protocol::{prepare, ProtocolEntry, ProtocolError};
use resnet_audit::transform::{InputSpec, Normalizer};

const LARGEST_ALLOCATION: usize = 1 << 30;

struct Capped;

// SAFETY: forwards to the system allocator; a refused request returns null, which the
// standard library turns into an allocation-failure abort.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > LARGEST_ALLOCATION {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > LARGEST_ALLOCATION {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > LARGEST_ALLOCATION {
            return std::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Capped = Capped;

/// A real JPEG of `width`×`height` (a grey gradient), encoded by libjpeg.
fn jpeg(width: usize, height: usize) -> Vec<u8> {
    let pixels: Vec<u8> = (0..width * height).flat_map(|i| [(i % 251) as u8, (i % 13) as u8 * 19, 128]).collect();
    let mut compress = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
    compress.set_size(width, height);
    compress.set_quality(90.0);
    let mut started = compress.start_compress(Vec::new()).unwrap();
    started.write_scanlines(&pixels).unwrap();
    started.finish().unwrap()
}

/// `bytes` (a JPEG) with the frame header's size replaced: the scans still hold the old image.
fn with_jpeg_size(mut bytes: Vec<u8>, width: u16, height: u16) -> Vec<u8> {
    let mut at = 2; // after SOI
    while at + 4 < bytes.len() {
        assert_eq!(bytes[at], 0xFF, "marker expected at {at}");
        let marker = bytes[at + 1];
        let length = u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as usize;
        if (0xC0..=0xC2).contains(&marker) {
            // FF Cn, length, precision, height, width.
            bytes[at + 5..at + 7].copy_from_slice(&height.to_be_bytes());
            bytes[at + 7..at + 9].copy_from_slice(&width.to_be_bytes());
            return bytes;
        }
        at += 2 + length;
    }
    panic!("no frame header found");
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A 1×1 PNG whose IHDR (CRC fixed) claims `width`×`height`.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    RgbImage::new(1, 1).write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    // Signature (8), IHDR length (4), "IHDR" (4), width, height, 5 more bytes, CRC.
    assert_eq!(&bytes[12..16], b"IHDR");
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

fn protocol(yaml: &str) -> ProtocolEntry {
    serde_yaml::from_str(yaml).unwrap()
}

fn normalizer() -> Normalizer {
    Normalizer::new(&InputSpec::torchvision(), Path::new(".")).unwrap()
}

#[test]
fn a_jpeg_header_claiming_60000x60000_is_refused_before_decoding() {
    let bomb = with_jpeg_size(jpeg(48, 36), 60000, 60000);
    assert!(bomb.len() < 4096, "a tiny file: {} bytes", bomb.len());
    match decode_rgb_bytes(&bomb, Path::new("bomb.JPEG")) {
        Err(DecodeError::TooManyPixels { width: 60000, height: 60000, max_pixels: DEFAULT_MAX_PIXELS, .. }) => {}
        other => panic!("expected the pixel limit, got {other:?}"),
    }
}

#[test]
fn a_png_header_claiming_20000x20000_is_refused_before_decoding() {
    let bomb = png_claiming(20000, 20000);
    let err = decode_rgb_bytes(&bomb, Path::new("big.png")).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, DecodeError::TooManyPixels { width: 20000, height: 20000, .. }), "{message}");
    assert!(message.contains("big.png") && message.contains("max_pixels"), "{message}");
}

#[test]
fn the_limit_is_a_parameter_and_inclusive() {
    // landscape_320x240: 76,800 pixels.
    let bytes = std::fs::read(fixture("images/landscape_320x240.JPEG")).unwrap();
    assert!(decode_rgb_bytes_within(&bytes, Path::new("l.JPEG"), 76_800).is_ok());
    let err = decode_rgb_bytes_within(&bytes, Path::new("l.JPEG"), 76_799).unwrap_err();
    assert!(matches!(err, DecodeError::TooManyPixels { width: 320, height: 240, max_pixels: 76_799, .. }), "{err}");
    // PNG (the fixture named .JPEG is a 150x150 PNG) goes through the same check.
    let png = std::fs::read(fixture("images/png_named_150x150.JPEG")).unwrap();
    assert!(decode_rgb_bytes_within(&png, Path::new("p.JPEG"), 22_500).is_ok());
    assert!(matches!(
        decode_rgb_bytes_within(&png, Path::new("p.JPEG"), 22_499),
        Err(DecodeError::TooManyPixels { width: 150, height: 150, .. })
    ));
}

#[test]
fn a_65500x1_jpeg_decodes_but_its_resize_is_a_bad_image() {
    let strip = decode_rgb_bytes(&jpeg(65500, 1), Path::new("strip.JPEG")).unwrap();
    assert_eq!(strip.dimensions(), (65500, 1));
    // Shorter side 256 would make it 16768000x256: 12.9 GB.
    let center = protocol("{id: c, kind: center-crop}");
    match prepare(&center.spec, &strip, &normalizer()) {
        Err(ProtocolError::TooManyPixels {
            width: 16_768_000, height: 256, max_pixels: DEFAULT_MAX_PIXELS, ..
        }) => {}
        other => panic!("expected the pixel limit, got {:?}", other.map(|g| g.len())),
    }
    let ten = protocol("{id: t, kind: ten-crop, region: central-square}");
    assert!(matches!(prepare(&ten.spec, &strip, &normalizer()), Err(ProtocolError::TooManyPixels { .. })));
}

#[test]
fn multi_scale_views_are_bounded_even_when_max_side_is_not() {
    let panorama = RgbImage::new(6000, 1);
    let spec = protocol("{id: f, kind: fully-convolutional, scales: [224, 640], flips: true, max_side: 4000000000}");
    // At 640 the panorama is 3840000x640 = 2.46 G pixels; max_side no longer stops it.
    let err = prepare_within(&spec.spec, &panorama, &normalizer(), DEFAULT_MAX_PIXELS).unwrap_err();
    assert!(
        matches!(err, ProtocolError::TooManyPixels { width: 1_344_000, height: 224, .. }),
        "the first scale is already over: {err}"
    );
    // A tighter limit applies to ordinary images too, scale by scale.
    let photo = RgbImage::new(400, 300);
    let err = prepare_within(&spec.spec, &photo, &normalizer(), 300_000).unwrap_err();
    assert!(matches!(err, ProtocolError::TooManyPixels { width: 853, height: 640, .. }), "{err}");
    let groups = prepare_within(&spec.spec, &photo, &normalizer(), 546_000).unwrap();
    assert_eq!(groups.iter().map(|g| (g.width, g.height, g.count)).collect::<Vec<_>>(), [(298, 224, 2), (853, 640, 2)]);
}

#[test]
fn warping_a_tall_image_counts_the_intermediate_rows() {
    // Pillow resizes horizontally first: 224 columns × 4,000,000 rows before the vertical pass.
    let tall = RgbImage::new(1, 4_000_000);
    let spec = protocol("{id: w, kind: center-crop, resize: {warp: {height: 224, width: 224}}, crop: 224}");
    let err = prepare_within(&spec.spec, &tall, &normalizer(), 100_000_000).unwrap_err();
    assert!(matches!(err, ProtocolError::TooManyPixels { pixels: 896_000_000, .. }), "{err}");
}

/// A class-folder dataset holding `images` (name, bytes) in class00 and the fixture ResNet, with
/// a center-crop protocol and `extra` top-level YAML.
fn eval_with(images: &[(&str, Vec<u8>)], extra: &str) -> (tempfile::TempDir, Output) {
    let dir = tempfile::tempdir().unwrap();
    let classes: Vec<String> = (0..20).map(|c| format!("class{c:02}")).collect();
    std::fs::write(dir.path().join("classes.txt"), classes.join("\n")).unwrap();
    let folder = dir.path().join("images/class00");
    std::fs::create_dir_all(&folder).unwrap();
    for (name, bytes) in images {
        std::fs::write(folder.join(name), bytes).unwrap();
    }
    let yaml = format!(
        "dataset: {{kind: image-folder, root: images, classes: classes.txt}}\n\
         models:\n  - {{id: narrow, weights: {w}, input: torchvision}}\n\
         protocols:\n  - {{id: center, kind: center-crop, resize: {{shorter-side: 72}}, crop: 64}}\n{extra}",
        w = fixture("parity/protocol_r50_w8.safetensors").display()
    );
    std::fs::write(dir.path().join("experiment.yaml"), yaml).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_resnet-audit"))
        .arg("eval")
        .arg(dir.path().join("experiment.yaml"))
        .arg("--store")
        .arg(dir.path().join("store"))
        .output()
        .unwrap();
    (dir, output)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(&format!("images/{name}"))).unwrap()
}

#[test]
fn a_strip_that_cannot_be_resized_stops_the_run_naming_it() {
    let (_dir, output) = eval_with(&[("a.JPEG", fixture_bytes("tiny_48x36.JPEG")), ("strip.JPEG", jpeg(65500, 1))], "");
    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("strip.JPEG") && stderr.contains("max_pixels"), "{stderr}");
    assert!(stderr.contains("on_bad_image: skip"), "{stderr}");
}

#[test]
fn skip_saves_the_run_from_bombs_strips_and_images_over_max_pixels() {
    let images = [
        ("a_tiny.JPEG", fixture_bytes("tiny_48x36.JPEG")),
        ("b_portrait.JPEG", fixture_bytes("portrait_200x300.JPEG")),
        ("c_landscape.JPEG", fixture_bytes("landscape_320x240.JPEG")),
        ("d_strip.JPEG", jpeg(65500, 1)),
        ("e_bomb.JPEG", with_jpeg_size(jpeg(48, 36), 60000, 60000)),
        ("f_bomb.png", png_claiming(20000, 20000)),
    ];
    // 200x300 = 60,000 pixels passes a 70,000 limit; 320x240 = 76,800 does not.
    let (_dir, output) = eval_with(&images, "on_bad_image: skip\nmax_pixels: 70000\n");
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let row = stdout.lines().find(|l| l.starts_with("narrow/center ")).unwrap_or_else(|| panic!("{stdout}"));
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!((fields[1], fields[2]), ("2", "4"), "2 scored, 4 skipped: {row}");
    for skipped in ["c_landscape.JPEG", "d_strip.JPEG", "e_bomb.JPEG", "f_bomb.png"] {
        assert!(stdout.contains(skipped), "{skipped} listed as skipped:\n{stdout}");
    }
}

#[test]
fn max_pixels_zero_is_refused_when_the_experiment_is_read() {
    let (_dir, output) = eval_with(&[("a.JPEG", fixture_bytes("tiny_48x36.JPEG"))], "max_pixels: 0\n");
    let stderr = text(&output.stderr);
    assert!(!output.status.success() && stderr.contains("max_pixels"), "{stderr}");
}

/// Writes the costliest image the default limit admits, for the README's memory figure:
/// `WORST_CASE_DIR=/tmp/w cargo test --release --test images -- --ignored`, then
/// `/usr/bin/time -v resnet-audit eval` over it. A 9459x9459 (89,472,681 pixels) progressive
/// CMYK JPEG without subsampling: libjpeg holds every DCT coefficient (4 components × 2 bytes a
/// pixel) while the 4-byte CMYK rows are read, then converts to 3-byte RGB.
#[test]
#[ignore = "writes a 9459x9459 image; run by hand for the memory figure"]
fn write_the_worst_case_image() {
    let Some(dir) = std::env::var_os("WORST_CASE_DIR") else { return };
    let side = (DEFAULT_MAX_PIXELS as f64).sqrt() as usize;
    assert!((side * side) as u64 <= DEFAULT_MAX_PIXELS && ((side + 1) * (side + 1)) as u64 > DEFAULT_MAX_PIXELS);
    let mut compress = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_CMYK);
    compress.set_fastest_defaults();
    compress.set_size(side, side);
    compress.set_progressive_mode();
    let mut started = compress.start_compress(Vec::new()).unwrap();
    for y in 0..side {
        let row: Vec<u8> =
            (0..side).flat_map(|x| [(x % 256) as u8, (y % 256) as u8, ((x ^ y) % 256) as u8, 40]).collect();
        started.write_scanlines(&row).unwrap();
    }
    let folder = Path::new(&dir).join("images/class00");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("worst.JPEG"), started.finish().unwrap()).unwrap();
    let classes: Vec<String> = (0..20).map(|c| format!("class{c:02}")).collect();
    std::fs::write(Path::new(&dir).join("classes.txt"), classes.join("\n")).unwrap();
    let yaml = format!(
        "dataset: {{kind: image-folder, root: images, classes: classes.txt}}\n\
         models:\n  - {{id: narrow, weights: {w}, input: torchvision}}\n\
         protocols:\n  - {{id: center, kind: center-crop}}\n  - {{id: ten, kind: ten-crop}}\n  \
         - {{id: fcn, kind: fully-convolutional, flips: true}}\n",
        w = fixture("parity/protocol_r50_w8.safetensors").display()
    );
    std::fs::write(Path::new(&dir).join("experiment.yaml"), yaml).unwrap();
}
