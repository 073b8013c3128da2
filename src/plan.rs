//! `plan`: what an experiment costs before it runs. Per (model, protocol[, sweep setting]): the
//! forward passes per image (views), their multiply-adds, the same in ResNet-50-equivalent passes
//! (one 224x224 view of a ResNet-50, the unit a researcher can time on any machine), the images,
//! and the hours at a measured or given speed. A researcher chooses from it which sweep to afford.
//!
//! Fully convolutional views have the size of the resized image, which depends on each image's
//! aspect ratio; the plan assumes 4:3 landscape (ImageNet's most common shape), so its numbers
//! for those protocols are estimates.

use std::fmt;
use std::time::Instant;

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::device::Runtime;
use crate::experiment::{LoadedExperiment, ModelEntry};
use crate::inspect::inspect;
use crate::model::complexity::multiply_adds;
use crate::model::config::imagenet_blocks;
use crate::model::{BuildOptions, ResNet, ResNetConfig};
use crate::protocol::sweep::{self, SweepError};
use crate::protocol::ProtocolSpec;
use crate::weights::{HubSettings, WeightsFile, WeightsSource};

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Sweep(#[from] SweepError),
    #[error("calibration pass (a ResNet-50 at 224x224): {0}")]
    Calibration(#[from] candle_core::Error),
    #[error("calibration pass: {0}")]
    Device(#[from] crate::device::DeviceError),
    #[error("--images-per-second must be a positive number, not {0}")]
    BadRate(f64),
}

/// How fast the machine that will run the experiment is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// Time a short pass of a ResNet-50 on this machine, in this runtime (device, dtype, backend).
    Calibrate(Runtime),
    /// ResNet-50-equivalent images (224x224 views) per second, as the user measured elsewhere.
    Given(f64),
}

/// The cost of one (model, protocol[, setting]).
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRow {
    pub model: String,
    pub protocol: String,
    /// Views per image (forward passes).
    pub passes: usize,
    /// Multiply-adds per image; None when the architecture is unknown (weights absent and the
    /// id names no ImageNet depth).
    pub multiply_adds: Option<u64>,
    /// Per image, in ResNet-50 224x224 passes.
    pub resnet50_passes: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub rows: Vec<PlanRow>,
    /// Images the run covers; None when the dataset is not present here.
    pub images: Option<usize>,
    /// ResNet-50-equivalent images per second, and whether it was measured here; None for a
    /// plan of passes only (what `audit` prints before it starts).
    pub speed: Option<(f64, bool)>,
    /// How each model's architecture was settled (from its weights, or assumed from its id).
    pub notes: Vec<String>,
}

/// Images assumed when the dataset is absent (an ImageNet validation set), said so in the output.
pub const ASSUMED_IMAGES: usize = 50_000;

impl Plan {
    /// ResNet-50-equivalent passes per image over every row.
    pub fn total_resnet50_passes(&self) -> f64 {
        self.rows.iter().filter_map(|r| r.resnet50_passes).sum()
    }

    /// ResNet-50-equivalent passes of the whole run.
    pub fn total_passes(&self) -> f64 {
        self.total_resnet50_passes() * self.images.unwrap_or(ASSUMED_IMAGES) as f64
    }

    /// Estimated hours of the whole run (when a speed is known).
    pub fn total_hours(&self) -> Option<f64> {
        self.hours(self.total_resnet50_passes())
    }

    fn hours(&self, passes_per_image: f64) -> Option<f64> {
        let (speed, _) = self.speed?;
        Some(passes_per_image * self.images.unwrap_or(ASSUMED_IMAGES) as f64 / speed / 3600.0)
    }
}

fn resnet50() -> ResNetConfig {
    ResNetConfig::imagenet(50, 1000)
}

/// The view sizes (height, width, count) one image becomes under `spec`; none for an ensemble
/// (its members are computed, and counted, as their own rows).
pub fn views(spec: &ProtocolSpec) -> Vec<(usize, usize, usize)> {
    match spec {
        ProtocolSpec::CenterCrop(p) => vec![(p.crop as usize, p.crop as usize, 1)],
        ProtocolSpec::TenCrop(p) => vec![(p.crop as usize, p.crop as usize, 10)],
        ProtocolSpec::FullyConvolutional(p) => {
            p.scales.iter().map(|&s| (s as usize, (s as usize * 4).div_ceil(3), if p.flips { 2 } else { 1 })).collect()
        }
        ProtocolSpec::Ensemble(_) => Vec::new(),
    }
}

/// The architecture of a model: read from its weights when they are here, else the ImageNet
/// depth its id names (e.g. `caffe-resnet101`), else unknown; with a note saying which.
fn architecture(entry: &ModelEntry, loaded: &LoadedExperiment) -> (Option<ResNetConfig>, String) {
    let from_weights = WeightsSource::parse(&entry.weights).ok().and_then(|source| {
        let source = match source {
            WeightsSource::Local(path) => {
                WeightsSource::Local(crate::dataset::resolve_path(&loaded.base, "weights", &path).ok()?)
            }
            hub => hub,
        };
        let path = source.resolve(&HubSettings::from_env()).ok()?;
        inspect(&WeightsFile::read(&path).ok()?).ok()
    });
    if let Some(inspection) = from_weights {
        return (Some(inspection.config), format!("{}: {} (from its weights)", entry.id, inspection.config.name()));
    }
    let digits: Vec<usize> = entry
        .id
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|d| d.parse().ok())
        .filter(|&d| imagenet_blocks(d).is_some())
        .collect();
    match digits.as_slice() {
        [depth] => (
            Some(ResNetConfig::imagenet(*depth, 1000)),
            format!("{}: weights absent, assumed ResNet-{depth} (from its id)", entry.id),
        ),
        _ => (None, format!("{}: weights absent and no depth in its id: cost unknown", entry.id)),
    }
}

