//! The `resnet-audit` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

use resnet_audit::caffe::{self, CaffeModel};
use resnet_audit::device::DeviceKind;
use resnet_audit::eval::{self, EvalOptions};
use resnet_audit::experiment::LoadedExperiment;
use resnet_audit::inspect::inspect;
use resnet_audit::train::run::{train_seed, Recipe};
use resnet_audit::weights::{HubSettings, WeightsFile, WeightsSource};

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
    /// Train a recipe (YAML) for one or more seeds: per-epoch curve (CSV), checkpoints, final
    /// weights that `eval` loads, and a mean ± std summary of the final validation errors.
    Train {
        /// The training recipe (relative paths inside it start from its own folder)
        recipe: PathBuf,
        /// Train this many seeds: the recipe's seed, seed + 1, …
        #[arg(long, default_value_t = 1)]
        seeds: u64,
        /// Continue each seed from its checkpoint, when there is one
        #[arg(long)]
        resume: bool,
        /// Where runs go: <out>/seed-<n>/{checkpoint,weights}.safetensors, curve.csv
        #[arg(long)]
        out: PathBuf,
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
        /// Where per-image results are stored
        #[arg(long, default_value = "reports/store")]
        store: PathBuf,
    },
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
        Command::Inspect { weights } if weights.ends_with(".caffemodel") => {
            print!("{}", CaffeModel::read(std::path::Path::new(&weights))?);
        }
        Command::Convert(Convert::Caffe { model, mean, out }) => convert_caffe(&model, mean.as_deref(), &out)?,
        Command::Inspect { weights } => {
            let source = WeightsSource::parse(&weights)?;
            let path = source.resolve(&HubSettings::from_env())?;
            let file = WeightsFile::read(&path)?;
            print!("{}", inspect(&file)?);
        }
        Command::Train { recipe, seeds, resume, out } => {
            let base = recipe.parent().map(|p| if p.as_os_str().is_empty() { std::path::Path::new(".") } else { p });
            let base = base.unwrap_or(std::path::Path::new(".")).to_path_buf();
            let parsed: Recipe = resnet_audit::yaml::read(&recipe)?;
            let mut finals = Vec::new();
            for k in 0..seeds {
                let seed = parsed.seed + k;
                let run = train_seed(&parsed, &base, seed, &out.join(format!("seed-{seed}")), resume)?;
                let last = run.curve.last().map(|r| r.val_error).unwrap_or(f64::NAN);
                println!("seed {seed}: final validation error {:.2}% -> {}", 100.0 * last, run.weights.display());
                finals.push(last);
            }
            let n = finals.len() as f64;
            let mean = finals.iter().sum::<f64>() / n;
            let std = if finals.len() > 1 {
                (finals.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
            } else {
                0.0
            };
            println!(
                "final validation error over {} seed(s): {:.2} ± {:.2} % (mean ± sample std)",
                finals.len(),
                100.0 * mean,
                100.0 * std
            );
        }
        Command::Eval { experiment, models, protocols, limit, device, store } => {
            let loaded = LoadedExperiment::read(&experiment)?;
            let options = EvalOptions { models, protocols, limit, device, store_dir: store };
            print!("{}", eval::run(&loaded, &options)?);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The whole cause chain, without a backtrace: these are input errors, not bugs.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
