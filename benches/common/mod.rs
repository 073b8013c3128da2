//! Shared by the benches: a ResNet with random (He-scaled) weights, for timing only, and the
//! PyTorch reference (`benches/reference.py` in the venv `make bench-reference` creates).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use resnet_audit::model::{Backend, BuildOptions, ResNet, ResNetConfig};
use resnet_audit::weights::tensor_specs;

/// Random weights as a torchvision-named tensor map (seeded by candle's global CPU RNG).
pub fn random_tensors(config: &ResNetConfig) -> candle_core::Result<HashMap<String, Tensor>> {
    let device = Device::Cpu;
    let mut tensors = HashMap::new();
    for spec in tensor_specs(config)? {
        let fan_in: usize = spec.shape.iter().skip(1).product::<usize>().max(1);
        let tensor = if spec.name.ends_with("running_var") {
            Tensor::rand(0.5f32, 1.5, spec.shape.as_slice(), &device)?
        } else {
            (Tensor::randn(0f32, 1.0, spec.shape.as_slice(), &device)? * (2.0 / fan_in as f64).sqrt())?
        };
        tensors.insert(spec.name, tensor);
    }
    Ok(tensors)
}

pub fn resnet_from(
    config: &ResNetConfig,
    tensors: &HashMap<String, Tensor>,
    options: BuildOptions,
) -> candle_core::Result<ResNet> {
    ResNet::new(config, VarBuilder::from_tensors(tensors.clone(), DType::F32, &Device::Cpu), options)
}

pub fn random_resnet(config: &ResNetConfig, fold_bn: bool, backend: Backend) -> candle_core::Result<ResNet> {
    resnet_from(config, &random_tensors(config)?, BuildOptions { fold_bn, backend })
}

/// The fast path and candle's plain path (both with BN folded) over the same weights.
pub fn both_backends(
    config: &ResNetConfig,
    tensors: &HashMap<String, Tensor>,
) -> candle_core::Result<(ResNet, ResNet)> {
    let fast = resnet_from(config, tensors, BuildOptions { fold_bn: true, backend: Backend::Fast })?;
    let plain = resnet_from(config, tensors, BuildOptions { fold_bn: true, backend: Backend::Candle })?;
    assert!(fast.uses_fast_path() && !plain.uses_fast_path());
    Ok((fast, plain))
}

/// A full-width ResNet-50 v1.5 with random weights on both paths, and PyTorch (when present)
/// with the same weights, written to a temporary safetensors file.
pub struct Versus {
    pub fast: ResNet,
    pub plain: ResNet,
    pub reference: Option<Reference>,
    pub weights: PathBuf,
    _dir: tempfile::TempDir,
}

impl Versus {
    pub fn resnet50(root: &Path) -> Result<Self, Box<dyn std::error::Error>> {
        let config = ResNetConfig::imagenet(50, 1000);
        let tensors = random_tensors(&config)?;
        let (fast, plain) = both_backends(&config, &tensors)?;
        let dir = tempfile::tempdir()?;
        let weights = dir.path().join("resnet50.safetensors");
        candle_core::safetensors::save(&tensors, &weights)?;
        Ok(Self { fast, plain, reference: Reference::find(root), weights, _dir: dir })
    }
}

/// PyTorch + torchvision run through `benches/reference.py`, with the same thread count.
pub struct Reference {
    python: PathBuf,
    script: PathBuf,
    pub versions: String,
}

impl Reference {
    /// `None` (with the reason printed) when the venv or its torch is absent.
    pub fn find(root: &Path) -> Option<Self> {
        let python = root.join(".venv/bin/python");
        let probe = Command::new(&python)
            .args(["-c", "import torch, torchvision; print(f'PyTorch {torch.__version__}, torchvision {torchvision.__version__}')"])
            .output();
        match probe {
            Ok(out) if out.status.success() => Some(Self {
                python,
                script: root.join("benches/reference.py"),
                versions: String::from_utf8_lossy(&out.stdout).trim().to_string(),
            }),
            _ => {
                println!(
                    "(no PyTorch reference: {} cannot import torch; `make bench-reference` sets it up)",
                    python.display()
                );
                None
            }
        }
    }

    /// Runs the script with `args` and returns its one JSON line.
    pub fn run(&self, args: &[String]) -> Result<serde_json::Value, String> {
        let threads = rayon::current_num_threads().to_string();
        let out = Command::new(&self.python)
            .arg(&self.script)
            .args(args)
            .env("BENCH_THREADS", threads)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.python.display()))?;
        if !out.status.success() {
            return Err(format!("reference.py {args:?} failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("reference.py {args:?}: bad output ({e})"))
    }

    pub fn images_per_second(&self, args: &[String]) -> Result<f64, String> {
        let value = self.run(args)?;
        value["images_per_s"].as_f64().ok_or_else(|| format!("reference.py {args:?}: no images_per_s in {value}"))
    }
}

/// `a / b` as "1.23x", or "-" without a reference.
pub fn ratio(a: f64, b: Option<f64>) -> String {
    b.map_or("-".into(), |b| format!("{:.2}x", a / b))
}

/// A reference figure, or "-".
pub fn figure(x: Option<f64>) -> String {
    x.map_or("-".into(), |x| format!("{x:.2}"))
}