/// The plan of `loaded` (every model × protocol and sweep setting, as `audit` runs them), with
/// hours at `speed` (none without one).
pub fn plan(loaded: &LoadedExperiment, limit: Option<usize>, speed: Option<Speed>) -> Result<Plan, PlanError> {
    let experiment = &loaded.experiment;
    let images = experiment
        .dataset()
        .ok()
        .and_then(|spec| spec.load(&loaded.base).ok())
        .map(|dataset| limit.map_or(dataset.samples.len(), |n| n.min(dataset.samples.len())));
    let reference = multiply_adds(&resnet50(), 224, 224) as f64;
    let mut protocols: Vec<(String, ProtocolSpec)> = Vec::new();
    for entry in experiment.protocol_entries() {
        protocols.push((entry.id.clone(), entry.spec.clone()));
    }
    for entry in experiment.protocol_entries() {
        protocols.extend(sweep::expand(entry)?.into_iter().map(|v| (v.id(), v.spec)));
    }
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for model in &experiment.models {
        let (config, note) = architecture(model, loaded);
        notes.push(note);
        for (id, spec) in protocols.iter().filter(|(_, s)| !matches!(s, ProtocolSpec::Ensemble(_))) {
            let views = views(spec);
            let passes = views.iter().map(|v| v.2).sum();
            let macs = config.map(|c| views.iter().map(|&(h, w, n)| n as u64 * multiply_adds(&c, h, w)).sum::<u64>());
            rows.push(PlanRow {
                model: model.id.clone(),
                protocol: id.clone(),
                passes,
                multiply_adds: macs,
                resnet50_passes: macs.map(|m| m as f64 / reference),
            });
        }
    }
    let speed = match speed {
        None => None,
        Some(Speed::Given(rate)) if rate.is_finite() && rate > 0.0 => Some((rate, false)),
        Some(Speed::Given(rate)) => return Err(PlanError::BadRate(rate)),
        Some(Speed::Calibrate(runtime)) => Some((calibrate(&runtime)?, true)),
    };
    Ok(Plan { rows, images, speed, notes })
}

/// ResNet-50 224x224 images per second on this machine in `runtime` (the CPU's fast path, all
/// threads, by default), from a few batches of a model with zero weights: the time does not
/// depend on the values.
pub fn calibrate(runtime: &Runtime) -> Result<f64, PlanError> {
    let device = runtime.open()?;
    let dtype = runtime.dtype.dtype();
    let vb = VarBuilder::zeros(dtype, &device);
    let model = ResNet::new(&resnet50(), vb, BuildOptions { backend: runtime.backend, ..BuildOptions::default() })?;
    // A GPU needs larger batches to show its rate.
    let batch = if device.is_cpu() { 8 } else { 64 };
    let x = Tensor::zeros((batch, 3, 224, 224), dtype, &device)?;
    model.forward(&x)?; // warm-up: allocations and thread pool
    device.synchronize()?;
    let start = Instant::now();
    let rounds = if device.is_cpu() { 2 } else { 10 };
    for _ in 0..rounds {
        model.forward(&x)?;
    }
    device.synchronize()?; // GPU kernels run asynchronously
    Ok((batch * rounds) as f64 / start.elapsed().as_secs_f64().max(1e-9))
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let images = match self.images {
            Some(n) => format!("{n} images"),
            None => format!("dataset not present here: assuming {ASSUMED_IMAGES} images"),
        };
        match self.speed {
            Some((rate, calibrated)) => {
                let how = if calibrated { "measured on this machine" } else { "given" };
                writeln!(f, "{images}; {rate:.1} ResNet-50-equivalent images/s ({how})")?;
            }
            None => writeln!(f, "{images}")?,
        }
        for note in &self.notes {
            writeln!(f, "  {note}")?;
        }
        let width = self.rows.iter().map(|r| r.model.len() + r.protocol.len() + 1).max().unwrap_or(0).max(14);
        writeln!(
            f,
            "{:width$}  {:>6}  {:>12}  {:>10}  {:>9}",
            "model/protocol", "passes", "GMACs/image", "R50 passes", "hours"
        )?;
        for row in &self.rows {
            let unknown = || "?".to_string();
            writeln!(
                f,
                "{:width$}  {:>6}  {:>12}  {:>10}  {:>9}",
                format!("{}/{}", row.model, row.protocol),
                row.passes,
                row.multiply_adds.map_or_else(unknown, |m| format!("{:.2}", m as f64 / 1e9)),
                row.resnet50_passes.map_or_else(unknown, |p| format!("{p:.1}")),
                row.resnet50_passes.and_then(|p| self.hours(p)).map_or_else(unknown, |h| format!("{h:.2}")),
            )?;
        }
        write!(
            f,
            "total: {:.3} ResNet-50-equivalent passes per image, {:.3e} in all",
            self.total_resnet50_passes(),
            self.total_passes()
        )?;
        match self.total_hours() {
            Some(hours) if hours < 1.0 => writeln!(f, ", about {:.1} minutes", hours * 60.0),
            Some(hours) => writeln!(f, ", about {hours:.1} hours"),
            None => writeln!(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_count_the_passes_of_each_protocol() {
        let entry: crate::protocol::ProtocolEntry =
            serde_yaml::from_str("{id: f, kind: fully-convolutional, scales: [224, 480], flips: true}").unwrap();
        assert_eq!(views(&entry.spec), vec![(224, 299, 2), (480, 640, 2)]);
        let entry: crate::protocol::ProtocolEntry = serde_yaml::from_str("{id: t, kind: ten-crop}").unwrap();
        assert_eq!(views(&entry.spec), vec![(224, 224, 10)]);
    }
}
