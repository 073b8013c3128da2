//! `eval`: an experiment's models × protocols over its dataset, through the engine and the
//! store, to per-(model, protocol) error rates and paired comparisons.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use serde_json::json;

use crate::dataset::{resolve_path, Dataset, DatasetError, Sample};
use crate::device::{DeviceError, DeviceKind, Runtime};
use crate::engine::{self, EngineError, Scorer, ShardProgress, Task};
use crate::experiment::{LoadedExperiment, ModelEntry, UnknownInput};
use crate::inspect::{inspect, InspectError, StrideEvidence};
use crate::metrics::{mcnemar_exact, McNemar};
use crate::model::{Backend, BlockKind, BuildOptions, ResNet, ResNetConfig};
use crate::protocol::ensemble::{self, EnsembleError};
use crate::protocol::sweep::{self, SweepError, SweepVariant};
use crate::protocol::ProtocolSpec;
use crate::scoring::{ErrorRates, LabelSet};
use crate::shard::Shard;
use crate::store::{image_list_sha256, ImageResult, ResultStore, StoreKey};
use crate::transform::{InputSpec, MeanSpec, NormalizeError, Normalizer};
use crate::weights::{load_resnet, HubSettings, LoadOptions, WeightsError, WeightsFile, WeightsSource};
use std::cell::Cell;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("the experiment's dataset is an unresolved name: define it inline or import it")]
    UnresolvedDataset,
    #[error("model `{model}`: {error}")]
    Weights { model: String, error: WeightsError },
    /// Released weights in another format that could not be read or converted.
    #[error("model `{model}`: {error}")]
    Import { model: String, error: crate::import::convert::ImportError },
    /// The `weights` path itself (e.g. an unset variable in it), before any file is read.
    #[error("model `{model}`: {error}")]
    WeightsPath { model: String, error: DatasetError },
    #[error("model `{model}`: {error}")]
    Inspect { model: String, error: InspectError },
    #[error(
        "model `{model}`: {} cannot tell v1 from v1.5 strides (identical tensors): set `stride: v1` or `stride: v1.5`",
        path.display()
    )]
    AmbiguousStride { model: String, path: PathBuf },
    #[error("model `{model}`: {error}")]
    Input { model: String, error: UnknownInput },
    #[error("model `{model}`, input: {error}")]
    Normalize { model: String, error: NormalizeError },
    /// The `input.mean.image` path.
    #[error("model `{model}`: {error}")]
    MeanImagePath { model: String, error: DatasetError },
    /// Mapping the model's outputs onto the dataset's classes.
    #[error("model `{model}`: {error}")]
    Outputs { model: String, error: DatasetError },
    #[error("{model}/{protocol}: {error}")]
    Engine { model: String, protocol: String, error: EngineError },
    #[error("ensemble `{protocol}`: {error}")]
    Ensemble { protocol: String, error: EnsembleError },
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("no {what} `{id}` in the experiment (it has: {})", available.join(", "))]
    Unknown { what: &'static str, id: String, available: Vec<String> },
    #[error(transparent)]
    Sweep(#[from] SweepError),
}

/// What to run, from the command line.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Only these model ids (all when empty).
    pub models: Vec<String>,
    /// Only these protocol ids (all when empty).
    pub protocols: Vec<String>,
    /// At most this many images, evenly spaced over the sorted list (quick runs).
    pub limit: Option<usize>,
    /// Device, dtype, backend: in every store key this run writes.
    pub runtime: Runtime,
    pub store_dir: PathBuf,
    /// Also every other setting of the selected protocols' sweeps, as protocols `<id>.sweep<k>`.
    pub sweeps: bool,
    /// Compute everything, one shard, nothing (merge), or only count what is stored.
    pub mode: RunMode,
}

/// How much of the work a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunMode {
    /// Compute what is not stored, then the complete results, rows and comparisons.
    #[default]
    Complete,
    /// Compute only this shard's chunks of every result and store them as parts: no complete
    /// results, rows, ensembles or comparisons (a later run merges).
    Shard(Shard),
    /// Compute nothing: complete results from the stored parts (the merge after shards); a
    /// missing chunk is an error naming the shard to rerun.
    StoredOnly,
    /// Compute and write nothing: how many chunks of each result are stored.
    Status,
}

