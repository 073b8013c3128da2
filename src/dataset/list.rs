//! Caffe-style list files: `relative/path label` per line.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use super::spec::NamedClasses;
use super::{check_dir, first_few, read_text, Dataset, DatasetError, Sample};

/// Reads the list `file` of images under `root`, labels indexing `classes`; every listed file must exist.
pub(super) fn load(root: PathBuf, file: PathBuf, classes: NamedClasses) -> Result<Dataset, DatasetError> {
    check_dir(&root, "dataset.root")?;
    let text = read_text(&file, "dataset.file")?;
    let num_classes = classes.names.len();
    let mut samples = Vec::new();
    let mut lines_of: HashMap<String, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        // Samples are keyed by path, not position, so blank lines cannot shift anything.
        if trimmed.is_empty() {
            continue;
        }
        let malformed = |reason: String| DatasetError::Malformed { path: file.clone(), line, reason };
        // The label is after the last whitespace, as in Caffe's ImageDataLayer, so paths may hold spaces.
        let Some((path_text, label_text)) = trimmed.rsplit_once(char::is_whitespace) else {
            return Err(malformed(format!("expected `relative/path label`, found `{trimmed}`")));
        };
        let id = normalise(path_text.trim_end()).map_err(malformed)?;
        let label = parse_label(label_text, num_classes).map_err(|error| match error {
            LabelError::NotInteger => {
                DatasetError::NotAnInteger { path: file.clone(), line, field: "label", value: label_text.to_string() }
            }
            LabelError::OutOfRange(label) => {
                DatasetError::LabelOutOfRange { path: file.clone(), line, label, classes: num_classes }
            }
        })?;
        if let Some(&first_line) = lines_of.get(&id) {
            return Err(DatasetError::Duplicate { path: file, line, first_line, field: "path", value: id });
        }
        lines_of.insert(id.clone(), line);
        samples.push(Sample::file(id.clone(), root.join(&id), label));
    }
    if samples.is_empty() {
        return Err(DatasetError::Empty { path: file, field: "dataset.file" });
    }
    samples.sort_by(|a, b| a.id.cmp(&b.id));
    // Report every missing file at once: a partial copy should be fixed in one go, not one error per run.
    let missing: Vec<String> = samples
        .iter()
        .filter(|sample| !std::fs::metadata(&sample.path).is_ok_and(|meta| meta.is_file()))
        .map(|sample| format!("{} (line {})", sample.id, lines_of.get(&sample.id).copied().unwrap_or(0)))
        .collect();
    if !missing.is_empty() {
        return Err(DatasetError::MissingFiles { path: file, root, count: missing.len(), first: first_few(&missing) });
    }
    let description = format!(
        "list {} under {} ({} images, {} classes: {})",
        file.display(),
        root.display(),
        samples.len(),
        num_classes,
        classes.source
    );
    Ok(Dataset { description, root, classes: classes.names, samples })
}

enum LabelError {
    NotInteger,
    OutOfRange(i64),
}

fn parse_label(text: &str, num_classes: usize) -> Result<usize, LabelError> {
    let label: i64 = text.parse().map_err(|_| LabelError::NotInteger)?;
    match usize::try_from(label) {
        Ok(index) if index < num_classes => Ok(index),
        _ => Err(LabelError::OutOfRange(label)),
    }
}

/// The `/`-joined relative path, so that `./a/b.jpg` and `a//b.jpg` are the same id as `a/b.jpg`.
fn normalise(path: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str().unwrap_or_default()),
            Component::CurDir => {}
            Component::ParentDir => return Err(format!("`{path}`: `..` is not allowed; paths stay under root")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("`{path}` is absolute; list paths are relative to root"))
            }
        }
    }
    if parts.is_empty() {
        return Err(format!("`{path}` is not a file path"));
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_relative_paths_and_rejects_escapes() {
        assert_eq!(normalise("./a//b.jpg").unwrap(), "a/b.jpg");
        assert!(normalise("../a.jpg").is_err());
        assert!(normalise("/a.jpg").is_err());
        assert!(normalise(".").is_err());
    }

    #[test]
    fn labels_are_non_negative_integers_below_the_class_count() {
        assert!(matches!(parse_label("3", 4), Ok(3)));
        assert!(matches!(parse_label("4", 4), Err(LabelError::OutOfRange(4))));
        assert!(matches!(parse_label("-1", 4), Err(LabelError::OutOfRange(-1))));
        assert!(matches!(parse_label("1.0", 4), Err(LabelError::NotInteger)));
    }
}
