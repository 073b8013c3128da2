//! The `dataset:` entry of an experiment file, and loading it.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use super::classes::read_class_file;
use super::imagenet::{self, LabelSource};
use super::paths::resolve;
use super::{cifar, folder, list, v2, Dataset, DatasetError};

/// The `dataset:` value of an experiment file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DatasetSpec {
    /// torchvision ImageFolder: `root/<class>/<image>` (images may sit in subfolders of a class folder).
    /// Classes: the sorted folder names, or a given list (folders absent on disk are allowed, extra ones are not).
    ImageFolder {
        root: PathBuf,
        #[serde(default)]
        classes: Option<ClassList>,
    },
    /// ImageNet validation: a flat folder of `ILSVRC2012_val_XXXXXXXX.JPEG`; classes are the 1000 sorted synsets.
    /// `subset: true` allows a folder holding only some of the 50,000 images.
    ImagenetVal {
        root: PathBuf,
        #[serde(default)]
        labels: ValLabels,
        #[serde(default)]
        subset: bool,
    },
    /// ImageNet-V2: `root/<class index>/<image>`, folders `0` … `999` named by sorted-synset
    /// class index (matched-frequency, threshold-0.7 and top-images are different roots).
    /// `subset: true` allows class folders to be absent.
    ImagenetV2 {
        root: PathBuf,
        #[serde(default)]
        subset: bool,
    },
    /// Caffe list file: lines `relative/path label`, label an integer class index, paths relative to `root`.
    List { root: PathBuf, file: PathBuf, classes: ClassList },
    /// CIFAR-10's binary test batch: `root/test_batch.bin` (10,000 records, or any prefix of
    /// them), pixels held in memory.
    Cifar10 { root: PathBuf },
    /// The project's generated demo dataset (`crate::demo`): written to `dir` on first use, then read
    /// as the class folders `dir/<split>/`. A given `spec` must match the one the folder was made with.
    Demo {
        dir: PathBuf,
        split: crate::demo::Split,
        #[serde(default)]
        spec: crate::demo::DemoSpec,
    },
}

/// A class order. YAML: `imagenet` (the 1000 shipped sorted synsets), a path to a file with one class name per
/// line (write `./imagenet` for a file of that name), or `{count: N}` (classes named `0`..`N-1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClassList {
    Imagenet,
    File(PathBuf),
    Count(usize),
}

/// Labels of the ImageNet validation images. YAML: absent or `shipped` (the shipped val_synsets.txt),
/// `{synsets: path}` (50,000 lines, the synset of image i on line i), or `{ground_truth: path, id_to_synset: path}`
/// (the devkit's ILSVRC2012_validation_ground_truth.txt and an ILSVRC2012_ID ↔ synset table such as map_clsloc.txt).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ValLabels {
    #[default]
    Shipped,
    Synsets {
        synsets: PathBuf,
    },
    Devkit {
        ground_truth: PathBuf,
        id_to_synset: PathBuf,
    },
}

/// The class order in words: `ImageNet's 1000 synsets`, `classes listed in names.txt`, `10 classes`.
impl fmt::Display for ClassList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClassList::Imagenet => f.write_str("ImageNet's 1000 synsets"),
            ClassList::File(path) => write!(f, "classes listed in {}", path.display()),
            ClassList::Count(n) => write!(f, "{n} classes"),
        }
    }
}

/// The dataset as a reader needs it: what kind of images and where (paths as written, `${VAR}`
/// unexpanded), e.g. `ImageNet 2012 validation images in ${IMAGENET_VAL} (shipped labels)`.
impl fmt::Display for DatasetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetSpec::ImageFolder { root, classes } => {
                write!(f, "class folders under {}", root.display())?;
                match classes {
                    Some(list) => write!(f, " ({list})"),
                    None => Ok(()),
                }
            }
            DatasetSpec::ImagenetVal { root, labels, subset } => {
                write!(f, "ImageNet 2012 validation images in {}", root.display())?;
                match labels {
                    ValLabels::Shipped => f.write_str(" (shipped labels)")?,
                    ValLabels::Synsets { synsets } => write!(f, " (labels from {})", synsets.display())?,
                    ValLabels::Devkit { ground_truth, .. } => {
                        write!(f, " (devkit labels from {})", ground_truth.display())?
                    }
                }
                if *subset {
                    f.write_str(", a subset of the 50,000 allowed")?;
                }
                Ok(())
            }
            DatasetSpec::ImagenetV2 { root, subset } => {
                write!(f, "ImageNet-V2 images in class-index folders under {}", root.display())?;
                if *subset {
                    f.write_str(", absent classes allowed")?;
                }
                Ok(())
            }
            DatasetSpec::List { root, file, classes } => {
                write!(f, "images listed in {} under {} ({classes})", file.display(), root.display())
            }
            DatasetSpec::Demo { dir, split, .. } => {
                write!(f, "the project's generated demo images, {} split, in {}", split.name(), dir.display())
            }
            DatasetSpec::Cifar10 { root } => {
                write!(f, "CIFAR-10 test images (binary batch) in {}", root.join("test_batch.bin").display())
            }
        }
    }
}