/// How far one (model, protocol) result is, for `status` and for a shard's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyProgress {
    pub model: String,
    pub protocol: String,
    /// Chunks stored (all of them once the complete result is).
    pub stored: usize,
    pub chunks: usize,
    /// For a shard: what it owned and computed in this run.
    pub shard: Option<(Shard, ShardProgress)>,
}

/// One (model, protocol) result under one label set.
#[derive(Debug, Clone)]
pub struct Row {
    pub model: String,
    pub protocol: String,
    pub summary: String,
    /// Shared by the rows of every label set (and the ensembles' members): one copy per result.
    pub results: Arc<Vec<ImageResult>>,
    pub rates: ErrorRates,
    /// The sweep setting this row measured; `None` for a protocol as written.
    pub sweep: Option<SweepVariant>,
    /// The label set's id (`original`, `real`, …): the experiment's first one for the main rows.
    pub labels: String,
    /// Images the model scored that the label set leaves out (ReaL's empty lists).
    pub excluded: usize,
}

impl Row {
    fn new(model: &str, protocol: &str, summary: String, results: Arc<Vec<ImageResult>>, labels: &NamedLabels) -> Self {
        let (id, set) = labels;
        let rates = set.error_rates(&results);
        let excluded = set.excluded(&results);
        Self {
            model: model.into(),
            protocol: protocol.into(),
            summary,
            results,
            rates,
            sweep: None,
            labels: id.clone(),
            excluded,
        }
    }

    pub fn skipped(&self) -> Vec<(&str, &str)> {
        self.results
            .iter()
            .filter_map(|r| r.outcome.as_ref().err().map(|why| (r.image.as_str(), why.as_str())))
            .collect()
    }
}

/// Top-1 McNemar test between two protocols of one model on the images both scored.
#[derive(Debug, Clone)]
pub struct Paired {
    pub model: String,
    pub a: String,
    pub b: String,
    pub images: usize,
    pub test: McNemar,
}

/// A model that ran, as the report describes it.
#[derive(Debug, Clone)]
pub struct ModelReport {
    pub id: String,
    pub config: ResNetConfig,
    pub weights_sha256: String,
    pub input: InputSpec,
}

#[derive(Debug, Clone)]
pub struct EvalReport {
    pub dataset: String,
    /// Images evaluated (after `--limit`).
    pub images: usize,
    /// Images in the dataset: the full test set a claim without `test_images` refers to.
    pub dataset_images: usize,
    pub models: Vec<ModelReport>,
    /// Models listed as not run (weights absent, with an `obtain` recipe): id and the full reason.
    pub not_run: Vec<(String, String)>,
    pub rows: Vec<Row>,
    pub paired: Vec<Paired>,
    /// Choices a reader must know about (e.g. how a mean image met other view sizes).
    pub notes: Vec<String>,
    /// Per (model, protocol), for a shard or `status` (which produce no rows).
    pub progress: Vec<KeyProgress>,
    /// The label sets the rows were judged with, the main rows' first (never empty).
    pub label_sets: Vec<NamedLabels>,
}

/// A label set with its id (`original`, `real`, `subset:…`).
pub type NamedLabels = (String, LabelSet);

/// Every label set the experiment names, loaded; the first is the main rows'. None is in a
/// store key, so any of them re-scores stored results.
fn label_sets(loaded: &LoadedExperiment, dataset: &Dataset) -> Result<Vec<NamedLabels>, EvalError> {
    let experiment = &loaded.experiment;
    let dataset_spec = experiment.dataset().map_err(|_| EvalError::UnresolvedDataset)?;
    let label_sets: Vec<NamedLabels> = experiment
        .labels
        .iter()
        .map(|spec| Ok((spec.id(), spec.load(dataset_spec, dataset, &loaded.base)?)))
        .collect::<Result<_, DatasetError>>()?;
    Ok(if label_sets.is_empty() {
        vec![("original".to_string(), LabelSet::for_dataset(dataset))]
    } else {
        label_sets
    })
}

/// A model ready to run, or (`model: None`) described for its store keys only.
pub struct LoadedModel {
    pub entry: ModelEntry,
    /// `None` when the run computes nothing (stored results only, `status`): no model is built.
    pub model: Option<ResNet>,
    /// The inference path the key records: the built model's, or the one it would take.
    pub backend: Backend,
    pub config: ResNetConfig,
    pub weights_sha256: String,
    pub input: InputSpec,
    pub normalizer: Normalizer,
    pub output_map: Vec<Option<usize>>,
}

