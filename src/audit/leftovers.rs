//! Temporary files left by writers that died mid-write (a full disk, kill -9): `atomic_write`
//! names them `.<name>.tmp-<host>-<pid>-<n>`, older versions `.<name>.tmp-<pid>-<n>` and
//! `.<name>.tmp`. The audit removes, in its store and report folders, those whose process is
//! gone; a live writer's (this host, pid running) and another host's (its pid means nothing
//! here) are left alone.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::fsio::{host_name, TEMP_MARKER};

/// A `.tmp` file without a pid is taken as abandoned only when untouched for this long: no
/// writer of this program keeps a temporary file open that long without writing to it.
const UNNAMED_TEMP_AGE: Duration = Duration::from_secs(3600);

/// Who wrote a temporary file, read from its name.
#[derive(Debug, PartialEq, Eq)]
enum Writer {
    /// `.tmp-<host>-<pid>-<n>`.
    HostPid { host: String, pid: u32 },
    /// `.tmp-<pid>-<n>` (before temp names carried the host).
    Pid(u32),
    /// `.tmp` (before temp names carried the pid).
    Unnamed,
}

fn writer_of(name: &str) -> Option<Writer> {
    if !name.starts_with('.') {
        return None;
    }
    if name.ends_with(".tmp") {
        return Some(Writer::Unnamed);
    }
    let tail = &name[name.rfind(TEMP_MARKER)? + TEMP_MARKER.len()..];
    // From the right, since a host name may contain '-': counter, pid, then the host.
    let mut parts = tail.rsplitn(3, '-');
    let _counter: u64 = parts.next()?.parse().ok()?;
    let pid: u32 = parts.next()?.parse().ok()?;
    Some(match parts.next() {
        Some(host) => Writer::HostPid { host: host.to_string(), pid },
        None => Writer::Pid(pid),
    })
}

/// Whether process `pid` exists on this host (a process of another user counts as existing).
fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: signal 0 only checks that the process exists and may be signalled; nothing is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

fn abandoned(path: &Path, writer: &Writer, this_host: &str) -> bool {
    match writer {
        Writer::HostPid { host, pid } => host == this_host && !pid_alive(*pid),
        Writer::Pid(pid) => !pid_alive(*pid),
        Writer::Unnamed => std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| SystemTime::now().duration_since(modified).ok())
            .is_some_and(|age| age > UNNAMED_TEMP_AGE),
    }
}

/// Removes abandoned temporary files under `root` (recursively); returns the ones removed.
/// A folder that does not exist yet has none; an unreadable entry is left as it is (cleanup is
/// housekeeping, never a reason to stop an audit).
pub fn remove_abandoned_temp_files(root: &Path) -> Vec<PathBuf> {
    let this_host = host_name();
    let mut removed = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                pending.push(path);
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(writer) = writer_of(&name) else { continue };
            if abandoned(&path, &writer, &this_host) && std::fs::remove_file(&path).is_ok() {
                removed.push(path);
            }
        }
    }
    removed.sort();
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pid no process has: above the kernel's pid_max (at most 2^22 on Linux).
    const DEAD_PID: u32 = 9_999_999;

    #[test]
    fn temp_names_of_every_version_are_read() {
        assert_eq!(
            writer_of(".results.parquet.tmp-node-7.example-4242-3"),
            Some(Writer::HostPid { host: "node-7.example".into(), pid: 4242 })
        );
        assert_eq!(writer_of(".results.csv.tmp-4242-0"), Some(Writer::Pid(4242)));
        assert_eq!(writer_of(".results.csv.tmp"), Some(Writer::Unnamed));
        assert_eq!(writer_of("results.csv"), None);
        assert_eq!(writer_of(".hidden"), None);
        // Not a temp name of ours, though it looks close: left alone.
        assert_eq!(writer_of(".notes.tmp-draft"), None);
    }

    #[test]
    fn only_temp_files_of_dead_processes_on_this_host_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let host = host_name();
        let nested = dir.path().join("store/model");
        std::fs::create_dir_all(&nested).unwrap();
        let dead = nested.join(format!(".part-0.parquet{TEMP_MARKER}{host}-{DEAD_PID}-0"));
        let dead_old_style = dir.path().join(format!(".results.csv{TEMP_MARKER}{DEAD_PID}-1"));
        let live = dir.path().join(format!(".report.md{TEMP_MARKER}{host}-{}-2", std::process::id()));
        let other_host = dir.path().join(format!(".report.html{TEMP_MARKER}elsewhere-{DEAD_PID}-0"));
        let fresh_unnamed = dir.path().join(".results.parquet.tmp");
        let kept_file = dir.path().join("results.csv");
        for path in [&dead, &dead_old_style, &live, &other_host, &fresh_unnamed, &kept_file] {
            std::fs::write(path, b"x").unwrap();
        }
        let removed = remove_abandoned_temp_files(dir.path());
        let mut expected = vec![dead.clone(), dead_old_style.clone()];
        expected.sort();
        assert_eq!(removed, expected);
        assert!(!dead.exists() && !dead_old_style.exists());
        for kept in [&live, &other_host, &fresh_unnamed, &kept_file] {
            assert!(kept.exists(), "{} was removed", kept.display());
        }
    }
}
