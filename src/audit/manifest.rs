//! What makes a report reproducible beside its numbers: when it was made, by which build of
//! this program, and `manifest.json`, the whole report as data.

use std::path::{Path, PathBuf};

use crate::fsio::{atomic_write, WriteError};
use crate::report::AuditReport;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot encode {path}: {error}")]
    Encode { path: PathBuf, error: serde_json::Error },
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Writes `report` as `out/manifest.json`.
pub fn write_manifest(report: &AuditReport, out: &Path) -> Result<(), ManifestError> {
    let path = out.join("manifest.json");
    let text =
        serde_json::to_string_pretty(report).map_err(|error| ManifestError::Encode { path: path.clone(), error })?;
    atomic_write(&path, text.as_bytes())?;
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