thread_local! {
    static MODELS_BUILT: Cell<usize> = const { Cell::new(0) };
}

/// How many models [`load_model`] has built on the calling thread: the test hook that shows a
/// run with stored results only (`--no-compute`) builds none.
pub fn models_built_on_this_thread() -> usize {
    MODELS_BUILT.with(Cell::get)
}

/// Reads the weights (local or the Hugging Face cache), settles the architecture, builds the
/// model on `device` (unless `build` is false: a run that only reads stored results needs the
/// weights' hash and shapes for its keys, never the model), and maps its outputs onto the
/// dataset's classes.
pub fn load_model(
    entry: &ModelEntry,
    base: &Path,
    store_dir: &Path,
    dataset: &Dataset,
    device: &Device,
    runtime: &Runtime,
    build: bool,
) -> Result<LoadedModel, EvalError> {
    let weights = |error| EvalError::Weights { model: entry.id.clone(), error };
    let source = match WeightsSource::parse(&entry.weights).map_err(weights)? {
        WeightsSource::Local(path) => WeightsSource::Local(
            resolve_path(base, "weights", &path)
                .map_err(|error| EvalError::WeightsPath { model: entry.id.clone(), error })?,
        ),
        hub => hub,
    };
    let path = source.resolve(&HubSettings::from_env()).map_err(weights)?;
    // Any released format, converted once into the store (keyed by the source's SHA-256).
    let path = crate::import::convert::as_safetensors(&path, store_dir)
        .map_err(|error| EvalError::Import { model: entry.id.clone(), error })?;
    let file = WeightsFile::read(&path).map_err(weights)?;
    let inspection = inspect(&file).map_err(|error| EvalError::Inspect { model: entry.id.clone(), error })?;
    let mut config = inspection.config;
    match (entry.stride, inspection.stride) {
        (Some(stride), _) => config = config.with_stride(stride),
        (None, StrideEvidence::Unknown) if config.block_kind() == BlockKind::Bottleneck => {
            return Err(EvalError::AmbiguousStride { model: entry.id.clone(), path })
        }
        _ => {}
    }
    if let Some(pool) = entry.stem_pool {
        config = config.with_stem_pool(pool);
    }
    if let Some(shortcut) = entry.cifar_shortcut {
        config = config.with_cifar_shortcut(shortcut).map_err(|reason| EvalError::Inspect {
            model: entry.id.clone(),
            error: InspectError::NotAResNet { path: path.display().to_string(), reason },
        })?;
    }
    let model = if build {
        MODELS_BUILT.with(|built| built.set(built.get() + 1));
        let build = BuildOptions { backend: runtime.backend, ..BuildOptions::default() };
        let options = LoadOptions { dtype: runtime.dtype.dtype(), device: device.clone(), build };
        Some(load_resnet(&file, &config, &options).map_err(weights)?)
    } else {
        None
    };
    // The model decides where it computes; with no model, the same rule the model would apply.
    let backend = match &model {
        Some(model) if model.uses_fast_path() => Backend::Fast,
        Some(_) => Backend::Candle,
        None if runtime.fast_path_applies() => Backend::Fast,
        None => Backend::Candle,
    };
    let mut input = entry.input.spec().map_err(|error| EvalError::Input { model: entry.id.clone(), error })?;
    if let MeanSpec::Image { image, .. } = &mut input.mean {
        *image = resolve_path(base, "input.mean.image", image)
            .map_err(|error| EvalError::MeanImagePath { model: entry.id.clone(), error })?;
    }
    let normalizer =
        Normalizer::new(&input, base).map_err(|error| EvalError::Normalize { model: entry.id.clone(), error })?;
    let output_map = entry
        .outputs
        .map_outputs(config.num_classes, dataset, base)
        .map_err(|error| EvalError::Outputs { model: entry.id.clone(), error })?;
    Ok(LoadedModel {
        entry: entry.clone(),
        model,
        backend,
        config,
        weights_sha256: file.sha256.clone(),
        input,
        normalizer,
        output_map,
    })
}

