//! The `resnet-audit` command line: parses arguments (`cli.rs`), runs the library, reports
//! errors with their cause chain.

mod cli;

use std::process::ExitCode;

use clap::Parser;

use resnet_audit::audit;
use resnet_audit::eval::{self, EvalOptions, RunMode};
use resnet_audit::experiment::LoadedExperiment;
use resnet_audit::import::caffe::{self, CaffeModel};
use resnet_audit::inspect::inspect_path;
use resnet_audit::plan;
use resnet_audit::shard::{self, ShardOutcome};
use resnet_audit::slurm::{self, SlurmOptions};
use resnet_audit::train::resume::Resume;
use resnet_audit::train::run::{summarize, train_seed_on, write_curve_chart, Recipe};
use resnet_audit::weights::{HubSettings, WeightsSource};

use cli::{Cli, Command, Convert, ConvertArgs, ExperimentArgs, StoreArgs};

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

/// Before an audit starts: each experiment's total cost in ResNet-50-equivalent passes (no
/// calibration here: `plan` estimates the hours). Best effort: a file the audit will reject is
/// reported by the audit itself.
fn print_audit_cost(paths: &[std::path::PathBuf], limit: Option<usize>) {
    let Ok(files) = audit::experiment_files(paths) else { return };
    for file in files.iter().filter(|f| !resnet_audit::experiment::is_training_experiment(f)) {
        let Ok(loaded) = LoadedExperiment::read(file) else { continue };
        if let Ok(cost) = plan::plan(&loaded, limit, None) {
            let images =
                cost.images.map_or(format!("{} images assumed", plan::ASSUMED_IMAGES), |n| format!("{n} images"));
            eprintln!(
                "audit: {}: {:.3} ResNet-50-equivalent passes per image, {:.3e} in all ({images}; `resnet-audit plan` estimates the hours)",
                file.display(),
                cost.total_resnet50_passes(),
                cost.total_passes()
            );
        }
    }
}

/// How a command ended, when it ran to the end.
enum Outcome {
    Done,
    /// `check` read the report and found rows that fail the gate (exit status 1; errors are 2).
    GateFailed,
}

/// Exit status for a command that could not do its work (unreadable input, bad arguments: the
/// same as clap's usage errors), kept apart from 1, the gate's verdict.
const EXIT_ERROR: u8 = 2;

fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Convert(ConvertArgs { format: Some(Convert::Caffe { model, mean, out }), .. }) => {
            convert_caffe(&model, mean.as_deref(), &out)?
        }
        Command::Convert(ConvertArgs { format: None, weights: Some(weights), out: Some(out) }) => {
            let provenance = resnet_audit::import::convert::convert_to(&weights, &out)?;
            println!("wrote {} from {}; its metadata:", out.display(), weights.display());
            for (key, value) in provenance.to_metadata() {
                println!("  {key}: {value}");
            }
        }
        Command::Convert(ConvertArgs { .. }) => anyhow::bail!("convert: give a weights file and --out"),
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
            let device = resnet_audit::device::Runtime { device, ..Default::default() }.open()?;
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
                store_dir: args.store.clone(),
                runtime: args.runtime.runtime(),
                limit: args.limit,
                command,
                no_compute: args.split.no_compute,
            };
            if let Some(shard) = args.split.shard {
                // A shard stores its parts and stops: the report is the merge's.
                for (file, outcome) in shard::audit_shard(&options, shard)? {
                    match outcome {
                        ShardOutcome::Computed(report) => print!("{}:\n{report}", file.display()),
                        ShardOutcome::Skipped(why) => println!("{}: skipped: {why}", file.display()),
                    }
                }
                println!("shard {shard} done; after every shard, `audit` (or `audit --no-compute`) merges");
                return Ok(Outcome::Done);
            }
            print_audit_cost(&options.paths, options.limit);
            let report = audit::run(&options)?;
            use resnet_audit::report::{ClaimKind, Status};
            let count = |kind: Option<ClaimKind>, f: &dyn Fn(&Status) -> bool| {
                report.rows.iter().filter(|r| r.claim_kind == kind && f(&r.status)).count()
            };
            let subset = |s: &Status| matches!(s, Status::Subset(_));
            let (published, baseline) = (Some(ClaimKind::Published), Some(ClaimKind::Baseline));
            println!(
                "{} rows. Published claims: {} reproduced, {} drift, {} subset, {} not run. \
                 Recorded baselines: {} matched, {} regressed, {} subset, {} not run. \
                 Without a claim: {} measured, {} not run. {} empty",
                report.rows.len(),
                count(published, &|s| *s == Status::Reproduced),
                count(published, &|s| *s == Status::Drift),
                count(published, &subset),
                count(published, &|s| matches!(s, Status::NotRun(_))),
                count(baseline, &|s| *s == Status::Baseline),
                count(baseline, &|s| *s == Status::Regressed),
                count(baseline, &subset),
                count(baseline, &|s| matches!(s, Status::NotRun(_))),
                count(None, &|s| *s == Status::Measured),
                count(None, &|s| matches!(s, Status::NotRun(_))),
                report.rows.iter().filter(|r| matches!(r.status, Status::Empty(_))).count()
            );
            println!("report: {}", args.out.join("report.html").display());
            println!("per-image results (reused by the next run): {}", args.store.display());
        }
        Command::Check { report, require_all, strict_subsets } => {
            let outcome = audit::check(&report, audit::CheckOptions { require_all, strict_subsets })?;
            if !outcome.failures.is_empty() {
                for failure in &outcome.failures {
                    eprintln!("{failure}");
                }
                eprintln!("gate failed: {} of {} rows", outcome.failures.len(), outcome.rows);
                return Ok(Outcome::GateFailed);
            }
            println!(
                "gate passed: {} rows, none drifted or regressed, {} not run{}, {} on a subset of their test set{}",
                outcome.rows,
                outcome.not_run,
                if outcome.not_run > 0 { " (pass --require-all to fail on those)" } else { "" },
                outcome.subsets,
                if outcome.subsets > 0 { " (pass --strict-subsets to fail on those)" } else { "" }
            );
        }
        Command::Eval { run, models, protocols, store: StoreArgs { store }, sweeps, results_file, split } => {
            let loaded = LoadedExperiment::read(&run.experiment)?;
            let options = EvalOptions {
                models,
                protocols,
                limit: run.limit,
                runtime: run.runtime.runtime(),
                store_dir: store.clone(),
                sweeps,
                mode: split.mode(),
            };
            let report = eval::run(&loaded, &options)?;
            print!("{report}");
            if let Some(file) = results_file {
                audit::write_results_file(&loaded, &report, &file)?;
                eprintln!("results: {}", file.display());
            }
            // On stderr: stdout is the results table alone, the same for any store.
            eprintln!("per-image results (reused by the next run): {}", store.display());
        }
        Command::Status { run, store: StoreArgs { store } } => {
            let loaded = LoadedExperiment::read(&run.experiment)?;
            // What `audit` computes: every protocol and sweep setting.
            let options = EvalOptions {
                models: Vec::new(),
                protocols: Vec::new(),
                limit: run.limit,
                runtime: run.runtime.runtime(),
                store_dir: store,
                sweeps: true,
                mode: RunMode::Status,
            };
            print!("{}", eval::run(&loaded, &options)?);
        }
        Command::Plan { run: ExperimentArgs { experiment, limit, runtime }, images_per_second } => {
            if resnet_audit::experiment::is_training_experiment(&experiment) {
                // Its cost is its recipe's epochs, not test-time passes.
                println!(
                    "{}: a training experiment: its cost is its recipe's epochs (see `train`)",
                    experiment.display()
                );
                return Ok(Outcome::Done);
            }
            let loaded = LoadedExperiment::read(&experiment)?;
            let calibrate = plan::Speed::Calibrate(runtime.runtime());
            let speed = Some(images_per_second.map_or(calibrate, plan::Speed::Given));
            print!("{}", plan::plan(&loaded, limit, speed)?);
        }
        Command::Slurm(args) => {
            let options = SlurmOptions {
                scripts: args.scripts.clone().unwrap_or_else(|| args.out.join("slurm")),
                experiment: args.experiment,
                shards: args.shards,
                out: args.out,
                store: args.store,
                limit: args.limit,
                runtime: args.runtime.runtime(),
                partition: args.partition,
                time: args.time,
                cpus_per_task: args.cpus_per_task,
                gpus_per_task: args.gpus_per_task,
                account: args.account,
                extra: args.extra,
                program: std::env::current_exe()?,
            };
            let scripts = options.write()?;
            println!(
                "wrote {}, {} and {}",
                scripts.shards.display(),
                scripts.merge.display(),
                scripts.submit.display()
            );
            if args.submit {
                let ids = slurm::submit(&scripts)?;
                println!(
                    "submitted shards job {} (array 0-{}) and merge job {} (afterok)",
                    ids.shards,
                    args.shards - 1,
                    ids.merge
                );
            }
        }
        Command::Flips(args) => {
            let loaded = LoadedExperiment::read(&args.run.experiment)?;
            // Only the two results compared (an ensemble's members come with it).
            let options = EvalOptions {
                models: if args.model == "ensemble" { Vec::new() } else { vec![args.model.clone()] },
                protocols: vec![args.from.clone(), args.to.clone()],
                limit: args.run.limit,
                runtime: args.run.runtime.runtime(),
                store_dir: args.store.store,
                sweeps: false,
                mode: RunMode::Complete,
            };
            let report = eval::run(&loaded, &options)?;
            print!("{}", audit::flip_list(&loaded, &report, &args.model, &args.from, &args.to)?);
        }
        Command::GpuCheck { device, quick, out, root } => {
            let quick = quick || device.kind == resnet_audit::device::DeviceKind::Cpu;
            let runtime = resnet_audit::device::Runtime { device, ..Default::default() };
            let options = resnet_audit::gpu_check::CheckOptions { runtime, quick, root, out: out.clone() };
            let report = resnet_audit::gpu_check::run(&options)?;
            print!("{}", resnet_audit::gpu_check::markdown(&report));
            println!("\nwritten: {} and {}", out.join("gpu-check.json").display(), out.join("gpu-check.md").display());
            if !report.passed() {
                return Ok(Outcome::GateFailed);
            }
        }
    }
    Ok(Outcome::Done)
}

