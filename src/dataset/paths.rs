//! Paths from an experiment file: `${VAR}` and `${VAR:-default}` expansion, then resolution against the
//! experiment's directory.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::DatasetError;

/// Expands `${VAR}` (and `${VAR:-default}`, the default used when VAR is unset or empty, as in the shell) in
/// `path` and joins a relative result onto `base`. `field` names the spec entry in errors.
pub fn resolve(base: &Path, field: &'static str, path: &Path) -> Result<PathBuf, DatasetError> {
    let expanded = expand(field, path)?;
    Ok(if expanded.is_absolute() { expanded } else { base.join(expanded) })
}

fn expand(field: &'static str, path: &Path) -> Result<PathBuf, DatasetError> {
    // Paths from YAML are always UTF-8; a non-UTF-8 path was built in code and has nothing to expand.
    let Some(text) = path.to_str() else { return Ok(path.to_path_buf()) };
    let bad = |reason: String| DatasetError::BadPath { field, value: text.to_string(), reason };
    let mut out = OsString::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| bad("`${` without a closing `}`".to_string()))?;
        let (var, default) = match after[..end].split_once(":-") {
            Some((var, default)) => (var, Some(default)),
            None => (&after[..end], None),
        };
        if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad(format!("`${{{var}}}` is not an environment variable name")));
        }
        match (std::env::var_os(var), default) {
            (Some(value), _) if !value.is_empty() => out.push(value),
            (_, Some(default)) => out.push(default),
            // An empty value would silently turn `${DATA}/val` into `/val`.
            (Some(_), None) => return Err(bad(format!("environment variable `{var}` is empty"))),
            (None, None) => {
                return Err(DatasetError::UnsetVariable { field, value: text.to_string(), var: var.to_string() })
            }
        }
        rest = &after[end + 1..];
    }
    out.push(rest);
    Ok(PathBuf::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_variables_and_joins_relative_paths() {
        std::env::set_var("RESNET_AUDIT_PATHS_TEST_A", "/data/imagenet");
        let base = Path::new("/work/exp");
        let resolved = resolve(base, "dataset.root", Path::new("${RESNET_AUDIT_PATHS_TEST_A}/val")).unwrap();
        assert_eq!(resolved, PathBuf::from("/data/imagenet/val"));
        assert_eq!(resolve(base, "dataset.root", Path::new("val")).unwrap(), PathBuf::from("/work/exp/val"));
        assert_eq!(resolve(base, "dataset.root", Path::new("/abs")).unwrap(), PathBuf::from("/abs"));
        // The shell's default form, for an unset variable and a set one.
        let defaulted =
            resolve(base, "dataset.root", Path::new("${RESNET_AUDIT_PATHS_TEST_UNSET_B:-data/x}/val")).unwrap();
        assert_eq!(defaulted, PathBuf::from("/work/exp/data/x/val"));
        let set = resolve(base, "dataset.root", Path::new("${RESNET_AUDIT_PATHS_TEST_A:-data/x}")).unwrap();
        assert_eq!(set, PathBuf::from("/data/imagenet"));
        // A bare `$` is not a variable reference.
        assert_eq!(resolve(base, "dataset.root", Path::new("a$b")).unwrap(), PathBuf::from("/work/exp/a$b"));
    }

    #[test]
    fn unset_empty_and_malformed_variables_are_errors() {
        let base = Path::new("/");
        let unset = resolve(base, "dataset.root", Path::new("${RESNET_AUDIT_PATHS_TEST_UNSET}/val")).unwrap_err();
        let message = unset.to_string();
        assert!(message.contains("RESNET_AUDIT_PATHS_TEST_UNSET") && message.contains("dataset.root"), "{message}");
        std::env::set_var("RESNET_AUDIT_PATHS_TEST_EMPTY", "");
        let empty = resolve(base, "dataset.file", Path::new("${RESNET_AUDIT_PATHS_TEST_EMPTY}/x")).unwrap_err();
        assert!(empty.to_string().contains("is empty"), "{empty}");
        let open = resolve(base, "dataset.root", Path::new("${HOME/x")).unwrap_err();
        assert!(open.to_string().contains("closing"), "{open}");
        let name = resolve(base, "dataset.root", Path::new("${A B}")).unwrap_err();
        assert!(name.to_string().contains("not an environment variable name"), "{name}");
    }
}
