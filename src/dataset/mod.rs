//! Datasets: which image files, with which labels, in which class order. Everything is read and
//! validated when a [`DatasetSpec`] is loaded, before any image is decoded.

mod cifar;
mod classes;
mod folder;
mod imagenet;
mod list;
mod outputs;
mod paths;
mod spec;
mod subset;
mod v2;

pub use imagenet::real_lists;
pub use outputs::OutputOrder;
pub use paths::resolve as resolve_path;
pub use spec::{ClassList, DatasetSpec, ValLabels};
pub use subset::{read_subset_file, shipped_subset, subset_classes, ShippedSubset};

use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// How many offending names an error quotes when it reports a count.
const FIRST_FEW: usize = 5;

/// One image and its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The path relative to the dataset root, `/`-separated: unique, and what the store keys on.
    pub id: String,
    pub path: PathBuf,
    /// Index into [`Dataset::classes`].
    pub label: usize,
    /// The decoded image, for datasets that ship pixels rather than image files (CIFAR-10's
    /// binary batches, where `path` is the batch file); `None`: decode `path`.
    pub pixels: Option<std::sync::Arc<image::RgbImage>>,
}

impl Sample {
    /// An image file.
    pub fn file(id: String, path: PathBuf, label: usize) -> Self {
        Self { id, path, label, pixels: None }
    }
}

/// A loaded, validated image list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    pub description: String,
    pub root: PathBuf,
    /// Class names (synset ids for ImageNet) in the dataset's class order.
    pub classes: Vec<String>,
    /// Sorted by id.
    pub samples: Vec<Sample>,
}

impl Dataset {
    /// SHA-256 (hex) over the sorted (id, label) list and the class list: identifies the image list for the
    /// store. The root is left out so that the same images mounted elsewhere share results.
    pub fn fingerprint(&self) -> String {
        fn put(hasher: &mut Sha256, bytes: &[u8]) {
            // Length prefixes keep the encoding unambiguous whatever characters the names hold.
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        }
        let mut hasher = Sha256::new();
        put(&mut hasher, b"resnet-audit dataset v1");
        hasher.update((self.classes.len() as u64).to_le_bytes());
        for class in &self.classes {
            put(&mut hasher, class.as_bytes());
        }
        // The fields are public, so do not rely on the loader's sort.
        let mut samples: Vec<&Sample> = self.samples.iter().collect();
        samples.sort_by(|a, b| a.id.cmp(&b.id));
        hasher.update((samples.len() as u64).to_le_bytes());
        for sample in samples {
            put(&mut hasher, sample.id.as_bytes());
            hasher.update((sample.label as u64).to_le_bytes());
        }
        format!("{:x}", hasher.finalize())
    }

    /// Readable class names: the shipped ImageNet name where a class is an ImageNet synset, else the class name.
    pub fn human_names(&self) -> Vec<String> {
        self.classes.iter().map(|class| imagenet::human_name(class).unwrap_or(class).to_string()).collect()
    }
}