/// Whether loading failed only because the weights (or a variable in their path) are absent.
fn weights_absent(error: &EvalError) -> bool {
    match error {
        EvalError::Weights { error: WeightsError::Io { error, .. }, .. } => {
            error.kind() == std::io::ErrorKind::NotFound
        }
        EvalError::Import { error: crate::import::convert::ImportError::Detect(detect), .. } => {
            detect.error.kind() == std::io::ErrorKind::NotFound
        }
        // Not in the cache, or the download failed (no network): the `obtain` recipe is the fix either way.
        EvalError::Weights { error: WeightsError::NotCached { .. } | WeightsError::Download { .. }, .. } => true,
        // An unset variable in any of the model's paths, as before these errors had their own variants.
        EvalError::WeightsPath { error: DatasetError::UnsetVariable { .. }, .. }
        | EvalError::MeanImagePath { error: DatasetError::UnsetVariable { .. }, .. }
        | EvalError::Outputs { error: DatasetError::UnsetVariable { .. }, .. } => true,
        _ => false,
    }
}

/// `n` samples evenly spaced over the list (all of them when `n` is larger).
pub fn evenly_spaced(samples: &[Sample], n: usize) -> Vec<Sample> {
    if n >= samples.len() {
        return samples.to_vec();
    }
    (0..n).map(|i| samples[i * samples.len() / n].clone()).collect()
}

/// Everything the stored numbers depend on: its hash is the store key.
fn describe(
    model: &LoadedModel,
    protocol: &ProtocolSpec,
    dataset: &Dataset,
    samples: &[Sample],
    runtime: &Runtime,
) -> serde_json::Value {
    let ids = image_list_sha256(samples.iter().map(|s| (s.id.as_str(), s.label)));
    let mut description = json!({
        "weights_sha256": model.weights_sha256,
        "architecture": model.config,
        // The two paths agree to ~1e-6, not bit for bit: results are kept apart.
        "backend": model.backend,
        "input": model.input,
        "mean_image_sha256": model.normalizer.mean_image_sha256(),
        "output_map": model.output_map,
        "protocol": protocol,
        "dataset_fingerprint": dataset.fingerprint(),
        "images": samples.len(),
        "image_list_sha256": ids,
    });
    record_placement(&mut description, runtime.device.kind, runtime.dtype.dtype());
    if runtime.tf32 {
        description["tf32"] = json!(true);
    }
    description
}

/// The default precision (weights and activations), left out of store keys.
pub const COMPUTE_DTYPE: DType = DType::F32;

/// Adds where and in what precision the numbers were computed to a key's description, so that
/// results of a GPU node and a CPU node, or of another precision, are stored apart. CPU and f32
/// are left out (their absence means them): every key written before these fields existed was a
/// CPU f32 one, and keeping its hash keeps its stored results valid.
pub fn record_placement(description: &mut serde_json::Value, device: DeviceKind, dtype: DType) {
    if device != DeviceKind::Cpu {
        description["device"] = json!(device);
    }
    if dtype != DType::F32 {
        description["dtype"] = json!(dtype.as_str());
    }
}

fn select<'a>(all: Vec<&'a str>, wanted: &[String], what: &'static str) -> Result<Vec<&'a str>, EvalError> {
    if let Some(missing) = wanted.iter().find(|w| !all.contains(&w.as_str())) {
        return Err(unknown(what, missing, &all));
    }
    Ok(all.into_iter().filter(|id| wanted.is_empty() || wanted.iter().any(|w| w == id)).collect())
}

fn unknown(what: &'static str, id: &str, available: &[&str]) -> EvalError {
    EvalError::Unknown { what, id: id.to_string(), available: available.iter().map(|a| a.to_string()).collect() }
}