/// cuDNN (and cuBLAS) may use TF32 for f32 work on Ampere and later unless told not to; candle
/// has no per-call switch for cuDNN's convolutions, so without `--tf32` the process says no
/// through NVIDIA's variable (a user's own setting wins). Before any thread or CUDA context.
fn forbid_tf32_unless_asked(cli: &Cli) {
    let tf32 = match &cli.command {
        Command::Eval { run, .. } | Command::Status { run, .. } | Command::Plan { run, .. } => run.runtime.tf32,
        Command::Flips(args) => args.run.runtime.tf32,
        Command::Audit(args) => args.runtime.tf32,
        _ => false,
    };
    if !tf32 && std::env::var_os("NVIDIA_TF32_OVERRIDE").is_none() {
        std::env::set_var("NVIDIA_TF32_OVERRIDE", "0");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    forbid_tf32_unless_asked(&cli);
    resnet_audit::device::pin_thread_count(cli.threads);
    resnet_audit::progress::set_quiet(cli.quiet);
    // Inference allocates every activation afresh; without this glibc unmaps and page-faults
    // them back on every pass (up to 2x slower layers). Process-wide, hence here.
    resnet_audit::model::nhwc::keep_freed_activations();
    match run(cli) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::GateFailed) => ExitCode::FAILURE,
        Err(error) => {
            // The whole cause chain, without a backtrace: these are input errors, not bugs.
            eprintln!("error: {error:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
