//! `train`: a recipe (YAML) → seeded runs on a class-per-folder dataset (or the generated demo),
//! with per-epoch curves (CSV), checkpoints every N steps, exact resume, and final weights that
//! `eval` loads like any released model.
//!
//! Determinism: the data order of epoch e is a permutation drawn from (seed, e), and the
//! augmentation of each position from (seed, e, position), so a run depends on its step count
//! alone and a resumed run repeats exactly what the uninterrupted one would have done.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::augment::Augmentation;
use super::checkpoint::{self, TrainState};
use super::schedule::{Schedule, Scheduler, Warmup};
use super::{Sgd, SgdConfig};
use crate::dataset::{DatasetSpec, Sample};
use crate::decode::decode_rgb;
use crate::demo::DemoSpec;
use crate::experiment::InputChoice;
use crate::model::{CifarShortcut, ResNet, ResNetConfig, StridePlacement};
use crate::transform::{center_region, crop, resize, Interpolation, Normalizer, Resampling, ResizePolicy};

/// What to train on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TrainData {
    /// Class-per-folder trees for training and validation.
    ImageFolder { train: PathBuf, val: PathBuf },
    /// The generated demo dataset, written to `dir` first when absent.
    Demo {
        dir: PathBuf,
        #[serde(default)]
        spec: DemoSpec,
    },
}

/// The network to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ModelSpec {
    Imagenet { depth: usize, base_width: usize, stride: StridePlacement },
    Cifar { depth: usize, base_width: usize, shortcut: CifarShortcut },
}

/// Validation: resize the shorter side, then a center crop (protocol (i)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValTransform {
    pub resize: u32,
    pub crop: u32,
}

/// A training recipe: every knob the paper and fb.resnet.torch differ in is a field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    #[serde(default)]
    pub description: String,
    pub data: TrainData,
    pub model: ModelSpec,
    pub input: InputChoice,
    /// Applied in order; the last must produce images of one fixed size.
    pub augment: Vec<Augmentation>,
    pub val: ValTransform,
    pub optimizer: SgdConfig,
    pub schedule: Schedule,
    #[serde(default)]
    pub warmup: Option<Warmup>,
    pub batch_size: usize,
    pub epochs: u64,
    #[serde(default = "default_bn_momentum")]
    pub bn_momentum: f64,
    pub seed: u64,
    /// Steps between checkpoints (and one at every epoch's end).
    pub checkpoint_every: u64,
}

fn default_bn_momentum() -> f64 {
    0.1
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Setup(String),
    #[error("image {path}: {reason}")]
    Image { path: PathBuf, reason: String },
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error("training: {0}")]
    Compute(#[from] candle_core::Error),
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

/// One epoch's row of the training curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRow {
    pub epoch: u64,
    pub lr: f64,
    pub train_loss: f64,
    pub train_error: f64,
    pub val_error: f64,
}

/// The outcome of one seed.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub seed: u64,
    pub dir: PathBuf,
    pub curve: Vec<EpochRow>,
    pub weights: PathBuf,
}

/// What a checkpoint keeps besides tensors: the scheduler and the current epoch's partial sums,
/// so the resumed epoch's curve row is the uninterrupted one's.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Progress {
    scheduler: super::schedule::SchedulerState,
    loss_sum: f64,
    wrong: usize,
    seen: usize,
}

