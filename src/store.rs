//! The per-image store: for each (model, protocol, dataset) a Parquet file holding every image's
//! label, top-5 classes with probabilities and full probability vector (f32), so that ensembles and
//! re-scoring never recompute. Files are keyed by a hash of everything that determines the
//! numbers; a run writes finished chunks as they complete (atomically), so a killed run resumes
//! and computes only what is missing, and a changed key can never be mixed with an old file.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use polars::prelude::*;
use sha2::{Digest, Sha256};

/// Bumped when the file layout or the meaning of a column changes.
pub const SCHEMA_VERSION: u32 = 1;

/// Classes ranked best first (`-1`: a model output with no dataset class, e.g. a background).
pub const UNMAPPED_CLASS: i64 = -1;

/// The scores of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The five best (class, probability), best first.
    pub top5: Vec<(i64, f32)>,
    /// Probability of each dataset class. Stored as f32: with f16, small probabilities
    /// underflow to ties and an ensemble's top-5 would depend on whether its members were read
    /// back or just computed.
    pub probs: Vec<f32>,
    /// The largest probability of a model output that scores no dataset class (0 when none).
    pub unmapped_prob: f32,
}

/// One row of the store.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageResult {
    pub image: String,
    pub label: u32,
    /// `Err(reason)` when the image was skipped (`on_bad_image: skip`).
    pub outcome: Result<Scored, String>,
}

impl ImageResult {
    /// (top-1 correct, top-5 correct), None when skipped.
    pub fn correct(&self) -> Option<(bool, bool)> {
        let scored = self.outcome.as_ref().ok()?;
        let label = self.label as i64;
        let top1 = scored.top5.first().is_some_and(|&(c, _)| c == label);
        Some((top1, scored.top5.iter().any(|&(c, _)| c == label)))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("store file {path}: {error}")]
    Parquet { path: PathBuf, error: PolarsError },
    #[error("store file {path} is not what its name promises: {reason} (delete it to recompute)")]
    Inconsistent { path: PathBuf, reason: String },
    #[error("no stored results for {model}/{protocol} at {path}: run `eval` for them first")]
    Missing { model: String, protocol: String, path: PathBuf },
}

/// What identifies one stored result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreKey {
    pub model: String,
    pub protocol: String,
    /// Hex SHA-256 of a canonical description of the weights, input convention, output
    /// mapping, protocol and image list.
    pub hash: String,
}

impl StoreKey {
    /// Hashes `description` (a canonical JSON value) together with the schema version.
    pub fn new(model: &str, protocol: &str, description: &serde_json::Value) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(format!("resnet-audit store v{SCHEMA_VERSION}\n").as_bytes());
        hasher.update(description.to_string().as_bytes());
        let hash = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Self { model: model.to_string(), protocol: protocol.to_string(), hash }
    }

    fn stem(&self) -> String {
        format!("{}-{}", self.protocol, &self.hash[..16])
    }
}

/// A directory of stored results: `<dir>/<model>/<protocol>-<hash>.parquet`, with finished
/// chunks of an unfinished run in `<protocol>-<hash>.parts-<chunk size>/`.
#[derive(Debug, Clone)]
pub struct ResultStore {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |error| StoreError::Io { path: path.to_path_buf(), error }
}

