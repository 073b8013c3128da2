//! A safetensors file read into memory: its tensors (as stored) and its metadata.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use safetensors::tensor::TensorInfo;
use safetensors::{Dtype, SafeTensors};

use super::{Provenance, WeightsError};

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
    pub metadata: BTreeMap<String, String>,
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
    /// What the metadata records about the file's origin and architecture.
    pub fn provenance(&self) -> Result<Provenance, WeightsError> {
        Provenance::from_metadata(&self.metadata)
            .map_err(|error| WeightsError::Provenance { path: self.path.clone(), error })
    }

    pub fn read(path: &Path) -> Result<Self, WeightsError> {
        let bytes = std::fs::read(path).map_err(|error| WeightsError::Io { path: path.to_path_buf(), error })?;
        Self::from_bytes(path, &bytes)
    }

    /// A safetensors file's bytes read from `path` (or, for a conversion held in memory, made
    /// for it: `path` then names the source in errors).
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Self, WeightsError> {
        let not_safetensors = |reason: String| WeightsError::NotSafetensors { path: path.to_path_buf(), reason };
        let parsed = SafeTensors::deserialize(bytes).map_err(|e| not_safetensors(describe(&e, bytes)))?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| not_safetensors(describe(&e, bytes)))?;
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
        let sha256 = format!("{:x}", sha2::Sha256::digest(bytes));
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
            metadata: header.metadata().clone().unwrap_or_default().into_iter().collect(),
            sha256,
        })
    }
}

fn describe(error: &safetensors::SafeTensorError, bytes: &[u8]) -> String {
    use safetensors::SafeTensorError as E;
    let len = bytes.len();
    if let Some(format) = crate::import::WeightsFormat::of_bytes(bytes).filter(|f| !f.is_safetensors()) {
        return format!("{} ({})", format.description(), format.how_to_use());
    }
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
/// safetensors file through [`crate::fsio::atomic_write`], so an interrupted write never leaves
/// half a file. The bytes are a function of the contents alone: metadata keys and header entries
/// in sorted order (serde_json over `BTreeMap`s), data laid out as the safetensors crate lays it
/// out (descending dtype alignment, then name). The crate's own `serialize` takes a `HashMap`
/// whose order changes from run to run, which made two identical training runs differ in bytes.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<(), WeightsError> {
    let bytes = encode_safetensors(path, tensors, metadata)?;
    crate::fsio::atomic_write(path, &bytes)?;
    Ok(())
}

/// The bytes [`write_safetensors`] writes; `path` only names the file in errors.
pub fn encode_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, WeightsError> {
    struct Encoded<'a> {
        name: &'a str,
        dtype: Dtype,
        shape: Vec<usize>,
        bytes: Vec<u8>,
    }
    let encode_error = |name: &str, reason: String| WeightsError::Encode {
        path: path.to_path_buf(),
        tensor: name.to_string(),
        reason,
    };
    let mut encoded = tensors
        .iter()
        .map(|(name, tensor)| {
            let values = || -> candle_core::Result<(Dtype, Vec<u8>)> {
                let flat = tensor.flatten_all()?;
                Ok(match tensor.dtype() {
                    DType::F64 => (Dtype::F64, flat.to_vec1::<f64>()?.iter().flat_map(|x| x.to_le_bytes()).collect()),
                    _ => (
                        Dtype::F32,
                        flat.to_dtype(DType::F32)?.to_vec1::<f32>()?.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    ),
                })
            };
            let (dtype, bytes) = values().map_err(|e| encode_error(name, e.to_string()))?;
            Ok(Encoded { name, dtype, shape: tensor.dims().to_vec(), bytes })
        })
        .collect::<Result<Vec<_>, WeightsError>>()?;
    encoded.sort_by(|a, b| b.dtype.cmp(&a.dtype).then(a.name.cmp(b.name)));
    let mut entries: BTreeMap<&str, TensorInfo> = BTreeMap::new();
    let mut offset = 0;
    for tensor in &encoded {
        let info = TensorInfo {
            dtype: tensor.dtype,
            shape: tensor.shape.clone(),
            data_offsets: (offset, offset + tensor.bytes.len()),
        };
        offset += tensor.bytes.len();
        if tensor.name == METADATA_KEY || entries.insert(tensor.name, info).is_some() {
            return Err(encode_error(tensor.name, "the name is used twice (or is `__metadata__`)".into()));
        }
    }
    #[derive(serde::Serialize)]
    struct Header<'a> {
        #[serde(rename = "__metadata__", skip_serializing_if = "BTreeMap::is_empty")]
        metadata: &'a BTreeMap<String, String>,
        #[serde(flatten)]
        tensors: BTreeMap<&'a str, TensorInfo>,
    }
    let mut header = serde_json::to_vec(&Header { metadata, tensors: entries })
        .map_err(|e| encode_error(METADATA_KEY, e.to_string()))?;
    // As the format asks: the data starts 8-byte aligned, the header padded with spaces.
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut bytes = Vec::with_capacity(8 + header.len() + offset);
    bytes.extend((header.len() as u64).to_le_bytes());
    bytes.extend(header);
    for tensor in &encoded {
        bytes.extend(&tensor.bytes);
    }
    Ok(bytes)
}

const METADATA_KEY: &str = "__metadata__";

#[cfg(test)]
mod tests {
    use super::*;

    fn tensors() -> Vec<(String, Tensor)> {
        let t = |values: Vec<f32>| Tensor::from_vec(values.clone(), values.len(), &Device::Cpu).unwrap();
        vec![
            ("b".to_string(), t(vec![1.0, 2.0, 3.0])),
            ("a".to_string(), t(vec![4.0])),
            ("d".to_string(), Tensor::new(&[1.5f64, 2.5], &Device::Cpu).unwrap()),
        ]
    }

    #[test]
    fn encoding_is_canonical_and_readable_by_the_safetensors_crate() {
        let metadata: BTreeMap<String, String> = (0..20).map(|i| (format!("key{i}"), format!("value {i}"))).collect();
        let bytes = encode_safetensors(Path::new("x"), &tensors(), &metadata).unwrap();
        let mut reversed = tensors();
        reversed.reverse();
        assert_eq!(bytes, encode_safetensors(Path::new("x"), &reversed, &metadata).unwrap());
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
        assert!(header.starts_with("{\"__metadata__\":{\"key0\":\"value 0\",\"key1\":"), "{header}");
        let parsed = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(parsed.tensor("b").unwrap().data(), [1f32, 2.0, 3.0].map(f32::to_le_bytes).concat());
        assert_eq!(parsed.tensor("d").unwrap().dtype(), Dtype::F64);
        let (_, read) = SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(read.metadata().as_ref().unwrap().len(), 20);
        // The data section as the safetensors crate lays out the same tensors.
        let data = |bytes: &[u8]| bytes[8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize..].to_vec();
        let theirs = safetensors::serialize(parsed.tensors(), None).unwrap();
        assert_eq!(data(&bytes), data(&theirs));
    }

    #[test]
    fn a_duplicate_name_is_an_error_naming_it() {
        let mut twice = tensors();
        twice.push(twice[0].clone());
        let err = encode_safetensors(Path::new("out.safetensors"), &twice, &BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("out.safetensors") && err.to_string().contains("`b`"), "{err}");
    }
}