/// Runs the selected models × protocols (ensembles after their members) and collects the table.
pub fn run(loaded: &LoadedExperiment, options: &EvalOptions) -> Result<EvalReport, EvalError> {
    let experiment = &loaded.experiment;
    let dataset = experiment.dataset().map_err(|_| EvalError::UnresolvedDataset)?.load(&loaded.base)?;
    let label_sets = label_sets(loaded, &dataset)?;
    let samples = match options.limit {
        Some(n) => evenly_spaced(&dataset.samples, n),
        None => dataset.samples.clone(),
    };
    let all_models: Vec<&str> = experiment.models.iter().map(|m| m.id.as_str()).collect();
    let all_protocols: Vec<&str> = experiment.protocol_entries().map(|p| p.id.as_str()).collect();
    let model_ids = select(all_models.clone(), &options.models, "model")?;
    let protocol_ids = select(all_protocols.clone(), &options.protocols, "protocol")?;
    let device = options.runtime.open()?;
    let store = ResultStore::new(&options.store_dir);
    let settings = engine::Settings { prefetch: options.runtime.prefetch, ..loaded.settings() };
    // With `sweeps`, each selected protocol's other settings, run after every written protocol.
    let mut variants: Vec<SweepVariant> = Vec::new();
    if options.sweeps {
        for entry in experiment.protocol_entries().filter(|p| protocol_ids.contains(&p.id.as_str())) {
            variants.extend(sweep::expand(entry)?);
        }
    }
    let variant_ids: Vec<String> = variants.iter().map(SweepVariant::id).collect();

    // The (model, protocol) pairs to compute: the selection, plus every selected ensemble's members.
    let mut ensembles = Vec::new();
    let mut single = Vec::new();
    for &p in &protocol_ids {
        match experiment.protocol(p) {
            Some(ProtocolSpec::Ensemble(e)) => ensembles.push((p, e)),
            _ => single.push(p),
        }
    }
    single.extend(variant_ids.iter().map(String::as_str));
    // Model-major, so each model's protocols sit together in the table.
    let mut pairs: Vec<(&str, &str)> = model_ids.iter().flat_map(|&m| single.iter().map(move |&p| (m, p))).collect();
    for (_, e) in &ensembles {
        for member in &e.members {
            let pair = (member.model.as_str(), member.protocol.as_str());
            if !pairs.contains(&pair) {
                pairs.push(pair);
            }
        }
    }

    // Load every model first: errors surface before any compute, and a model with an `obtain`
    // recipe whose weights are absent is listed as not run instead of failing the rest.
    let mut models: BTreeMap<&str, LoadedModel> = BTreeMap::new();
    let mut not_run: Vec<(String, String)> = Vec::new();
    for &(model_id, _) in &pairs {
        if models.contains_key(model_id) || not_run.iter().any(|(id, _)| id == model_id) {
            continue;
        }
        let entry = experiment.model(model_id).ok_or_else(|| unknown("model", model_id, &all_models))?;
        // Only a run that computes builds models.
        let build = matches!(options.mode, RunMode::Complete | RunMode::Shard(_));
        match load_model(entry, &loaded.base, &options.store_dir, &dataset, &device, &options.runtime, build) {
            Ok(model) => {
                models.insert(model_id, model);
            }
            Err(error) => match (&entry.obtain, weights_absent(&error)) {
                (Some(obtain), true) => {
                    not_run.push((model_id.to_string(), format!("{error}; to obtain the weights: {obtain}")))
                }
                _ => return Err(error),
            },
        }
    }
    pairs.retain(|(m, _)| models.contains_key(m));
    let mut notes: Vec<String> = not_run.iter().map(|(id, note)| format!("{id}: not run: {note}")).collect();
    notes.extend(options.runtime.fallback_note().filter(|_| !models.is_empty()));
    ensembles.retain(|(id, e)| {
        let missing: Vec<&str> =
            e.members.iter().map(|m| m.model.as_str()).filter(|m| not_run.iter().any(|(n, _)| n == m)).collect();
        if !missing.is_empty() {
            notes.push(format!("{id}: ensemble not run: members {} not run", missing.join(", ")));
        }
        missing.is_empty()
    });
    let mut computed: BTreeMap<(String, String), Arc<Vec<ImageResult>>> = BTreeMap::new();
    let mut rows = Vec::new();
    let mut progress = Vec::new();
    for (model_id, protocol_id) in pairs {
        let model = &models[model_id];
        let variant = variant_ids.iter().position(|id| id == protocol_id).map(|i| &variants[i]);
        let protocol = match variant {
            Some(variant) => &variant.spec,
            None => experiment.protocol(protocol_id).ok_or_else(|| unknown("protocol", protocol_id, &all_protocols))?,
        };
        let description = describe(model, protocol, &dataset, &samples, &options.runtime);
        let scorer = model.model.as_ref().map(|resnet| Scorer {
            model: resnet,
            normalizer: &model.normalizer,
            output_map: &model.output_map,
            num_classes: dataset.classes.len(),
            device: &device,
        });
        let task = Task {
            label: format!("{model_id}/{protocol_id}"),
            protocol,
            samples: &samples,
            key: StoreKey::new(model_id, protocol_id, &description),
            description,
        };
        let engine_err = |error| EvalError::Engine { model: model_id.into(), protocol: protocol_id.into(), error };
        let results = match (options.mode, &scorer) {
            (RunMode::Complete, Some(scorer)) => {
                engine::evaluate(scorer, &task, &settings, &store).map_err(engine_err)?
            }
            // (Complete, None) and (Shard, None) do not occur: a computing run builds its models.
            (RunMode::StoredOnly, _) | (RunMode::Complete, None) => {
                engine::merge_stored(&task, &settings, &store).map_err(engine_err)?
            }
            (RunMode::Shard(shard), Some(scorer)) => {
                let done = engine::evaluate_shard(scorer, &task, &settings, &store, shard).map_err(engine_err)?;
                progress.push(key_progress(&store, &task, &settings, Some((shard, done))).map_err(engine_err)?);
                continue;
            }
            (RunMode::Status, _) | (RunMode::Shard(_), None) => {
                progress.push(key_progress(&store, &task, &settings, None).map_err(engine_err)?);
                continue;
            }
        };
        let results = Arc::new(results);
        if model_ids.contains(&model_id) && (protocol_ids.contains(&protocol_id) || variant.is_some()) {
            for labels in &label_sets {
                let mut row = Row::new(model_id, protocol_id, protocol.summary(), Arc::clone(&results), labels);
                row.sweep = variant.cloned();
                rows.push(row);
            }
        }
        computed.insert((model_id.to_string(), protocol_id.to_string()), results);
    }
    if matches!(options.mode, RunMode::Shard(_) | RunMode::Status) {
        // Parts only: ensembles, comparisons and rows need complete results (the merge's job).
        ensembles.clear();
    }
    for (id, e) in ensembles {
        let members: Vec<(String, Vec<ImageResult>)> = e
            .members
            .iter()
            .map(|m| {
                let results = computed[&(m.model.clone(), m.protocol.clone())].as_ref().clone();
                (format!("{}/{}", m.model, m.protocol), results)
            })
            .collect();
        let results = Arc::new(
            ensemble::average(&members).map_err(|error| EvalError::Ensemble { protocol: id.to_string(), error })?,
        );
        let summary = experiment.protocol(id).map(|p| p.summary()).unwrap_or_default();
        for labels in &label_sets {
            rows.push(Row::new("ensemble", id, summary.clone(), Arc::clone(&results), labels));
        }
    }
    let paired = paired_tests(&rows, &label_sets[0]);
    notes.extend(
        models.iter().filter_map(|(id, m)| m.normalizer.mean_image_policy().map(|policy| format!("{id}: {policy}"))),
    );
    let model_reports = models
        .values()
        .map(|m| ModelReport {
            id: m.entry.id.clone(),
            config: m.config,
            weights_sha256: m.weights_sha256.clone(),
            input: m.input.clone(),
        })
        .collect();
    Ok(EvalReport {
        dataset: dataset.description.clone(),
        images: samples.len(),
        dataset_images: dataset.samples.len(),
        models: model_reports,
        not_run,
        rows,
        paired,
        notes,
        progress,
        label_sets,
    })
}

