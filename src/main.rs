//! The `resnet-audit` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Inspect { weights } => {
            let source = WeightsSource::parse(&weights)?;
            let path = source.resolve(&HubSettings::from_env())?;
            let file = WeightsFile::read(&path)?;
            print!("{}", inspect(&file)?);
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
