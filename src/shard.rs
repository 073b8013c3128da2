//! Shards: one run split over processes or hosts (`--shard K/N`). Every (model, protocol) result
//! is cut into chunks (the store's unit of resuming); chunk `i` belongs to shard `i mod N`, so the
//! split depends only on the image list and the chunk size, never on timing, and each chunk has
//! exactly one owner. A shard writes its chunks as store parts under the full store key (the file
//! names a single run would use) and nothing else; a later plain run (the merge) finds every part
//! present, computes nothing and writes the final files and the report.
//!
//! Because each chunk has one owner and parts are written by atomic rename under names unique
//! per host and process, shards need no lock between them: a part written twice (a shard
//! preempted after writing, then rerun) is written with identical bytes.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::audit::{self, AuditError, AuditOptions};
use crate::eval::{self, EvalReport, RunMode};
use crate::experiment::{is_training_experiment, LoadedExperiment};

/// Shard `index` of `count` (`index` from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShardParseError {
    #[error("`{0}` is not K/N (e.g. 0/4: the first of four shards)")]
    NotAFraction(String),
    #[error("shard {index}/{count}: K counts from 0 and must be below N (at least 1)")]
    OutOfRange { index: usize, count: usize },
}

impl FromStr for Shard {
    type Err = ShardParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let not_a_fraction = || ShardParseError::NotAFraction(text.to_string());
        let (index, count) = text.split_once('/').ok_or_else(not_a_fraction)?;
        let index: usize = index.trim().parse().map_err(|_| not_a_fraction())?;
        let count: usize = count.trim().parse().map_err(|_| not_a_fraction())?;
        if count == 0 || index >= count {
            return Err(ShardParseError::OutOfRange { index, count });
        }
        Ok(Self { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// The shard that owns chunk `chunk` when a run is split in `count`.
    pub fn owner(chunk: usize, count: usize) -> Shard {
        Shard { index: chunk % count.max(1), count: count.max(1) }
    }

    /// Whether this shard computes chunk `chunk`.
    pub fn owns(&self, chunk: usize) -> bool {
        Self::owner(chunk, self.count).index == self.index
    }
}

/// The chunks still missing from a result, and the shards that own them when the parts say how
/// many shards were run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingChunks {
    pub missing: Vec<usize>,
    pub chunks: usize,
    /// The shard count the parts folder records (written by the first shard that ran).
    pub shard_count: Option<usize>,
    pub parts_dir: PathBuf,
}

impl MissingChunks {
    /// The shards to rerun, each once, in order.
    pub fn shards(&self) -> Vec<Shard> {
        let Some(count) = self.shard_count else { return Vec::new() };
        let mut shards: Vec<Shard> = self.missing.iter().map(|&chunk| Shard::owner(chunk, count)).collect();
        shards.dedup();
        shards.sort_by_key(|s| s.index);
        shards.dedup();
        shards
    }
}

impl fmt::Display for MissingChunks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.missing.iter().map(usize::to_string).collect();
        write!(
            f,
            "{} of {} chunks not stored (chunk {}) in {}",
            self.missing.len(),
            self.chunks,
            list.join(", "),
            self.parts_dir.display()
        )?;
        match self.shards().as_slice() {
            [] => write!(f, "; no shard recorded writing here: run without --no-compute to compute them"),
            shards => {
                let names: Vec<String> = shards.iter().map(|s| format!("--shard {s}")).collect();
                write!(f, "; rerun {} (or run without --no-compute to compute them here)", names.join(", "))
            }
        }
    }
}

/// What `audit --shard` did for one experiment file.
#[derive(Debug)]
pub enum ShardOutcome {
    /// Its chunks of every (model, protocol[, setting]) are stored.
    Computed(EvalReport),
    /// Not computed here, and why (absent input, or a training experiment: the merge trains).
    Skipped(String),
}

/// `audit --shard K/N`: this shard's chunks of every result the audit would compute (sweep
/// settings included), stored as parts; no rows, tables or report: a plain `audit` afterwards
/// merges. Training experiments are left to that merge (a training run is not split).
pub fn audit_shard(options: &AuditOptions, shard: Shard) -> Result<Vec<(PathBuf, ShardOutcome)>, AuditError> {
    let mut outcomes = Vec::new();
    for file in audit::experiment_files(&options.paths)? {
        if is_training_experiment(&file) {
            outcomes.push((file, ShardOutcome::Skipped("a training experiment: the merge runs it".into())));
            continue;
        }
        let loaded = LoadedExperiment::read(&file)?;
        let eval_options = options.eval_options(RunMode::Shard(shard));
        eprintln!("audit shard {shard}: {}", file.display());
        let outcome = match eval::run(&loaded, &eval_options) {
            Ok(report) => ShardOutcome::Computed(report),
            Err(error) => match audit::absent_input(&error) {
                Some(reason) => ShardOutcome::Skipped(format!("not run: {reason}")),
                None => return Err(AuditError::Eval { path: file, error: Box::new(error) }),
            },
        };
        outcomes.push((file, outcome));
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k_of_n_and_refuses_the_rest() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        assert_eq!("0/1".parse::<Shard>(), Ok(Shard { index: 0, count: 1 }));
        assert!(matches!("4/4".parse::<Shard>(), Err(ShardParseError::OutOfRange { .. })));
        assert!(matches!("0/0".parse::<Shard>(), Err(ShardParseError::OutOfRange { .. })));
        assert!(matches!("2".parse::<Shard>(), Err(ShardParseError::NotAFraction(_))));
        assert!(matches!("a/4".parse::<Shard>(), Err(ShardParseError::NotAFraction(_))));
    }

    #[test]
    fn every_chunk_has_exactly_one_owner() {
        for count in 1..6 {
            for chunk in 0..20 {
                let owners = (0..count).filter(|&index| Shard { index, count }.owns(chunk)).count();
                assert_eq!(owners, 1, "chunk {chunk} of {count} shards");
            }
        }
    }

    #[test]
    fn missing_chunks_name_their_shards_once() {
        let missing = MissingChunks { missing: vec![1, 5, 6], chunks: 8, shard_count: Some(4), parts_dir: "p".into() };
        assert_eq!(missing.shards(), vec![Shard { index: 1, count: 4 }, Shard { index: 2, count: 4 }]);
        assert!(missing.to_string().contains("rerun --shard 1/4, --shard 2/4"), "{missing}");
    }
}