impl DatasetSpec {
    /// Resolves relative paths against `base` (the experiment's working directory) after expanding `${VAR}`,
    /// then reads and fully validates the dataset.
    pub fn load(&self, base: &Path) -> Result<Dataset, DatasetError> {
        match self {
            DatasetSpec::ImageFolder { root, classes } => {
                let root = resolve(base, "dataset.root", root)?;
                let classes = match classes {
                    None => None,
                    Some(ClassList::Count(_)) => {
                        return Err(DatasetError::Spec {
                            field: "dataset.classes",
                            reason: "`{count: N}` applies only to `kind: list`; an image folder's classes are \
                                     folder names, so give a class-list file or `imagenet`"
                                .to_string(),
                        })
                    }
                    Some(list) => Some(list.load(base)?),
                };
                folder::load(root, classes)
            }
            DatasetSpec::ImagenetVal { root, labels, subset } => {
                let root = resolve(base, "dataset.root", root)?;
                let source = match labels {
                    ValLabels::Shipped => LabelSource::Shipped,
                    ValLabels::Synsets { synsets } => {
                        LabelSource::Synsets(resolve(base, "dataset.labels.synsets", synsets)?)
                    }
                    ValLabels::Devkit { ground_truth, id_to_synset } => LabelSource::Devkit {
                        ground_truth: resolve(base, "dataset.labels.ground_truth", ground_truth)?,
                        id_to_synset: resolve(base, "dataset.labels.id_to_synset", id_to_synset)?,
                    },
                };
                imagenet::load_val(root, source, *subset)
            }
            DatasetSpec::ImagenetV2 { root, subset } => v2::load(resolve(base, "dataset.root", root)?, *subset),
            DatasetSpec::List { root, file, classes } => {
                let root = resolve(base, "dataset.root", root)?;
                let file = resolve(base, "dataset.file", file)?;
                let classes = classes.load(base)?;
                list::load(root, file, classes)
            }
            DatasetSpec::Cifar10 { root } => cifar::load_test(&resolve(base, "dataset.root", root)?),
            DatasetSpec::Demo { dir, split, spec } => {
                let dir = resolve(base, "dataset.dir", dir)?;
                crate::demo::ensure(spec, &dir)
                    .map_err(|e| DatasetError::Spec { field: "dataset", reason: e.to_string() })?;
                folder::load(dir.join(split.name()), None)
            }
        }
    }
}

/// Class names in order, and where they came from (for messages and descriptions).
pub(super) struct NamedClasses {
    pub names: Vec<String>,
    pub source: String,
}

impl ClassList {
    fn load(&self, base: &Path) -> Result<NamedClasses, DatasetError> {
        let field = "dataset.classes";
        Ok(match self {
            ClassList::Imagenet => NamedClasses {
                names: imagenet::synsets().iter().map(|s| s.to_string()).collect(),
                source: "the 1000 ImageNet synsets".to_string(),
            },
            ClassList::File(path) => {
                let path = resolve(base, field, path)?;
                NamedClasses { names: read_class_file(&path, field)?, source: path.display().to_string() }
            }
            ClassList::Count(0) => {
                return Err(DatasetError::Spec { field, reason: "`{count: 0}`: a dataset needs classes".to_string() })
            }
            ClassList::Count(n) => NamedClasses {
                names: (0..*n).map(|i| i.to_string()).collect(),
                source: format!("{n} numbered classes"),
            },
        })
    }
}

