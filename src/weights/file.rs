//! A safetensors file read into memory: its tensors (as stored) and its metadata.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use safetensors::{Dtype, SafeTensors};

use super::WeightsError;

/// One stored tensor: its dtype and shape, and the values when the dtype is one we compute with.
#[derive(Debug, Clone)]
pub struct StoredTensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// `None` for dtypes other than f32/f16/bf16.
    pub tensor: Option<Tensor>,
}

/// The contents of a safetensors file.
#[derive(Debug, Clone)]
pub struct WeightsFile {
    pub path: PathBuf,
    pub tensors: BTreeMap<String, StoredTensor>,
    pub metadata: HashMap<String, String>,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
}

fn candle_dtype(dtype: Dtype) -> Option<DType> {
    match dtype {
        Dtype::F32 => Some(DType::F32),
        Dtype::F16 => Some(DType::F16),
        Dtype::BF16 => Some(DType::BF16),
        _ => None,
    }
}

/// Lower-case dtype name as PyTorch users write it.
pub fn dtype_name(dtype: Dtype) -> String {
    format!("{dtype:?}").to_ascii_lowercase()
}

impl WeightsFile {
    pub fn read(path: &Path) -> Result<Self, WeightsError> {
        let bytes = std::fs::read(path).map_err(|error| WeightsError::Io { path: path.to_path_buf(), error })?;
        let not_safetensors = |reason: String| WeightsError::NotSafetensors { path: path.to_path_buf(), reason };
        let parsed = SafeTensors::deserialize(&bytes).map_err(|e| not_safetensors(describe(&e, bytes.len())))?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| not_safetensors(describe(&e, bytes.len())))?;
        let mut tensors = BTreeMap::new();
        for (name, view) in parsed.iter() {
            let tensor = match candle_dtype(view.dtype()) {
                Some(dtype) => Some(
                    Tensor::from_raw_buffer(view.data(), dtype, view.shape(), &Device::Cpu)
                        .map_err(|e| not_safetensors(format!("tensor `{name}`: {e}")))?,
                ),
                None => None,
            };
            tensors
                .insert(name.to_string(), StoredTensor { dtype: view.dtype(), shape: view.shape().to_vec(), tensor });
        }
        use sha2::Digest;
        let sha256 = format!("{:x}", sha2::Sha256::digest(&bytes));
        Ok(Self { path: path.to_path_buf(), tensors, metadata: header.metadata().clone().unwrap_or_default(), sha256 })
    }
}

fn describe(error: &safetensors::SafeTensorError, len: usize) -> String {
    use safetensors::SafeTensorError as E;
    match error {
        E::HeaderTooSmall => format!("only {len} bytes, too short for a safetensors header"),
        E::InvalidHeaderLength | E::MetadataIncompleteBuffer | E::InvalidOffset(_) => {
            format!("truncated or corrupt ({len} bytes; the header's tensor offsets do not fit the file): {error:?}")
        }
        E::InvalidHeader(_) | E::InvalidHeaderDeserialization(_) | E::HeaderTooLarge => {
            format!("no safetensors header (is it a PyTorch .pth/.bin or another format?): {error:?}")
        }
        other => format!("{other:?}"),
    }
}

/// Writes `tensors` (f64 stays f64, every other dtype is written as f32) and `metadata` to a
/// safetensors file, atomically: a temporary file renamed over `path`, so an interrupted write
/// never leaves half a file. The error is the reason alone; callers name the file.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<(), String> {
    let encoded = tensors
        .iter()
        .map(|(name, tensor)| {
            let flat = tensor.flatten_all()?;
            let (dtype, bytes): (Dtype, Vec<u8>) = match tensor.dtype() {
                DType::F64 => (Dtype::F64, flat.to_vec1::<f64>()?.iter().flat_map(|x| x.to_le_bytes()).collect()),
                _ => (
                    Dtype::F32,
                    flat.to_dtype(DType::F32)?.to_vec1::<f32>()?.iter().flat_map(|x| x.to_le_bytes()).collect(),
                ),
            };
            Ok((name.clone(), dtype, tensor.dims().to_vec(), bytes))
        })
        .collect::<candle_core::Result<Vec<_>>>()
        .map_err(|e| e.to_string())?;
    let views = encoded
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes).map(|view| (name.clone(), view))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let serialized = safetensors::serialize(views, Some(metadata)).map_err(|e| e.to_string())?;
    let tmp = path.with_extension("safetensors.tmp");
    std::fs::write(&tmp, serialized).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
}
