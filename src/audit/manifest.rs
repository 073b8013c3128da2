//! What makes a report reproducible beside its numbers: when it was made, by which build of
//! this program, and `manifest.json`, the whole report as data. The manifest is written last and
//! lists every other file of the report with its SHA-256, so a report left half-written (a full
//! disk, a killed run) or changed afterwards is caught by `check` ([`verify_complete`]) instead
//! of passing as a report.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::fsio::{atomic_write, WriteError, TEMP_MARKER};
use crate::report::AuditReport;

/// The manifest's name inside a report folder.
pub const MANIFEST: &str = "manifest.json";

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot encode {path}: {error}")]
    Encode { path: PathBuf, error: serde_json::Error },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("cannot read {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("{path}: the report is incomplete: its manifest (written last) is missing; write the report again with `resnet-audit audit --out {}`", dir.display())]
    NoManifest { path: PathBuf, dir: PathBuf },
    #[error("{path}: not a manifest of this program's reports: {error}")]
    Decode { path: PathBuf, error: serde_json::Error },
    #[error("{}: the report is incomplete: {file} listed in {MANIFEST} is missing", dir.display())]
    FileMissing { dir: PathBuf, file: String },
    #[error("{}: the report is incomplete or changed: {file} does not have the SHA-256 {MANIFEST} lists (half-written, or edited after the audit)", dir.display())]
    FileChanged { dir: PathBuf, file: String },
}

/// One file of the report: its path relative to the report folder and its SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListedFile {
    pub path: String,
    pub sha256: String,
}

#[derive(Serialize)]
struct Written<'a> {
    #[serde(flatten)]
    report: &'a AuditReport,
    /// Every file of the report but this one, sorted by path.
    files: Vec<ListedFile>,
}

#[derive(Deserialize)]
struct Read {
    files: Vec<ListedFile>,
}

fn sha256_of(path: &Path) -> Result<String, ManifestError> {
    let bytes = std::fs::read(path).map_err(|error| ManifestError::Read { path: path.to_path_buf(), error })?;
    Ok(format!("{:x}", sha2::Sha256::digest(&bytes)))
}

/// The report's files as written by `write_report`: tables, charts, documents, and the
/// experiment copies under `experiments/` (walked, since imports keep their relative places).
fn report_files(report: &AuditReport, out: &Path) -> Result<Vec<String>, ManifestError> {
    let mut files: Vec<String> =
        ["results.parquet", "results.csv", "report.md", "report.html"].map(String::from).into();
    for chart in &report.charts {
        files.push(chart.png.clone());
        files.push(chart.svg.clone());
    }
    // What changed image by image: the per-class table, reliability diagrams, thumbnails.
    if !report.image_by_image.is_empty() {
        files.extend([super::per_class::PER_CLASS_PARQUET, super::per_class::PER_CLASS_CSV].map(String::from));
    }
    for analysis in &report.image_by_image {
        files.extend(analysis.charts.iter().flat_map(|c| [c.png.clone(), c.svg.clone()]));
        let shown = analysis.pairs.iter().flat_map(|p| p.fixed_shown.iter().chain(&p.broken_shown));
        files.extend(shown.filter_map(|image| image.thumbnail.clone()));
    }
    let mut pending = vec![PathBuf::from("experiments")];
    while let Some(relative) = pending.pop() {
        let folder = out.join(&relative);
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(ManifestError::Read { path: folder, error }),
        };
        for entry in entries {
            let entry = entry.map_err(|error| ManifestError::Read { path: folder.clone(), error })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.contains(TEMP_MARKER) {
                continue;
            }
            let path = relative.join(&name);
            if entry.path().is_dir() {
                pending.push(path);
            } else {
                files.push(path.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// Writes `report` as `out/manifest.json`, with every other file of the report and its SHA-256.
/// Call it last: its presence says the rest is complete.
pub fn write_manifest(report: &AuditReport, out: &Path) -> Result<(), ManifestError> {
    let path = out.join(MANIFEST);
    let files = report_files(report, out)?
        .into_iter()
        .map(|file| Ok(ListedFile { sha256: sha256_of(&out.join(&file))?, path: file }))
        .collect::<Result<Vec<_>, ManifestError>>()?;
    let text = serde_json::to_string_pretty(&Written { report, files })
        .map_err(|error| ManifestError::Encode { path: path.clone(), error })?;
    atomic_write(&path, text.as_bytes())?;
    Ok(())
}

/// Checks that the report in `dir` is whole: its manifest exists and every file it lists is
/// there with the listed SHA-256. The first missing or different file is the error.
pub fn verify_complete(dir: &Path) -> Result<(), ManifestError> {
    let path = dir.join(MANIFEST);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(ManifestError::NoManifest { path, dir: dir.to_path_buf() })
        }
        Err(error) => return Err(ManifestError::Read { path, error }),
    };
    let read: Read =
        serde_json::from_str(&text).map_err(|error| ManifestError::Decode { path: path.clone(), error })?;
    for listed in &read.files {
        let file = dir.join(&listed.path);
        if !file.is_file() {
            return Err(ManifestError::FileMissing { dir: dir.to_path_buf(), file: listed.path.clone() });
        }
        if sha256_of(&file)? != listed.sha256 {
            return Err(ManifestError::FileChanged { dir: dir.to_path_buf(), file: listed.path.clone() });
        }
    }
    Ok(())
}

/// The current time, UTC, as RFC 3339 (`2026-11-30T12:00:00Z`).
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_date(days as i64);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// (year, month, day) of a day counted from 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_date(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The program and the commit it was built from (see [`crate::version`]), never the commit of
/// the repository the audit runs in.
pub fn software_version() -> String {
    crate::version::software_version()
}

#[cfg(test)]
mod tests {
    use super::civil_date;

    #[test]
    fn civil_dates_of_known_days() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(59), (1970, 3, 1)); // after a non-leap February
        assert_eq!(civil_date(11_016), (2000, 2, 29)); // the leap day of a year divisible by 400
        assert_eq!(civil_date(19_782), (2024, 2, 29));
        assert_eq!(civil_date(20_454), (2026, 1, 1));
    }
}