/// Why a dataset (or a model's output order) could not be read or does not hold together.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{field} `{value}`: environment variable `{var}` is not set")]
    UnsetVariable { field: &'static str, value: String, var: String },
    #[error("{field} `{value}`: {reason}")]
    BadPath { field: &'static str, value: String, reason: String },
    #[error("cannot read {path} ({field}): {error}")]
    Io { path: PathBuf, field: &'static str, error: std::io::Error },
    #[error("{path} ({field}) is not a directory")]
    NotADirectory { path: PathBuf, field: &'static str },
    #[error("{field}: {reason}")]
    Spec { field: &'static str, reason: String },
    #[error("{path}: the name is not valid UTF-8")]
    NonUtf8Name { path: PathBuf },
    #[error("{path} holds no class folders (expected root/<class>/<image>)")]
    NoClasses { path: PathBuf },
    #[error("class folder {path} holds no images (.jpg, .jpeg or .png)")]
    EmptyClass { path: PathBuf },
    #[error("class folder {path}: `{class}` is not in the class list ({list})")]
    UnlistedClass { path: PathBuf, class: String, list: String },
    #[error("{path}: this image format is not supported (only JPEG and PNG are decoded); convert or remove it")]
    UnsupportedImage { path: PathBuf },
    #[error("{path} is not an ImageNet validation image (expected ILSVRC2012_val_XXXXXXXX.JPEG){hint}")]
    NotValImage { path: PathBuf, hint: &'static str },
    #[error("{path}: image number {number} is outside 1..=50000")]
    ValNumber { path: PathBuf, number: u64 },
    #[error(
        "{path}: {count} of the 50000 validation images are missing (first: {first}); set `subset: true` to \
         evaluate the images present"
    )]
    MissingValImages { path: PathBuf, count: usize, first: String },
    #[error("{path} holds no images")]
    NoImages { path: PathBuf },
    #[error("{path} ({field}) has {found} lines; expected {expected}")]
    LineCount { path: PathBuf, field: &'static str, found: usize, expected: usize },
    #[error("{path}:{line}: {reason}")]
    Malformed { path: PathBuf, line: usize, reason: String },
    #[error("{path}:{line}: unknown synset `{synset}` (not one of the 1000 ImageNet classes)")]
    UnknownSynset { path: PathBuf, line: usize, synset: String },
    #[error("{path}:{line}: {field} `{value}` is not an integer")]
    NotAnInteger { path: PathBuf, line: usize, field: &'static str, value: String },
    #[error("{path}:{line}: {field} {value} is outside 1..={max}")]
    IdOutOfRange { path: PathBuf, line: usize, field: &'static str, value: usize, max: usize },
    #[error("{path}:{line}: label {label} is outside 0..{classes}")]
    LabelOutOfRange { path: PathBuf, line: usize, label: i64, classes: usize },
    #[error("{path}:{line}: {field} `{value}` repeats line {first_line}")]
    Duplicate { path: PathBuf, line: usize, first_line: usize, field: &'static str, value: String },
    #[error("{path}: {count} ids missing from the table (first: {first}); it must map every id 1..={max}")]
    MissingIds { path: PathBuf, count: usize, first: String, max: usize },
    #[error("{path}: {count} listed files are missing under {root} (first: {first})")]
    MissingFiles { path: PathBuf, root: PathBuf, count: usize, first: String },
    #[error("{path} ({field}) is empty")]
    Empty { path: PathBuf, field: &'static str },
    #[error("{path}: {count} of the 1000 class folders are missing (first: {first}); set `subset: true` to evaluate the classes present")]
    MissingClassFolders { path: PathBuf, count: usize, first: String },
    #[error("labels `{subset}`: {count} classes of the subset are not classes of the dataset (first: {first})")]
    SubsetClasses { subset: String, count: usize, first: String },
    #[error("labels `{subset}`: {count} images are labelled with a class outside the subset (first: {first}); they could never be scored correct")]
    OutsideSubset { subset: String, count: usize, first: String },
    #[error("output order {order}: the model has {found} outputs, the order has {expected}")]
    OutputCount { order: String, found: usize, expected: usize },
    #[error("output order {order}: outputs {first} and {second} both score dataset class `{class}`")]
    DuplicateOutput { order: String, class: String, first: usize, second: usize },
    #[error(
        "output order {order}: {count} dataset classes are scored by no model output (first: {first}); \
         is this the right `outputs:` order for the dataset?"
    )]
    UnscoredClasses { order: String, count: usize, first: String },
}

/// The first few items, comma-separated, with a count of the rest.
fn first_few<T: std::fmt::Display>(items: &[T]) -> String {
    let shown: Vec<String> = items.iter().take(FIRST_FEW).map(|item| item.to_string()).collect();
    let rest = items.len().saturating_sub(FIRST_FEW);
    if rest > 0 {
        format!("{} and {rest} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// Whether a file or folder name is hidden (`.DS_Store`, `.git`): never part of a dataset.
fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

/// The entries of `dir` that are not hidden, naming the folder (and spec field) on failure.
fn visible_entries(dir: &std::path::Path, field: &'static str) -> Result<Vec<std::fs::DirEntry>, DatasetError> {
    let io = |error| DatasetError::Io { path: dir.to_path_buf(), field, error };
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if !is_hidden(&entry.file_name()) {
            entries.push(entry);
        }
    }
    Ok(entries)
}

/// Reads a whole text file, naming it (and the spec field it came from) on failure.
fn read_text(path: &std::path::Path, field: &'static str) -> Result<String, DatasetError> {
    std::fs::read_to_string(path).map_err(|error| DatasetError::Io { path: path.to_path_buf(), field, error })
}

/// Fails unless `path` is an existing directory (symlinks followed).
fn check_dir(path: &std::path::Path, field: &'static str) -> Result<(), DatasetError> {
    let meta = std::fs::metadata(path).map_err(|error| DatasetError::Io { path: path.to_path_buf(), field, error })?;
    if meta.is_dir() {
        Ok(())
    } else {
        Err(DatasetError::NotADirectory { path: path.to_path_buf(), field })
    }
}

/// A dataset of files `/r/<i>.jpg` with these labels over these classes (unit tests).
#[cfg(test)]
pub(crate) fn test_dataset(classes: &[&str], labels: &[usize]) -> Dataset {
    Dataset {
        description: String::new(),
        root: PathBuf::from("/r"),
        classes: classes.iter().map(|c| c.to_string()).collect(),
        samples: labels
            .iter()
            .enumerate()
            .map(|(i, &label)| Sample::file(format!("{i}.jpg"), PathBuf::from(format!("/r/{i}.jpg")), label))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_ignores_root_and_order_but_not_content() {
        let base = test_dataset(&["a", "b"], &[0, 1, 1]);
        let mut moved = base.clone();
        moved.root = PathBuf::from("/elsewhere");
        moved.samples.reverse();
        assert_eq!(base.fingerprint(), moved.fingerprint());
        assert_eq!(base.fingerprint().len(), 64);
        let mut renamed = base.clone();
        renamed.classes[1] = "c".into();
        assert_ne!(base.fingerprint(), renamed.fingerprint());
        assert_ne!(base.fingerprint(), test_dataset(&["a", "b"], &[0, 1]).fingerprint());
    }

    #[test]
    fn first_few_counts_the_rest() {
        assert_eq!(first_few(&[1, 2]), "1, 2");
        assert_eq!(first_few(&[1, 2, 3, 4, 5, 6, 7]), "1, 2, 3, 4, 5 and 2 more");
    }
}
