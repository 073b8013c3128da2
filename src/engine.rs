//! Runs one model under one protocol over a dataset: images are decoded and turned into views on
//! a thread pool while the previous chunk runs through the model; views of equal shape are
//! batched together; every finished chunk is stored before the next, so memory is bounded by the
//! chunk size and an interrupted run resumes where it stopped. Chunk boundaries and batches
//! depend only on the image list and the settings, so every run gives the same numbers, and a
//! run can be split over processes or hosts chunk by chunk (`crate::shard`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::sync_channel;

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dataset::Sample;
use crate::decode::{decode_rgb_within, DecodeError, DEFAULT_MAX_PIXELS};
use crate::model::{DenseWindow, ResNet};
use crate::progress::Progress;
use crate::protocol::views::prepare_within;
use crate::protocol::{combine, Head, ProtocolError, ProtocolSpec, ViewGroup};
use crate::shard::{MissingChunks, Shard};
use crate::store::{ImageResult, Lookup, ResultStore, Scored, StoreError, StoreKey};
use crate::transform::Normalizer;

/// What to do with an image that cannot be decoded or prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnBadImage {
    /// Stop with an error naming the file.
    #[default]
    Fail,
    /// Record it as skipped (the report counts and lists skipped files) and go on.
    Skip,
}

/// Throughput and memory knobs; they never change the numbers' meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Most views per forward pass.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Images per chunk: the unit of prefetching, of memory and of resuming.
    #[serde(default = "default_chunk")]
    pub chunk_size: usize,
    /// Set from the experiment's top-level `on_bad_image`.
    #[serde(skip)]
    pub on_bad_image: OnBadImage,
    /// Set from the experiment's top-level `max_pixels`: the largest image, decoded or resized.
    #[serde(skip, default = "default_max_pixels")]
    pub max_pixels: u64,
    /// Prepared chunks queued ahead of the model (the runtime's `--prefetch`); `None`: as many
    /// as fit [`PREFETCH_BYTES`], at least one (see [`Settings::prefetch_depth`]).
    #[serde(skip)]
    pub prefetch: Option<usize>,
}

/// The memory the default prefetch queue may hold in prepared views (f32 pixels).
pub const PREFETCH_BYTES: usize = 1 << 30;
/// The default queue's longest: beyond this a steady producer gains nothing.
pub const MAX_DEFAULT_PREFETCH: usize = 8;

impl Settings {
    /// Chunks of prepared views queued ahead of the model: `prefetch` when set, otherwise as many
    /// chunks of this protocol's views as fit [`PREFETCH_BYTES`] (1 to [`MAX_DEFAULT_PREFETCH`]).
    /// A fast device then finds the next batches ready while decoding keeps every core busy.
    pub fn prefetch_depth(&self, protocol: &ProtocolSpec) -> usize {
        if let Some(depth) = self.prefetch {
            return depth;
        }
        let per_image: usize = crate::plan::views(protocol).iter().map(|&(h, w, n)| h * w * n * 3 * 4).sum();
        let per_chunk = (per_image * self.chunk_size).max(1);
        (PREFETCH_BYTES / per_chunk).clamp(1, MAX_DEFAULT_PREFETCH)
    }
}

fn default_max_pixels() -> u64 {
    DEFAULT_MAX_PIXELS
}

fn default_batch() -> usize {
    16
}
fn default_chunk() -> usize {
    64
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            batch_size: default_batch(),
            chunk_size: default_chunk(),
            on_bad_image: OnBadImage::Fail,
            max_pixels: DEFAULT_MAX_PIXELS,
            prefetch: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("bad image {path}: {reason} (set `on_bad_image: skip` to skip such images)")]
    BadImage { path: PathBuf, reason: ImageError },
    #[error("forward pass on {count} view(s) of {width}x{height} (first image {first}): {error}")]
    Forward { width: u32, height: u32, count: usize, first: String, error: Box<candle_core::Error> },
    #[error(
        "model `{model}` gave non-finite logits (NaN or infinite) for image {image}: its weights or \
         activations overflow, so its outputs cannot be ranked; nothing was stored for this chunk"
    )]
    NonFiniteLogits { model: String, image: PathBuf },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("settings: {field} must be at least 1")]
    ZeroSetting { field: &'static str },
    #[error("{0}")]
    Missing(Box<MissingChunks>),
}

/// Why one image could not be turned into views (with `on_bad_image: skip`, the text is stored
/// as the reason it was skipped).
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Views(#[from] ProtocolError),
}

/// A model ready to score images: its input convention and how its outputs map to dataset classes.
pub struct Scorer<'a> {
    pub model: &'a ResNet,
    pub normalizer: &'a Normalizer,
    /// For each model output, the dataset class it scores.
    pub output_map: &'a [Option<usize>],
    pub num_classes: usize,
    pub device: &'a Device,
}