fn mix(parts: &[u64]) -> u64 {
    // splitmix64 over the parts: independent streams for (seed, epoch[, position]).
    parts.iter().fold(0x9E37_79B9_7F4A_7C15u64, |h, &p| {
        let mut z = h ^ p.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

impl ModelSpec {
    fn config(&self, classes: usize) -> ResNetConfig {
        match *self {
            ModelSpec::Imagenet { depth, base_width, stride } => {
                ResNetConfig::imagenet(depth, classes).with_base_width(base_width).with_stride(stride)
            }
            ModelSpec::Cifar { depth, base_width, shortcut } => {
                ResNetConfig::cifar(depth, shortcut, classes).with_base_width(base_width)
            }
        }
    }
}

struct Data {
    train: Vec<Sample>,
    val: Vec<Sample>,
    classes: usize,
}

fn load_data(recipe: &Recipe, base: &Path) -> Result<Data, TrainError> {
    let setup = |e: &dyn std::fmt::Display| TrainError::Setup(e.to_string());
    let (train, val) = match &recipe.data {
        TrainData::ImageFolder { train, val } => (train.clone(), val.clone()),
        TrainData::Demo { dir, spec } => {
            let dir = base.join(dir);
            if !dir.join("train").is_dir() {
                eprintln!("writing the demo dataset to {}", dir.display());
                crate::demo::write(spec, &dir).map_err(|e| setup(&e))?;
            }
            (dir.join("train"), dir.join("test"))
        }
    };
    let load = |root: PathBuf| DatasetSpec::ImageFolder { root, classes: None }.load(base).map_err(|e| setup(&e));
    let (train, val) = (load(train)?, load(val)?);
    if train.classes != val.classes {
        return Err(TrainError::Setup("training and validation folders hold different classes".into()));
    }
    Ok(Data { classes: train.classes.len(), train: train.samples, val: val.samples })
}

/// Decodes, augments (or validation-transforms) and normalises a batch in parallel.
fn batch(
    samples: &[&Sample],
    prepare: impl Fn(usize, &image::RgbImage) -> Result<image::RgbImage, String> + Sync,
    normalizer: &Normalizer,
    dtype: DType,
) -> Result<(Tensor, Tensor), TrainError> {
    let images: Vec<image::RgbImage> = samples
        .par_iter()
        .enumerate()
        .map(|(i, s)| {
            let fail = |reason: String| TrainError::Image { path: s.path.clone(), reason };
            let image = decode_rgb(&s.path).map_err(|e| fail(e.to_string()))?;
            prepare(i, &image).map_err(fail)
        })
        .collect::<Result<_, _>>()?;
    let (w, h) = images[0].dimensions();
    let mut pixels = Vec::with_capacity(images.len() * 3 * (w * h) as usize);
    for (image, sample) in images.iter().zip(samples) {
        if image.dimensions() != (w, h) {
            return Err(TrainError::Image {
                path: sample.path.clone(),
                reason: format!(
                    "became {:?} where the batch is {w}x{h}: end the augmentations with a fixed-size crop",
                    image.dimensions()
                ),
            });
        }
        normalizer.append_chw(image, &mut pixels).map_err(|e| TrainError::Setup(e.to_string()))?;
    }
    let x = Tensor::from_vec(pixels, (images.len(), 3, h as usize, w as usize), &Device::Cpu)?.to_dtype(dtype)?;
    let labels: Vec<u32> = samples.iter().map(|s| s.label as u32).collect();
    Ok((x, Tensor::from_vec(labels, samples.len(), &Device::Cpu)?))
}

fn errors(logits: &Tensor, labels: &Tensor) -> Result<usize, TrainError> {
    let predicted: Vec<u32> = logits.argmax(1)?.to_vec1()?;
    let labels: Vec<u32> = labels.to_vec1()?;
    Ok(predicted.iter().zip(&labels).filter(|(p, l)| p != l).count())
}

fn validate(model: &ResNet, data: &Data, recipe: &Recipe, normalizer: &Normalizer) -> Result<f64, TrainError> {
    let resampling = Resampling { interpolation: Interpolation::Bilinear, antialias: true };
    let prepare = |_: usize, image: &image::RgbImage| {
        let (w, h) = ResizePolicy::ShorterSide(recipe.val.resize).target_size(image.width(), image.height());
        let resized = resize(image, w, h, resampling);
        let region = center_region(w, h, recipe.val.crop, recipe.val.crop).map_err(|e| e.to_string())?;
        Ok(crop(&resized, region))
    };
    let mut wrong = 0;
    let samples: Vec<&Sample> = data.val.iter().collect();
    for chunk in samples.chunks(recipe.batch_size.max(1)) {
        let (x, y) = batch(chunk, prepare, normalizer, DType::F32)?;
        wrong += errors(&model.forward_t(&x, false)?, &y)?;
    }
    Ok(wrong as f64 / data.val.len().max(1) as f64)
}

fn write_curve(path: &Path, rows: &[EpochRow]) -> Result<(), TrainError> {
    let mut text = String::from("epoch,lr,train_loss,train_error,val_error\n");
    for r in rows {
        text.push_str(&format!("{},{},{},{},{}\n", r.epoch, r.lr, r.train_loss, r.train_error, r.val_error));
    }
    let tmp = path.with_extension("csv.tmp");
    let fail = |e: std::io::Error| TrainError::Write { path: path.to_path_buf(), reason: e.to_string() };
    std::fs::write(&tmp, text).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

fn read_curve(path: &Path) -> Vec<EpochRow> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            Some(EpochRow {
                epoch: f.first()?.parse().ok()?,
                lr: f.get(1)?.parse().ok()?,
                train_loss: f.get(2)?.parse().ok()?,
                train_error: f.get(3)?.parse().ok()?,
                val_error: f.get(4)?.parse().ok()?,
            })
        })
        .collect()
}

/// Trains one seed into `dir`, resuming from `dir/checkpoint.safetensors` when `resume`.
pub fn train_seed(recipe: &Recipe, base: &Path, seed: u64, dir: &Path, resume: bool) -> Result<RunSummary, TrainError> {
    if recipe.batch_size == 0 || recipe.epochs == 0 || recipe.checkpoint_every == 0 {
        return Err(TrainError::Setup("batch_size, epochs and checkpoint_every must be at least 1".into()));
    }
    for augmentation in &recipe.augment {
        augmentation.validate().map_err(|e| TrainError::Setup(format!("augment: {e}")))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| TrainError::Write { path: dir.to_path_buf(), reason: e.to_string() })?;
    let data = load_data(recipe, base)?;
    let config = recipe.model.config(data.classes);
    let normalizer = Normalizer::new(&recipe.input.spec(), base).map_err(|e| TrainError::Setup(e.to_string()))?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = ResNet::trainable(&config, vb, recipe.bn_momentum)?;
    initialise(&varmap, seed)?;
    let mut optimizer = Sgd::new(&varmap, recipe.optimizer);
    let mut scheduler = Scheduler::new(recipe.schedule.clone(), recipe.warmup.clone());
    let checkpoint_path = dir.join("checkpoint.safetensors");
    let curve_path = dir.join("curve.csv");
    let mut step = 0u64;
    let mut curve = Vec::new();
    let mut progress = Progress::default();
    if resume && checkpoint_path.exists() {
        let state = checkpoint::load(&checkpoint_path, &varmap, &mut optimizer)?;
        step = state.step;
        progress = serde_json::from_str(&state.progress)
            .map_err(|e| TrainError::Setup(format!("{}: progress: {e}", checkpoint_path.display())))?;
        scheduler.restore(progress.scheduler.clone());
        curve = read_curve(&curve_path).into_iter().filter(|r| r.epoch < state.epoch).collect();
        eprintln!("seed {seed}: resuming at step {step}");
    }
    let steps_per_epoch = data.train.len().div_ceil(recipe.batch_size.max(1)) as u64;
    let total = steps_per_epoch * recipe.epochs;
    let save = |step: u64, optimizer: &Sgd, progress: &Progress| -> Result<(), TrainError> {
        let state = TrainState {
            step,
            epoch: step / steps_per_epoch,
            rng_seed: seed_bytes(seed),
            rng_word_pos: 0,
            progress: serde_json::to_string(progress).unwrap_or_default(),
        };
        Ok(checkpoint::save(&checkpoint_path, &varmap, optimizer, &state)?)
    };
    let Progress { mut loss_sum, mut wrong, mut seen, .. } = progress;
    while step < total {
        let epoch = step / steps_per_epoch;
        let mut order: Vec<usize> = (0..data.train.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(&[seed, epoch])));
        let at = (step % steps_per_epoch) as usize * recipe.batch_size;
        let positions: Vec<usize> = (at..(at + recipe.batch_size).min(order.len())).collect();
        let samples: Vec<&Sample> = positions.iter().map(|&p| &data.train[order[p]]).collect();
        let prepare = |i: usize, image: &image::RgbImage| {
            let mut rng = ChaCha8Rng::seed_from_u64(mix(&[seed, epoch, positions[i] as u64]));
            let mut out = image.clone();
            for augmentation in &recipe.augment {
                out = augmentation.apply(&out, &mut rng).map_err(|e| e.to_string())?;
            }
            Ok(out)
        };
        let (x, y) = batch(&samples, prepare, &normalizer, DType::F32)?;
        let lr = scheduler.lr(step);
        let logits = model.forward_t(&x, true)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        optimizer.step(&loss.backward()?, lr)?;
        loss_sum += loss.to_scalar::<f32>()? as f64 * samples.len() as f64;
        wrong += errors(&logits, &y)?;
        seen += samples.len();
        step += 1;
        if step.is_multiple_of(steps_per_epoch) {
            let train_error = wrong as f64 / seen.max(1) as f64;
            scheduler.observe_training_error(train_error);
            let val_error = validate(&model, &data, recipe, &normalizer)?;
            scheduler.observe_validation(val_error);
            let row = EpochRow { epoch, lr, train_loss: loss_sum / seen.max(1) as f64, train_error, val_error };
            eprintln!(
                "seed {seed} epoch {epoch}: loss {:.4}, train error {:.4}, val error {:.4}",
                row.train_loss, train_error, val_error
            );
            curve.push(row);
            write_curve(&curve_path, &curve)?;
            (loss_sum, wrong, seen) = (0.0, 0, 0);
            save(step, &optimizer, &Progress { scheduler: scheduler.state(), loss_sum, wrong, seen })?;
        } else if step.is_multiple_of(recipe.checkpoint_every) {
            save(step, &optimizer, &Progress { scheduler: scheduler.state(), loss_sum, wrong, seen })?;
        }
    }
    let weights = dir.join("weights.safetensors");
    write_weights(&weights, &varmap, &config, recipe, seed)?;
    Ok(RunSummary { seed, dir: dir.to_path_buf(), curve, weights })
}

fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes
}

/// He-normal convolutions, PyTorch-style uniform fc, BN γ = 1, β = 0, all from the seed (candle's
/// own initialisers are not seeded).
fn initialise(varmap: &VarMap, seed: u64) -> Result<(), TrainError> {
    use rand_distr::{Distribution, Normal, Uniform};
    let data = varmap.data().lock().map_err(|_| TrainError::Setup("variables poisoned".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut rng = ChaCha8Rng::seed_from_u64(mix(&[seed, u64::MAX]));
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let n: usize = dims.iter().product();
        let values: Vec<f32> = if name.ends_with("running_var")
            || (name.contains("bn") || name.contains("downsample.1")) && name.ends_with("weight")
        {
            vec![1.0; n]
        } else if name.ends_with("running_mean") || name.contains("bn") || name.contains("downsample.1") {
            vec![0.0; n]
        } else if dims.len() == 4 {
            let fan_out = (dims[0] * dims[2] * dims[3]) as f64;
            let normal = Normal::new(0.0, (2.0 / fan_out).sqrt()).map_err(|e| TrainError::Setup(e.to_string()))?;
            (0..n).map(|_| normal.sample(&mut rng) as f32).collect()
        } else {
            let fan_in = *dims.last().unwrap_or(&1) as f64;
            let bound = 1.0 / fan_in.sqrt();
            let uniform = Uniform::new(-bound, bound).map_err(|e| TrainError::Setup(e.to_string()))?;
            (0..n).map(|_| uniform.sample(&mut rng) as f32).collect()
        };
        var.set(&Tensor::from_vec(values, dims, &Device::Cpu)?)?;
    }
    Ok(())
}

fn write_weights(
    path: &Path,
    varmap: &VarMap,
    config: &ResNetConfig,
    recipe: &Recipe,
    seed: u64,
) -> Result<(), TrainError> {
    let fail = |reason: String| TrainError::Write { path: path.to_path_buf(), reason };
    let data = varmap.data().lock().map_err(|_| fail("variables poisoned".into()))?;
    let tensors: Vec<(String, Tensor)> =
        data.iter().map(|(name, var)| (name.clone(), var.as_tensor().clone())).collect();
    let stride = match config.topology {
        crate::model::Topology::Imagenet { stride, .. } => stride.name().to_string(),
        _ => "n/a".to_string(),
    };
    let metadata = HashMap::from([
        ("trained_by".to_string(), format!("resnet-audit {} train", env!("CARGO_PKG_VERSION"))),
        ("seed".to_string(), seed.to_string()),
        ("stride_placement".to_string(), stride),
        ("num_classes".to_string(), config.num_classes.to_string()),
        ("base_width".to_string(), config.base_width.to_string()),
        ("recipe".to_string(), serde_json::to_string(recipe).unwrap_or_default()),
    ]);
    crate::weights::write_safetensors(path, &tensors, metadata).map_err(fail)
}
