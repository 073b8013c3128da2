//! `train`: a recipe (YAML) → seeded runs on a class-per-folder dataset, CIFAR-10's binary
//! batches (held in memory) or the generated demo, with per-epoch curves (CSV and Parquet),
//! checkpoints every N steps, exact resume, final weights that `eval` loads like any released
//! model, and a per-seed summary (`summary.csv`, mean ± sample std).
//!
//! Determinism: the data order of epoch e is a permutation drawn from (seed, e), and the
//! augmentation of each position from (seed, e, position), so a run depends on its step count
//! alone and a resumed run repeats exactly what the uninterrupted one would have done.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use image::RgbImage;
use polars::prelude::{Column, DataFrame, ParquetWriter};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::checkpoint::{self, TrainState};
use super::cifar::{self, CifarError};
pub use super::recipe::{ModelSpec, Recipe, TrainData, ValTransform};
use super::resume::{self, RecipeChange, Resume};
use super::schedule::Scheduler;
use super::Sgd;
use crate::dataset::{DatasetError, DatasetSpec};
use crate::decode::decode_rgb;
use crate::demo::DemoError;
use crate::device::DeviceError;
use crate::model::ResNet;
use crate::transform::{
    center_region, crop, resize, Interpolation, NormalizeError, Normalizer, Resampling, ResizePolicy,
};
use crate::weights::{InputConvention, Origin, Provenance, WeightsError};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("recipe field `{field}`: {reason}")]
    Recipe { field: &'static str, reason: String },
    #[error("the training ({train}) and validation ({val}) folders hold different classes")]
    DifferentClasses { train: PathBuf, val: PathBuf },
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Demo(#[from] DemoError),
    #[error(transparent)]
    Normalize(#[from] NormalizeError),
    #[error("checkpoint {path}: its `progress` is unreadable: {error}")]
    Progress { path: PathBuf, error: serde_json::Error },
    #[error("the model's variables are poisoned (a thread panicked while holding them)")]
    Poisoned,
    #[error(
        "seed {seed}: the loss became {loss} at step {step} of {total} (epoch {epoch}, learning rate {lr}): \
         the run diverged; lower the learning rate (or add a warm-up). Nothing of this step was saved"
    )]
    Diverged { seed: u64, step: u64, total: u64, epoch: u64, lr: f64, loss: f32 },
    #[error(
        "{} was written under a different recipe ({}); resume with the recipe it was written with, \
         train into another --out, or pass --allow-recipe-change to continue under this one (both are then recorded)",
        checkpoint.display(), changes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    RecipeChanged { checkpoint: PathBuf, changes: Vec<RecipeChange> },
    #[error("image {path}: {reason}")]
    Image { path: PathBuf, reason: String },
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error(transparent)]
    Cifar(#[from] CifarError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("training: {0}")]
    Compute(#[from] candle_core::Error),
    #[error("cannot create {path}: {error}")]
    CreateDir { path: PathBuf, error: std::io::Error },
    #[error("cannot encode {path}: {reason}")]
    Encode { path: PathBuf, reason: String },
    #[error(transparent)]
    Write(#[from] crate::fsio::WriteError),
    #[error("final weights: {0}")]
    Weights(#[from] WeightsError),
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

/// One seed's row of `summary.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedRow {
    pub seed: u64,
    /// The last epoch's (NaN when the curve is empty).
    pub final_val_error: f64,
    pub final_train_error: f64,
    /// Epochs in the curve.
    pub epochs: u64,
    pub weights: PathBuf,
}

/// The seeds of one `train` call: a row each, and the mean ± sample standard deviation of the
/// final validation errors. `Display` is the one-line report.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedSummary {
    pub rows: Vec<SeedRow>,
    pub mean_val_error: f64,
    /// Sample (n − 1) standard deviation; 0 for a single seed.
    pub std_val_error: f64,
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

/// One training or validation image: a file decoded when its batch is built, or an image held in
/// memory (CIFAR-10), so that `batch` gets an `RgbImage` either way.
enum TrainSample {
    File {
        path: PathBuf,
        label: usize,
    },
    /// `file` and `record` say where it came from, for messages.
    Memory {
        image: RgbImage,
        label: usize,
        file: Arc<Path>,
        record: usize,
    },
}

impl TrainSample {
    fn label(&self) -> usize {
        match self {
            TrainSample::File { label, .. } | TrainSample::Memory { label, .. } => *label,
        }
    }

    fn error(&self, reason: String) -> TrainError {
        match self {
            TrainSample::File { path, .. } => TrainError::Image { path: path.clone(), reason },
            TrainSample::Memory { file, record, .. } => {
                TrainError::Image { path: file.to_path_buf(), reason: format!("record {record}: {reason}") }
            }
        }
    }

    /// The image, decoded when it is a file.
    fn image(&self) -> Result<Cow<'_, RgbImage>, TrainError> {
        match self {
            TrainSample::File { path, .. } => decode_rgb(path).map(Cow::Owned).map_err(|e| self.error(e.to_string())),
            TrainSample::Memory { image, .. } => Ok(Cow::Borrowed(image)),
        }
    }
}

struct Data {
    train: Vec<TrainSample>,
    val: Vec<TrainSample>,
    classes: usize,
}

/// The records of `files` (in `root`), in order.
fn read_cifar(root: &Path, files: &[String]) -> Result<Vec<TrainSample>, CifarError> {
    let mut samples = Vec::new();
    for name in files {
        let file: Arc<Path> = Arc::from(root.join(name));
        let records = cifar::read_batch(&file)?;
        samples.extend(records.into_iter().enumerate().map(|(record, c)| TrainSample::Memory {
            image: c.image,
            label: c.label as usize,
            file: file.clone(),
            record,
        }));
    }
    Ok(samples)
}

fn load_data(recipe: &Recipe, base: &Path) -> Result<Data, TrainError> {
    let (train, val) = match &recipe.data {
        TrainData::Cifar10 { root, train_batches } => {
            let root = cifar::resolve_root(base, root)?;
            let files = cifar::train_files(train_batches.as_deref().unwrap_or(&[1, 2, 3, 4, 5]))?;
            let train = read_cifar(&root, &files)?;
            let val = read_cifar(&root, &[cifar::TEST_FILE.to_string()])?;
            return Ok(Data { train, val, classes: cifar::CLASSES.len() });
        }
        TrainData::ImageFolder { train, val } => (train.clone(), val.clone()),
        TrainData::Demo { dir, spec } => {
            // Written (once, checked against its spec) at base/dir; the folder loader joins `base` itself.
            crate::demo::ensure(spec, &base.join(dir))?;
            (dir.join("train"), dir.join("test"))
        }
    };
    let load = |root: &Path| DatasetSpec::ImageFolder { root: root.to_path_buf(), classes: None }.load(base);
    let (train_set, val_set) = (load(&train)?, load(&val)?);
    if train_set.classes != val_set.classes {
        return Err(TrainError::DifferentClasses { train, val });
    }
    let (train, val) = (train_set, val_set);
    let files = |samples: Vec<crate::dataset::Sample>| {
        samples.into_iter().map(|s| TrainSample::File { path: s.path, label: s.label }).collect()
    };
    Ok(Data { classes: train.classes.len(), train: files(train.samples), val: files(val.samples) })
}

/// Decodes (when from files), augments (or validation-transforms) and normalises a batch in
/// parallel, on the CPU; the batch and its labels are then moved to `device`.
fn batch(
    samples: &[&TrainSample],
    prepare: impl Fn(usize, &RgbImage) -> Result<RgbImage, String> + Sync,
    normalizer: &Normalizer,
    dtype: DType,
    device: &Device,
) -> Result<(Tensor, Tensor), TrainError> {
    let images: Vec<RgbImage> = samples
        .par_iter()
        .enumerate()
        .map(|(i, s)| -> Result<RgbImage, TrainError> {
            let image = s.image()?;
            prepare(i, &image).map_err(|reason| s.error(reason))
        })
        .collect::<Result<_, _>>()?;
    let (w, h) = images[0].dimensions();
    let mut pixels = Vec::with_capacity(images.len() * 3 * (w * h) as usize);
    for (image, sample) in images.iter().zip(samples) {
        if image.dimensions() != (w, h) {
            return Err(sample.error(format!(
                "became {:?} where the batch is {w}x{h}: end the augmentations with a fixed-size crop",
                image.dimensions()
            )));
        }
        normalizer.append_chw(image, &mut pixels)?;
    }
    let x = Tensor::from_vec(pixels, (images.len(), 3, h as usize, w as usize), &Device::Cpu)?
        .to_dtype(dtype)?
        .to_device(device)?;
    let labels: Vec<u32> = samples.iter().map(|s| s.label() as u32).collect();
    Ok((x, Tensor::from_vec(labels, samples.len(), device)?))
}

fn errors(logits: &Tensor, labels: &Tensor) -> Result<usize, TrainError> {
    let predicted: Vec<u32> = logits.argmax(1)?.to_vec1()?;
    let labels: Vec<u32> = labels.to_vec1()?;
    Ok(predicted.iter().zip(&labels).filter(|(p, l)| p != l).count())
}

/// Validation's transform: shorter side to `resize` (bilinear, antialiased), center crop. Both
/// are the identity when the image already has the sizes (a 32x32 CIFAR image with
/// `{resize: 32, crop: 32}` goes through untouched).
fn val_transform(val: &ValTransform, image: &RgbImage) -> Result<RgbImage, String> {
    let resampling = Resampling { interpolation: Interpolation::Bilinear, antialias: true };
    let (w, h) = ResizePolicy::ShorterSide(val.resize).target_size(image.width(), image.height());
    let resized = resize(image, w, h, resampling);
    let region = center_region(w, h, val.crop, val.crop).map_err(|e| e.to_string())?;
    Ok(crop(&resized, region))
}

fn validate(
    model: &ResNet,
    data: &Data,
    recipe: &Recipe,
    normalizer: &Normalizer,
    device: &Device,
) -> Result<f64, TrainError> {
    let prepare = |_: usize, image: &RgbImage| val_transform(&recipe.val, image);
    let mut wrong = 0;
    let samples: Vec<&TrainSample> = data.val.iter().collect();
    for chunk in samples.chunks(recipe.batch_size.max(1)) {
        let (x, y) = batch(chunk, prepare, normalizer, DType::F32, device)?;
        wrong += errors(&model.forward_t(&x, false)?, &y)?;
    }
    Ok(wrong as f64 / data.val.len().max(1) as f64)
}

fn write_curve(path: &Path, rows: &[EpochRow]) -> Result<(), TrainError> {
    let mut text = String::from("epoch,lr,train_loss,train_error,val_error\n");
    for r in rows {
        text.push_str(&format!("{},{},{},{},{}\n", r.epoch, r.lr, r.train_loss, r.train_error, r.val_error));
    }
    Ok(crate::fsio::atomic_write(path, text.as_bytes())?)
}

/// The curve as Parquet (epoch u64, the rest f64), the same rows as `curve.csv`.
fn write_curve_parquet(path: &Path, rows: &[EpochRow]) -> Result<(), TrainError> {
    let fail = |reason: String| TrainError::Encode { path: path.to_path_buf(), reason };
    let column = |name: &str, f: fn(&EpochRow) -> f64| Column::new(name.into(), rows.iter().map(f).collect::<Vec<_>>());
    let mut frame = DataFrame::new_infer_height(vec![
        Column::new("epoch".into(), rows.iter().map(|r| r.epoch).collect::<Vec<_>>()),
        column("lr", |r| r.lr),
        column("train_loss", |r| r.train_loss),
        column("train_error", |r| r.train_error),
        column("val_error", |r| r.val_error),
    ])
    .map_err(|e| fail(e.to_string()))?;
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes).finish(&mut frame).map_err(|e| fail(e.to_string()))?;
    Ok(crate::fsio::atomic_write(path, &bytes)?)
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

/// Trains one seed into `dir` on the CPU, resuming from `dir/checkpoint.safetensors` as
/// `resume` says.
pub fn train_seed(
    recipe: &Recipe,
    base: &Path,
    seed: u64,
    dir: &Path,
    resume: Resume,
) -> Result<RunSummary, TrainError> {
    train_seed_on(recipe, base, seed, dir, resume, &Device::Cpu)
}

/// [`train_seed`] with the model, batches and labels on `device` (open it with
/// [`crate::device::DeviceKind::open`]). Data loading and augmentation stay on the CPU.
pub fn train_seed_on(
    recipe: &Recipe,
    base: &Path,
    seed: u64,
    dir: &Path,
    resume: Resume,
    device: &Device,
) -> Result<RunSummary, TrainError> {
    for (field, value) in [
        ("batch_size", recipe.batch_size as u64),
        ("epochs", recipe.epochs),
        ("checkpoint_every", recipe.checkpoint_every),
    ] {
        if value == 0 {
            return Err(TrainError::Recipe { field, reason: "must be at least 1".into() });
        }
    }
    for augmentation in &recipe.augment {
        augmentation.validate().map_err(|reason| TrainError::Recipe { field: "augment", reason })?;
    }
    std::fs::create_dir_all(dir).map_err(|error| TrainError::CreateDir { path: dir.to_path_buf(), error })?;
    let data = load_data(recipe, base)?;
    let config = recipe.model.config(data.classes);
    let input = recipe.input.spec().map_err(|e| TrainError::Recipe { field: "input", reason: e.to_string() })?;
    let normalizer = Normalizer::new(&input, base)?;
    // The recipe as recorded in checkpoints and weights, and compared on resume.
    let recipe_json =
        serde_json::to_string(recipe).map_err(|e| TrainError::Recipe { field: "recipe", reason: e.to_string() })?;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let model = ResNet::trainable(&config, vb, recipe.bn_momentum)?;
    initialise(&varmap, seed)?;
    let mut optimizer = Sgd::new(&varmap, recipe.optimizer);
    let mut scheduler = Scheduler::new(recipe.schedule.clone(), recipe.warmup.clone());
    let checkpoint_path = dir.join("checkpoint.safetensors");
    let curve_path = dir.join("curve.csv");
    let curve_parquet = dir.join("curve.parquet");
    let mut step = 0u64;
    let mut curve = Vec::new();
    let mut progress = Progress::default();
    let mut earlier_recipes = Vec::new();
    let steps_per_epoch = data.train.len().div_ceil(recipe.batch_size.max(1)) as u64;
    let total = steps_per_epoch * recipe.epochs;
    if resume != Resume::Fresh && checkpoint_path.exists() {
        let state = checkpoint::load(&checkpoint_path, &varmap, &mut optimizer)?;
        earlier_recipes = resume::check(&state, &recipe_json, resume, &checkpoint_path, total)?;
        step = state.step;
        progress = serde_json::from_str(&state.progress)
            .map_err(|error| TrainError::Progress { path: checkpoint_path.clone(), error })?;
        scheduler.restore(progress.scheduler.clone());
        curve = read_curve(&curve_path).into_iter().filter(|r| r.epoch < state.epoch).collect();
        crate::progress::line(format_args!("seed {seed}: resuming at step {step}"));
    }
    let save = |step: u64, optimizer: &Sgd, progress: &Progress| -> Result<(), TrainError> {
        let state = TrainState {
            step,
            epoch: step / steps_per_epoch,
            rng_seed: seed_bytes(seed),
            rng_word_pos: 0,
            progress: serde_json::to_string(progress).unwrap_or_default(),
            recipe: Some(recipe_json.clone()),
            earlier_recipes: earlier_recipes.clone(),
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
        let samples: Vec<&TrainSample> = positions.iter().map(|&p| &data.train[order[p]]).collect();
        let prepare = |i: usize, image: &RgbImage| {
            let mut rng = ChaCha8Rng::seed_from_u64(mix(&[seed, epoch, positions[i] as u64]));
            let mut out = image.clone();
            for augmentation in &recipe.augment {
                out = augmentation.apply(&out, &mut rng).map_err(|e| e.to_string())?;
            }
            Ok(out)
        };
        let (x, y) = batch(&samples, prepare, &normalizer, DType::F32, device)?;
        let lr = scheduler.lr(step);
        let logits = model.forward_t(&x, true)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        let loss_value = loss.to_scalar::<f32>()?;
        // A NaN or infinite loss poisons every weight through the update: stop before it.
        if !loss_value.is_finite() {
            return Err(TrainError::Diverged { seed, step: step + 1, total, epoch, lr, loss: loss_value });
        }
        optimizer.step(&loss.backward()?, lr)?;
        loss_sum += loss_value as f64 * samples.len() as f64;
        wrong += errors(&logits, &y)?;
        seen += samples.len();
        step += 1;
        if step.is_multiple_of(steps_per_epoch) {
            let train_error = wrong as f64 / seen.max(1) as f64;
            scheduler.observe_training_error(train_error);
            let val_error = validate(&model, &data, recipe, &normalizer, device)?;
            scheduler.observe_validation(val_error);
            let row = EpochRow { epoch, lr, train_loss: loss_sum / seen.max(1) as f64, train_error, val_error };
            crate::progress::line(format_args!(
                "seed {seed} epoch {epoch}: loss {:.4}, train error {:.4}, val error {:.4}",
                row.train_loss, train_error, val_error
            ));
            curve.push(row);
            write_curve(&curve_path, &curve)?;
            write_curve_parquet(&curve_parquet, &curve)?;
            (loss_sum, wrong, seen) = (0.0, 0, 0);
            save(step, &optimizer, &Progress { scheduler: scheduler.state(), loss_sum, wrong, seen })?;
        } else if step.is_multiple_of(recipe.checkpoint_every) {
            save(step, &optimizer, &Progress { scheduler: scheduler.state(), loss_sum, wrong, seen })?;
        }
    }
    let weights = dir.join("weights.safetensors");
    let provenance = Provenance {
        origin: Some(Origin::Trained {
            tool: format!("resnet-audit {} train", env!("CARGO_PKG_VERSION")),
            seed,
            recipe: recipe_json,
            earlier_recipes,
        }),
        stride: match config.topology {
            crate::model::Topology::Imagenet { stride, .. } => Some(stride),
            crate::model::Topology::Cifar { .. } => None,
        },
        num_classes: Some(config.num_classes),
        base_width: Some(config.base_width),
        input: Some(InputConvention::Spec(input)),
        ..Provenance::default()
    };
    write_weights(&weights, &varmap, &provenance)?;
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
    let data = varmap.data().lock().map_err(|_| TrainError::Poisoned)?;
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
            let normal = Normal::new(0.0, (2.0 / fan_out).sqrt())
                .map_err(|e| TrainError::Recipe { field: "model", reason: format!("`{name}`: {e}") })?;
            (0..n).map(|_| normal.sample(&mut rng) as f32).collect()
        } else {
            let fan_in = *dims.last().unwrap_or(&1) as f64;
            let bound = 1.0 / fan_in.sqrt();
            let uniform = Uniform::new(-bound, bound)
                .map_err(|e| TrainError::Recipe { field: "model", reason: format!("`{name}`: {e}") })?;
            (0..n).map(|_| uniform.sample(&mut rng) as f32).collect()
        };
        // Drawn on the CPU whatever the device, so every device starts from the same weights.
        var.set(&Tensor::from_vec(values, dims, &Device::Cpu)?.to_device(var.device())?)?;
    }
    Ok(())
}

/// The final weights: torchvision names, with the provenance `inspect` and `eval` read.
fn write_weights(path: &Path, varmap: &VarMap, provenance: &Provenance) -> Result<(), TrainError> {
    let data = varmap.data().lock().map_err(|_| TrainError::Poisoned)?;
    let tensors: Vec<(String, Tensor)> =
        data.iter().map(|(name, var)| (name.clone(), var.as_tensor().clone())).collect();
    Ok(crate::weights::write_safetensors(path, &tensors, &provenance.to_metadata())?)
}

/// One row per seed and the mean ± sample std of the final validation errors.
/// The seeds' curves as one chart (`<out>/curves.png` and `.svg`), in the manner of the paper's
/// Figures 4 and 6: validation error bold, training error dashed, one colour per seed.
pub fn write_curve_chart(
    runs: &[RunSummary],
    out: &Path,
    title: &str,
) -> Result<crate::report::ChartFiles, crate::report::charts::ChartError> {
    let series: Vec<crate::report::charts::CurveSeries> = runs
        .iter()
        .map(|run| crate::report::charts::CurveSeries {
            label: format!("seed {}", run.seed),
            // Epoch e's row is measured at its end: plot it at e + 1 epochs of training.
            epochs: run.curve.iter().map(|r| (r.epoch + 1) as f64).collect(),
            train_error: run.curve.iter().map(|r| r.train_error).collect(),
            val_error: run.curve.iter().map(|r| r.val_error).collect(),
        })
        .collect();
    crate::report::charts::training_curves(&series, out, "curves", title)
}

pub fn summarize(runs: &[RunSummary]) -> SeedSummary {
    let rows: Vec<SeedRow> = runs
        .iter()
        .map(|run| SeedRow {
            seed: run.seed,
            final_val_error: run.curve.last().map_or(f64::NAN, |r| r.val_error),
            final_train_error: run.curve.last().map_or(f64::NAN, |r| r.train_error),
            epochs: run.curve.len() as u64,
            weights: run.weights.clone(),
        })
        .collect();
    let n = rows.len() as f64;
    let mean = rows.iter().map(|r| r.final_val_error).sum::<f64>() / n;
    let std = if rows.len() > 1 {
        (rows.iter().map(|r| (r.final_val_error - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    SeedSummary { rows, mean_val_error: mean, std_val_error: std }
}

impl SeedSummary {
    /// `seed,final_val_error,final_train_error,epochs,weights`, one row per seed, written
    /// atomically.
    pub fn write_csv(&self, path: &Path) -> Result<(), TrainError> {
        // With no seeds trained, nothing has created the folder yet.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|error| TrainError::CreateDir { path: dir.to_path_buf(), error })?;
        }
        let mut text = String::from("seed,final_val_error,final_train_error,epochs,weights\n");
        for r in &self.rows {
            text.push_str(&format!(
                "{},{},{},{},{}\n",
                r.seed,
                r.final_val_error,
                r.final_train_error,
                r.epochs,
                csv_field(&r.weights.to_string_lossy())
            ));
        }
        Ok(crate::fsio::atomic_write(path, text.as_bytes())?)
    }
}

impl std::fmt::Display for SeedSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "final validation error over {} seed(s): {:.2} ± {:.2} % (mean ± sample std)",
            self.rows.len(),
            100.0 * self.mean_val_error,
            100.0 * self.std_val_error
        )
    }
}

/// RFC 4180 quoting, for paths with commas, quotes or line breaks.
fn csv_field(text: &str) -> Cow<'_, str> {
    if text.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", text.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cifar_image_passes_validation_untouched_at_32() {
        let image = RgbImage::from_fn(32, 32, |x, y| image::Rgb([x as u8 * 7, y as u8 * 5, (x ^ y) as u8]));
        let val = ValTransform { resize: 32, crop: 32 };
        assert_eq!(val_transform(&val, &image).unwrap(), image);
    }

    #[test]
    fn summaries_are_mean_and_sample_std() {
        let run = |seed: u64, val_error: f64| RunSummary {
            seed,
            dir: PathBuf::from("x"),
            curve: vec![EpochRow { epoch: 0, lr: 0.1, train_loss: 1.0, train_error: 0.5, val_error }],
            weights: PathBuf::from(format!("out/a,b/seed-{seed}/weights.safetensors")),
        };
        let summary = summarize(&[run(1, 0.1), run(2, 0.2), run(3, 0.3)]);
        assert!((summary.mean_val_error - 0.2).abs() < 1e-12);
        assert!((summary.std_val_error - 0.1).abs() < 1e-12);
        assert_eq!(summary.rows[2].epochs, 1);
        assert_eq!(summary.to_string(), "final validation error over 3 seed(s): 20.00 ± 10.00 % (mean ± sample std)");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.csv");
        summary.write_csv(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().nth(1), Some("1,0.1,0.5,1,\"out/a,b/seed-1/weights.safetensors\""));
        assert_eq!(summarize(&[run(5, 0.25)]).std_val_error, 0.0);
    }
}
