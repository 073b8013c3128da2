//! `make bench`: forward throughput of a full-width ResNet-50 (random weights) on this
//! machine's CPU, with batch norm folded (the default) and not folded.

mod common;

use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use common::random_resnet;
use resnet_audit::model::{ResNet, ResNetConfig};

/// Images per second over at least `budget` of wall time, after one warm-up pass.
fn throughput(model: &ResNet, batch: usize, side: usize, budget: Duration) -> candle_core::Result<f64> {
    let x = Tensor::randn(0f32, 1.0, (batch, 3, side, side), &Device::Cpu)?;
    model.forward(&x)?;
    let start = Instant::now();
    let mut images = 0;
    while start.elapsed() < budget {
        model.forward(&x)?;
        images += batch;
    }
    Ok(images as f64 / start.elapsed().as_secs_f64())
}

fn main() -> candle_core::Result<()> {
    let config = ResNetConfig::imagenet(50, 1000);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("ResNet-50 v1.5, f32, random weights, CPU, {threads} threads; images/s (higher is better)");
    println!("{:<16} {:>12} {:>12} {:>8}", "shape", "BN folded", "BN separate", "ratio");
    let budget = Duration::from_secs(4);
    let folded = random_resnet(&config, true)?;
    let separate = random_resnet(&config, false)?;
    for (batch, side) in [(1, 224), (16, 224), (1, 448)] {
        let fast = throughput(&folded, batch, side, budget)?;
        let slow = throughput(&separate, batch, side, budget)?;
        println!("{:<16} {fast:>12.2} {slow:>12.2} {:>7.2}x", format!("batch {batch} @{side}"), fast / slow);
    }
    Ok(())
}
