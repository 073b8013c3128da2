//! The per-image store: for each (model, protocol, dataset) a Parquet file holding every image's
//! label, top-5 classes with probabilities and full probability vector (f32), so that ensembles and
//! re-scoring never recompute. Files are keyed by a hash of everything that determines the
//! numbers; a run writes finished chunks as they complete (atomically), so a killed run resumes
//! and computes only what is missing, and a changed key can never be mixed with an old file.
//!
//! A file is not trusted by its name: each one carries its key, its part (for a chunk) and the
//! hash of its image list in the Parquet metadata, checked on every read. A file that cannot be
//! read or is not what its name promises is set aside (moved under `set-aside/`, reported on
//! stderr) and computed again. One process computes a whole key at a time ([`ResultStore::lock`]);
//! shards (`crate::shard`) each own distinct chunks of a key and write them without the lock.
//!
//! The store knows no correctness: what its rows mean for an error rate is `scoring`'s business.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use sha2::{Digest, Sha256};

use crate::dataset::Sample;
use crate::fsio::{self, WriteError};

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

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("store file {path}: {error}")]
    Parquet { path: PathBuf, error: PolarsError },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("store file {path} cannot be used: {reason} (delete it to recompute)")]
    Unusable { path: PathBuf, reason: Unusable },
    #[error("no stored results for {model}/{protocol} at {path}: run `eval` for them first")]
    Missing { model: String, protocol: String, path: PathBuf },
    #[error("cannot lock {path} (the store's file system must support flock): {error}")]
    Lock { path: PathBuf, error: std::io::Error },
}

/// Why a store file cannot be used as the result its name promises.
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    #[error("not a readable Parquet store file ({0})")]
    Unreadable(PolarsError),
    #[error("row {row} has no image id or label")]
    NoImageOrLabel { row: usize },
    #[error("row {row} ({image}) is neither scored nor skipped")]
    NeitherScoredNorSkipped { row: usize, image: String },
    #[error("its metadata says {field} `{found}`, its name says `{expected}` (a file copied over another?)")]
    WrongIdentity { field: &'static str, found: String, expected: String },
    #[error("its rows do not hash to the image list its metadata records (a damaged file?)")]
    DamagedImageList,
    #[error("its images or labels differ from the dataset's")]
    OtherImages,
    #[error("`{name}` is not a part name (chunk-<index>.parquet) or its index is beyond the image list")]
    StrayPart { name: String },
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
        Self { model: model.to_string(), protocol: protocol.to_string(), hash: hex(&hasher.finalize()) }
    }

    fn stem(&self) -> String {
        format!("{}-{}", self.protocol, &self.hash[..16])
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of an image list: one `<id>\t<label>\n` line per image, in order. The store key's
/// description and every store file's metadata record it.
pub fn image_list_sha256<'a>(images: impl IntoIterator<Item = (&'a str, usize)>) -> String {
    let mut hasher = Sha256::new();
    for (id, label) in images {
        hasher.update(format!("{id}\t{label}\n").as_bytes());
    }
    hex(&hasher.finalize())
}

/// Parquet metadata keys of a store file.
const META_SCHEMA: &str = "resnet-audit.store-schema";
const META_KEY: &str = "resnet-audit.key";
const META_MODEL: &str = "resnet-audit.model";
const META_PROTOCOL: &str = "resnet-audit.protocol";
const META_IMAGES: &str = "resnet-audit.image-list-sha256";
const META_PART: &str = "resnet-audit.part";

/// What one file must be: the key's result, or one part of it.
struct Identity<'a> {
    key: &'a StoreKey,
    /// `<chunk index>/<chunk size>` of a part; None for the complete result.
    part: Option<String>,
}

