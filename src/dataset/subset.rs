//! Class subsets (ImageNet-A and -R: 200 of the 1000 classes): which dataset classes a label
//! set restricts ranking to. The shipped lists are timm's (data/imagenet/SUBSETS.txt).

use std::path::Path;

use super::classes::read_class_file;
use super::{first_few, Dataset, DatasetError};

const IMAGENET_A: &str = include_str!("../../data/imagenet/imagenet_a_synsets.txt");
const IMAGENET_R: &str = include_str!("../../data/imagenet/imagenet_r_synsets.txt");

/// A subset list shipped with the project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShippedSubset {
    ImagenetA,
    ImagenetR,
}

/// The synsets of a shipped subset, in sorted order.
pub fn shipped_subset(subset: ShippedSubset) -> Vec<String> {
    let text = match subset {
        ShippedSubset::ImagenetA => IMAGENET_A,
        ShippedSubset::ImagenetR => IMAGENET_R,
    };
    text.lines().map(|line| line.trim().to_string()).filter(|line| !line.is_empty()).collect()
}

/// A subset list file: one class name a line, no duplicates (as a class-list file).
pub fn read_subset_file(path: &Path) -> Result<Vec<String>, DatasetError> {
    read_class_file(path, "labels.subset")
}

/// The dataset class indices of `names` (sorted). Every name must be a class of the dataset, and
/// every image's label one of the subset: an image outside it could never be scored correct.
pub fn subset_classes(dataset: &Dataset, names: &[String], subset: &str) -> Result<Vec<u32>, DatasetError> {
    let unknown: Vec<&str> = names.iter().filter(|name| !dataset.classes.contains(name)).map(String::as_str).collect();
    if !unknown.is_empty() {
        return Err(DatasetError::SubsetClasses {
            subset: subset.to_string(),
            count: unknown.len(),
            first: first_few(&unknown),
        });
    }
    let mut classes: Vec<u32> =
        names.iter().filter_map(|name| dataset.classes.iter().position(|c| c == name)).map(|i| i as u32).collect();
    classes.sort_unstable();
    classes.dedup();
    let outside: Vec<&str> = dataset
        .samples
        .iter()
        .filter(|s| classes.binary_search(&(s.label as u32)).is_err())
        .map(|s| s.id.as_str())
        .collect();
    if !outside.is_empty() {
        return Err(DatasetError::OutsideSubset {
            subset: subset.to_string(),
            count: outside.len(),
            first: first_few(&outside),
        });
    }
    Ok(classes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_subsets_are_200_sorted_imagenet_synsets() {
        let synsets = super::super::imagenet::synsets();
        for subset in [ShippedSubset::ImagenetA, ShippedSubset::ImagenetR] {
            let names = shipped_subset(subset);
            assert_eq!(names.len(), 200, "{subset:?}");
            assert!(names.windows(2).all(|w| w[0] < w[1]), "{subset:?} sorted, distinct");
            assert!(names.iter().all(|n| synsets.contains(&n.as_str())), "{subset:?}");
        }
        // timm's imagenet_a_indices.txt begins 6, 11, 13; imagenet_r_indices.txt 1, 2, 4.
        let index = |n: &String| synsets.iter().position(|s| s == n).unwrap();
        let a: Vec<usize> = shipped_subset(ShippedSubset::ImagenetA).iter().take(3).map(index).collect();
        let r: Vec<usize> = shipped_subset(ShippedSubset::ImagenetR).iter().take(3).map(index).collect();
        assert_eq!((a, r), (vec![6, 11, 13], vec![1, 2, 4]));
    }

    fn dataset(labels: &[usize]) -> Dataset {
        crate::dataset::test_dataset(&["a", "b", "c"], labels)
    }

    #[test]
    fn subset_classes_are_dataset_classes_holding_every_label() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(subset_classes(&dataset(&[2, 0]), &names(&["c", "a"]), "s").unwrap(), vec![0, 2]);
        let error = subset_classes(&dataset(&[0]), &names(&["a", "z"]), "s").unwrap_err().to_string();
        assert!(error.contains("`z`") || error.contains("z"), "{error}");
        let error = subset_classes(&dataset(&[0, 1]), &names(&["a"]), "s").unwrap_err().to_string();
        assert!(error.contains("1.jpg"), "{error}");
    }
}