/// How many chunks of `task`'s result are stored (after a shard's run, with what it did).
fn key_progress(
    store: &ResultStore,
    task: &Task,
    settings: &engine::Settings,
    shard: Option<(Shard, ShardProgress)>,
) -> Result<KeyProgress, EngineError> {
    let chunks = task.samples.len().div_ceil(settings.chunk_size.max(1));
    let stored = store.stored_chunks(&task.key, settings.chunk_size, chunks)?;
    Ok(KeyProgress { model: task.key.model.clone(), protocol: task.key.protocol.clone(), stored, chunks, shard })
}

/// McNemar's exact test on top-1 correctness for every pair of protocols (as written) of the same
/// model. Sweep settings are left out: a sweep is read as the band of its settings, and up to 64
/// settings would add thousands of tests.
/// Under the first label set only, as the main rows.
fn paired_tests(rows: &[Row], (primary, labels): &NamedLabels) -> Vec<Paired> {
    let mut paired = Vec::new();
    let main = |row: &Row| row.sweep.is_none() && &row.labels == primary;
    for (i, a) in rows.iter().enumerate().filter(|(_, a)| main(a)) {
        for b in rows[i + 1..].iter().filter(|b| b.model == a.model && main(b)) {
            let (ca, cb) = labels.paired_top1(&a.results, &b.results);
            if let Ok(test) = mcnemar_exact(&ca, &cb) {
                paired.push(Paired {
                    model: a.model.clone(),
                    a: a.protocol.clone(),
                    b: b.protocol.clone(),
                    images: ca.len(),
                    test,
                });
            }
        }
    }
    paired
}

