//! Training checkpoints: the model's variables (batch-norm statistics included), the optimizer's
//! momentum buffers, the step and epoch counters and the data-order RNG state, in one
//! safetensors file written atomically, so a resumed run continues exactly where it stopped.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;

use super::Sgd;
use crate::weights::{write_safetensors, WeightsError};

/// Bumped when the layout changes.
const FORMAT: &str = "resnet-audit checkpoint v1";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot write checkpoint {path}: the model's variables are poisoned (a thread panicked)")]
    Poisoned { path: PathBuf },
    #[error("checkpoint: {0}")]
    Write(#[from] WeightsError),
    #[error("cannot read checkpoint {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("checkpoint {path} does not fit this model: {reason}")]
    Mismatch { path: PathBuf, reason: String },
}

/// Counters and randomness saved beside the tensors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainState {
    pub step: u64,
    pub epoch: u64,
    /// ChaCha's 32-byte seed and its word position: the whole state of the data-order RNG.
    pub rng_seed: [u8; 32],
    pub rng_word_pos: u128,
    /// The run's other state as JSON (the scheduler's counters, the current epoch's partial sums).
    pub progress: String,
    /// The recipe the steps so far were trained under, as JSON ([`super::resume`]); `None` in
    /// checkpoints written before recipes were recorded.
    pub recipe: Option<String>,
    /// Recipes of earlier steps, when a resume was allowed to change the recipe (oldest first).
    pub earlier_recipes: Vec<String>,
}

/// Writes `model/<name>` for every variable, `momentum/<name>` for every buffer, and the state
/// in the metadata; a temporary file is renamed over `path`, so a kill never leaves half a file.
pub fn save(path: &Path, varmap: &VarMap, optimizer: &Sgd, state: &TrainState) -> Result<(), CheckpointError> {
    let mut tensors: Vec<(String, Tensor)> = {
        let data = varmap.data().lock().map_err(|_| CheckpointError::Poisoned { path: path.to_path_buf() })?;
        data.iter().map(|(name, var)| (format!("model/{name}"), var.as_tensor().clone())).collect()
    };
    tensors.extend(optimizer.state().into_iter().map(|(name, v)| (format!("momentum/{name}"), v)));
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let seed: String = state.rng_seed.iter().map(|b| format!("{b:02x}")).collect();
    let mut metadata = BTreeMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("step".to_string(), state.step.to_string()),
        ("epoch".to_string(), state.epoch.to_string()),
        ("rng_seed".to_string(), seed),
        ("rng_word_pos".to_string(), state.rng_word_pos.to_string()),
        ("progress".to_string(), state.progress.clone()),
    ]);
    if let Some(recipe) = &state.recipe {
        metadata.insert("recipe".into(), recipe.clone());
        metadata.insert("recipe_sha256".into(), super::resume::sha256(recipe));
    }
    if !state.earlier_recipes.is_empty() {
        metadata.insert("earlier_recipes".into(), serde_json::to_string(&state.earlier_recipes).unwrap_or_default());
    }
    Ok(write_safetensors(path, &tensors, &metadata)?)
}

/// Restores the variables and momentum buffers written by [`save`] and returns the state.
/// Every variable of the model must be in the file with its shape, and nothing else.
pub fn load(path: &Path, varmap: &VarMap, optimizer: &mut Sgd) -> Result<TrainState, CheckpointError> {
    let read = |reason: String| CheckpointError::Read { path: path.to_path_buf(), reason };
    let mismatch = |reason: String| CheckpointError::Mismatch { path: path.to_path_buf(), reason };
    let bytes = std::fs::read(path).map_err(|e| read(e.to_string()))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| read(e.to_string()))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let field = |key: &str| meta.get(key).cloned().ok_or_else(|| read(format!("no `{key}` in its metadata")));
    if field("format")? != FORMAT {
        return Err(read(format!("not a `{FORMAT}` file")));
    }
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| read(e.to_string()))?;
    let data = varmap.data().lock().map_err(|_| read("the model's variables are poisoned".into()))?;
    for (name, var) in data.iter() {
        let stored =
            tensors.get(&format!("model/{name}")).ok_or_else(|| mismatch(format!("no tensor `model/{name}`")))?;
        if stored.dims() != var.dims() {
            return Err(mismatch(format!(
                "`{name}` is {:?} in the file, {:?} in the model",
                stored.dims(),
                var.dims()
            )));
        }
        let value =
            stored.to_dtype(var.dtype()).and_then(|t| t.to_device(var.device())).map_err(|e| read(e.to_string()))?;
        var.set(&value).map_err(|e| read(e.to_string()))?;
    }
    if let Some(extra) = tensors.keys().filter_map(|k| k.strip_prefix("model/")).find(|n| !data.contains_key(*n)) {
        return Err(mismatch(format!("`{extra}` is in the file but not in the model")));
    }
    let device = data.values().next().map(|v| v.device().clone()).unwrap_or(Device::Cpu);
    let dtype = data.values().next().map(|v| v.dtype()).unwrap_or(DType::F32);
    let momentum = tensors
        .iter()
        .filter_map(|(k, t)| k.strip_prefix("momentum/").map(|n| (n.to_string(), t)))
        .map(|(n, t)| t.to_dtype(dtype).and_then(|t| t.to_device(&device)).map(|t| (n, t)))
        .collect::<candle_core::Result<HashMap<String, Tensor>>>()
        .map_err(|e| read(e.to_string()))?;
    optimizer.set_state(&momentum);
    let number = |key: &str| -> Result<u128, CheckpointError> {
        field(key)?.parse::<u128>().map_err(|_| read(format!("`{key}` is not a number")))
    };
    let seed_hex = field("rng_seed")?;
    let mut rng_seed = [0u8; 32];
    if seed_hex.len() != 64 {
        return Err(read("`rng_seed` is not 32 bytes of hex".into()));
    }
    for (i, byte) in rng_seed.iter_mut().enumerate() {
        *byte =
            u8::from_str_radix(&seed_hex[2 * i..2 * i + 2], 16).map_err(|_| read("`rng_seed` is not hex".into()))?;
    }
    let recipe = meta.get("recipe").cloned();
    if let (Some(recipe), Some(recorded)) = (&recipe, meta.get("recipe_sha256")) {
        if super::resume::sha256(recipe) != *recorded {
            return Err(read("`recipe` does not match its `recipe_sha256`".into()));
        }
    }
    let earlier_recipes = match meta.get("earlier_recipes") {
        Some(text) => serde_json::from_str(text).map_err(|_| read("`earlier_recipes` is not a JSON list".into()))?,
        None => Vec::new(),
    };
    Ok(TrainState {
        step: number("step")? as u64,
        epoch: number("epoch")? as u64,
        rng_seed,
        rng_word_pos: number("rng_word_pos")?,
        progress: meta.get("progress").cloned().unwrap_or_default(),
        recipe,
        earlier_recipes,
    })
}
