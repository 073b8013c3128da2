//! PyTorch checkpoints as `torch.save` writes them, read without Python and without executing
//! anything: the zip format of torch ≥ 1.6 (`<archive>/data.pkl` + `<archive>/data/<key>`) and
//! the legacy stream (magic number, protocol, system info, the object's pickle, the storage
//! keys, then each storage's raw bytes). The object may be a state dict or a dict holding one
//! under `state_dict` or `model` (nested too); a `module.` prefix on every name (DataParallel)
//! is removed.
//!
//! candle-core has a `pickle` module, but it reads the zip format only, accepts any global
//! (it does not execute them, but neither does it refuse them), copies memo entries (a small
//! pickle can expand exponentially), allocates lengths before checking them against the data,
//! rejects non-contiguous tensors and returns a `HashMap` (losing the checkpoint's order), so
//! this reader has its own restricted unpickler (`pickle.rs`) and, for the zip format, its own
//! reader of the stored archives torch.save writes (`archive.rs`).

mod archive;
pub mod layout;
pub mod pickle;

use candle_core::Tensor;
use layout::{materialize, LayoutError};
use pickle::{Id, Pickle, PickleError, StorageRef, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// `torch.serialization.MAGIC_NUMBER`, the first pickle of a legacy file.
const LEGACY_MAGIC: i128 = 0x1950a86a20f9469cfc6c;
/// `torch.serialization.PROTOCOL_VERSION`, the second.
const LEGACY_PROTOCOL: i128 = 1001;
/// Keys under which training scripts nest the state dict, tried in this order.
const NESTING_KEYS: [&str; 2] = ["state_dict", "model"];
/// How many dicts deep the state dict may be nested.
const MAX_NESTING: usize = 4;
/// The prefix `torch.nn.DataParallel` puts on every parameter name.
const DATA_PARALLEL_PREFIX: &str = "module.";

#[derive(Debug, thiserror::Error)]
pub enum PytorchError {
    #[error("cannot read {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path} is not a PyTorch checkpoint: {reason}")]
    NotACheckpoint { path: PathBuf, reason: String },
    #[error("{path}: {part}: {error}")]
    Pickle { path: PathBuf, part: String, error: PickleError },
    #[error("{path}: {reason}")]
    Structure { path: PathBuf, reason: String },
    #[error("{path}: storage `{key}`: {reason}")]
    Storage { path: PathBuf, key: String, reason: String },
    #[error("{path}: tensor `{tensor}`: {reason}")]
    Tensor { path: PathBuf, tensor: String, reason: String },
}

/// Which of `torch.save`'s two layouts a file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointFormat {
    /// torch ≥ 1.6: a zip archive.
    Zip,
    /// `_use_new_zipfile_serialization=False` and every torch before 1.6.
    Legacy,
}

impl CheckpointFormat {
    pub fn name(self) -> &'static str {
        match self {
            CheckpointFormat::Zip => "PyTorch zip checkpoint",
            CheckpointFormat::Legacy => "PyTorch legacy checkpoint",
        }
    }
}

/// The tensors of a checkpoint, in the order the checkpoint lists them, with what was
/// inferred on the way.
#[derive(Debug)]
pub struct Checkpoint {
    pub format: CheckpointFormat,
    pub tensors: Vec<(String, Tensor)>,
    /// The dict keys that led to the state dict, e.g. `["state_dict"]`; empty at the top.
    pub nesting: Vec<String>,
    /// `Some("module.")` when that prefix was removed from every name.
    pub stripped_prefix: Option<String>,
    /// Entries beside the state dict that were not read (`epoch`, `best_prec1`, optimizer state).
    pub skipped: Vec<String>,
}

/// True when the bytes start like a `torch.save` file of either format (for format detection
/// by content). A zip archive qualifies only if it holds a `data.pkl`.
pub fn looks_like_checkpoint(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04") || head.starts_with(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19")
}

/// Reads every tensor of a checkpoint.
pub fn read_checkpoint(path: &Path) -> Result<Checkpoint, PytorchError> {
    let data = std::fs::read(path).map_err(|error| PytorchError::Io { path: path.to_owned(), error })?;
    let reader = Reader { path };
    if data.starts_with(b"PK\x03\x04") {
        reader.zip(&data)
    } else {
        reader.legacy(&data)
    }
}

struct Reader<'a> {
    path: &'a Path,
}