impl Identity<'_> {
    fn metadata(&self, results: &[ImageResult]) -> Vec<(String, String)> {
        let images = image_list_sha256(results.iter().map(|r| (r.image.as_str(), r.label as usize)));
        let mut fields = vec![
            (META_SCHEMA, SCHEMA_VERSION.to_string()),
            (META_KEY, self.key.hash.clone()),
            (META_MODEL, self.key.model.clone()),
            (META_PROTOCOL, self.key.protocol.clone()),
            (META_IMAGES, images),
        ];
        fields.extend(self.part.clone().map(|part| (META_PART, part)));
        fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// Checks a file's metadata and rows against what its name promises. A file without our
    /// metadata was written before files carried it; it is accepted when its rows are the
    /// expected image list, as it was then.
    fn check(
        &self,
        metadata: &BTreeMap<String, String>,
        results: &[ImageResult],
        expected: Option<&[Sample]>,
    ) -> Result<(), Unusable> {
        if metadata.contains_key(META_KEY) {
            let promised = [
                (META_KEY, Some(self.key.hash.clone())),
                (META_MODEL, Some(self.key.model.clone())),
                (META_PROTOCOL, Some(self.key.protocol.clone())),
                (META_PART, self.part.clone()),
            ];
            for (field, expected) in promised {
                let found = metadata.get(field).cloned();
                if found != expected {
                    return Err(Unusable::WrongIdentity {
                        field,
                        found: found.unwrap_or_else(|| "(none)".into()),
                        expected: expected.unwrap_or_else(|| "(none)".into()),
                    });
                }
            }
            let rows = image_list_sha256(results.iter().map(|r| (r.image.as_str(), r.label as usize)));
            if metadata.get(META_IMAGES) != Some(&rows) {
                return Err(Unusable::DamagedImageList);
            }
        }
        match expected {
            Some(samples) if !same_images(results, samples) => Err(Unusable::OtherImages),
            _ => Ok(()),
        }
    }
}

fn same_images(results: &[ImageResult], samples: &[Sample]) -> bool {
    results.len() == samples.len()
        && results.iter().zip(samples).all(|(r, s)| r.image == s.id && r.label as usize == s.label)
}

/// What a look-up found.
#[derive(Debug)]
pub enum Lookup {
    Found(Vec<ImageResult>),
    Absent,
    /// A file is there but cannot be used (see [`ResultStore::set_aside`]).
    Unusable {
        path: PathBuf,
        reason: Unusable,
    },
}

/// A directory of stored results: `<dir>/<model>/<protocol>-<hash>.parquet`, with finished
/// chunks of an unfinished run (or of shards) in `<protocol>-<hash>.parts-<chunk size>/`, the lock of a run in
/// progress `<protocol>-<hash>.lock`, and files found unusable under `<dir>/set-aside/`.
#[derive(Debug, Clone)]
pub struct ResultStore {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |error| StoreError::Io { path: path.to_path_buf(), error }
}

const SET_ASIDE_DIR: &str = "set-aside";

/// In a parts folder: how many shards split the key (see [`ResultStore::record_shard_count`]).
const SHARD_COUNT_FILE: &str = "shards";