impl ResultStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn final_path(&self, key: &StoreKey) -> PathBuf {
        self.dir.join(&key.model).join(format!("{}.parquet", key.stem()))
    }

    /// Parts of an unfinished run with `chunk_size` images per chunk (a run resumed with another
    /// chunk size starts its own parts instead of misreading these).
    pub fn parts_dir(&self, key: &StoreKey, chunk_size: usize) -> PathBuf {
        self.dir.join(&key.model).join(format!("{}.parts-{chunk_size}", key.stem()))
    }

    /// The complete result, if a run finished.
    pub fn load(&self, key: &StoreKey) -> Result<Option<Vec<ImageResult>>, StoreError> {
        let path = self.final_path(key);
        if !path.exists() {
            return Ok(None);
        }
        read_results(&path).map(Some)
    }

    /// The complete result, or an error saying to run the member first (for ensembles).
    pub fn require(&self, key: &StoreKey) -> Result<Vec<ImageResult>, StoreError> {
        self.load(key)?.ok_or_else(|| StoreError::Missing {
            model: key.model.clone(),
            protocol: key.protocol.clone(),
            path: self.final_path(key),
        })
    }

    /// Finished chunks of an interrupted run, by chunk index.
    pub fn load_parts(&self, key: &StoreKey, chunk_size: usize) -> Result<Vec<(usize, Vec<ImageResult>)>, StoreError> {
        let dir = self.parts_dir(key, chunk_size);
        if !dir.exists() {
            return Ok(Vec::new());
        }
        let mut parts = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let path = entry.map_err(io(&dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            // Temporary files of a write that was interrupted are ignored (and overwritten later).
            let Some(index) = name.strip_prefix("chunk-").and_then(|n| n.strip_suffix(".parquet")) else { continue };
            let index = index.parse::<usize>().map_err(|_| StoreError::Inconsistent {
                path: path.clone(),
                reason: "unexpected file name in a parts folder".into(),
            })?;
            parts.push((index, read_results(&path)?));
        }
        parts.sort_by_key(|(index, _)| *index);
        Ok(parts)
    }

    pub fn write_part(
        &self,
        key: &StoreKey,
        chunk_size: usize,
        chunk: usize,
        results: &[ImageResult],
    ) -> Result<(), StoreError> {
        let dir = self.parts_dir(key, chunk_size);
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        write_atomically(&dir.join(format!("chunk-{chunk:06}.parquet")), results)
    }

    /// Writes the complete result (atomically), with a readable description beside it, then
    /// removes the parts.
    pub fn finish(
        &self,
        key: &StoreKey,
        results: &[ImageResult],
        description: &serde_json::Value,
    ) -> Result<PathBuf, StoreError> {
        let path = self.final_path(key);
        let dir = path.parent().unwrap_or(&self.dir).to_path_buf();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let sidecar = path.with_extension("json");
        let text = serde_json::to_string_pretty(description).unwrap_or_default();
        fs::write(&sidecar, text).map_err(io(&sidecar))?;
        write_atomically(&path, results)?;
        // Every parts folder of this key, whatever chunk size wrote it.
        let prefix = format!("{}.parts-", key.stem());
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let parts = entry.map_err(io(&dir))?.path();
            if parts.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix)) {
                fs::remove_dir_all(&parts).map_err(io(&parts))?;
            }
        }
        Ok(path)
    }
}

fn write_atomically(path: &Path, results: &[ImageResult]) -> Result<(), StoreError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut frame = to_frame(results).map_err(|error| StoreError::Parquet { path: path.to_path_buf(), error })?;
    let file = File::create(&tmp).map_err(io(&tmp))?;
    ParquetWriter::new(&file)
        .with_compression(ParquetCompression::Zstd(None))
        .finish(&mut frame)
        .map_err(|error| StoreError::Parquet { path: tmp.clone(), error })?;
    file.sync_all().map_err(io(&tmp))?;
    // A rename within one directory is atomic: readers see the old file or the whole new one.
    fs::rename(&tmp, path).map_err(io(path))
}

fn to_frame(results: &[ImageResult]) -> PolarsResult<DataFrame> {
    let images: Vec<&str> = results.iter().map(|r| r.image.as_str()).collect();
    let labels: Vec<u32> = results.iter().map(|r| r.label).collect();
    let skipped: Vec<Option<&str>> = results.iter().map(|r| r.outcome.as_ref().err().map(|s| s.as_str())).collect();
    let scored = |r: &ImageResult| r.outcome.as_ref().ok().cloned();
    let top_classes: Vec<Series> = results
        .iter()
        .map(|r| {
            let classes: Vec<i64> = scored(r).map(|s| s.top5.iter().map(|t| t.0).collect()).unwrap_or_default();
            Series::new("".into(), classes)
        })
        .collect();
    let top_probs: Vec<Series> = results
        .iter()
        .map(|r| {
            let probs: Vec<f32> = scored(r).map(|s| s.top5.iter().map(|t| t.1).collect()).unwrap_or_default();
            Series::new("".into(), probs)
        })
        .collect();
    let probs: Vec<Series> = results
        .iter()
        .map(|r| Series::new("".into(), r.outcome.as_ref().map(|s| s.probs.clone()).unwrap_or_default()))
        .collect();
    let unmapped: Vec<Option<f32>> = results.iter().map(|r| r.outcome.as_ref().ok().map(|s| s.unmapped_prob)).collect();
    DataFrame::new_infer_height(vec![
        Column::new("image".into(), images),
        Column::new("label".into(), labels),
        Column::new("skipped".into(), skipped),
        Column::new("top5_classes".into(), top_classes),
        Column::new("top5_probs".into(), top_probs),
        Column::new("probs".into(), probs),
        Column::new("unmapped_prob".into(), unmapped),
    ])
}

