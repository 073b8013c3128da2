//! `make bench`: training throughput (images/s) of a CIFAR ResNet-20, batch 128, f32, on this
//! CPU: forward in training mode, cross-entropy, backward and an SGD step with momentum.
//! The figure goes into README's Performance section beside PyTorch's on the same machine
//! (`fixtures/bench_training.py`).

use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use resnet_audit::model::{CifarShortcut, ResNet, ResNetConfig};
use resnet_audit::train::{train_step, DecayScope, Sgd, SgdConfig};

fn main() -> candle_core::Result<()> {
    // As the CLI does: candle otherwise reads /proc/cpuinfo on every op.
    resnet_audit::device::pin_thread_count(None);
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    let model = ResNet::trainable(&ResNetConfig::cifar(20, CifarShortcut::A, 10), vb, 0.1)?;
    let config =
        SgdConfig { momentum: 0.9, nesterov: false, weight_decay: 1e-4, decay_scope: DecayScope::ConvAndFcWeights };
    let mut optimizer = Sgd::new(&varmap, config);
    let batch = 128;
    let x = Tensor::randn(0f32, 1.0, (batch, 3, 32, 32), &device)?;
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
    let y = Tensor::from_vec(labels, batch, &device)?;
    train_step(&model, &mut optimizer, &x, &y, 0.1)?; // warm-up
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let budget = Duration::from_secs(20);
    let start = Instant::now();
    let mut steps = 0;
    while start.elapsed() < budget {
        train_step(&model, &mut optimizer, &x, &y, 0.1)?;
        steps += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!("CIFAR ResNet-20 (0.27 M parameters) training, batch {batch}, f32, CPU, {threads} threads");
    println!(
        "{steps} steps in {seconds:.1} s: {:.1} images/s, {:.3} s/step",
        (steps * batch) as f64 / seconds,
        seconds / steps as f64
    );
    Ok(())
}