/// The chunk index of a part's file name (`chunk-<index>.parquet`).
fn part_index(name: &str) -> Option<usize> {
    name.strip_prefix("chunk-")?.strip_suffix(".parquet")?.parse().ok()
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

    pub fn lock_path(&self, key: &StoreKey) -> PathBuf {
        self.dir.join(&key.model).join(format!("{}.lock", key.stem()))
    }

    /// The complete result of `key`, checked against its metadata and, when given, against the
    /// image list it must hold. Reads need no lock: files appear whole (atomic renames).
    pub fn load(&self, key: &StoreKey, expected: Option<&[Sample]>) -> Result<Lookup, StoreError> {
        let path = self.final_path(key);
        read_checked(&path, &Identity { key, part: None }, expected)
    }

    /// The complete result, or an error saying to run the member first (for ensembles).
    pub fn require(&self, key: &StoreKey) -> Result<Vec<ImageResult>, StoreError> {
        match self.load(key, None)? {
            Lookup::Found(results) => Ok(results),
            Lookup::Absent => Err(StoreError::Missing {
                model: key.model.clone(),
                protocol: key.protocol.clone(),
                path: self.final_path(key),
            }),
            Lookup::Unusable { path, reason } => Err(StoreError::Unusable { path, reason }),
        }
    }

    /// Moves an unusable file to `<dir>/set-aside/` (same relative path, with the time and
    /// process added) so it is kept for inspection and its place is free, and says so on stderr.
    /// Call it holding the key's lock: only the lock holder may change a key's files.
    pub fn set_aside(&self, path: &Path, reason: &Unusable) -> Result<PathBuf, StoreError> {
        let relative = path.strip_prefix(&self.dir).unwrap_or(path);
        let relative = relative.strip_prefix("/").unwrap_or(relative);
        let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let name = relative.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let target = self
            .dir
            .join(SET_ASIDE_DIR)
            .join(relative)
            .with_file_name(format!("{name}.set-aside-{seconds}-{}", std::process::id()));
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        match fs::rename(path, &target) {
            Ok(()) => {}
            // Another process (a shard, whose stray files every shard sees) moved it first.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(target),
            Err(error) => return Err(StoreError::Io { path: path.to_path_buf(), error }),
        }
        eprintln!(
            "warning: store file {} cannot be used: {reason}; moved to {} and computed again",
            path.display(),
            target.display()
        );
        Ok(target)
    }

    /// Finished chunks of an interrupted run, by chunk index, each checked against its metadata
    /// and `chunks[index]`; unusable parts are set aside (and so computed again). Call it holding
    /// the key's lock.
    pub fn load_parts(
        &self,
        key: &StoreKey,
        chunk_size: usize,
        chunks: &[&[Sample]],
    ) -> Result<Vec<(usize, Vec<ImageResult>)>, StoreError> {
        self.load_parts_where(key, chunk_size, chunks, |_| true)
    }

    /// Like [`ResultStore::load_parts`], reading (and setting aside) only the chunks `wanted`
    /// accepts: a shard touches its own chunks only, so shards need no lock between them.
    pub fn load_parts_where(
        &self,
        key: &StoreKey,
        chunk_size: usize,
        chunks: &[&[Sample]],
        wanted: impl Fn(usize) -> bool,
    ) -> Result<Vec<(usize, Vec<ImageResult>)>, StoreError> {
        let dir = self.parts_dir(key, chunk_size);
        if !dir.exists() {
            return Ok(Vec::new());
        }
        let mut parts = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let path = entry.map_err(io(&dir))?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            // Temporary files of an interrupted write start with a dot; they are overwritten later.
            if name.starts_with('.') || name == SHARD_COUNT_FILE {
                continue;
            }
            let index = part_index(&name);
            if index.is_some_and(|i| !wanted(i)) {
                continue;
            }
            let Some((index, samples)) = index.and_then(|i: usize| Some((i, *chunks.get(i)?))) else {
                self.set_aside(&path, &Unusable::StrayPart { name })?;
                continue;
            };
            let identity = Identity { key, part: Some(format!("{index}/{chunk_size}")) };
            match read_checked(&path, &identity, Some(samples))? {
                Lookup::Found(results) => parts.push((index, results)),
                Lookup::Absent => {}
                Lookup::Unusable { path, reason } => {
                    self.set_aside(&path, &reason)?;
                }
            }
        }
        parts.sort_by_key(|(index, _)| *index);
        Ok(parts)
    }

    /// How many chunks of `key` are stored: all of them when the complete result is there, else
    /// the part files present (by name only: a quick count for `status`, not a check).
    pub fn stored_chunks(&self, key: &StoreKey, chunk_size: usize, chunks: usize) -> Result<usize, StoreError> {
        if self.final_path(key).is_file() {
            return Ok(chunks);
        }
        let dir = self.parts_dir(key, chunk_size);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(error) => return Err(StoreError::Io { path: dir, error }),
        };
        let mut count = 0;
        for entry in entries {
            let name = entry.map_err(io(&dir))?.file_name().to_string_lossy().into_owned();
            count += usize::from(part_index(&name).is_some_and(|i| i < chunks));
        }
        Ok(count)
    }

    /// Records in the parts folder that shards split this key `count` ways, so that a merge
    /// missing a part can name the shard to rerun. Every shard of one split writes the same
    /// bytes, so concurrent writers agree.
    pub fn record_shard_count(&self, key: &StoreKey, chunk_size: usize, count: usize) -> Result<(), StoreError> {
        let path = self.parts_dir(key, chunk_size).join(SHARD_COUNT_FILE);
        fsio::atomic_write(&path, format!("{count}\n").as_bytes())?;
        Ok(())
    }

    /// The shard count recorded by [`ResultStore::record_shard_count`], if any.
    pub fn shard_count(&self, key: &StoreKey, chunk_size: usize) -> Option<usize> {
        let path = self.parts_dir(key, chunk_size).join(SHARD_COUNT_FILE);
        fs::read_to_string(path).ok()?.trim().parse().ok().filter(|&n| n > 0)
    }

    pub fn write_part(
        &self,
        key: &StoreKey,
        chunk_size: usize,
        chunk: usize,
        results: &[ImageResult],
    ) -> Result<(), StoreError> {
        let path = self.parts_dir(key, chunk_size).join(format!("chunk-{chunk:06}.parquet"));
        write_results(&path, &Identity { key, part: Some(format!("{chunk}/{chunk_size}")) }, results)
    }

    /// Writes the complete result (atomically), with a readable description beside it, then
    /// removes the parts. Call it holding the key's lock.
    pub fn finish(
        &self,
        key: &StoreKey,
        results: &[ImageResult],
        description: &serde_json::Value,
    ) -> Result<PathBuf, StoreError> {
        let path = self.final_path(key);
        let text = serde_json::to_string_pretty(description).unwrap_or_default();
        fsio::atomic_write(&path.with_extension("json"), text.as_bytes())?;
        write_results(&path, &Identity { key, part: None }, results)?;
        // Every parts folder of this key, whatever chunk size wrote it.
        let dir = path.parent().unwrap_or(&self.dir).to_path_buf();
        let prefix = format!("{}.parts-", key.stem());
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let parts = entry.map_err(io(&dir))?.path();
            if parts.is_dir() && parts.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix)) {
                fs::remove_dir_all(&parts).map_err(io(&parts))?;
            }
        }
        Ok(path)
    }

    /// Takes the key's lock, waiting (and saying on stderr whom for) while another process holds
    /// it. The lock is an advisory `flock` on `<stem>.lock`, which holds the holder's host and
    /// pid for people; the kernel releases it when the holder dies however it dies, so a lock
    /// file left by a killed process is simply taken over (and reported). Dropping the guard
    /// removes the file.
    pub fn lock(&self, key: &StoreKey) -> Result<KeyLock, StoreError> {
        KeyLock::acquire(self.lock_path(key))
    }
}

