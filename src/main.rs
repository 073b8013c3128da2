//! The `resnet-audit` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

use resnet_audit::device::DeviceKind;
use resnet_audit::eval::{self, EvalOptions};
use resnet_audit::experiment::LoadedExperiment;
use resnet_audit::inspect::inspect;
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
        /// A safetensors file, or hf://org/name[@revision]/file.safetensors (read from the
        /// Hugging Face cache: HF_HUB_CACHE or HF_HOME; HF_HUB_OFFLINE=1 forbids downloads)
        weights: String,
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

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Inspect { weights } => {
            let source = WeightsSource::parse(&weights)?;
            let path = source.resolve(&HubSettings::from_env())?;
            let file = WeightsFile::read(&path)?;
            print!("{}", inspect(&file)?);
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
