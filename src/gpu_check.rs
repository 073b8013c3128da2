//! `resnet-audit gpu-check` (hidden; run by `tests/gpu/check.sh`): everything a GPU machine must
//! show before an audit is trusted to it, from the repository's committed fixtures alone (no
//! network, no Python):
//!
//! 1. the parity fixtures on the device in f32 against the committed PyTorch outputs (1e-4 of the
//!    largest reference value, as `tests/parity.rs`), and bf16/f16 measured against them;
//! 2. the demo experiment on the device against the CPU's fast path (top-1 decisions identical in
//!    f32 expected; differences counted in bf16);
//! 3. a few training steps of the demo recipe on the device against the CPU (losses per epoch);
//! 4. ResNet-50 forward throughput (batch 1, 64, 256 × f32/bf16/f16) and protocols (i) and (ii)
//!    end to end.
//!
//! The results go to `<out>/gpu-check.json` and `<out>/gpu-check.md`. On the CPU (`--device
//! cpu`, which tests the check itself) the "device" side runs candle's ops, smaller and faster
//! (`quick`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::Serialize;
use serde_json::json;

use crate::dataset::Sample;
use crate::demo::DemoSpec;
use crate::device::{DeviceError, DeviceKind, Precision, Runtime};
use crate::engine::{self, Scorer, Settings, Task};
use crate::eval::{self, EvalError, EvalOptions, RunMode};
use crate::experiment::{ExperimentError, LoadedExperiment};
use crate::model::{Backend, BuildOptions, DenseWindow, ResNet, ResNetConfig, StridePlacement};
use crate::protocol::{ProtocolEntry, ProtocolSpec};
use crate::store::{ResultStore, StoreKey};
use crate::train::resume::Resume;
use crate::train::run::{train_seed_on, Recipe, TrainError};
use crate::transform::{InputSpec, NormalizeError, Normalizer};
use crate::weights::{load_resnet, LoadOptions, WeightsError, WeightsFile};

/// The parity tolerance of `tests/parity.rs`: max |Δ| / max |reference| in f32.
pub const PARITY_TOLERANCE: f32 = 1e-4;
/// Per-epoch training losses on the device and the CPU may differ by this much, relatively:
/// reductions run in another order, and a few SGD steps amplify 1e-7 differences a little.
pub const LOSS_TOLERANCE: f64 = 1e-3;