impl<'de> Deserialize<'de> for ClassList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ClassListVisitor;
        impl<'de> Visitor<'de> for ClassListVisitor {
            type Value = ClassList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`imagenet`, the path of a class-list file, or `{count: N}`")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<ClassList, E> {
                match value {
                    "" => Err(E::invalid_value(de::Unexpected::Str(value), &self)),
                    "imagenet" => Ok(ClassList::Imagenet),
                    path => Ok(ClassList::File(PathBuf::from(path))),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ClassList, A::Error> {
                let mut count = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "count" if count.is_some() => return Err(de::Error::duplicate_field("count")),
                        "count" => count = Some(map.next_value::<usize>()?),
                        other => return Err(de::Error::unknown_field(other, &["count"])),
                    }
                }
                count.map(ClassList::Count).ok_or_else(|| de::Error::missing_field("count"))
            }
        }
        deserializer.deserialize_any(ClassListVisitor)
    }
}

impl Serialize for ClassList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ClassList::Imagenet => serializer.serialize_str("imagenet"),
            // A file named `imagenet` must not read back as the keyword.
            ClassList::File(path) if path == Path::new("imagenet") => serializer.serialize_str("./imagenet"),
            ClassList::File(path) => path.serialize(serializer),
            ClassList::Count(n) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("count", n)?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for ValLabels {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const FIELDS: &[&str] = &["synsets", "ground_truth", "id_to_synset"];
        struct ValLabelsVisitor;
        impl<'de> Visitor<'de> for ValLabelsVisitor {
            type Value = ValLabels;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`shipped`, `{synsets: path}`, or `{ground_truth: path, id_to_synset: path}`")
            }
            fn visit_unit<E: de::Error>(self) -> Result<ValLabels, E> {
                Ok(ValLabels::Shipped)
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<ValLabels, E> {
                match value {
                    "shipped" => Ok(ValLabels::Shipped),
                    _ => Err(E::invalid_value(de::Unexpected::Str(value), &self)),
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ValLabels, A::Error> {
                let mut values: [Option<PathBuf>; 3] = [None, None, None];
                while let Some(key) = map.next_key::<String>()? {
                    let slot =
                        FIELDS.iter().position(|f| *f == key).ok_or_else(|| de::Error::unknown_field(&key, FIELDS))?;
                    if values[slot].is_some() {
                        return Err(de::Error::duplicate_field(FIELDS[slot]));
                    }
                    values[slot] = Some(map.next_value()?);
                }
                match values {
                    [Some(synsets), None, None] => Ok(ValLabels::Synsets { synsets }),
                    [None, Some(ground_truth), Some(id_to_synset)] => {
                        Ok(ValLabels::Devkit { ground_truth, id_to_synset })
                    }
                    [None, Some(_), None] => Err(de::Error::missing_field("id_to_synset")),
                    [None, None, Some(_)] => Err(de::Error::missing_field("ground_truth")),
                    [Some(_), _, _] => Err(de::Error::custom(
                        "`synsets` cannot be combined with `ground_truth`/`id_to_synset`: give one source of labels",
                    )),
                    [None, None, None] => Err(de::Error::invalid_length(0, &self)),
                }
            }
        }
        deserializer.deserialize_any(ValLabelsVisitor)
    }
}

impl Serialize for ValLabels {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ValLabels::Shipped => serializer.serialize_str("shipped"),
            ValLabels::Synsets { synsets } => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("synsets", synsets)?;
                map.end()
            }
            ValLabels::Devkit { ground_truth, id_to_synset } => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("ground_truth", ground_truth)?;
                map.serialize_entry("id_to_synset", id_to_synset)?;
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod describe_tests {
    use super::*;

    /// The report's dataset line: words and the paths as written, never JSON.
    #[test]
    fn datasets_are_described_in_words() {
        let spec: DatasetSpec = serde_yaml::from_str("{kind: imagenet-val, root: '${IMAGENET_VAL}'}").unwrap();
        assert_eq!(spec.to_string(), "ImageNet 2012 validation images in ${IMAGENET_VAL} (shipped labels)");
        let spec: DatasetSpec =
            serde_yaml::from_str("{kind: image-folder, root: data/val, classes: {count: 10}}").unwrap();
        assert_eq!(spec.to_string(), "class folders under data/val (10 classes)");
        let spec: DatasetSpec =
            serde_yaml::from_str("{kind: list, root: imgs, file: val.txt, classes: imagenet}").unwrap();
        assert_eq!(spec.to_string(), "images listed in val.txt under imgs (ImageNet's 1000 synsets)");
        let spec: DatasetSpec = serde_yaml::from_str("{kind: imagenet-v2, root: '${IMAGENET_V2}'}").unwrap();
        assert_eq!(spec.to_string(), "ImageNet-V2 images in class-index folders under ${IMAGENET_V2}");
    }
}
