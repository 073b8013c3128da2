//! ImageNet-V2 (Recht et al. 2019): `root/<class index>/<image>`, folders `0` … `999` named by
//! the sorted-synset class index. Its three variants (matched-frequency, threshold-0.7,
//! top-images) differ only in their images, so each is a root of this kind.

use std::path::PathBuf;

use super::imagenet::{synsets, NUM_CLASSES};
use super::spec::NamedClasses;
use super::{first_few, folder, Dataset, DatasetError};

/// Reads an ImageNet-V2 folder; `subset` allows class folders to be absent.
pub(super) fn load(root: PathBuf, subset: bool) -> Result<Dataset, DatasetError> {
    // The folder names are the class indices: load them as classes named `0` … `999` (any other
    // folder is an unlisted class), then name the classes by their synsets.
    let numbered = NamedClasses {
        names: (0..NUM_CLASSES).map(|i| i.to_string()).collect(),
        source: "ImageNet-V2's class folders 0 … 999".to_string(),
    };
    let mut dataset = folder::load(root.clone(), Some(numbered))?;
    let mut present = vec![false; NUM_CLASSES];
    dataset.samples.iter().for_each(|s| present[s.label] = true);
    let missing: Vec<usize> = (0..NUM_CLASSES).filter(|&c| !present[c]).collect();
    if !subset && !missing.is_empty() {
        return Err(DatasetError::MissingClassFolders { path: root, count: missing.len(), first: first_few(&missing) });
    }
    dataset.classes = synsets().iter().map(|s| s.to_string()).collect();
    dataset.description = format!(
        "ImageNet-V2 {} ({} images in {} of {NUM_CLASSES} class folders)",
        root.display(),
        dataset.samples.len(),
        NUM_CLASSES - missing.len()
    );
    Ok(dataset)
}