/// The right to compute and write one key's files; released on drop.
#[derive(Debug)]
pub struct KeyLock {
    file: File,
    path: PathBuf,
}

fn flock(file: &File, operation: libc::c_int) -> std::io::Result<bool> {
    loop {
        // SAFETY: flock on a file descriptor this File owns; no memory is passed.
        if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
            return Ok(true);
        }
        let error = std::io::Error::last_os_error();
        match error.kind() {
            std::io::ErrorKind::Interrupted => continue,
            std::io::ErrorKind::WouldBlock => return Ok(false),
            _ => return Err(error),
        }
    }
}

impl KeyLock {
    fn acquire(path: PathBuf) -> Result<Self, StoreError> {
        let lock_err = |error| StoreError::Lock { path: path.clone(), error };
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut waited = false;
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io(&path))?;
            if !flock(&file, libc::LOCK_EX | libc::LOCK_NB).map_err(lock_err)? {
                if !waited {
                    let holder = Some(holder(&mut file)).filter(|h| !h.is_empty());
                    let holder = holder.unwrap_or_else(|| "another process".into());
                    eprintln!("{}: waiting for {holder} to finish this result", path.display());
                    waited = true;
                }
                flock(&file, libc::LOCK_EX).map_err(lock_err)?;
            }
            // Locked, but perhaps a file its holder has since removed (it unlinks before
            // unlocking) while a newcomer created another: only the file the path names counts.
            let named = fs::metadata(&path).ok().map(|m| (m.dev(), m.ino()));
            let held = file.metadata().map_err(io(&path))?;
            if named != Some((held.dev(), held.ino())) {
                continue;
            }
            let previous = holder(&mut file);
            if !previous.is_empty() {
                eprintln!("{}: taking over the lock of {previous}, which ended without releasing it", path.display());
            }
            let me = format!("host {} pid {}\n", fsio::host_name(), std::process::id());
            file.set_len(0).map_err(io(&path))?;
            file.rewind().map_err(io(&path))?;
            file.write_all(me.as_bytes()).and_then(|()| file.sync_all()).map_err(io(&path))?;
            return Ok(Self { file, path });
        }
    }
}