/// One (model, protocol) over a list of images.
pub struct Task<'a> {
    /// Shown on the progress bar.
    pub label: String,
    pub protocol: &'a ProtocolSpec,
    pub samples: &'a [Sample],
    pub key: StoreKey,
    /// Written beside the stored result: what the key's hash covers, readable.
    pub description: serde_json::Value,
}

/// Results for every sample, in order: read from the store when complete, otherwise computed
/// for the chunks not yet stored.
pub fn evaluate(
    scorer: &Scorer,
    task: &Task,
    settings: &Settings,
    store: &ResultStore,
) -> Result<Vec<ImageResult>, EngineError> {
    complete(Some(scorer), task, settings, store)
}

/// Results for every sample from the store alone (the merge after shards): the complete result,
/// or every part of it, which then becomes the complete result. Computes nothing: a missing
/// chunk is an error naming the shard that owns it.
pub fn merge_stored(task: &Task, settings: &Settings, store: &ResultStore) -> Result<Vec<ImageResult>, EngineError> {
    complete(None, task, settings, store)
}

/// What one shard did for one (model, protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardProgress {
    /// Chunks this shard owns.
    pub owned: usize,
    /// Of those, computed by this run (the rest were stored already).
    pub computed: usize,
    /// Chunks of the whole result.
    pub chunks: usize,
}

/// Computes the chunks `shard` owns that are not stored yet and writes them as parts under the
/// full key; never writes the complete result. Takes no lock: no other shard owns these chunks,
/// and a part written twice has the same bytes.
pub fn evaluate_shard(
    scorer: &Scorer,
    task: &Task,
    settings: &Settings,
    store: &ResultStore,
    shard: Shard,
) -> Result<ShardProgress, EngineError> {
    check_settings(settings)?;
    let chunks: Vec<&[Sample]> = task.samples.chunks(settings.chunk_size).collect();
    let owned: Vec<usize> = (0..chunks.len()).filter(|&i| shard.owns(i)).collect();
    if let Lookup::Found(_) = store.load(&task.key, Some(task.samples))? {
        return Ok(ShardProgress { owned: owned.len(), computed: 0, chunks: chunks.len() });
    }
    if !owned.is_empty() {
        store.record_shard_count(&task.key, settings.chunk_size, shard.count)?;
    }
    let mut done: BTreeMap<usize, Vec<ImageResult>> =
        store.load_parts_where(&task.key, settings.chunk_size, &chunks, |i| shard.owns(i))?.into_iter().collect();
    let todo: Vec<usize> = owned.iter().copied().filter(|i| !done.contains_key(i)).collect();
    let computed = todo.len();
    let owned_images: usize = owned.iter().map(|&i| chunks[i].len()).sum();
    let already: usize = done.values().map(Vec::len).sum();
    let label = format!("{} (shard {shard})", task.label);
    compute_chunks(scorer, task, settings, store, &chunks, todo, &mut done, &label, owned_images, already)?;
    Ok(ShardProgress { owned: owned.len(), computed, chunks: chunks.len() })
}

fn check_settings(settings: &Settings) -> Result<(), EngineError> {
    let prefetch = settings.prefetch.unwrap_or(1);
    for (field, value) in
        [("batch_size", settings.batch_size), ("chunk_size", settings.chunk_size), ("prefetch", prefetch)]
    {
        if value == 0 {
            return Err(EngineError::ZeroSetting { field });
        }
    }
    Ok(())
}

/// The complete result: stored, or assembled from stored parts and (with a scorer) the chunks
/// computed here.
fn complete(
    scorer: Option<&Scorer>,
    task: &Task,
    settings: &Settings,
    store: &ResultStore,
) -> Result<Vec<ImageResult>, EngineError> {
    check_settings(settings)?;
    if let Lookup::Found(results) = store.load(&task.key, Some(task.samples))? {
        return Ok(results);
    }
    // Completing needs the key's lock: a second process on this store waits here, then finds the
    // result the first one stored, instead of computing it twice.
    let _lock = store.lock(&task.key)?;
    match store.load(&task.key, Some(task.samples))? {
        Lookup::Found(results) => return Ok(results),
        Lookup::Absent => {}
        Lookup::Unusable { path, reason } => {
            store.set_aside(&path, &reason)?;
        }
    }
    let chunks: Vec<&[Sample]> = task.samples.chunks(settings.chunk_size).collect();
    let mut done: BTreeMap<usize, Vec<ImageResult>> =
        store.load_parts(&task.key, settings.chunk_size, &chunks)?.into_iter().collect();
    let todo: Vec<usize> = (0..chunks.len()).filter(|i| !done.contains_key(i)).collect();
    match scorer {
        Some(scorer) => {
            let already: usize = done.values().map(Vec::len).sum();
            let total = task.samples.len();
            compute_chunks(scorer, task, settings, store, &chunks, todo, &mut done, &task.label, total, already)?;
        }
        None if !todo.is_empty() => {
            return Err(EngineError::Missing(Box::new(MissingChunks {
                missing: todo,
                chunks: chunks.len(),
                shard_count: store.shard_count(&task.key, settings.chunk_size),
                parts_dir: store.parts_dir(&task.key, settings.chunk_size),
            })));
        }
        None => {}
    }
    let results: Vec<ImageResult> = done.into_values().flatten().collect();
    store.finish(&task.key, &results, &task.description)?;
    Ok(results)
}

