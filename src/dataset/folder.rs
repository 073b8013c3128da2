//! torchvision ImageFolder layout: `root/<class>/<image>`, images found recursively under each class folder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::spec::NamedClasses;
use super::{check_dir, visible_entries, Dataset, DatasetError, Sample};

/// How a file name's extension classifies it.
#[derive(Debug, PartialEq, Eq)]
enum FileKind {
    /// JPEG or PNG: part of the dataset.
    Image,
    /// An image format the decoder does not read: dropping it silently would change the dataset.
    Unsupported,
    /// Obviously not an image (no or another extension): ignored, as torchvision does.
    Other,
}

fn classify(name: &str) -> FileKind {
    let Some((_, extension)) = name.rsplit_once('.') else { return FileKind::Other };
    match extension.to_ascii_lowercase().as_str() {
        "jpg" | "jpeg" | "png" => FileKind::Image,
        "bmp" | "gif" | "webp" | "tif" | "tiff" | "ppm" | "pgm" | "pbm" | "pnm" | "heic" | "heif" | "avif" | "jp2"
        | "jxl" => FileKind::Unsupported,
        _ => FileKind::Other,
    }
}

/// Lists `root`; with `classes`, every folder must be one of them and labels index into them.
pub(super) fn load(root: PathBuf, classes: Option<NamedClasses>) -> Result<Dataset, DatasetError> {
    check_dir(&root, "dataset.root")?;
    let mut folders = Vec::new();
    for entry in visible_entries(&root, "dataset.root")? {
        let path = entry.path();
        // Files beside the class folders (a README, a list) are not samples; torchvision skips them too.
        if !metadata(&path)?.is_dir() {
            continue;
        }
        let name = entry.file_name().into_string().map_err(|_| DatasetError::NonUtf8Name { path: path.clone() })?;
        folders.push((name, path));
    }
    if folders.is_empty() {
        return Err(DatasetError::NoClasses { path: root });
    }
    folders.sort();
    let (class_names, source) = match classes {
        Some(NamedClasses { names, source }) => (names, Some(source)),
        None => (folders.iter().map(|(name, _)| name.clone()).collect(), None),
    };
    let index: HashMap<&str, usize> = class_names.iter().enumerate().map(|(i, name)| (name.as_str(), i)).collect();
    let mut samples = Vec::new();
    let mut ignored = 0;
    for (name, path) in &folders {
        let label = *index.get(name.as_str()).ok_or_else(|| DatasetError::UnlistedClass {
            path: path.clone(),
            class: name.clone(),
            list: source.clone().unwrap_or_default(),
        })?;
        let before = samples.len();
        walk(path, name, label, &mut samples, &mut ignored)?;
        if samples.len() == before {
            return Err(DatasetError::EmptyClass { path: path.clone() });
        }
    }
    samples.sort_by(|a: &Sample, b: &Sample| a.id.cmp(&b.id));
    let mut description = format!(
        "image folder {} ({} images in {} class folders, {} classes",
        root.display(),
        samples.len(),
        folders.len(),
        class_names.len()
    );
    if let Some(source) = &source {
        description += &format!(" from {source}");
    }
    if ignored > 0 {
        description += &format!("; {ignored} non-image files ignored");
    }
    description += ")";
    Ok(Dataset { description, root, classes: class_names, samples })
}

/// Adds the images under `dir` (whose id prefix is `prefix`) with `label`, counting files that are not images.
fn walk(
    dir: &Path,
    prefix: &str,
    label: usize,
    samples: &mut Vec<Sample>,
    ignored: &mut usize,
) -> Result<(), DatasetError> {
    for entry in visible_entries(dir, "class folder")? {
        let path = entry.path();
        let name = entry.file_name().into_string().map_err(|_| DatasetError::NonUtf8Name { path: path.clone() })?;
        let id = format!("{prefix}/{name}");
        // Followed symlinks: datasets are often assembled from links, and a broken one should fail here.
        if metadata(&path)?.is_dir() {
            walk(&path, &id, label, samples, ignored)?;
            continue;
        }
        match classify(&name) {
            FileKind::Image => samples.push(Sample::file(id, path, label)),
            FileKind::Unsupported => return Err(DatasetError::UnsupportedImage { path }),
            FileKind::Other => *ignored += 1,
        }
    }
    Ok(())
}

fn metadata(path: &Path) -> Result<std::fs::Metadata, DatasetError> {
    std::fs::metadata(path).map_err(|error| DatasetError::Io {
        path: path.to_path_buf(),
        field: "dataset entry",
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_extension_case_insensitively() {
        for name in ["a.jpg", "a.JPEG", "b.Png", "c.JPG", "x.tar.jpeg"] {
            assert_eq!(classify(name), FileKind::Image, "{name}");
        }
        for name in ["a.bmp", "a.WEBP", "a.tiff"] {
            assert_eq!(classify(name), FileKind::Unsupported, "{name}");
        }
        for name in ["notes.txt", "labels.csv", "README", "jpg"] {
            assert_eq!(classify(name), FileKind::Other, "{name}");
        }
    }
}
