//! CIFAR-10 in its binary distribution (`cifar-10-batches-bin/`): `data_batch_1.bin` …
//! `data_batch_5.bin` (50,000 training images) and `test_batch.bin` (10,000). Each record is
//! one label byte (0–9) and 3072 pixel bytes: the 32×32 red plane, then green, then blue.
//! `train` holds the images in memory (150 MB for all 60,000), so nothing is decoded per step.

use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::dataset::{resolve_path, DatasetError};

const SIDE: usize = 32;
const PLANE: usize = SIDE * SIDE;
const RECORD: usize = 1 + 3 * PLANE;
pub const CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];
/// The binary distribution; it extracts to `cifar-10-batches-bin/`.
pub const URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
/// The validation (test) batch's file name.
pub const TEST_FILE: &str = "test_batch.bin";
/// The folder the archive extracts to.
const FOLDER: &str = "cifar-10-batches-bin";

#[derive(Debug, thiserror::Error)]
pub enum CifarError {
    #[error(
        "CIFAR10 is not set: set CIFAR10=/path/to/cifar-10-batches-bin (the extracted folder holding data_batch_1.bin … test_batch.bin)"
    )]
    Unset,
    #[error(
        "data.root `{value}`: environment variable `{var}` is not set: set {var}=/path/to/cifar-10-batches-bin (the folder extracted from {URL}, holding data_batch_1.bin … data_batch_5.bin and test_batch.bin)"
    )]
    RootUnset { value: String, var: String },
    #[error("CIFAR-10 root: {0}")]
    Root(DatasetError),
    #[error(
        "{path} does not exist: the CIFAR-10 root (data.root, usually ${{CIFAR10}}) must be the folder holding data_batch_1.bin … data_batch_5.bin and test_batch.bin, extracted from {URL}{hint}"
    )]
    Missing { path: PathBuf, hint: String },
    #[error("cannot read {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path}: {size} bytes is not a whole number of {RECORD}-byte CIFAR-10 records")]
    Truncated { path: PathBuf, size: usize },
    #[error("{path}: record {record} has label {label}; CIFAR-10 labels are 0–9")]
    Label { path: PathBuf, record: usize, label: u8 },
    #[error("data.train_batches {batches:?}: name each of the training batches 1–5 at most once, and at least one")]
    Batches { batches: Vec<u32> },
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

/// Resolves a recipe's `root` (`${VAR}`, `${VAR:-default}`, relative to `base`); an unset
/// variable's message says what it must point to.
pub fn resolve_root(base: &Path, root: &Path) -> Result<PathBuf, CifarError> {
    resolve_path(base, "data.root", root).map_err(|error| match error {
        DatasetError::UnsetVariable { value, var, .. } => CifarError::RootUnset { value, var },
        other => CifarError::Root(other),
    })
}

/// The file names of the training batches `selection` (1–5), sorted, so that the data order
/// does not depend on how the list was written.
pub fn train_files(selection: &[u32]) -> Result<Vec<String>, CifarError> {
    let mut sorted = selection.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.is_empty() || sorted.len() != selection.len() || sorted.iter().any(|n| !(1..=5).contains(n)) {
        return Err(CifarError::Batches { batches: selection.to_vec() });
    }
    Ok(sorted.iter().map(|n| format!("data_batch_{n}.bin")).collect())
}

/// Every record of one batch file, in file order.
pub fn read_batch(path: &Path) -> Result<Vec<CifarImage>, CifarError> {
    let bytes = std::fs::read(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => CifarError::Missing { path: path.to_path_buf(), hint: misplaced_hint(path) },
        _ => CifarError::Io { path: path.to_path_buf(), error },
    })?;
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

/// The commonest mistake, the archive's parent folder named instead of the extracted one.
fn misplaced_hint(path: &Path) -> String {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return String::new() };
    let inner = dir.join(FOLDER);
    if inner.join(name).is_file() {
        format!(" ({} holds it: point CIFAR10 there)", inner.display())
    } else {
        String::new()
    }
}

/// A split from the extracted folder: the five training batches in order, or the test batch.
pub fn load(dir: &Path, split: Split) -> Result<Vec<CifarImage>, CifarError> {
    let files: Vec<String> = match split {
        Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        Split::Test => vec![TEST_FILE.to_string()],
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
        assert!(err.contains("data_batch_2.bin") && err.contains(URL), "the first missing batch is named: {err}");
        // Pointed at the archive's parent folder: the message says where the batches are.
        let inner = dir.path().join(FOLDER);
        std::fs::create_dir(&inner).unwrap();
        std::fs::write(inner.join("data_batch_2.bin"), record(1)).unwrap();
        let err = load(dir.path(), Split::Train).unwrap_err().to_string();
        assert!(err.contains("point CIFAR10 there"), "{err}");
    }

    #[test]
    fn train_batch_selections_are_checked_and_sorted() {
        assert_eq!(train_files(&[3, 1]).unwrap(), vec!["data_batch_1.bin", "data_batch_3.bin"]);
        for bad in [&[][..], &[0], &[6], &[2, 2]] {
            let err = train_files(bad).unwrap_err().to_string();
            assert!(err.contains("train_batches"), "{err}");
        }
    }
}