fn percent_with_interval(p: &crate::metrics::Proportion) -> String {
    format!("{:6.2} [{:5.2}, {:5.2}]", 100.0 * p.estimate, 100.0 * p.low, 100.0 * p.high)
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "dataset: {} ({} images evaluated)", self.dataset, self.images)?;
        if self.rows.is_empty() && !self.progress.is_empty() {
            // A shard or `status`: progress only (below).
            return self.fmt_progress(f);
        }
        writeln!(f, "errors in %, with Wilson 95% intervals")?;
        // With more than one label set, each row names its own.
        let several = self.rows.iter().any(|r| self.rows.first().is_some_and(|first| first.labels != r.labels));
        let name = |row: &Row| match several {
            true => format!("{}/{} [{}]", row.model, row.protocol, row.labels),
            false => format!("{}/{}", row.model, row.protocol),
        };
        let width = self.rows.iter().map(|r| name(r).len()).max().unwrap_or(0).max(16);
        writeln!(
            f,
            "{:width$}  {:>6}  {:>7}  {:>23}  {:>23}",
            "model/protocol", "images", "skipped", "top-1 error", "top-5 error"
        )?;
        for row in &self.rows {
            writeln!(
                f,
                "{:width$}  {:>6}  {:>7}  {:>23}  {:>23}",
                name(row),
                row.rates.top1.trials,
                row.skipped().len(),
                percent_with_interval(&row.rates.top1),
                percent_with_interval(&row.rates.top5),
            )?;
        }
        for row in self.rows.iter().filter(|r| r.excluded > 0) {
            writeln!(f, "{}: {} images have no label in `{}` and are not scored", name(row), row.excluded, row.labels)?;
        }
        // Bad images are the same under every label set: listed once.
        let main_labels = self.rows.first().map(|r| r.labels.as_str()).unwrap_or_default();
        for row in self.rows.iter().filter(|r| !r.skipped().is_empty() && r.labels == main_labels) {
            writeln!(f, "skipped by {}/{}:", row.model, row.protocol)?;
            for (image, why) in row.skipped() {
                writeln!(f, "  {image}: {why}")?;
            }
        }
        // Each setting once, though every model has a row for it.
        let mut variants: Vec<&SweepVariant> = Vec::new();
        for variant in self.rows.iter().filter_map(|r| r.sweep.as_ref()) {
            if !variants.iter().any(|v| v.id() == variant.id()) {
                variants.push(variant);
            }
        }
        if !variants.is_empty() {
            writeln!(f, "sweep settings:")?;
            for variant in variants {
                writeln!(f, "  {}: {}", variant.id(), variant.label())?;
            }
        }
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        self.fmt_progress(f)?;
        if !self.paired.is_empty() {
            writeln!(f, "paired top-1 comparisons (McNemar exact test on the images both scored):")?;
            for p in &self.paired {
                writeln!(
                    f,
                    "  {}: {} vs {}: only first correct {}, only second correct {}, p = {:.3e}",
                    p.model, p.a, p.b, p.test.only_a_correct, p.test.only_b_correct, p.test.p_value
                )?;
            }
        }
        Ok(())
    }
}

impl EvalReport {
    fn fmt_progress(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for note in self.notes.iter().filter(|_| self.rows.is_empty()) {
            writeln!(f, "note: {note}")?;
        }
        for p in &self.progress {
            write!(f, "{}/{}: {}/{} chunks stored", p.model, p.protocol, p.stored, p.chunks)?;
            match &p.shard {
                Some((shard, done)) => writeln!(
                    f,
                    "; shard {shard} owns {} and computed {} of them in this run",
                    done.owned, done.computed
                )?,
                None => writeln!(f)?,
            }
        }
        Ok(())
    }
}
