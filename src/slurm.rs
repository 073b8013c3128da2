//! `resnet-audit slurm`: the two batch scripts that run an audit on a Slurm cluster. An array job
//! of N tasks, task K running `audit EXPERIMENT --shard K/N` (its chunks of every result, into the
//! shared store), and a merge job, submitted with `--dependency=afterok:<array job>` so that it
//! starts only when every shard succeeded, running `audit EXPERIMENT --no-compute`: it computes
//! nothing, writes the report, and names the shard to rerun if a part is missing.
//!
//! Threads per task follow `SLURM_CPUS_PER_TASK` (`device::pin_thread_count`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::device::{Precision, Runtime};
use crate::fsio::{self, WriteError};
use crate::model::Backend;

#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("--{field}: `{value}` would break the batch script (no line breaks in #SBATCH values)")]
    LineBreak { field: &'static str, value: String },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("cannot make {path} executable: {error}")]
    Permissions { path: PathBuf, error: std::io::Error },
    #[error("cannot run sbatch (is Slurm installed and SLURM_CONF set?): {0}")]
    Spawn(std::io::Error),
    #[error("sbatch {script} failed ({status}): {stderr}")]
    Sbatch { script: PathBuf, status: std::process::ExitStatus, stderr: String },
    #[error("sbatch {script} printed no job id (`{stdout}`)")]
    NoJobId { script: PathBuf, stdout: String },
    #[error("cannot read the current directory: {0}")]
    CurrentDir(std::io::Error),
}

/// What the jobs run and what they ask the scheduler for.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    pub experiment: PathBuf,
    pub shards: usize,
    pub out: PathBuf,
    pub store: PathBuf,
    /// Where the scripts and the tasks' logs are written.
    pub scripts: PathBuf,
    pub limit: Option<usize>,
    /// Passed on to every task (`--device`, `--dtype`, `--backend`, `--tf32`, `--prefetch`).
    pub runtime: Runtime,
    pub partition: Option<String>,
    pub time: Option<String>,
    pub cpus_per_task: Option<usize>,
    pub gpus_per_task: Option<usize>,
    pub account: Option<String>,
    /// Extra `#SBATCH` lines for both jobs (`--qos=long`, with or without the `#SBATCH`).
    pub extra: Vec<String>,
    /// The `resnet-audit` the jobs run (this very binary, by absolute path).
    pub program: PathBuf,
}

/// The scripts written.
#[derive(Debug, Clone)]
pub struct SlurmScripts {
    pub shards: PathBuf,
    pub merge: PathBuf,
    /// Submits both, the merge depending on the shards (what `--submit` does).
    pub submit: PathBuf,
}

/// Job ids of a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub shards: String,
    pub merge: String,
}

/// One shell word, single-quoted unless it is plainly safe.
fn quote(word: &str) -> String {
    let plain = !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn path_word(path: &Path) -> String {
    quote(&path.to_string_lossy())
}

impl SlurmOptions {
    /// `#SBATCH` lines both jobs share.
    fn common_directives(&self, directory: &Path) -> Result<Vec<String>, SlurmError> {
        let mut lines = vec![format!("--chdir={}", directory.display())];
        let texts = [("partition", &self.partition), ("time", &self.time), ("account", &self.account)];
        for (field, value) in texts {
            if let Some(value) = value {
                lines.push(format!("--{field}={value}"));
            }
        }
        let counts = [("cpus-per-task", self.cpus_per_task), ("gpus-per-task", self.gpus_per_task)];
        for (field, value) in counts {
            if let Some(value) = value {
                lines.push(format!("--{field}={value}"));
            }
        }
        for extra in &self.extra {
            let option = extra.trim().strip_prefix("#SBATCH").unwrap_or(extra).trim();
            lines.push(option.to_string());
        }
        if let Some(line) = lines.iter().find(|l| l.contains(['\n', '\r'])) {
            let field = if self.extra.iter().any(|e| e.contains(['\n', '\r'])) { "sbatch" } else { "option" };
            return Err(SlurmError::LineBreak { field, value: line.clone() });
        }
        Ok(lines)
    }

    /// The audit command line both jobs share (then `--shard` or `--no-compute`).
    fn audit_command(&self) -> String {
        let mut words = vec![
            path_word(&self.program),
            "audit".into(),
            path_word(&self.experiment),
            "--store".into(),
            path_word(&self.store),
            "--device".into(),
            quote(&self.runtime.device.to_string()),
            "--backend".into(),
            quote(backend_name(self.runtime.backend)),
        ];
        if self.runtime.dtype != Precision::F32 {
            words.extend(["--dtype".into(), self.runtime.dtype.to_string()]);
        }
        if self.runtime.tf32 {
            words.push("--tf32".into());
        }
        if let Some(depth) = self.runtime.prefetch {
            words.extend(["--prefetch".into(), depth.to_string()]);
        }
        if let Some(limit) = self.limit {
            words.extend(["--limit".into(), limit.to_string()]);
        }
        words.join(" ")
    }

    fn script(&self, header: &[String], body: &str) -> String {
        let mut text = String::from("#!/bin/bash\n# Written by `resnet-audit slurm`.\n");
        for line in header {
            text.push_str(&format!("#SBATCH {line}\n"));
        }
        text.push_str("set -euo pipefail\n");
        text.push_str(body);
        text.push('\n');
        text
    }

    /// Writes the array script, the merge script and a submit script into `self.scripts`.
    pub fn write(&self) -> Result<SlurmScripts, SlurmError> {
        let directory = std::env::current_dir().map_err(SlurmError::CurrentDir)?;
        let scripts = if self.scripts.is_absolute() { self.scripts.clone() } else { directory.join(&self.scripts) };
        let common = self.common_directives(&directory)?;
        let last = self.shards - 1;
        let mut shard_header = vec![
            "--job-name=resnet-audit-shards".to_string(),
            format!("--array=0-{last}"),
            format!("--output={}", scripts.join("shard-%a.out").display()),
        ];
        shard_header.extend(common.iter().cloned());
        let shard_body = format!(
            "# Task K of the array computes shard K of {n}: its chunks of every result, into the store.\n\
             exec {} --shard \"$SLURM_ARRAY_TASK_ID/{n}\"",
            self.audit_command(),
            n = self.shards
        );
        let mut merge_header = vec![
            "--job-name=resnet-audit-merge".to_string(),
            format!("--output={}", scripts.join("merge.out").display()),
        ];
        merge_header.extend(common);
        let merge_body = format!(
            "# Submitted with --dependency=afterok:<the array job>: every shard's parts are stored.\n\
             # Computes nothing; a missing part is an error naming the shard to rerun.\n\
             exec {} --no-compute --out {}",
            self.audit_command(),
            path_word(&self.out)
        );
        let written = SlurmScripts {
            shards: scripts.join("shards.sbatch"),
            merge: scripts.join("merge.sbatch"),
            submit: scripts.join("submit.sh"),
        };
        let submit_body = format!(
            "shards=$(sbatch --parsable {})\n\
             merge=$(sbatch --parsable --dependency=afterok:\"${{shards%%;*}}\" {})\n\
             echo \"shards job ${{shards%%;*}}, merge job ${{merge%%;*}}\"",
            path_word(&written.shards),
            path_word(&written.merge)
        );
        fsio::atomic_write(&written.shards, self.script(&shard_header, &shard_body).as_bytes())?;
        fsio::atomic_write(&written.merge, self.script(&merge_header, &merge_body).as_bytes())?;
        fsio::atomic_write(&written.submit, self.script(&[], &submit_body).as_bytes())?;
        for path in [&written.shards, &written.merge, &written.submit] {
            make_executable(path)?;
        }
        Ok(written)
    }
}

fn make_executable(path: &Path) -> Result<(), SlurmError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|error| SlurmError::Permissions { path: path.to_path_buf(), error })
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Fast => "fast",
        Backend::Candle => "candle",
    }
}

