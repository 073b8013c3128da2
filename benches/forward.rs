//! `make bench`: forward throughput of a full-width ResNet-50 v1.5 (random weights, f32) on
//! this machine's CPU: the fast NHWC path (the default), candle's plain path (BN folded), and
//! PyTorch with channels_last on the same weights when the venv is present; then bf16 on this CPU
//! (candle's ops, batch 8) against f32, and bf16/f16 top-1 agreement with f32 on a released model.
//! `BENCH_PART=bf16` runs the bf16 part alone.

mod common;

use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use common::{figure, ratio, Versus};
use resnet_audit::model::ResNet;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Images per second of the median pass, over passes filling at least `budget` of wall time
/// (at least 3) after one warm-up pass. The median keeps a pass slowed by another tenant of
/// this shared machine from moving the figure; `reference.py` measures PyTorch the same way.
fn throughput(model: &ResNet, batch: usize, side: usize, budget: Duration) -> candle_core::Result<f64> {
    let x = Tensor::randn(0f32, 1.0, (batch, 3, side, side), &Device::Cpu)?;
    model.forward(&x)?;
    let start = Instant::now();
    let mut passes = Vec::new();
    while start.elapsed() < budget || passes.len() < 3 {
        let pass = Instant::now();
        model.forward(&x)?;
        passes.push(pass.elapsed().as_secs_f64());
    }
    passes.sort_by(f64::total_cmp);
    Ok(batch as f64 / passes[passes.len() / 2])
}

