//! `kind: cifar10`: CIFAR-10's binary test batch (`<root>/test_batch.bin`), read with the
//! training code's reader. The pixels are the dataset (there are no image files), so each
//! [`Sample`] carries its image; its `path` is the batch file, which errors name.

use std::path::Path;
use std::sync::Arc;

use super::{Dataset, DatasetError, Sample};
use crate::train::cifar::{read_batch, CifarError, CLASSES, TEST_FILE};

/// Every record of `root/test_batch.bin`, in file order, as `test_batch.bin/00000`, … (ids
/// zero-padded so that sorting keeps the file's order; a prefix of the batch gets the same ids
/// as the full one).
pub(super) fn load_test(root: &Path) -> Result<Dataset, DatasetError> {
    let file = root.join(TEST_FILE);
    let images = read_batch(&file).map_err(|error| match error {
        CifarError::Missing { path, .. } => DatasetError::Io {
            path,
            field: "dataset.root",
            error: std::io::Error::new(std::io::ErrorKind::NotFound, "no CIFAR-10 test_batch.bin here"),
        },
        other => DatasetError::Spec { field: "dataset.root", reason: other.to_string() },
    })?;
    let samples = images
        .into_iter()
        .enumerate()
        .map(|(i, image)| Sample {
            id: format!("{TEST_FILE}/{i:05}"),
            path: file.clone(),
            label: usize::from(image.label),
            pixels: Some(Arc::new(image.image)),
        })
        .collect();
    Ok(Dataset {
        description: format!("CIFAR-10 test batch {}", file.display()),
        root: root.to_path_buf(),
        classes: CLASSES.iter().map(|c| c.to_string()).collect(),
        samples,
    })
}
