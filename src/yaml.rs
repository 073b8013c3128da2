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
    #[error("{path}: not a regular file (a folder, device or pipe cannot be an experiment or recipe)")]
    NotAFile { path: PathBuf },
    #[error("{path}: {bytes} bytes; an experiment or recipe file is at most {MAX_YAML_BYTES} bytes")]
    TooLarge { path: PathBuf, bytes: u64 },
}

/// Experiments and recipes are a few KB; the cap keeps a wrong path (a data file, a dump) from
/// being read whole.
pub const MAX_YAML_BYTES: u64 = 4 << 20;

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

/// A place in a YAML file, 1-based, as serde_yaml reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {} column {}", self.line, self.column)
    }
}

/// Prefixes `reason` with the line and column where the backquoted name it mentions occurs in
/// `text` (see [`position`]).
pub fn locate(text: &str, reason: String) -> String {
    match position(text, &reason) {
        Some(at) => format!("{at}: {reason}"),
        None => reason,
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Every place where `name` occurs as a whole name (not inside a longer one) outside comments.
fn occurrences(text: &str, name: &str) -> Vec<Position> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.split(" #").next().unwrap_or(line);
        if code.trim_start().starts_with('#') {
            continue;
        }
        for (at, _) in code.match_indices(name) {
            let before = code[..at].chars().next_back();
            let after = code[at + name.len()..].chars().next();
            if before.is_none_or(|c| !is_name_char(c)) && after.is_none_or(|c| !is_name_char(c)) {
                found.push(Position { line: number + 1, column: code[..at].chars().count() + 1 });
            }
        }
    }
    found
}

/// Where the backquoted name `message` mentions occurs in `text` (serde keeps no positions after
/// parsing, so errors about references find them here). Of several names, the rarest in the text
/// is the most specific (`m3` rather than `ensemble`).
pub fn position(text: &str, message: &str) -> Option<Position> {
    let best = message
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|name| !name.is_empty())
        .map(|name| occurrences(text, name))
        .filter(|found| !found.is_empty())
        .min_by_key(Vec::len);
    best.and_then(|found| found.first().copied())
}

/// Where the key `field` is written in the entry that `anchor` (an id, or a top-level key) names:
/// the first `field:` after the anchor, on its line or on the more indented lines below it; the
/// anchor itself when the field is not written (a defaulted value). `None` without the anchor.
pub fn field_position(text: &str, anchor: &str, field: &str) -> Option<Position> {
    let lines: Vec<&str> = text.lines().collect();
    let is_key = |name: &str, at: &Position| {
        let rest: String = lines[at.line - 1].chars().skip(at.column - 1 + name.chars().count()).collect();
        rest.trim_start().starts_with(':')
    };
    // An anchor written as a key (`run:`) is preferred over the same word in running text.
    let anchors = occurrences(text, anchor);
    let anchor_at = *anchors.iter().find(|at| is_key(anchor, at)).or(anchors.first())?;
    let indent = |line: &str| line.len() - line.trim_start().len();
    let entry_indent = indent(lines[anchor_at.line - 1]);
    // The entry's lines: the anchor's, then those indented deeper (blank and comment lines too).
    let last = (anchor_at.line..lines.len())
        .take_while(|&i| {
            let code = lines[i].trim_start();
            code.is_empty() || code.starts_with('#') || indent(lines[i]) > entry_indent
        })
        .last()
        .map_or(anchor_at.line, |i| i + 1);
    let key = occurrences(text, field)
        .into_iter()
        .filter(|at| (at.line, at.column) > (anchor_at.line, anchor_at.column) && at.line <= last)
        .find(|at| is_key(field, at));
    Some(key.unwrap_or(anchor_at))
}

/// Reads and parses a YAML file; only regular files of at most [`MAX_YAML_BYTES`] are read
/// (`/dev/zero` or a folder given by mistake is an error, not an endless read).
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T, YamlError> {
    let io = |error| YamlError::Io { path: path.to_path_buf(), error };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(YamlError::NotAFile { path: path.to_path_buf() });
    }
    if meta.len() > MAX_YAML_BYTES {
        return Err(YamlError::TooLarge { path: path.to_path_buf(), bytes: meta.len() });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    parse(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_folders_are_refused_before_reading() {
        let err = read::<serde_yaml::Value>(Path::new("/dev/zero")).unwrap_err();
        assert!(matches!(err, YamlError::NotAFile { .. }), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let err = read::<serde_yaml::Value>(dir.path()).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, vec![b'#'; MAX_YAML_BYTES as usize + 1]).unwrap();
        assert!(matches!(read::<serde_yaml::Value>(&big), Err(YamlError::TooLarge { .. })));
    }
}