/// Computes the chunks `todo` in order, storing each as a part as soon as it is done.
#[allow(clippy::too_many_arguments)] // one private call shape for both callers
fn compute_chunks(
    scorer: &Scorer,
    task: &Task,
    settings: &Settings,
    store: &ResultStore,
    chunks: &[&[Sample]],
    todo: Vec<usize>,
    done: &mut BTreeMap<usize, Vec<ImageResult>>,
    label: &str,
    total: usize,
    already: usize,
) -> Result<(), EngineError> {
    let mut progress = Progress::new(label, total, already);
    std::thread::scope(|scope| -> Result<(), EngineError> {
        // Up to `depth` prepared chunks wait while the model runs on the current one: decoding
        // (on every core) overlaps the forward passes, and memory stays at about depth + 2 chunks.
        // The queue only reorders work in time: every chunk's views and batches are the same.
        let depth = settings.prefetch_depth(task.protocol);
        let (sender, receiver) = sync_channel::<(usize, Vec<Prepared>)>(depth);
        scope.spawn(move || {
            for index in todo {
                let prepared = chunks[index]
                    .par_iter()
                    .map(|s| prepare_sample(s, task.protocol, scorer, settings.max_pixels))
                    .collect();
                if sender.send((index, prepared)).is_err() {
                    break; // the consumer stopped on an error
                }
            }
        });
        for (index, prepared) in receiver {
            let results = score_chunk(scorer, task, settings, chunks[index], prepared, &mut progress)?;
            store.write_part(&task.key, settings.chunk_size, index, &results)?;
            progress.chunk(results.len());
            done.insert(index, results);
        }
        Ok(())
    })?;
    progress.finish();
    Ok(())
}

type Prepared = Result<Vec<ViewGroup>, ImageError>;

fn prepare_sample(sample: &Sample, protocol: &ProtocolSpec, scorer: &Scorer, max_pixels: u64) -> Prepared {
    if let Some(pixels) = &sample.pixels {
        return Ok(prepare_within(protocol, pixels, scorer.normalizer, max_pixels)?);
    }
    let image = decode_rgb_within(&sample.path, max_pixels)?;
    Ok(prepare_within(protocol, &image, scorer.normalizer, max_pixels)?)
}

/// Batching key: views of one shape through one head can share a forward pass.
type BucketKey = (u32, u32, u8, usize);

fn bucket_key(group: &ViewGroup) -> BucketKey {
    match group.head {
        Head::Standard => (group.height, group.width, 0, 0),
        Head::Dense(DenseWindow::Global) => (group.height, group.width, 1, 0),
        Head::Dense(DenseWindow::Pool(k)) => (group.height, group.width, 2, k),
    }
}

