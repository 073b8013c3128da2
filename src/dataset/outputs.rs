//! The order of a model's outputs, mapped onto a dataset's classes by name.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use super::classes::read_class_file;
use super::imagenet::{self, read_id_table};
use super::paths::resolve;
use super::{first_few, Dataset, DatasetError};

/// The order of a model's outputs. YAML: `dataset` (the default: the dataset's class order), `imagenet` (the
/// 1000 sorted synsets), `imagenet-background` (1001 outputs, output 0 the TF-slim background),
/// `{devkit: path}` (ILSVRC2012_ID order from an id ↔ synset table: output i is id i + 1), or `{file: path}`
/// (one class name per line).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OutputOrder {
    #[default]
    Dataset,
    Imagenet,
    ImagenetBackground,
    Devkit {
        devkit: PathBuf,
    },
    File {
        file: PathBuf,
    },
}

impl OutputOrder {
    /// For each model output, the dataset class it scores (None for outputs with no dataset class, such as the
    /// background). Errors if the model's output count differs from the order's, if two outputs score one
    /// class, or if some dataset class is scored by no output.
    pub fn map_outputs(
        &self,
        num_outputs: usize,
        dataset: &Dataset,
        base: &Path,
    ) -> Result<Vec<Option<usize>>, DatasetError> {
        let (names, order): (Vec<Option<String>>, String) = match self {
            OutputOrder::Dataset => (dataset.classes.iter().cloned().map(Some).collect(), "dataset".to_string()),
            OutputOrder::Imagenet => (imagenet_names().map(Some).collect(), "imagenet".to_string()),
            OutputOrder::ImagenetBackground => {
                (std::iter::once(None).chain(imagenet_names().map(Some)).collect(), "imagenet-background".to_string())
            }
            OutputOrder::Devkit { devkit } => {
                let path = resolve(base, "outputs.devkit", devkit)?;
                let table = read_id_table(&path, "outputs.devkit", None)?;
                (table.into_iter().map(|entry| Some(entry.synset)).collect(), format!("devkit {}", path.display()))
            }
            OutputOrder::File { file } => {
                let path = resolve(base, "outputs.file", file)?;
                let names = read_class_file(&path, "outputs.file")?;
                (names.into_iter().map(Some).collect(), format!("file {}", path.display()))
            }
        };
        if names.len() != num_outputs {
            return Err(DatasetError::OutputCount { order, found: num_outputs, expected: names.len() });
        }
        let index: HashMap<&str, usize> =
            dataset.classes.iter().enumerate().map(|(i, name)| (name.as_str(), i)).collect();
        let mut scored_by: Vec<Option<usize>> = vec![None; dataset.classes.len()];
        let mut mapping = Vec::with_capacity(names.len());
        for (output, name) in names.iter().enumerate() {
            let class = name.as_deref().and_then(|name| index.get(name).copied());
            if let Some(class) = class {
                if let Some(first) = scored_by[class] {
                    let class = dataset.classes[class].clone();
                    return Err(DatasetError::DuplicateOutput { order, class, first, second: output });
                }
                scored_by[class] = Some(output);
            }
            mapping.push(class);
        }
        let unscored: Vec<&str> = dataset
            .classes
            .iter()
            .zip(&scored_by)
            .filter(|(_, output)| output.is_none())
            .map(|(name, _)| name.as_str())
            .collect();
        if !unscored.is_empty() {
            return Err(DatasetError::UnscoredClasses { order, count: unscored.len(), first: first_few(&unscored) });
        }
        Ok(mapping)
    }
}

fn imagenet_names() -> impl Iterator<Item = String> {
    imagenet::synsets().iter().map(|s| s.to_string())
}

const KEYWORDS: &[&str] = &["dataset", "imagenet", "imagenet-background"];

impl<'de> Deserialize<'de> for OutputOrder {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const FIELDS: &[&str] = &["devkit", "file"];
        struct OrderVisitor;
        impl<'de> Visitor<'de> for OrderVisitor {
            type Value = OutputOrder;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`dataset`, `imagenet`, `imagenet-background`, `{devkit: path}` or `{file: path}`")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<OutputOrder, E> {
                match value {
                    "dataset" => Ok(OutputOrder::Dataset),
                    "imagenet" => Ok(OutputOrder::Imagenet),
                    "imagenet-background" => Ok(OutputOrder::ImagenetBackground),
                    // A bare path is refused so that a misspelt keyword is not read as a file name.
                    _ => Err(E::unknown_variant(value, KEYWORDS)),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OutputOrder, A::Error> {
                let Some(key) = map.next_key::<String>()? else {
                    return Err(de::Error::invalid_length(0, &self));
                };
                let path: PathBuf = match key.as_str() {
                    "devkit" | "file" => map.next_value()?,
                    other => return Err(de::Error::unknown_field(other, FIELDS)),
                };
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::invalid_length(2, &self));
                }
                Ok(if key == "devkit" {
                    OutputOrder::Devkit { devkit: path }
                } else {
                    OutputOrder::File { file: path }
                })
            }
        }
        deserializer.deserialize_any(OrderVisitor)
    }
}

impl Serialize for OutputOrder {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (key, path) = match self {
            OutputOrder::Dataset => return serializer.serialize_str("dataset"),
            OutputOrder::Imagenet => return serializer.serialize_str("imagenet"),
            OutputOrder::ImagenetBackground => return serializer.serialize_str("imagenet-background"),
            OutputOrder::Devkit { devkit } => ("devkit", devkit),
            OutputOrder::File { file } => ("file", file),
        };
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(key, path)?;
        map.end()
    }
}