/// The holder a lock file names (`host <name> pid <n>`), empty when it names none yet.
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
    text.trim().to_string()
}

impl Drop for KeyLock {
    fn drop(&mut self) {
        // Unlink while still locked, so that a waiter that gets this inode next sees it is no
        // longer the lock file and tries again; then unlock (closing the file would too).
        let _ = fs::remove_file(&self.path);
        let _ = flock(&self.file, libc::LOCK_UN);
    }
}

fn write_results(path: &Path, identity: &Identity, results: &[ImageResult]) -> Result<(), StoreError> {
    let mut frame = to_frame(results).map_err(|error| StoreError::Parquet { path: path.to_path_buf(), error })?;
    let metadata = KeyValueMetadata::from_static(identity.metadata(results));
    fsio::atomic_write_with(path, |file| {
        ParquetWriter::new(file)
            .with_compression(ParquetCompression::Zstd(None))
            .with_key_value_metadata(Some(metadata))
            .finish(&mut frame)
            .map(drop)
            .map_err(std::io::Error::other)
    })?;
    Ok(())
}

/// Reads and checks one file: absent, found, or unusable (unreadable, or not what `identity` and
/// `expected` say it must be). Only a failure to open an existing file is an error.
fn read_checked(path: &Path, identity: &Identity, expected: Option<&[Sample]>) -> Result<Lookup, StoreError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Lookup::Absent),
        Err(error) => return Err(StoreError::Io { path: path.to_path_buf(), error }),
    };
    let unusable = |reason| Ok(Lookup::Unusable { path: path.to_path_buf(), reason });
    let mut reader = ParquetReader::new(file);
    let metadata: BTreeMap<String, String> = match reader.get_metadata() {
        Ok(metadata) => metadata
            .key_value_metadata
            .iter()
            .flatten()
            .filter_map(|kv| Some((kv.key.clone(), kv.value.clone()?)))
            .collect(),
        Err(error) => return unusable(Unusable::Unreadable(error)),
    };
    let results = match reader.finish().and_then(|frame| from_frame(&frame)) {
        Ok(Ok(results)) => results,
        Ok(Err(reason)) => return unusable(reason),
        Err(error) => return unusable(Unusable::Unreadable(error)),
    };
    match identity.check(&metadata, &results, expected) {
        Ok(()) => Ok(Lookup::Found(results)),
        Err(reason) => unusable(reason),
    }
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

