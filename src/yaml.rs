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
    // serde_yaml's messages name the field path and the line and column, except for some
    // top-level errors; those get the position of the name they quote.
    serde_yaml::from_str(text).map_err(|e| {
        let message = e.to_string();
        let message = if message.contains(" at line ") { message } else { locate(text, message) };
        YamlError::Invalid { path: path.to_path_buf(), message }
    })
}

/// Prefixes `reason` with the line and column where the backquoted name it mentions occurs in
/// `text` (serde keeps no positions after parsing, so errors about references find them here).
/// Of several names, the rarest in the text is the most specific (`m3` rather than `ensemble`).
pub fn locate(text: &str, reason: String) -> String {
    let is_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let occurrences = |name: &str| -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let code = line.split(" #").next().unwrap_or(line);
            if code.trim_start().starts_with('#') {
                continue;
            }
            for (at, _) in code.match_indices(name) {
                let before = code[..at].chars().next_back();
                let after = code[at + name.len()..].chars().next();
                if before.is_none_or(|c| !is_name(c)) && after.is_none_or(|c| !is_name(c)) {
                    found.push((number + 1, code[..at].chars().count() + 1));
                }
            }
        }
        found
    };
    let best = reason
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|name| !name.is_empty())
        .map(occurrences)
        .filter(|found| !found.is_empty())
        .min_by_key(Vec::len);
    match best.and_then(|found| found.first().copied()) {
        Some((line, column)) => format!("line {line} column {column}: {reason}"),
        None => reason,
    }
}

pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T, YamlError> {
    let text = std::fs::read_to_string(path).map_err(|error| YamlError::Io { path: path.to_path_buf(), error })?;
    parse(&text, path)
}
