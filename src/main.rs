//! The `resnet-audit` command line.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

use resnet_audit::audit;
use resnet_audit::device::DeviceKind;
use resnet_audit::eval::{self, EvalOptions};
use resnet_audit::experiment::LoadedExperiment;
use resnet_audit::import::caffe::{self, CaffeModel};
use resnet_audit::inspect::inspect_path;
use resnet_audit::model::Backend;
use resnet_audit::train::resume::Resume;
use resnet_audit::train::run::{summarize, train_seed_on, write_curve_chart, Recipe};
use resnet_audit::weights::{HubSettings, WeightsSource};

#[derive(Parser)]
#[command(name = "resnet-audit", version, about = "Audit published ResNet results under explicit test protocols")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what a weights file holds: depth, block type, stride variant, classes,
    /// parameters and multiply-adds at 224x224.
    Inspect {
        /// A safetensors file, a Caffe .caffemodel (layers listed), or
        /// hf://org/name[@revision]/file.safetensors (read from the
        /// Hugging Face cache: HF_HUB_CACHE or HF_HOME; HF_HUB_OFFLINE=1 forbids downloads)
        weights: String,
    },
    /// Convert released weights to safetensors in our naming.
    #[command(subcommand)]
    Convert(Convert),
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
        /// Where the model, batches and labels live (data loading and augmentation stay on the CPU)
        #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
        device: DeviceKind,
    },
    /// Run every experiment (or resume it from the store) and write the report: measured vs
    /// claimed numbers, charts, Markdown and HTML. Experiments whose data or weights are absent
    /// are listed as not run, with the fix.
    Audit(AuditArgs),
    /// The CI gate: exit non-zero when a row of a written report drifted beyond its tolerance
    Check {
        /// A report folder written by `audit`
        report: PathBuf,
        /// Also fail on rows that were not run
        #[arg(long)]
        require_all: bool,
    },
    /// Evaluate an experiment's models under its protocols: prints top-1/top-5 error per
    /// (model, protocol) and stores every image's scores (resuming an interrupted run).
    Eval {
        /// The experiment YAML (relative paths inside it start from its own folder)
        experiment: PathBuf,
        /// Only this model id (repeatable)
        #[arg(long = "model", value_name = "ID")]
        models: Vec<String>,
        /// Only this protocol id (repeatable)
        #[arg(long = "protocol", value_name = "ID")]
        protocols: Vec<String>,
        /// At most N images, evenly spaced over the dataset (a quick run; stored separately)
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
        device: DeviceKind,
        /// `fast`: NHWC convolutions with fused epilogues on the CPU (f32, BN folded);
        /// `candle`: candle's plain ops, for comparison and debugging
        #[arg(long, value_enum, default_value_t = Backend::Fast)]
        backend: Backend,
        /// Where per-image results are stored
        #[arg(long, default_value = "reports/store")]
        store: PathBuf,
    },
}

#[derive(Args)]
struct AuditArgs {
    /// Experiment files, or folders of them (their *.yaml, not recursive)
    #[arg(default_value = "experiments")]
    paths: Vec<PathBuf>,
    /// The report folder: results.parquet/.csv, charts, report.md, report.html, copies
    #[arg(long, default_value = "reports/latest")]
    out: PathBuf,
    /// Where per-image results are stored (an interrupted audit resumes from it)
    #[arg(long, default_value = "reports/store")]
    store: PathBuf,
    /// At most N images per experiment, evenly spaced (a quick look; stored separately)
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    device: DeviceKind,
    /// `fast`: NHWC convolutions with fused epilogues on the CPU (f32, BN folded);
    /// `candle`: candle's plain ops, for comparison and debugging
    #[arg(long, value_enum, default_value_t = Backend::Fast)]
    backend: Backend,
}

