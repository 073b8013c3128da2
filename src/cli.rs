//! The command line's shape (clap): subcommands, their options and help. clap stays here; the
//! library's types know nothing of it (the enums below map onto them).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use resnet_audit::device::{DeviceSpec, Precision, Runtime};
use resnet_audit::eval::RunMode;
use resnet_audit::model::Backend;
use resnet_audit::shard::Shard;

#[derive(Parser)]
#[command(name = "resnet-audit", version = resnet_audit::version::VERSION, about = "Audit published ResNet results under explicit test protocols")]
pub struct Cli {
    /// Worker threads for decoding and the CPU model [default: all available cores; under Slurm,
    /// SLURM_CPUS_PER_TASK]
    #[arg(short = 'j', long, global = true, value_name = "N", value_parser = positive)]
    pub threads: Option<usize>,
    /// No progress bars or progress lines (results, the report's location and errors are still
    /// printed)
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// A count of at least 1 (`--limit 0` or `-j 0` would silently do nothing).
fn positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("not a whole number: {e}")),
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Show what a weights file holds: depth, block type, stride variant, classes,
    /// parameters and multiply-adds at 224x224.
    Inspect {
        /// A safetensors file, a Caffe .caffemodel (layers listed), a Torch7 .t7 (module tree),
        /// a PyTorch checkpoint (.pth/.pt/.th/.bin, zip or legacy; tensors listed), or
        /// hf://org/name[@revision]/file.safetensors (read from the
        /// Hugging Face cache: HF_HUB_CACHE or HF_HOME; HF_HUB_OFFLINE=1 forbids downloads)
        weights: String,
    },
    /// Convert released weights to safetensors in our naming: `convert <file> --out x.safetensors`
    /// for any format (recognised by content), or `convert caffe` for a Caffe model with its mean.
    Convert(ConvertArgs),
    /// Train a recipe (YAML) for one or more seeds: per-epoch curve (CSV and Parquet),
    /// checkpoints, final weights that `eval` loads, and a per-seed summary (summary.csv) with
    /// the mean ± std of the final validation errors.
    Train {
        /// The training recipe (relative paths inside it start from its own folder)
        recipe: PathBuf,
        /// Train this many seeds: the recipe's seed, seed + 1, …
        #[arg(long, default_value_t = 1)]
        seeds: u64,
        /// Continue each seed from its checkpoint, when there is one (and it was written under
        /// this recipe)
        #[arg(long)]
        resume: bool,
        /// With --resume: continue even when the checkpoint was written under a different
        /// recipe; both recipes are then recorded in the checkpoint and the weights
        #[arg(long, requires = "resume")]
        allow_recipe_change: bool,
        /// Where runs go: <out>/seed-<n>/{checkpoint,weights}.safetensors, curve.{csv,parquet};
        /// <out>/summary.csv
        #[arg(long)]
        out: PathBuf,
        /// Where the model, batches and labels live: cpu, cuda or cuda:N (data loading and
        /// augmentation stay on the CPU; training computes in f32)
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
    },
    /// Run every experiment (or resume it from the store) and write the report: measured vs
    /// claimed numbers, charts, Markdown and HTML. Experiments whose data or weights are absent
    /// are listed as not run, with the fix.
    Audit(AuditArgs),
    /// The CI gate over a written report. Exit status: 0 the gate passed, 1 a row drifted from
    /// its published claim or regressed from its recorded baseline beyond its tolerance, or
    /// scored no image (or, with the flags, was not run / ran on a subset), 2 the report could
    /// not be read or is incomplete (a file its manifest lists is missing or changed)
    Check {
        /// A report folder written by `audit`
        report: PathBuf,
        /// Also fail on rows that were not run
        #[arg(long)]
        require_all: bool,
        /// Also fail on rows measured on fewer images than their claim's test set (`--limit`)
        #[arg(long)]
        strict_subsets: bool,
    },
    /// Evaluate an experiment's models under its protocols: prints top-1/top-5 error per
    /// (model, protocol) and stores every image's scores (resuming an interrupted run).
    Eval {
        #[command(flatten)]
        run: ExperimentArgs,
        /// Only this model id (repeatable)
        #[arg(long = "model", value_name = "ID")]
        models: Vec<String>,
        /// Only this protocol id (repeatable)
        #[arg(long = "protocol", value_name = "ID")]
        protocols: Vec<String>,
        #[command(flatten)]
        store: StoreArgs,
        /// Also run every other setting of the protocols' `sweep:` (as `<id>.sweep<k>`, as the audit does)
        #[arg(long)]
        sweeps: bool,
        /// Also write the results table (the columns of the audit's results.csv) to FILE
        #[arg(long, value_name = "FILE")]
        results_file: Option<PathBuf>,
        #[command(flatten)]
        split: SplitArgs,
    },
    /// Per (model, protocol[, sweep setting]) of an experiment (as `audit` runs it), how many
    /// chunks are stored: the progress of a run or of its shards.
    Status {
        #[command(flatten)]
        run: ExperimentArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The cost of an experiment before it runs: per (model, protocol[, sweep setting]) forward
    /// passes and multiply-adds per image, images, and estimated hours on this machine (from a
    /// short calibration pass) or at a given speed; then the total.
    Plan {
        #[command(flatten)]
        run: ExperimentArgs,
        /// ResNet-50-equivalent images per second of the machine that will run it (e.g. a GPU's),
        /// instead of calibrating on this one
        #[arg(long, value_name = "RATE")]
        images_per_second: Option<f64>,
    },
    /// Write (and with --submit, submit) a Slurm job for an experiment: an array of N shards
    /// (`audit --shard $SLURM_ARRAY_TASK_ID/N`) and a merge job that runs after all of them
    /// succeeded (`--dependency=afterok`) and writes the report.
    Slurm(SlurmArgs),
    /// The images whose top-1 answer changed from one protocol of a model to another: fixed
    /// (wrong, then right) and broken (right, then wrong), with the label and both guesses.
    /// Reads the store (computing what is missing, as `eval` does).
    Flips(FlipsArgs),
    /// The GPU self-check (`tests/gpu/check.sh`): parity, the demo against the CPU, training
    /// steps, throughput; JSON and Markdown under --out. Exit status 1 when a check fails.
    #[command(hide = true)]
    GpuCheck {
        /// The device under test (every dtype is checked on it)
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
        /// Smaller batches, sets and passes (always on the CPU)
        #[arg(long)]
        quick: bool,
        /// Where gpu-check.json and gpu-check.md go
        #[arg(long)]
        out: PathBuf,
        /// The repository root (its fixtures/ and experiments/)
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
}

#[derive(Args)]
pub struct FlipsArgs {
    #[command(flatten)]
    pub run: ExperimentArgs,
    /// The model id (`ensemble` for ensemble protocols)
    #[arg(long, value_name = "ID")]
    pub model: String,
    /// The protocol compared from
    #[arg(long, value_name = "ID")]
    pub from: String,
    /// The protocol compared to
    #[arg(long, value_name = "ID")]
    pub to: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// One experiment as `eval`, `status` and `plan` read it: the file, the image limit (a quick
/// run is stored separately, so `status` and `plan` take the run's), the runtime (in the keys).
#[derive(Args)]
pub struct ExperimentArgs {
    /// The experiment YAML (relative paths inside it start from its own folder)
    pub experiment: PathBuf,
    /// At most N images, evenly spaced over the dataset (a quick run; stored separately)
    #[arg(long, value_name = "N", value_parser = positive)]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// The result store of `eval` and `status`.
#[derive(Args)]
pub struct StoreArgs {
    /// Where per-image results are stored
    #[arg(long, default_value = "reports/store")]
    pub store: PathBuf,
}

/// Splitting a run: one shard of it, or the merge of stored shards.
#[derive(Args, Clone, Copy)]
pub struct SplitArgs {
    /// Compute only shard K of N (K from 0): its chunks of every result, stored as parts; no
    /// rows or report (a plain run afterwards merges)
    #[arg(long, value_name = "K/N", conflicts_with = "no_compute")]
    pub shard: Option<Shard>,
    /// Compute nothing: every result must be stored, whole or in the parts of shards; a missing
    /// part is an error naming the shard to rerun
    #[arg(long)]
    pub no_compute: bool,
}

impl SplitArgs {
    pub fn mode(self) -> RunMode {
        match (self.shard, self.no_compute) {
            (Some(shard), _) => RunMode::Shard(shard),
            (None, true) => RunMode::StoredOnly,
            (None, false) => RunMode::Complete,
        }
    }
}

#[derive(Args)]
pub struct SlurmArgs {
    /// The experiment YAML
    pub experiment: PathBuf,
    /// Array tasks (shards)
    #[arg(long, value_name = "N", value_parser = positive)]
    pub shards: usize,
    /// The merge job's report folder
    #[arg(long, default_value = "reports/latest")]
    pub out: PathBuf,
    /// The store every shard and the merge share (on a file system all nodes see)
    #[arg(long, default_value = "reports/store")]
    pub store: PathBuf,
    /// Where the scripts and the jobs' logs go [default: <out>/slurm]
    #[arg(long)]
    pub scripts: Option<PathBuf>,
    /// At most N images (a quick run; stored separately)
    #[arg(long, value_name = "N", value_parser = positive)]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[arg(long)]
    pub partition: Option<String>,
    /// Wall-clock limit per task, in Slurm's format (e.g. 04:00:00)
    #[arg(long)]
    pub time: Option<String>,
    /// Cores per task (the task's threads follow it)
    #[arg(long, value_parser = positive)]
    pub cpus_per_task: Option<usize>,
    #[arg(long, value_parser = positive)]
    pub gpus_per_task: Option<usize>,
    #[arg(long)]
    pub account: Option<String>,
    /// An extra `#SBATCH` line for both jobs (repeatable), e.g. --sbatch=--qos=long
    #[arg(long = "sbatch", value_name = "OPTION", allow_hyphen_values = true)]
    pub extra: Vec<String>,
    /// Submit both jobs with sbatch and print their ids
    #[arg(long)]
    pub submit: bool,
}

#[derive(Args)]
pub struct AuditArgs {
    /// Experiment files, or folders of them (their *.yaml, not recursive)
    #[arg(default_value = "experiments")]
    pub paths: Vec<PathBuf>,
    /// The report folder: results.parquet/.csv, charts, report.md, report.html, copies
    #[arg(long, default_value = "reports/latest")]
    pub out: PathBuf,
    /// Where per-image results are stored (an interrupted audit resumes from it)
    #[arg(long, default_value = "reports/store")]
    pub store: PathBuf,
    /// At most N images per experiment, evenly spaced (a quick look; stored separately)
    #[arg(long, value_name = "N", value_parser = positive)]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    #[command(flatten)]
    pub split: SplitArgs,
}

/// `convert <file> --out <x.safetensors>`, or a format's own subcommand.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ConvertArgs {
    #[command(subcommand)]
    pub format: Option<Convert>,
    /// A .caffemodel, .t7, or PyTorch checkpoint (zip or legacy), recognised by content
    #[arg(required = true)]
    pub weights: Option<PathBuf>,
    /// The safetensors file to write
    #[arg(long, required = true)]
    pub out: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Convert {
    /// A Caffe ResNet (the 2015 release): BatchNorm/Scale split, stride on the first 1x1, ceil-mode
    /// pool1, recorded in the output's metadata; optionally its mean image.
    Caffe {
        /// ResNet-50/101/152-model.caffemodel
        model: PathBuf,
        /// ResNet_mean.binaryproto: written beside the output as <out stem>_mean.safetensors
        #[arg(long)]
        mean: Option<PathBuf>,
        /// The safetensors file to write
        #[arg(long)]
        out: PathBuf,
    },
}

/// Where and how models run: one flag group shared by `eval`, `status`, `plan`, `audit` and
/// `slurm`, mapped onto one [`Runtime`] (`main` builds it once).
#[derive(Args, Clone, Copy)]
pub struct RuntimeArgs {
    /// The compute device: `cpu`, or `cuda`/`cuda:N` (GPU N; a build with `--features cuda`)
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// The precision of weights and activations: f32, bf16 or f16 (stored apart). Batch-norm
    /// folding stays f64, softmax and statistics f32/f64; bf16/f16 run on candle's ops.
    #[arg(long, default_value = "f32")]
    pub dtype: Precision,
    /// `fast`: this crate's CPU convolutions (NHWC, batch norm folded, f32 only); `candle`:
    /// candle's own operations, slower, for comparison and debugging. A GPU, bf16 and f16 always
    /// run candle's (the store key records which ran).
    #[arg(long, value_enum, default_value_t = BackendArg::Fast)]
    pub backend: BackendArg,
    /// Allow TF32 in f32 matrix products on a GPU (faster; products rounded to 10 mantissa bits;
    /// stored apart). Off by default: an audit is about exact numbers
    #[arg(long)]
    pub tf32: bool,
    /// Prepared chunks of views queued ahead of the model [default: as many as fit 1 GiB, 1-8]
    #[arg(long, value_name = "N", value_parser = positive)]
    pub prefetch: Option<usize>,
}

impl RuntimeArgs {
    pub fn runtime(self) -> Runtime {
        Runtime {
            device: self.device,
            dtype: self.dtype,
            backend: self.backend.into(),
            tf32: self.tf32,
            prefetch: self.prefetch,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum BackendArg {
    Fast,
    Candle,
}

impl From<BackendArg> for Backend {
    fn from(arg: BackendArg) -> Self {
        match arg {
            BackendArg::Fast => Backend::Fast,
            BackendArg::Candle => Backend::Candle,
        }
    }
}