/// Submits the array, then the merge depending on it (`afterok`).
pub fn submit(scripts: &SlurmScripts) -> Result<Submitted, SlurmError> {
    let shards = sbatch(&scripts.shards, &[])?;
    let merge = sbatch(&scripts.merge, &[format!("--dependency=afterok:{shards}")])?;
    Ok(Submitted { shards, merge })
}

fn sbatch(script: &Path, options: &[String]) -> Result<String, SlurmError> {
    let output =
        Command::new("sbatch").arg("--parsable").args(options).arg(script).output().map_err(SlurmError::Spawn)?;
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(SlurmError::Sbatch { script: script.to_path_buf(), status: output.status, stderr });
    }
    // `--parsable` prints `<id>` or `<id>;<cluster>`.
    let id = stdout.split(';').next().unwrap_or_default().trim().to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(SlurmError::NoJobId { script: script.to_path_buf(), stdout });
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(scripts: &Path) -> SlurmOptions {
        SlurmOptions {
            experiment: "experiments/demo.yaml".into(),
            shards: 4,
            out: "reports/it's here".into(),
            store: "reports/store".into(),
            scripts: scripts.to_path_buf(),
            limit: Some(40),
            runtime: Runtime::default(),
            partition: Some("gpu".into()),
            time: Some("04:00:00".into()),
            cpus_per_task: Some(8),
            gpus_per_task: None,
            account: None,
            extra: vec!["#SBATCH --qos=long".into(), "--mem=16G".into()],
            program: "/opt/bin/resnet-audit".into(),
        }
    }

    #[test]
    fn scripts_hold_the_array_the_shard_and_the_merge() {
        let dir = tempfile::tempdir().unwrap();
        let written = options(dir.path()).write().unwrap();
        let shards = std::fs::read_to_string(&written.shards).unwrap();
        for line in [
            "#SBATCH --array=0-3",
            "#SBATCH --partition=gpu",
            "#SBATCH --time=04:00:00",
            "#SBATCH --cpus-per-task=8",
            "#SBATCH --qos=long",
            "#SBATCH --mem=16G",
        ] {
            assert!(shards.lines().any(|l| l == line), "{line} missing from:\n{shards}");
        }
        assert!(shards.contains("--shard \"$SLURM_ARRAY_TASK_ID/4\""), "{shards}");
        assert!(shards.contains("/opt/bin/resnet-audit audit experiments/demo.yaml --store reports/store --device cpu --backend fast --limit 40"), "{shards}");
        assert!(!shards.contains("gpus-per-task") && !shards.contains("account"), "{shards}");
        let merge = std::fs::read_to_string(&written.merge).unwrap();
        assert!(!merge.contains("--array") && merge.contains("--no-compute --out 'reports/it'\\''s here'"), "{merge}");
        let submit = std::fs::read_to_string(&written.submit).unwrap();
        assert!(submit.contains("--dependency=afterok:"), "{submit}");
    }

    #[test]
    fn a_line_break_in_an_option_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = options(dir.path());
        options.extra.push("--qos=x\n--array=0-99".into());
        assert!(matches!(options.write(), Err(SlurmError::LineBreak { field: "sbatch", .. })));
    }
}