fn main() -> BenchResult<()> {
    // As the CLI does: candle otherwise reads /proc/cpuinfo on every op.
    resnet_audit::device::pin_thread_count(None);
    resnet_audit::model::nhwc::keep_freed_activations(); // as the CLI runs (see its main)
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let threads = rayon::current_num_threads();
    let seconds: u64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let budget = Duration::from_secs(seconds);
    // `BENCH_PART=bf16`: the bf16 figures alone.
    if std::env::var("BENCH_PART").is_ok_and(|p| p == "bf16") {
        bf16_versus_f32(budget, &root)?;
        return bf16_on_a_released_model(&root);
    }
    let Versus { fast, plain, reference, weights, .. } = &Versus::resnet50(&root)?;

    // The two paths compute the same logits (full width; the tests check the narrow fixtures).
    let x = Tensor::randn(0f32, 1.0, (4, 3, 224, 224), &Device::Cpu)?;
    let (a, b) = (fast.forward(&x)?, plain.forward(&x)?);
    let diff = (&a - &b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    let scale = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    let agreement =
        format!("ours vs candle on 4 random images at 224: max |Δ logit| / max |logit| = {:.1e}", diff / scale);

    let mut lines = Vec::new();
    for (batch, side) in [(1, 224), (16, 224), (1, 448)] {
        let f = throughput(fast, batch, side, budget)?;
        let p = throughput(plain, batch, side, budget)?;
        // One at a time: two processes sharing the cores would slow each other.
        let torch = |mode: &str| -> Result<Option<f64>, String> {
            let Some(r) = &reference else { return Ok(None) };
            let weights = weights.to_string_lossy();
            let (batch, side, seconds) = (batch.to_string(), side.to_string(), seconds.to_string());
            let args = [
                "forward",
                "--weights",
                &weights,
                "--batch",
                &batch,
                "--side",
                &side,
                "--seconds",
                &seconds,
                "--mode",
                mode,
            ];
            r.images_per_second(&args.map(String::from)).map(Some)
        };
        let (eager, frozen) = (torch("eager")?, torch("frozen")?);
        lines.push(format!(
            "{:<14} {f:>7.2} {p:>7.2} {:>8} {:>8} {:>8} {:>8} {:>8}",
            format!("batch {batch} @{side}"),
            figure(eager),
            figure(frozen),
            format!("{:.2}x", f / p),
            ratio(f, eager),
            ratio(f, frozen)
        ));
    }
    println!("\nForward, ResNet-50 v1.5, f32, random weights, CPU, {threads} threads; images/s (higher is better)");
    if let Some(r) = &reference {
        println!("PyTorch: {}, channels_last, same weights: eager (torchvision's module) and frozen", r.versions);
        println!("(TorchScript + optimize_for_inference: BN folded, conv+ReLU fused; its fastest CPU mode here)");
    }
    println!(
        "{:<14} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "shape", "ours", "candle", "eager", "frozen", "/candle", "/eager", "/frozen"
    );
    lines.iter().for_each(|l| println!("{l}"));
    println!("{agreement}");
    bf16_versus_f32(budget, &root)?;
    bf16_on_a_released_model(&root)?;
    Ok(())
}

/// Top-1 agreement of bf16 with f32 on a real model and real images: the released CIFAR-10
/// ResNet-20 on the 846 committed test images (no ImageNet weights are available offline here,
/// and random weights' top-1 means nothing).
fn bf16_on_a_released_model(root: &std::path::Path) -> BenchResult<()> {
    use resnet_audit::device::{Precision, Runtime};
    use resnet_audit::eval::{self, EvalOptions, RunMode};
    let loaded = resnet_audit::experiment::LoadedExperiment::read(&root.join("experiments/cifar10-released.yaml"))?;
    let store = tempfile::tempdir()?;
    let run = |dtype| -> BenchResult<(Vec<Option<i64>>, f64, f64)> {
        let runtime = Runtime { dtype, ..Runtime::default() };
        let options = EvalOptions {
            models: Vec::new(),
            protocols: vec!["as-is-readme".into()],
            limit: None,
            runtime,
            store_dir: store.path().to_path_buf(),
            sweeps: false,
            mode: RunMode::Complete,
        };
        let start = Instant::now();
        let report = eval::run(&loaded, &options)?;
        let row = &report.rows[0];
        let top1 = row.results.iter().map(|r| r.outcome.as_ref().ok().map(|s| s.top5[0].0)).collect();
        Ok((top1, row.rates.top1.estimate, start.elapsed().as_secs_f64()))
    };
    let (f32_top1, f32_err, f32_s) = run(Precision::F32)?;
    println!(
        "\nReleased CIFAR-10 ResNet-20 (experiments/cifar10-released.yaml, as-is-readme), {} images:",
        f32_top1.len()
    );
    println!("f32 (fast path): top-1 error {:.2}% in {f32_s:.1} s", 100.0 * f32_err);
    for dtype in [Precision::Bf16, Precision::F16] {
        let (top1, err, s) = run(dtype)?;
        let same = top1.iter().zip(&f32_top1).filter(|(a, b)| a == b).count();
        println!(
            "{dtype} (candle's ops): top-1 error {:.2}% in {s:.1} s; top-1 agrees with f32 on {same} of {}",
            100.0 * err,
            top1.len()
        );
    }
    Ok(())
}

/// bf16 on this CPU (`--dtype bf16` runs candle's ops; the fast path is f32-only): candle's plain
/// path in f32 and in bf16 on the same random weights, batch 8 at 224, and how far the bf16
/// logits move.
fn bf16_versus_f32(budget: Duration, root: &std::path::Path) -> BenchResult<()> {
    use candle_core::DType;
    use candle_nn::VarBuilder;
    use resnet_audit::model::{Backend, BuildOptions, ResNetConfig};
    let config = ResNetConfig::imagenet(50, 1000);
    let tensors = common::random_tensors(&config)?;
    let build = BuildOptions { fold_bn: true, backend: Backend::Candle };
    let model = |dtype| ResNet::new(&config, VarBuilder::from_tensors(tensors.clone(), dtype, &Device::Cpu), build);
    let (f32_model, bf16_model) = (model(DType::F32)?, model(DType::BF16)?);
    let batch = 8;
    let x = Tensor::randn(0f32, 1.0, (batch, 3, 224, 224), &Device::Cpu)?;
    let rate = |m: &ResNet, x: &Tensor| -> candle_core::Result<f64> {
        m.forward(x)?;
        let start = Instant::now();
        let mut passes = Vec::new();
        while start.elapsed() < budget || passes.len() < 3 {
            let pass = Instant::now();
            m.forward(x)?;
            passes.push(pass.elapsed().as_secs_f64());
        }
        passes.sort_by(f64::total_cmp);
        Ok(batch as f64 / passes[passes.len() / 2])
    };
    let xb = x.to_dtype(DType::BF16)?;
    let (f, b) = (rate(&f32_model, &x)?, rate(&bf16_model, &xb)?);
    let (a, c) = (f32_model.forward(&x)?, bf16_model.forward(&xb)?.to_dtype(DType::F32)?);
    let diff = (&a - &c)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    let scale = a.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    let top1 = |t: &Tensor| t.argmax(1).and_then(|t| t.to_vec1::<u32>());
    let same = top1(&a)?.iter().zip(top1(&c)?).filter(|(p, q)| **p == *q).count();
    // PyTorch on the same weights: f32 eager and bf16 under autocast, channels_last.
    let versus = common::Versus::resnet50(root)?;
    let torch = |dtype: &str| -> BenchResult<Option<f64>> {
        let Some(r) = &versus.reference else { return Ok(None) };
        let weights = versus.weights.to_string_lossy().into_owned();
        let seconds = budget.as_secs().max(1).to_string();
        let args = [
            "forward",
            "--weights",
            &weights,
            "--batch",
            "8",
            "--side",
            "224",
            "--seconds",
            &seconds,
            "--dtype",
            dtype,
        ];
        Ok(Some(r.images_per_second(&args.map(String::from))?))
    };
    let (torch_f32, torch_bf16) = (torch("f32")?, torch("bf16")?);
    let ours = throughput(&versus.fast, batch, 224, budget)?;
    println!("\nbf16 on this CPU, ResNet-50, batch {batch} at 224, images/s (the fast path is f32-only)");
    println!("{:<34} {:>8} {:>8} {:>8}", "", "f32", "bf16", "bf16/f32");
    println!("{:<34} {f:>8.2} {b:>8.2} {:>7.2}x", "candle's ops", b / f);
    println!("{:<34} {ours:>8.2} {:>8} {:>8}", "ours (fast path)", "-", "-");
    if let (Some(tf), Some(tb)) = (torch_f32, torch_bf16) {
        println!("{:<34} {tf:>8.2} {tb:>8.2} {:>7.2}x", "PyTorch eager, channels_last", tb / tf);
    }
    println!(
        "bf16 vs f32 logits: max |Δ| / max |logit| = {:.1e}; top-1 agrees on {same} of {batch} (random weights)",
        diff / scale
    );
    Ok(())
}
