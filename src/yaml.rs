//! YAML parsing in one place, so the choice of YAML crate is one line (serde_yaml today;
//! serde_norway is a maintained drop-in fork).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("cannot read {path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Parses `text` (read from `path`, which is only named in messages).
pub fn parse<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, YamlError> {
    // serde_yaml's messages name the field path and the line and column.
    serde_yaml::from_str(text).map_err(|e| YamlError::Invalid { path: path.to_path_buf(), message: e.to_string() })
}

pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T, YamlError> {
    let text = std::fs::read_to_string(path).map_err(|error| YamlError::Io { path: path.to_path_buf(), error })?;
    parse(&text, path)
}
