//! CIFAR-10 in its binary distribution (`cifar-10-batches-bin/`): `data_batch_1.bin` …
//! `data_batch_5.bin` (50,000 training images) and `test_batch.bin` (10,000). Each record is
//! one label byte (0–9) and 3072 pixel bytes: the 32×32 red plane, then green, then blue.

use std::path::{Path, PathBuf};

use image::RgbImage;

const SIDE: usize = 32;
const PLANE: usize = SIDE * SIDE;
const RECORD: usize = 1 + 3 * PLANE;
pub const CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

#[derive(Debug, thiserror::Error)]
pub enum CifarError {
    #[error(
        "CIFAR10 is not set: point it at the extracted cifar-10-batches-bin folder (data_batch_1.bin … test_batch.bin)"
    )]
    Unset,
    #[error("cannot read {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path}: {size} bytes is not a whole number of {RECORD}-byte CIFAR-10 records")]
    Truncated { path: PathBuf, size: usize },
    #[error("{path}: record {record} has label {label}; CIFAR-10 labels are 0–9")]
    Label { path: PathBuf, record: usize, label: u8 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// One image and its label.
#[derive(Debug, Clone, PartialEq)]
pub struct CifarImage {
    pub label: u8,
    pub image: RgbImage,
}

/// The folder named by the `CIFAR10` environment variable.
pub fn dir_from_env() -> Result<PathBuf, CifarError> {
    match std::env::var_os("CIFAR10") {
        Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
        _ => Err(CifarError::Unset),
    }
}

/// Every record of one batch file, in file order.
pub fn read_batch(path: &Path) -> Result<Vec<CifarImage>, CifarError> {
    let bytes = std::fs::read(path).map_err(|error| CifarError::Io { path: path.to_path_buf(), error })?;
    if bytes.is_empty() || bytes.len() % RECORD != 0 {
        return Err(CifarError::Truncated { path: path.to_path_buf(), size: bytes.len() });
    }
    bytes
        .chunks_exact(RECORD)
        .enumerate()
        .map(|(record, chunk)| {
            let label = chunk[0];
            if label > 9 {
                return Err(CifarError::Label { path: path.to_path_buf(), record, label });
            }
            let planes = &chunk[1..];
            let pixels = (0..PLANE).flat_map(|i| [planes[i], planes[PLANE + i], planes[2 * PLANE + i]]).collect();
            let image = RgbImage::from_raw(SIDE as u32, SIDE as u32, pixels).expect("32x32x3 bytes");
            Ok(CifarImage { label, image })
        })
        .collect()
}

/// A split from the extracted folder: the five training batches in order, or the test batch.
pub fn load(dir: &Path, split: Split) -> Result<Vec<CifarImage>, CifarError> {
    let files: Vec<String> = match split {
        Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        Split::Test => vec!["test_batch.bin".to_string()],
    };
    let mut images = Vec::new();
    for file in files {
        images.extend(read_batch(&dir.join(file))?);
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record whose pixel (x, y) has R = x, G = y, B = label (an independent encoding of the layout).
    fn record(label: u8) -> Vec<u8> {
        let mut bytes = vec![label];
        bytes.extend((0..PLANE).map(|i| (i % SIDE) as u8));
        bytes.extend((0..PLANE).map(|i| (i / SIDE) as u8));
        bytes.extend(std::iter::repeat_n(label, PLANE));
        bytes
    }

    #[test]
    fn records_decode_planes_into_pixels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test_batch.bin");
        std::fs::write(&path, [record(3), record(9)].concat()).unwrap();
        let images = load(dir.path(), Split::Test).unwrap();
        assert_eq!(images.iter().map(|i| i.label).collect::<Vec<_>>(), vec![3, 9]);
        assert_eq!(images[1].image.get_pixel(5, 17).0, [5, 17, 9]);
    }

    #[test]
    fn bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data_batch_1.bin");
        std::fs::write(&path, &record(1)[..100]).unwrap();
        let err = read_batch(&path).unwrap_err().to_string();
        assert!(err.contains("data_batch_1.bin: 100 bytes"), "{err}");
        std::fs::write(&path, [record(1), record(12)].concat()).unwrap();
        let err = read_batch(&path).unwrap_err().to_string();
        assert!(err.contains("record 1 has label 12"), "{err}");
        std::fs::write(&path, record(1)).unwrap();
        let err = load(dir.path(), Split::Train).unwrap_err().to_string();
        assert!(err.contains("data_batch_2.bin"), "the first missing batch is named: {err}");
    }
}