fn read_results(path: &Path) -> Result<Vec<ImageResult>, StoreError> {
    let parquet = |error| StoreError::Parquet { path: path.to_path_buf(), error };
    let file = File::open(path).map_err(io(path))?;
    let frame = ParquetReader::new(file).finish().map_err(parquet)?;
    from_frame(&frame).map_err(parquet)?.map_err(|reason| StoreError::Inconsistent { path: path.to_path_buf(), reason })
}

fn from_frame(frame: &DataFrame) -> PolarsResult<Result<Vec<ImageResult>, String>> {
    let images = frame.column("image")?.str()?;
    let labels = frame.column("label")?.u32()?;
    let skipped = frame.column("skipped")?.str()?;
    let top_classes = frame.column("top5_classes")?.list()?;
    let top_probs = frame.column("top5_probs")?.list()?;
    let probs = frame.column("probs")?.list()?;
    let unmapped = frame.column("unmapped_prob")?.f32()?;
    let mut results = Vec::with_capacity(frame.height());
    for i in 0..frame.height() {
        let (Some(image), Some(label)) = (images.get(i), labels.get(i)) else {
            return Ok(Err(format!("row {i} has no image id or label")));
        };
        let outcome = match skipped.get(i) {
            Some(reason) => Err(reason.to_string()),
            None => {
                let (Some(classes), Some(top), Some(vector)) =
                    (top_classes.get_as_series(i), top_probs.get_as_series(i), probs.get_as_series(i))
                else {
                    return Ok(Err(format!("row {i} ({image}) is neither scored nor skipped")));
                };
                let classes: Vec<i64> = classes.i64()?.into_no_null_iter().collect();
                let top: Vec<f32> = top.f32()?.into_no_null_iter().collect();
                let probs = vector.f32()?.into_no_null_iter().collect();
                Ok(Scored {
                    top5: classes.into_iter().zip(top).collect(),
                    probs,
                    unmapped_prob: unmapped.get(i).unwrap_or(0.0),
                })
            }
        };
        results.push(ImageResult { image: image.to_string(), label, outcome });
    }
    Ok(Ok(results))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<ImageResult> {
        vec![
            ImageResult {
                image: "a/1.JPEG".into(),
                label: 2,
                outcome: Ok(Scored {
                    top5: vec![(2, 0.5), (UNMAPPED_CLASS, 0.25), (0, 0.125)],
                    probs: vec![0.125, 0.0, 0.5],
                    unmapped_prob: 0.25,
                }),
            },
            ImageResult { image: "b/2.JPEG".into(), label: 0, outcome: Err("cannot decode".into()) },
        ]
    }

    #[test]
    fn rows_round_trip_through_parquet() {
        let dir = tempfile::tempdir().unwrap();
        let store = ResultStore::new(dir.path());
        let key = StoreKey::new("m", "p", &serde_json::json!({"x": 1}));
        assert!(store.load(&key).unwrap().is_none());
        store.write_part(&key, 2, 3, &sample()).unwrap();
        assert_eq!(store.load_parts(&key, 2).unwrap(), vec![(3, sample())]);
        assert!(store.load_parts(&key, 4).unwrap().is_empty(), "parts of another chunk size are not read");
        store.finish(&key, &sample(), &serde_json::json!({})).unwrap();
        assert_eq!(store.load(&key).unwrap().unwrap(), sample());
        assert!(!store.parts_dir(&key, 2).exists());
        assert_eq!(sample()[0].correct(), Some((true, true)));
        assert_eq!(sample()[1].correct(), None);
    }

    #[test]
    fn a_changed_description_is_a_different_file() {
        let a = StoreKey::new("m", "p", &serde_json::json!({"weights": "aa"}));
        let b = StoreKey::new("m", "p", &serde_json::json!({"weights": "ab"}));
        let store = ResultStore::new("/x");
        assert_ne!(store.final_path(&a), store.final_path(&b));
    }
}
