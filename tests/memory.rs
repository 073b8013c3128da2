//! The fast path's memory stays bounded: 1,000 images through a ResNet-50 (the narrow parity
//! fixture), at the three input sizes the protocols mix, grow the resident set by no more than
//! a few buffers after the first pass. Its own test binary, so no other test shares the process.

mod common;

use candle_core::{Device, Tensor};
use common::load;
use resnet_audit::model::{DenseWindow, ResNetConfig, StridePlacement};

/// Resident set size of this process in bytes (Linux).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
fn a_thousand_images_do_not_grow_the_resident_set() {
    let Some(_) = resident_bytes() else {
        eprintln!("no /proc/self/statm: skipped");
        return;
    };
    // As the CLI's main does; the bound below is for the process policy the binary runs with.
    resnet_audit::model::nhwc::keep_freed_activations();
    let config = ResNetConfig::imagenet(50, 100).with_base_width(8).with_stride(StridePlacement::V1_5);
    let model = load("resnet50_w8", &config, true);
    assert!(model.uses_fast_path());
    // Center crop (224), a larger crop (256), and a fully-convolutional scale (320x384).
    let inputs: Vec<Tensor> = [(224, 224), (256, 256), (320, 384)]
        .iter()
        .map(|&(h, w)| Tensor::randn(0f32, 1.0, (8, 3, h, w), &Device::Cpu).unwrap())
        .collect();
    let run = |batches: usize| {
        for i in 0..batches {
            let x = &inputs[i % inputs.len()];
            if i % 2 == 0 {
                model.forward(x).unwrap();
            } else {
                model.forward_dense(x, DenseWindow::Pool(7)).unwrap();
            }
        }
    };
    run(6); // 48 images: every shape twice, so the allocator has seen one pass's peak.
    let warm = resident_bytes().unwrap();
    let mut samples = Vec::new();
    for _ in 0..5 {
        run(25); // 200 images
        samples.push(resident_bytes().unwrap());
    }
    let grown = samples.iter().max().unwrap().saturating_sub(warm);
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "resident after warm-up {:.1} MB; after each 200 images: {:?} MB",
        mb(warm),
        samples.iter().map(|&b| mb(b).round()).collect::<Vec<_>>()
    );
    // One batch of 8 at 320x384 needs ~40 MB of activations; growth beyond that would be a leak.
    assert!(grown < 32_000_000, "resident set grew by {:.1} MB over 1,000 images", mb(grown));
}