#[derive(Subcommand)]
enum Convert {
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

fn convert_caffe(model: &std::path::Path, mean: Option<&std::path::Path>, out: &std::path::Path) -> anyhow::Result<()> {
    let caffe = CaffeModel::read(model)?;
    let mean_blob = mean.map(|path| caffe::read_mean(path).map(|blob| (path, blob))).transpose()?;
    caffe.write_safetensors(out, mean_blob.as_ref().map(|(p, b)| (*p, b)))?;
    println!("wrote {} (Caffe ResNet-{}, {} classes)", out.display(), caffe.config.depth(), caffe.config.num_classes);
    if let Some((path, blob)) = &mean_blob {
        let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let mean_out = out.with_file_name(format!("{stem}_mean.safetensors"));
        caffe::write_mean(&mean_out, path, blob)?;
        println!("wrote {} (mean image {:?}, BGR, 0-255)", mean_out.display(), blob.shape);
    }
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Convert(Convert::Caffe { model, mean, out }) => convert_caffe(&model, mean.as_deref(), &out)?,
        Command::Inspect { weights } => {
            let source = WeightsSource::parse(&weights)?;
            let path = source.resolve(&HubSettings::from_env())?;
            print!("{}", inspect_path(&path)?);
        }
        Command::Train { recipe, seeds, resume, allow_recipe_change, out, device } => {
            let resume = match (resume, allow_recipe_change) {
                (false, _) => Resume::Fresh,
                (true, false) => Resume::SameRecipe,
                (true, true) => Resume::AllowRecipeChange,
            };
            let base = recipe.parent().map(|p| if p.as_os_str().is_empty() { std::path::Path::new(".") } else { p });
            let base = base.unwrap_or(std::path::Path::new(".")).to_path_buf();
            let parsed: Recipe = resnet_audit::yaml::read(&recipe)?;
            let device = device.open()?;
            let mut runs = Vec::new();
            for k in 0..seeds {
                let seed = parsed.seed + k;
                let run = train_seed_on(&parsed, &base, seed, &out.join(format!("seed-{seed}")), resume, &device)?;
                let last = run.curve.last().map(|r| r.val_error).unwrap_or(f64::NAN);
                println!("seed {seed}: final validation error {:.2}% -> {}", 100.0 * last, run.weights.display());
                runs.push(run);
            }
            let summary = summarize(&runs);
            summary.write_csv(&out.join("summary.csv"))?;
            let title =
                if parsed.description.is_empty() { recipe.display().to_string() } else { parsed.description.clone() };
            let chart = write_curve_chart(&runs, &out, &title)?;
            println!("{summary}");
            println!("curves: {} (and .svg)", out.join(&chart.png).display());
        }
        Command::Audit(args) => {
            let command = std::env::args().collect::<Vec<_>>().join(" ");
            let options = audit::AuditOptions {
                paths: args.paths,
                out: args.out.clone(),
                store_dir: args.store,
                device: args.device,
                backend: args.backend,
                limit: args.limit,
                command,
            };
            let report = audit::run(&options)?;
            let count =
                |f: &dyn Fn(&resnet_audit::report::Status) -> bool| report.rows.iter().filter(|r| f(&r.status)).count();
            use resnet_audit::report::Status;
            println!(
                "{} rows: {} reproduced, {} drift, {} measured without a claim, {} not run",
                report.rows.len(),
                count(&|s| *s == Status::Reproduced),
                count(&|s| *s == Status::Drift),
                count(&|s| *s == Status::Measured),
                count(&|s| matches!(s, Status::NotRun(_)))
            );
            println!("report: {}", args.out.join("report.html").display());
        }
        Command::Check { report, require_all } => {
            let outcome = audit::check(&report, require_all)?;
            if !outcome.failures.is_empty() {
                for failure in &outcome.failures {
                    eprintln!("{failure}");
                }
                anyhow::bail!("{} of {} rows failed the gate", outcome.failures.len(), outcome.rows);
            }
            println!(
                "gate passed: {} rows, none drifted, {} not run{}",
                outcome.rows,
                outcome.not_run,
                if outcome.not_run > 0 { " (pass --require-all to fail on those)" } else { "" }
            );
        }
        Command::Eval { experiment, models, protocols, limit, device, backend, store } => {
            let loaded = LoadedExperiment::read(&experiment)?;
            let options = EvalOptions { models, protocols, limit, device, backend, store_dir: store };
            print!("{}", eval::run(&loaded, &options)?);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    resnet_audit::device::pin_thread_count();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The whole cause chain, without a backtrace: these are input errors, not bugs.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