impl Reader<'_> {
    fn structure(&self, reason: impl Into<String>) -> PytorchError {
        PytorchError::Structure { path: self.path.to_owned(), reason: reason.into() }
    }

    fn not_checkpoint(&self, reason: impl Into<String>) -> PytorchError {
        PytorchError::NotACheckpoint { path: self.path.to_owned(), reason: reason.into() }
    }

    fn storage_error(&self, key: &str, reason: impl Into<String>) -> PytorchError {
        PytorchError::Storage { path: self.path.to_owned(), key: key.to_owned(), reason: reason.into() }
    }

    fn parse(&self, data: &[u8], start: usize, part: &str) -> Result<(Pickle, usize), PytorchError> {
        Pickle::parse(data, start).map_err(|error| PytorchError::Pickle {
            path: self.path.to_owned(),
            part: part.to_owned(),
            error,
        })
    }

    fn zip(&self, data: &[u8]) -> Result<Checkpoint, PytorchError> {
        let entries = archive::entries(data).map_err(|e| self.not_checkpoint(format!("zip archive: {e}")))?;
        let pickles: Vec<&str> = entries
            .iter()
            .map(|e| e.name.as_str())
            .filter(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
            .collect();
        let prefix = match pickles.as_slice() {
            [one] => one.trim_end_matches("data.pkl").to_owned(),
            [] => return Err(self.not_checkpoint("a zip archive without `<archive>/data.pkl`")),
            _ => return Err(self.not_checkpoint(format!("a zip archive with {} `data.pkl` entries", pickles.len()))),
        };
        let entry = |name: &str| entries.iter().find(|e| e.name == name).map(|e| &data[e.start..e.start + e.len]);
        if let Some(order) = entry(&format!("{prefix}byteorder")) {
            if order != b"little" {
                return Err(self.structure(format!(
                    "byte order `{}` (only little-endian is read)",
                    String::from_utf8_lossy(order)
                )));
            }
        }
        let pickle_bytes = entry(&format!("{prefix}data.pkl")).ok_or_else(|| self.not_checkpoint("no data.pkl"))?;
        let (pickle, _) = self.parse(pickle_bytes, 0, "data.pkl")?;
        let found = self.state_dict(&pickle)?;
        self.finish(CheckpointFormat::Zip, found, |key| entry(&format!("{prefix}data/{key}")))
    }

    fn legacy(&self, data: &[u8]) -> Result<Checkpoint, PytorchError> {
        // Anything that is not a pickle starting with the magic number is "not a checkpoint",
        // whatever the pickle reader would have said about it.
        let magic = Pickle::parse(data, 0).ok().filter(|(p, _)| p.get(p.root) == &Value::Int(LEGACY_MAGIC));
        let (_, pos) = magic.ok_or_else(|| {
            self.not_checkpoint("neither a zip archive nor a legacy torch.save stream (no magic number)")
        })?;
        let (protocol, pos) = self.parse(data, pos, "protocol version")?;
        if protocol.get(protocol.root) != &Value::Int(LEGACY_PROTOCOL) {
            return Err(self.structure(format!(
                "legacy protocol version is {:?}, not {LEGACY_PROTOCOL}",
                protocol.get(protocol.root)
            )));
        }
        let (sys_info, pos) = self.parse(data, pos, "system info")?;
        if let Some(little) = dict_get(&sys_info, sys_info.root, "little_endian") {
            if sys_info.get(little) != &Value::Bool(true) {
                return Err(self.structure("written on a big-endian machine (only little-endian is read)"));
            }
        }
        let (pickle, pos) = self.parse(data, pos, "the saved object")?;
        let found = self.state_dict(&pickle)?;
        let (keys, mut pos) = self.parse(data, pos, "storage keys")?;
        let key_ids = match keys.get(keys.root) {
            Value::List(items) => items.clone(),
            other => return Err(self.structure(format!("the storage key list is {}", other.kind()))),
        };
        // Each record's element size comes from the storage type the pickle gave its key.
        let mut kinds: HashMap<&str, &StorageRef> = HashMap::new();
        collect_storages(&pickle, &mut kinds);
        let mut storages: HashMap<String, &[u8]> = HashMap::new();
        for id in key_ids {
            let key = keys.str(id).ok_or_else(|| self.structure("a storage key is not a string"))?;
            let storage =
                kinds.get(key).ok_or_else(|| self.storage_error(key, "listed in the file but used by no object"))?;
            let header: [u8; 8] = data.get(pos..pos + 8).and_then(|b| b.try_into().ok()).ok_or_else(|| {
                self.storage_error(key, format!("the file ends at byte {} before its size", data.len()))
            })?;
            pos += 8;
            let elements = u64::from_le_bytes(header);
            if elements != storage.elements as u64 {
                return Err(self.storage_error(
                    key,
                    format!("its record holds {elements} elements, the pickle says {}", storage.elements),
                ));
            }
            let bytes = elements
                .checked_mul(storage.kind.element_size as u64)
                .filter(|&b| b <= (data.len() - pos) as u64)
                .ok_or_else(|| {
                    self.storage_error(
                        key,
                        format!(
                            "{elements} elements of {} bytes do not fit in the {} bytes left in the file",
                            storage.kind.element_size,
                            data.len() - pos
                        ),
                    )
                })? as usize;
            storages.insert(key.to_owned(), &data[pos..pos + bytes]);
            pos += bytes;
        }
        self.finish(CheckpointFormat::Legacy, found, |key| storages.get(key).copied())
    }

    /// Finds the dict of tensors: the root itself, or under `state_dict`/`model`, nested.
    fn state_dict<'p>(&self, pickle: &'p Pickle) -> Result<Found<'p>, PytorchError> {
        let mut id = pickle.root;
        let mut nesting = Vec::new();
        let mut skipped = Vec::new();
        loop {
            let entries = match pickle.get(id) {
                Value::Dict(entries) => entries,
                other => {
                    let at = if nesting.is_empty() {
                        "the saved object".to_owned()
                    } else {
                        format!("`{}`", nesting.join("."))
                    };
                    return Err(self.structure(format!("{at} is {}, not a dict of tensors", other.kind())));
                }
            };
            let nested = NESTING_KEYS.iter().find_map(|key| {
                entries.iter().find(|(k, v)| pickle.str(*k) == Some(key) && matches!(pickle.get(*v), Value::Dict(_)))
            });
            match nested {
                Some(&(key, value)) if nesting.len() < MAX_NESTING => {
                    skipped.extend(entries.iter().filter(|(k, _)| *k != key).map(|(k, _)| key_name(pickle, *k)));
                    nesting.push(key_name(pickle, key));
                    id = value;
                }
                _ => {
                    let mut tensors = Vec::with_capacity(entries.len());
                    for &(k, v) in entries {
                        let name = pickle
                            .str(k)
                            .ok_or_else(|| self.structure(format!("a state-dict key is {}", pickle.get(k).kind())))?;
                        match pickle.get(v) {
                            Value::Tensor(t) => tensors.push((name.to_owned(), t)),
                            other => {
                                return Err(PytorchError::Tensor {
                                    path: self.path.to_owned(),
                                    tensor: name.to_owned(),
                                    reason: format!("is {}, not a tensor", other.kind()),
                                })
                            }
                        }
                    }
                    return Ok(Found { tensors, nesting, skipped });
                }
            }
        }
    }

    fn finish<'s>(
        &self,
        format: CheckpointFormat,
        found: Found,
        storage: impl Fn(&str) -> Option<&'s [u8]>,
    ) -> Result<Checkpoint, PytorchError> {
        let stripped_prefix = (!found.tensors.is_empty()
            && found.tensors.iter().all(|(n, _)| n.starts_with(DATA_PARALLEL_PREFIX)))
        .then(|| DATA_PARALLEL_PREFIX.to_owned());
        let mut seen = HashSet::new();
        let mut tensors = Vec::with_capacity(found.tensors.len());
        for (name, tensor) in found.tensors {
            let tensor_error =
                |reason: String| PytorchError::Tensor { path: self.path.to_owned(), tensor: name.clone(), reason };
            let key = &tensor.storage.key;
            let bytes = storage(key).ok_or_else(|| self.storage_error(key, "its data is missing"))?;
            let expected = tensor.storage.elements.checked_mul(tensor.storage.kind.element_size);
            if expected != Some(bytes.len()) {
                return Err(self.storage_error(
                    key,
                    format!(
                        "{} bytes of data for {} {} elements",
                        bytes.len(),
                        tensor.storage.elements,
                        tensor.storage.kind.name
                    ),
                ));
            }
            let dtype =
                tensor.storage.kind.dtype.ok_or_else(|| {
                    tensor_error(format!("{} has no matching candle dtype", tensor.storage.kind.name))
                })?;
            let value =
                materialize(bytes, dtype, &tensor.view).map_err(|e: LayoutError| tensor_error(e.to_string()))?;
            let short = match &stripped_prefix {
                Some(prefix) => name[prefix.len()..].to_owned(),
                None => name.clone(),
            };
            if !seen.insert(short.clone()) {
                return Err(tensor_error(format!("the name `{short}` occurs twice")));
            }
            tensors.push((short, value));
        }
        Ok(Checkpoint { format, tensors, nesting: found.nesting, stripped_prefix, skipped: found.skipped })
    }
}

struct Found<'p> {
    tensors: Vec<(String, &'p pickle::TensorRef)>,
    nesting: Vec<String>,
    skipped: Vec<String>,
}

fn key_name(pickle: &Pickle, id: Id) -> String {
    match pickle.get(id) {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        other => other.kind().to_owned(),
    }
}

fn dict_get(pickle: &Pickle, dict: Id, key: &str) -> Option<Id> {
    match pickle.get(dict) {
        Value::Dict(entries) => entries.iter().find(|(k, _)| pickle.str(*k) == Some(key)).map(|(_, v)| *v),
        _ => None,
    }
}

/// Every storage any tensor of the pickle names, by key (not only the state dict's: a legacy
/// file stores the storages of optimizer state too, and their records must be skipped).
fn collect_storages<'p>(pickle: &'p Pickle, out: &mut HashMap<&'p str, &'p StorageRef>) {
    for value in &pickle.values {
        if let Value::Storage(s) = value {
            out.insert(&s.key, s);
        }
    }
}