fn score_chunk(
    scorer: &Scorer,
    task: &Task,
    settings: &Settings,
    samples: &[Sample],
    mut prepared: Vec<Prepared>,
    progress: &mut Progress,
) -> Result<Vec<ImageResult>, EngineError> {
    if settings.on_bad_image == OnBadImage::Fail {
        if let Some(i) = prepared.iter().position(Result::is_err) {
            if let Err(reason) = prepared.swap_remove(i) {
                return Err(EngineError::BadImage { path: samples[i].path.clone(), reason });
            }
        }
    }
    // (image, group) positions of every group, bucketed by shape; BTreeMap keeps the order fixed.
    let mut buckets: BTreeMap<BucketKey, Vec<(usize, usize)>> = BTreeMap::new();
    for (i, groups) in prepared.iter().enumerate() {
        if let Ok(groups) = groups {
            groups.iter().enumerate().for_each(|(g, group)| {
                buckets.entry(bucket_key(group)).or_default().push((i, g));
            });
        }
    }
    let chunk_views: usize = prepared.iter().flatten().flatten().map(|g| g.count).sum();
    let mut logits: Vec<Vec<Vec<Vec<f32>>>> =
        prepared.iter().map(|p| p.as_ref().map(|g| vec![Vec::new(); g.len()]).unwrap_or_default()).collect();
    for members in buckets.values() {
        let group = |&(i, g): &(usize, usize)| -> &ViewGroup {
            match &prepared[i] {
                Ok(groups) => &groups[g],
                Err(_) => unreachable!("only prepared images are bucketed"),
            }
        };
        let mut start = 0;
        while start < members.len() {
            // Whole groups per batch, at least one, at most batch_size views when they fit.
            let mut end = start + 1;
            let mut views = group(&members[start]).count;
            while end < members.len() && views + group(&members[end]).count <= settings.batch_size {
                views += group(&members[end]).count;
                end += 1;
            }
            let batch = &members[start..end];
            let outputs = forward(scorer, batch.iter().map(group).collect(), &samples[batch[0].0].id)?;
            let mut rows = outputs.into_iter();
            for &(i, g) in batch {
                let views: Vec<Vec<f32>> = rows.by_ref().take(group(&(i, g)).count).collect();
                // NaN or infinite logits would still sort into a plausible-looking top 5.
                if views.iter().flatten().any(|logit| !logit.is_finite()) {
                    let model = task.key.model.clone();
                    return Err(EngineError::NonFiniteLogits { model, image: samples[i].path.clone() });
                }
                logits[i][g] = views;
            }
            progress.batch(views, chunk_views, samples.len());
            start = end;
        }
    }
    let results = samples
        .iter()
        .zip(prepared)
        .zip(logits)
        .map(|((sample, prepared), logits)| ImageResult {
            image: sample.id.clone(),
            label: sample.label as u32,
            outcome: prepared.map_err(|reason| reason.to_string()).map(|_| {
                let views: Vec<Vec<f32>> = logits.into_iter().flatten().collect();
                scored(&combine(task.protocol, &views), scorer.output_map, scorer.num_classes)
            }),
        })
        .collect();
    Ok(results)
}

/// Logits of every view of `groups` (all of one shape and head), one row per view.
fn forward(scorer: &Scorer, groups: Vec<&ViewGroup>, first: &str) -> Result<Vec<Vec<f32>>, EngineError> {
    let (height, width, head) = (groups[0].height, groups[0].width, groups[0].head);
    let count: usize = groups.iter().map(|g| g.count).sum();
    let run = || -> candle_core::Result<Vec<Vec<f32>>> {
        let pixels: Vec<f32> = groups.iter().flat_map(|g| g.pixels.iter().copied()).collect();
        // Views are prepared in f32; the model computes in its own dtype (cast on the device).
        let x = Tensor::from_vec(pixels, (count, 3, height as usize, width as usize), scorer.device)?
            .to_dtype(scorer.model.dtype())?;
        let logits = match head {
            Head::Standard => scorer.model.forward(&x)?,
            // The class-score map averaged over its positions (VGG's "spatially averaged").
            // Averaged in f32 whatever the model's dtype (a statistic, not the model's arithmetic).
            Head::Dense(window) => scorer.model.forward_dense(&x, window)?.to_dtype(DType::F32)?.mean((2, 3))?,
        };
        // Softmax, combination and scores are f32 whatever the model computed in.
        logits.to_dtype(DType::F32)?.to_device(&Device::Cpu)?.to_vec2::<f32>()
    };
    run().map_err(|error| EngineError::Forward {
        width,
        height,
        count,
        first: first.to_string(),
        error: Box::new(error),
    })
}

/// Probabilities over model outputs → the stored form over dataset classes.
pub fn scored(output_probs: &[f32], output_map: &[Option<usize>], num_classes: usize) -> Scored {
    let mut probs = vec![0.0f32; num_classes];
    let mut unmapped_prob = 0.0f32;
    for (&p, class) in output_probs.iter().zip(output_map) {
        match class {
            Some(c) => probs[*c] = p,
            None => unmapped_prob = unmapped_prob.max(p),
        }
    }
    let mut order: Vec<usize> = (0..output_probs.len()).collect();
    // Best first; ties go to the lower output index, as torch.topk does on CPU in practice.
    order.sort_by(|&a, &b| output_probs[b].total_cmp(&output_probs[a]).then(a.cmp(&b)));
    let top5 = order
        .into_iter()
        .take(5)
        .map(|o| (output_map[o].map_or(crate::store::UNMAPPED_CLASS, |c| c as i64), output_probs[o]))
        .collect();
    Scored { top5, probs, unmapped_prob }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmapped_outputs_rank_but_score_no_class() {
        // Output 0 is a background class (TF-slim's 1001 outputs): it wins top-1 here.
        let s = scored(&[0.5, 0.1, 0.3, 0.1], &[None, Some(0), Some(1), Some(2)], 3);
        assert_eq!(s.top5[0], (crate::store::UNMAPPED_CLASS, 0.5));
        assert_eq!(s.top5[1], (1, 0.3));
        assert_eq!(s.top5[2], (0, 0.1), "ties go to the lower output");
        assert_eq!(s.probs, vec![0.1, 0.3, 0.1]);
        assert_eq!(s.unmapped_prob, 0.5);
    }
}