fn from_frame(frame: &DataFrame) -> PolarsResult<Result<Vec<ImageResult>, Unusable>> {
    let images = frame.column("image")?.str()?;
    let labels = frame.column("label")?.u32()?;
    let skipped = frame.column("skipped")?.str()?;
    let top_classes = frame.column("top5_classes")?.list()?;
    let top_probs = frame.column("top5_probs")?.list()?;
    let probs = frame.column("probs")?.list()?;
    let unmapped = frame.column("unmapped_prob")?.f32()?;
    let mut results = Vec::with_capacity(frame.height());
    for row in 0..frame.height() {
        let (Some(image), Some(label)) = (images.get(row), labels.get(row)) else {
            return Ok(Err(Unusable::NoImageOrLabel { row }));
        };
        let outcome = match skipped.get(row) {
            Some(reason) => Err(reason.to_string()),
            None => {
                let (Some(classes), Some(top), Some(vector)) =
                    (top_classes.get_as_series(row), top_probs.get_as_series(row), probs.get_as_series(row))
                else {
                    return Ok(Err(Unusable::NeitherScoredNorSkipped { row, image: image.to_string() }));
                };
                let classes: Vec<i64> = classes.i64()?.into_no_null_iter().collect();
                let top: Vec<f32> = top.f32()?.into_no_null_iter().collect();
                let probs = vector.f32()?.into_no_null_iter().collect();
                Ok(Scored {
                    top5: classes.into_iter().zip(top).collect(),
                    probs,
                    unmapped_prob: unmapped.get(row).unwrap_or(0.0),
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

    fn samples() -> Vec<Sample> {
        sample().iter().map(|r| Sample::file(r.image.clone(), r.image.clone().into(), r.label as usize)).collect()
    }

    fn found(lookup: Lookup) -> Vec<ImageResult> {
        match lookup {
            Lookup::Found(results) => results,
            other => panic!("expected a stored result, got {other:?}"),
        }
    }

    #[test]
    fn rows_round_trip_through_parquet() {
        let dir = tempfile::tempdir().unwrap();
        let store = ResultStore::new(dir.path());
        let key = StoreKey::new("m", "p", &serde_json::json!({"x": 1}));
        let samples = samples();
        assert!(matches!(store.load(&key, Some(&samples)).unwrap(), Lookup::Absent));
        let chunks: Vec<&[Sample]> = vec![&samples[..0], &samples[..0], &samples[..0], &samples];
        store.write_part(&key, 2, 3, &sample()).unwrap();
        assert_eq!(store.load_parts(&key, 2, &chunks).unwrap(), vec![(3, sample())]);
        assert!(store.load_parts(&key, 4, &chunks).unwrap().is_empty(), "parts of another chunk size are not read");
        store.finish(&key, &sample(), &serde_json::json!({})).unwrap();
        assert_eq!(found(store.load(&key, Some(&samples)).unwrap()), sample());
        assert_eq!(store.require(&key).unwrap(), sample());
        assert!(!store.parts_dir(&key, 2).exists());
    }

    #[test]
    fn a_changed_description_is_a_different_file() {
        let a = StoreKey::new("m", "p", &serde_json::json!({"weights": "aa"}));
        let b = StoreKey::new("m", "p", &serde_json::json!({"weights": "ab"}));
        let store = ResultStore::new("/x");
        assert_ne!(store.final_path(&a), store.final_path(&b));
    }

    #[test]
    fn the_image_list_hash_is_the_one_the_key_description_used() {
        // The line format `<id>\t<label>\n` is part of every existing store key: it must not change.
        let mut hasher = Sha256::new();
        hasher.update(b"a/1.JPEG\t2\nb/2.JPEG\t0\n");
        assert_eq!(image_list_sha256([("a/1.JPEG", 2), ("b/2.JPEG", 0)]), hex(&hasher.finalize()));
    }
}