#[derive(Debug, thiserror::Error)]
pub enum GpuCheckError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("parity fixture {name}: {error}")]
    Fixture { name: String, error: WeightsError },
    #[error("parity fixture {name}: tensor `{tensor}` is missing")]
    FixtureTensor { name: String, tensor: String },
    #[error("{what}: {error}")]
    Candle { what: String, error: candle_core::Error },
    #[error(transparent)]
    Experiment(#[from] ExperimentError),
    #[error("demo experiment on {runtime}: {error}")]
    Eval { runtime: String, error: Box<EvalError> },
    #[error("demo recipe {path}: {error}")]
    Recipe { path: PathBuf, error: crate::yaml::YamlError },
    #[error("training on {device}: {error}")]
    Train { device: String, error: Box<TrainError> },
    #[error("protocol rates: {0}")]
    Engine(Box<engine::EngineError>),
    #[error(transparent)]
    Normalize(#[from] NormalizeError),
    #[error("cannot use {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error(transparent)]
    Write(#[from] crate::fsio::WriteError),
}

fn candle(what: impl Into<String>) -> impl FnOnce(candle_core::Error) -> GpuCheckError {
    let what = what.into();
    move |error| GpuCheckError::Candle { what, error }
}

/// What to check, where.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// The device under test (its dtype is ignored: every dtype is checked).
    pub runtime: Runtime,
    /// Smaller batches, fewer images and passes (implied on the CPU).
    pub quick: bool,
    /// The repository root (fixtures/, experiments/).
    pub root: PathBuf,
    /// Where gpu-check.json, gpu-check.md and a scratch folder go.
    pub out: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct ParityCase {
    pub model: String,
    pub output: String,
    pub dtype: Precision,
    /// max |Δ| / max |reference| against PyTorch's f32 output.
    pub relative_error: f32,
    /// Rows whose arg-max equals PyTorch's, of `rows`.
    pub top1_agree: usize,
    pub rows: usize,
    /// f32 only: within [`PARITY_TOLERANCE`]. bf16/f16 are measured, not judged.
    pub passed: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DemoComparison {
    pub dtype: Precision,
    pub images: usize,
    /// (model, protocol) results compared.
    pub results: usize,
    /// Image results whose top-1 class differs from the CPU's.
    pub top1_differences: usize,
    pub compared: usize,
    pub max_probability_difference: f32,
    pub seconds: f64,
    /// f32 only: no top-1 difference.
    pub passed: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainingComparison {
    pub steps_per_epoch: usize,
    pub cpu_losses: Vec<f64>,
    pub device_losses: Vec<f64>,
    pub max_relative_difference: f64,
    pub passed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub dtype: Precision,
    pub batch: usize,
    pub images_per_second: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProtocolRate {
    pub protocol: String,
    pub images: usize,
    pub images_per_second: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub device: String,
    pub quick: bool,
    pub parity: Vec<ParityCase>,
    pub demo: Vec<DemoComparison>,
    pub training: TrainingComparison,
    pub forward: Vec<Throughput>,
    pub protocols: Vec<ProtocolRate>,
    pub seconds: f64,
}

impl CheckReport {
    /// Every judged check passed (parity f32, demo f32, training).
    pub fn passed(&self) -> bool {
        self.parity.iter().all(|c| c.passed != Some(false))
            && self.demo.iter().all(|d| d.passed != Some(false))
            && self.training.passed
    }
}

/// The runtime whose numbers the device's are compared with: the CPU's default fast path.
fn cpu_reference() -> Runtime {
    Runtime::default()
}

/// The device under test in `dtype`; on the CPU, candle's ops (what a GPU runs), so the check
/// compares two implementations there too.
fn under_test(options: &CheckOptions, dtype: Precision) -> Runtime {
    let backend =
        if options.runtime.device.kind == DeviceKind::Cpu { Backend::Candle } else { options.runtime.backend };
    Runtime { dtype, backend, tf32: false, ..options.runtime }
}

/// Runs every check and writes `gpu-check.json` and `gpu-check.md` under `options.out`.
pub fn run(options: &CheckOptions) -> Result<CheckReport, GpuCheckError> {
    let start = Instant::now();
    let scratch = options.out.join("scratch");
    std::fs::create_dir_all(&scratch).map_err(|error| GpuCheckError::Io { path: scratch.clone(), error })?;
    let device = under_test(options, Precision::F32).open()?;
    eprintln!("gpu-check: parity fixtures");
    let parity = parity(options, &device)?;
    eprintln!("gpu-check: demo experiment");
    let demo = demo(options, &scratch)?;
    eprintln!("gpu-check: training steps");
    let training = training(options, &device, &scratch)?;
    eprintln!("gpu-check: forward throughput");
    let forward = forward_rates(options, &device)?;
    eprintln!("gpu-check: protocols end to end");
    let protocols = protocol_rates(options, &device, &scratch)?;
    // The scratch stores and demo data are large and rebuilt by a rerun.
    let _ = std::fs::remove_dir_all(&scratch);
    let report = CheckReport {
        device: options.runtime.device.to_string(),
        quick: options.quick,
        parity,
        demo,
        training,
        forward,
        protocols,
        seconds: start.elapsed().as_secs_f64(),
    };
    let mut value = serde_json::to_value(&report).unwrap_or_default();
    value["passed"] = json!(report.passed());
    value["software"] = json!(crate::version::software_version());
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    crate::fsio::atomic_write(&options.out.join("gpu-check.json"), text.as_bytes())?;
    crate::fsio::atomic_write(&options.out.join("gpu-check.md"), markdown(&report).as_bytes())?;
    Ok(report)
}

/// The parity fixtures (`tests/parity.rs`'s ResNet-18 and ResNet-50 v1.5, width 8) on the device.
fn parity(options: &CheckOptions, device: &Device) -> Result<Vec<ParityCase>, GpuCheckError> {
    let dir = options.root.join("fixtures/parity");
    let read = |name: &str| {
        WeightsFile::read(&dir.join(format!("{name}.safetensors")))
            .map_err(|error| GpuCheckError::Fixture { name: name.into(), error })
    };
    let inputs = read("inputs")?;
    let get = |file: &WeightsFile, name: &str, tensor: &str| -> Result<Tensor, GpuCheckError> {
        let stored = file.tensors.get(tensor).and_then(|t| t.tensor.clone());
        let missing = || GpuCheckError::FixtureTensor { name: name.into(), tensor: tensor.into() };
        stored.ok_or_else(missing)?.to_dtype(DType::F32).map_err(candle(tensor))
    };
    let models = [
        ("resnet18_w8", ResNetConfig::imagenet(18, 17).with_base_width(8), ""),
        ("resnet50_w8", ResNetConfig::imagenet(50, 100).with_base_width(8).with_stride(StridePlacement::V1_5), "v1.5/"),
    ];
    let mut cases = Vec::new();
    for (name, config, prefix) in models {
        let (weights, expected) = (read(name)?, read(&format!("{name}.expected"))?);
        for dtype in [Precision::F32, Precision::Bf16, Precision::F16] {
            let runtime = under_test(options, dtype);
            let load = LoadOptions {
                dtype: dtype.dtype(),
                device: device.clone(),
                build: BuildOptions { backend: runtime.backend, ..BuildOptions::default() },
            };
            let model = load_resnet(&weights, &config, &load)
                .map_err(|error| GpuCheckError::Fixture { name: name.into(), error })?;
            for (output, input) in [("logits_x224", "x224"), ("dense_pool7_x_rect", "x_rect")] {
                let what = format!("{name} {output} {dtype}");
                let x = get(&inputs, "inputs", input)?.to_device(device).map_err(candle(&what))?;
                let x = x.to_dtype(dtype.dtype()).map_err(candle(&what))?;
                let y = match output {
                    "logits_x224" => model.forward(&x),
                    _ => model.forward_dense(&x, DenseWindow::Pool(7)),
                };
                let y = y.and_then(|y| y.to_dtype(DType::F32)?.to_device(&Device::Cpu)).map_err(candle(&what))?;
                let reference = get(&expected, name, &format!("{prefix}{output}"))?;
                let (relative_error, top1_agree, rows) = compare(&y, &reference).map_err(candle(&what))?;
                let passed = (dtype == Precision::F32).then_some(relative_error <= PARITY_TOLERANCE);
                cases.push(ParityCase {
                    model: name.into(),
                    output: output.into(),
                    dtype,
                    relative_error,
                    top1_agree,
                    rows,
                    passed,
                });
            }
        }
    }
    Ok(cases)
}

/// max |a − b| / max |b|, and how many rows (of the class dimension's arg-max over the flattened
/// rest) agree.
fn compare(actual: &Tensor, expected: &Tensor) -> candle_core::Result<(f32, usize, usize)> {
    let diff = (actual - expected)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    let scale = expected.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    // Classes on dim 1: [N, K] logits or [N, K, H, W] maps, moved to the last dim.
    let classes = actual.dim(1)?;
    let rows = |t: &Tensor| -> candle_core::Result<Vec<u32>> {
        let t = if t.rank() == 4 { t.permute((0, 2, 3, 1))?.contiguous()? } else { t.clone() };
        t.reshape(((), classes))?.argmax(1)?.to_vec1::<u32>()
    };
    let (a, b) = (rows(actual)?, rows(expected)?);
    let agree = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    Ok((diff / scale.max(f32::MIN_POSITIVE), agree, a.len()))
}

/// The demo experiment's protocols as written (no sweeps) on the CPU's fast path and on the
/// device, in f32 and bf16.
fn demo(options: &CheckOptions, scratch: &Path) -> Result<Vec<DemoComparison>, GpuCheckError> {
    let loaded = LoadedExperiment::read(&options.root.join("experiments/demo.yaml"))?;
    let limit = if options.quick { Some(40) } else { None };
    let evaluate = |runtime: Runtime, store: &str| -> Result<(eval::EvalReport, f64), GpuCheckError> {
        let eval_options = EvalOptions {
            models: Vec::new(),
            protocols: Vec::new(),
            limit,
            runtime,
            store_dir: scratch.join(store),
            sweeps: false,
            mode: RunMode::Complete,
        };
        let start = Instant::now();
        let report = eval::run(&loaded, &eval_options)
            .map_err(|error| GpuCheckError::Eval { runtime: runtime.to_string(), error: Box::new(error) })?;
        Ok((report, start.elapsed().as_secs_f64()))
    };
    let (reference, _) = evaluate(cpu_reference(), "store-cpu")?;
    let mut comparisons = Vec::new();
    for dtype in [Precision::F32, Precision::Bf16] {
        let (report, seconds) = evaluate(under_test(options, dtype), &format!("store-{dtype}"))?;
        let (mut differences, mut compared, mut max_diff) = (0, 0, 0f32);
        for (a, b) in reference.rows.iter().zip(&report.rows) {
            for (x, y) in a.results.iter().zip(b.results.iter()) {
                if let (Ok(x), Ok(y)) = (&x.outcome, &y.outcome) {
                    compared += 1;
                    differences += usize::from(x.top5.first().map(|t| t.0) != y.top5.first().map(|t| t.0));
                    max_diff = x.probs.iter().zip(&y.probs).map(|(p, q)| (p - q).abs()).fold(max_diff, f32::max);
                }
            }
        }
        comparisons.push(DemoComparison {
            dtype,
            images: report.images,
            results: report.rows.len(),
            top1_differences: differences,
            compared,
            max_probability_difference: max_diff,
            seconds,
            passed: (dtype == Precision::F32).then_some(differences == 0 && compared > 0),
        });
    }
    Ok(comparisons)
}

/// The demo recipe (paper's) on a small generated set: per-epoch training losses on the CPU and
/// on the device, from the same seed.
fn training(options: &CheckOptions, device: &Device, scratch: &Path) -> Result<TrainingComparison, GpuCheckError> {
    let path = options.root.join("experiments/train/demo-paper.yaml");
    let mut recipe: Recipe =
        crate::yaml::read(&path).map_err(|error| GpuCheckError::Recipe { path: path.clone(), error })?;
    let per_class = if options.quick { 4 } else { 32 };
    let spec = DemoSpec { train_per_class: per_class, test_per_class: 2, ..DemoSpec::default() };
    // Relative to `scratch`, the base the recipe is trained from.
    recipe.data = crate::train::recipe::TrainData::Demo { dir: "demo-train".into(), spec };
    recipe.epochs = if options.quick { 1 } else { 2 };
    let steps_per_epoch = (per_class * crate::demo::CLASSES.len()).div_ceil(recipe.batch_size);
    let train = |device: &Device, name: &str| -> Result<Vec<f64>, GpuCheckError> {
        let run = train_seed_on(&recipe, scratch, recipe.seed, &scratch.join(name), Resume::Fresh, device)
            .map_err(|error| GpuCheckError::Train { device: name.into(), error: Box::new(error) })?;
        Ok(run.curve.iter().map(|row| row.train_loss).collect())
    };
    let cpu_losses = train(&Device::Cpu, "train-cpu")?;
    let device_losses = train(device, "train-device")?;
    let max_relative_difference = cpu_losses
        .iter()
        .zip(&device_losses)
        .map(|(a, b)| (a - b).abs() / a.abs().max(f64::MIN_POSITIVE))
        .fold(0.0, f64::max);
    let passed = cpu_losses.len() == device_losses.len()
        && device_losses.iter().all(|l| l.is_finite())
        && max_relative_difference <= LOSS_TOLERANCE;
    Ok(TrainingComparison { steps_per_epoch, cpu_losses, device_losses, max_relative_difference, passed })
}

/// A full-width ResNet-50 with zero weights (the time does not depend on the values).
fn resnet50(runtime: &Runtime, device: &Device) -> candle_core::Result<ResNet> {
    let vb = VarBuilder::zeros(runtime.dtype.dtype(), device);
    ResNet::new(&ResNetConfig::imagenet(50, 1000), vb, BuildOptions { backend: runtime.backend, ..Default::default() })
}

/// ResNet-50 forward images/s at 224 for each dtype and batch (median pass after a warm-up).
fn forward_rates(options: &CheckOptions, device: &Device) -> Result<Vec<Throughput>, GpuCheckError> {
    let batches: &[usize] = if options.quick { &[1, 8] } else { &[1, 64, 256] };
    let passes = if options.quick { 1 } else { 5 };
    let mut rates = Vec::new();
    for dtype in [Precision::F32, Precision::Bf16, Precision::F16] {
        // On the CPU, f32 is the fast path (what an audit there runs); others are candle's.
        let runtime =
            if device.is_cpu() && dtype == Precision::F32 { cpu_reference() } else { under_test(options, dtype) };
        let what = format!("ResNet-50 forward {dtype}");
        let model = resnet50(&runtime, device).map_err(candle(&what))?;
        for &batch in batches.iter().filter(|&&b| !(options.quick && dtype != Precision::F32 && b > 1)) {
            let measure = || -> candle_core::Result<f64> {
                let x = Tensor::zeros((batch, 3, 224, 224), dtype.dtype(), device)?;
                model.forward(&x)?;
                device.synchronize()?;
                let mut times = Vec::new();
                for _ in 0..passes {
                    let start = Instant::now();
                    model.forward(&x)?;
                    device.synchronize()?;
                    times.push(start.elapsed().as_secs_f64());
                }
                times.sort_by(f64::total_cmp);
                Ok(batch as f64 / times[times.len() / 2].max(1e-9))
            };
            rates.push(Throughput { dtype, batch, images_per_second: measure().map_err(candle(&what))? });
        }
    }
    Ok(rates)
}

/// Protocols (i) and (ii) at 256/224 end to end through the engine (decode on every core, views,
/// the device's ResNet-50 in f32, scores) over copies of the fixture photos.
fn protocol_rates(options: &CheckOptions, device: &Device, scratch: &Path) -> Result<Vec<ProtocolRate>, GpuCheckError> {
    let images = options.root.join("fixtures/images");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&images)
        .map_err(|error| GpuCheckError::Io { path: images.clone(), error })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "JPEG"))
        .collect();
    paths.sort();
    let copies = if options.quick { 1 } else { 256 };
    let samples: Vec<Sample> = (0..copies)
        .flat_map(|c| paths.iter().map(move |p| Sample::file(format!("{c}/{}", p.display()), p.clone(), 0)))
        .collect();
    let runtime = if device.is_cpu() { cpu_reference() } else { under_test(options, Precision::F32) };
    let model = resnet50(&runtime, device).map_err(candle("ResNet-50"))?;
    let normalizer = Normalizer::new(&InputSpec::torchvision(), &options.root)?;
    let map: Vec<Option<usize>> = (0..1000).map(Some).collect();
    let scorer = Scorer { model: &model, normalizer: &normalizer, output_map: &map, num_classes: 1000, device };
    let batch_size = if device.is_cpu() { 16 } else { 256 };
    let settings = Settings { batch_size, chunk_size: batch_size, ..Settings::default() };
    let mut rates = Vec::new();
    for kind in ["center-crop", "ten-crop"] {
        let entry: Result<ProtocolEntry, _> = serde_yaml::from_str(&format!("{{id: x, kind: {kind}}}"));
        let spec: ProtocolSpec = match entry {
            Ok(entry) => entry.spec,
            Err(_) => continue, // the defaults are ours: cannot fail
        };
        let store = ResultStore::new(scratch.join(format!("rates-{kind}")));
        let key = StoreKey::new("gpu-check", kind, &json!({ "kind": kind }));
        let task = Task { label: kind.into(), protocol: &spec, samples: &samples, key, description: json!({}) };
        let start = Instant::now();
        engine::evaluate(&scorer, &task, &settings, &store).map_err(|e| GpuCheckError::Engine(Box::new(e)))?;
        let seconds = start.elapsed().as_secs_f64().max(1e-9);
        rates.push(ProtocolRate {
            protocol: kind.into(),
            images: samples.len(),
            images_per_second: samples.len() as f64 / seconds,
        });
    }
    Ok(rates)
}

fn verdict(passed: Option<bool>) -> &'static str {
    match passed {
        Some(true) => "pass",
        Some(false) => "FAIL",
        None => "measured",
    }
}

/// The report as Markdown (the JSON has the same numbers).
pub fn markdown(report: &CheckReport) -> String {
    let mut s = format!(
        "# GPU self-check: {}\n\n{}. {:.0} s{}.\n\n",
        report.device,
        if report.passed() { "All judged checks passed" } else { "Some checks FAILED" },
        report.seconds,
        if report.quick { " (quick: small batches and sets)" } else { "" }
    );
    s += &format!("## Parity with PyTorch (f32 tolerance {PARITY_TOLERANCE:.0e} of the largest value)\n\n");
    s += "| model | output | dtype | max rel. error | top-1 agree | verdict |\n|---|---|---|---|---|---|\n";
    for c in &report.parity {
        s += &format!(
            "| {} | {} | {} | {:.2e} | {}/{} | {} |\n",
            c.model,
            c.output,
            c.dtype,
            c.relative_error,
            c.top1_agree,
            c.rows,
            verdict(c.passed)
        );
    }
    s += "\n## Demo experiment: device vs the CPU's fast path (f32)\n\n";
    s += "| dtype | images | results | top-1 differences | max abs. prob. difference | seconds | verdict |\n|---|---|---|---|---|---|---|\n";
    for d in &report.demo {
        s += &format!(
            "| {} | {} | {} | {} of {} | {:.2e} | {:.1} | {} |\n",
            d.dtype,
            d.images,
            d.results,
            d.top1_differences,
            d.compared,
            d.max_probability_difference,
            d.seconds,
            verdict(d.passed)
        );
    }
    let t = &report.training;
    s += &format!(
        "\n## Training ({} steps per epoch, demo recipe)\n\nCPU losses {:?}; device losses {:?}; max relative difference {:.2e} (tolerance {LOSS_TOLERANCE:.0e}): {}.\n",
        t.steps_per_epoch,
        t.cpu_losses,
        t.device_losses,
        t.max_relative_difference,
        if t.passed { "pass" } else { "FAIL" }
    );
    s += "\n## ResNet-50 forward at 224 (images/s)\n\n| dtype | batch | images/s |\n|---|---|---|\n";
    for r in &report.forward {
        s += &format!("| {} | {} | {:.1} |\n", r.dtype, r.batch, r.images_per_second);
    }
    s += "\n## Protocols end to end (ResNet-50, f32, decode on every core)\n\n| protocol | images | images/s |\n|---|---|---|\n";
    for r in &report.protocols {
        s += &format!("| {} | {} | {:.1} |\n", r.protocol, r.images, r.images_per_second);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_counts_arg_max_agreement_per_position() {
        // [N=1, K=3, H=1, W=2]: positions (0,0) and (0,1); the classes sit on dim 1.
        let expected = Tensor::new(&[[[[1f32, 0.]], [[0., 2.]], [[0.5, 0.]]]], &Device::Cpu).unwrap();
        let actual = Tensor::new(&[[[[1f32, 0.]], [[0., 1.]], [[0.5, 3.]]]], &Device::Cpu).unwrap();
        let (error, agree, rows) = compare(&actual, &expected).unwrap();
        assert_eq!((agree, rows), (1, 2), "class 0 at the first position, 1 vs 2 at the second");
        assert!((error - 1.5).abs() < 1e-6, "max |Δ| 3 over max |ref| 2: {error}");
    }

    #[test]
    fn a_failed_judged_check_fails_the_report() {
        let training = TrainingComparison {
            steps_per_epoch: 1,
            cpu_losses: vec![1.0],
            device_losses: vec![1.0],
            max_relative_difference: 0.0,
            passed: true,
        };
        let parity = |passed| ParityCase {
            model: "m".into(),
            output: "o".into(),
            dtype: Precision::F32,
            relative_error: 0.0,
            top1_agree: 1,
            rows: 1,
            passed,
        };
        let report = |passed| CheckReport {
            device: "cpu".into(),
            quick: true,
            parity: vec![parity(None), parity(passed)],
            demo: Vec::new(),
            training: training.clone(),
            forward: Vec::new(),
            protocols: Vec::new(),
            seconds: 0.0,
        };
        assert!(report(Some(true)).passed());
        assert!(!report(Some(false)).passed());
        assert!(markdown(&report(Some(false))).contains("FAIL"));
    }
}
