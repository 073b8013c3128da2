//! Class-name files: one class per line, the line order is the class order.

use std::collections::HashMap;
use std::path::Path;

use super::{read_text, DatasetError};

/// Reads one class name per line (trimmed). Blank lines at the end are ignored; a blank line before the last
/// class is an error, since it would shift every later index. Duplicates are errors naming both lines.
pub(super) fn read_class_file(path: &Path, field: &'static str) -> Result<Vec<String>, DatasetError> {
    let text = read_text(path, field)?;
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let used = lines.iter().rposition(|line| !line.is_empty()).map_or(0, |last| last + 1);
    if used == 0 {
        return Err(DatasetError::Empty { path: path.to_path_buf(), field });
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, name) in lines[..used].iter().enumerate() {
        let line = i + 1;
        if name.is_empty() {
            let reason = "empty line in a class list (it would shift every later class index)".to_string();
            return Err(DatasetError::Malformed { path: path.to_path_buf(), line, reason });
        }
        if let Some(&first_line) = seen.get(name) {
            let (path, value) = (path.to_path_buf(), name.to_string());
            return Err(DatasetError::Duplicate { path, line, first_line, field: "class", value });
        }
        seen.insert(name, line);
    }
    Ok(lines[..used].iter().map(|name| name.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<String>, DatasetError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("classes.txt");
        std::fs::write(&path, text).unwrap();
        read_class_file(&path, "dataset.classes")
    }

    #[test]
    fn reads_lines_in_order_and_tolerates_trailing_blank_lines() {
        assert_eq!(read("b\r\n a \nc\n\n\n").unwrap(), vec!["b", "a", "c"]);
    }

    #[test]
    fn rejects_interior_blank_lines_duplicates_and_empty_files() {
        assert!(read("a\n\nb\n").unwrap_err().to_string().contains("classes.txt:2: empty line"));
        assert!(read("a\nb\na\n").unwrap_err().to_string().contains("classes.txt:3: class `a` repeats line 1"));
        assert!(read("\n\n").unwrap_err().to_string().contains("is empty"));
    }
}
