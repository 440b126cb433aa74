//! `capsnet`: train, evaluate, inspect and benchmark CapsNet experiments.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use capsnet_train::backend::BackendKind;
use capsnet_train::bench::{self, BenchOptions};
use capsnet_train::data::load_experiment_data;
use capsnet_train::eval::evaluate_ensemble;
use capsnet_train::report::{EvalReport, EvalSetReport, ProgressMode, RunLog};
use capsnet_train::{TrainOptions, checkpoint, info, load, run_dir};
use clap::{Args, Parser, Subcommand};

/// Tensor buffers are large and short-lived; mimalloc reuses them instead of mapping fresh,
/// zeroed pages from the OS for every one (see docs/performance.md, "Allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "capsnet",
    version,
    about = "Capsule networks (Sabour et al. 2017) on burn"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train an experiment: `capsnet train experiments/quickstart.toml train.epochs=2`.
    Train(TrainArgs),
    /// Evaluate a checkpoint (or a run directory's latest checkpoint) on the test set.
    Eval(EvalArgs),
    /// Classify image files (PNG, JPEG; folders are walked) with a trained run, preprocessed
    /// as the run's data: class, capsule lengths, top-k; `--reconstruct DIR` for the decoder's
    /// reconstructions.
    Predict(PredictArgs),
    /// Write a run's weights as safetensors with the PyTorch reference's tensor names and
    /// layouts (scripts/reference/capsnet_torch.py); `--reference-batch N` also writes a test
    /// batch with capsnet's outputs, losses and gradients on it, for cross-framework checks.
    Export(ExportArgs),
    /// Make a run directory from a safetensors file (`capsnet export`'s, or PyTorch's with the
    /// same names): evaluate it, predict with it, or train on from it with `train --resume`.
    Import(ImportArgs),
    /// Print the network's layer shapes and parameter counts.
    Info(ExperimentArgs),
    /// Measure training and inference images/s on random inputs (JSON on stdout).
    Bench(BenchArgs),
    /// List the backends compiled into this binary.
    Backends,
    /// Expand and validate an experiment's `[sweep]` into jobs (used by `cargo xtask sweep`).
    SweepPlan(SweepPlanArgs),
    /// Run a sweep plan (`sweep-plan --json`) here, several training processes at once within a
    /// time budget (each job stops in time with a result), and pack the results into one
    /// archive: for leased machines without cargo (docs/gpu.md).
    Launch(LaunchArgs),
    /// Download and verify datasets into the cache (or --dir) for offline use and the tests.
    Download(DownloadArgs),
    /// Draw the paper's Fig. 3 (reconstructions) and Fig. 4 (dimension perturbations) from a
    /// trained CapsNet, as PNG files and TensorBoard images.
    Figures(FiguresArgs),
    /// Check that another backend computes the same lengths, reconstructions, losses and
    /// gradients as the reference for the same weights and inputs (exit 1 if not).
    Parity(ParityArgs),
}

#[derive(Args)]
struct ParityArgs {
    /// Experiment file (TOML): its network and loss are compared.
    experiment: PathBuf,
    /// Overrides as `dotted.key=value` (TOML literals), applied after the files.
    overrides: Vec<String>,
    /// The backend to check.
    #[arg(long)]
    backend: String,
    /// The backend it must agree with.
    #[arg(long, default_value = "flex")]
    reference: String,
    /// Run the reference with burn's generic operations (`runtime.fused_ops = false`), e.g.
    /// `--backend flex --reference-generic` checks the fused kernels against the generic path.
    #[arg(long)]
    reference_generic: bool,
    /// Examples in the batch.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct DownloadArgs {
    /// `mnist`, `fashion-mnist`, `cifar10`, `svhn`, `smallnorb`, several separated by commas,
    /// or `all` (every dataset that can be fetched, about 1.2 GB; MultiMNIST and expanded MNIST
    /// are generated from MNIST, affNIST and your own data are not downloaded). Default: the two
    /// the tests read.
    #[arg(long, default_value = "mnist,fashion-mnist")]
    dataset: String,
    /// Folder to download into (default: the cache, $XDG_CACHE_HOME/capsnet or ~/.cache/capsnet).
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Args)]
struct FiguresArgs {
    /// Checkpoint directory, or a run directory (its latest checkpoint).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Output folder (default: <run dir>/figures).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Test images in the reconstruction grid.
    #[arg(long, default_value_t = 8)]
    images: usize,
    /// Test images to draw dimension perturbations for.
    #[arg(long, default_value_t = 3)]
    perturbed: usize,
    /// Dataset directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
struct SweepPlanArgs {
    /// Experiment file (TOML) with a `[sweep]` table.
    experiment: PathBuf,
    /// Overrides as `dotted.key=value`, applied to every job before its sweep values.
    overrides: Vec<String>,
    /// Directory holding sweep directories.
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
    /// Print JSON (the format `cargo xtask sweep` reads).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ExperimentArgs {
    /// Experiment file (TOML).
    experiment: PathBuf,
    /// Overrides as `dotted.key=value` (TOML literals), applied after the files.
    overrides: Vec<String>,
    /// Backend (shorthand for `runtime.backend=…`).
    #[arg(long)]
    backend: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct TrainArgs {
    /// Experiment file (TOML).
    experiment: PathBuf,
    /// Overrides as `dotted.key=value` (TOML literals), applied after the files.
    overrides: Vec<String>,
    /// Run directory (default: runs/<name>).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Continue the run in the run directory from its latest checkpoint.
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Continue the run in the run directory if it holds one (as --resume), else start it
    /// (what sweep jobs do, so a job restarted after an interruption goes on where it was).
    #[arg(long, conflicts_with_all = ["resume", "overwrite"])]
    resume_or_start: bool,
    /// Delete an existing run directory and start over.
    #[arg(long)]
    overwrite: bool,
    /// Dataset directory (shorthand for `data.root=…`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Backend (shorthand for `runtime.backend=…`).
    #[arg(long)]
    backend: Option<String>,
    /// Plain log lines instead of progress bars, even on a terminal.
    #[arg(long)]
    plain: bool,
    /// Print nothing but errors (the run log still gets everything).
    #[arg(long, conflicts_with = "plain")]
    quiet: bool,
    /// Stop after this many optimizer steps, with a checkpoint (resume later with --resume).
    #[arg(long)]
    stop_after_steps: Option<u64>,
    /// A time budget in seconds: at the first step boundary past it, evaluate where the run
    /// stands, write a checkpoint and a summary marked as cut short (for leased machines; the
    /// evaluation comes on top of the budget).
    #[arg(long)]
    stop_after_secs: Option<f64>,
}

#[derive(Args)]
struct ExportArgs {
    /// Checkpoint directory, or a run directory (its latest checkpoint).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Output file (default: <run dir>/export/model.safetensors).
    #[arg(long)]
    out: Option<PathBuf>,
    /// File format (only `safetensors`).
    #[arg(long, default_value = "safetensors")]
    format: String,
    /// Also write `<out stem>.batch.safetensors` (the first N test images, their labels, and
    /// capsnet's lengths, reconstructions and losses of a training-mode step on them) and
    /// `<out stem>.grads.safetensors` (that step's gradients, named like the weights).
    #[arg(long)]
    reference_batch: Option<usize>,
    /// Dataset directory (for --reference-batch).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
struct ImportArgs {
    /// The safetensors file.
    weights: PathBuf,
    /// The experiment the weights belong to (its network must match the file).
    #[arg(long)]
    experiment: PathBuf,
    /// Overrides as `dotted.key=value` (TOML literals), applied after the files.
    #[arg(long = "set")]
    overrides: Vec<String>,
    /// Run directory to create (default: runs/<name>).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Replace an existing run directory.
    #[arg(long)]
    overwrite: bool,
}

#[derive(Args)]
struct LaunchArgs {
    /// The plan, as `capsnet sweep-plan EXP --json` wrote it.
    plan: PathBuf,
    /// Training processes at once: a number, or `auto` (measured by a warm-up that trains the
    /// first jobs for --warmup-secs with 1, 2, … processes, at most --max-parallel).
    #[arg(long, default_value = "1")]
    parallel: capsnet_train::launch::Parallel,
    /// The most processes `--parallel auto` tries.
    #[arg(long, default_value_t = 4)]
    max_parallel: usize,
    /// Seconds each warm-up trial trains.
    #[arg(long, default_value_t = 30.0)]
    warmup_secs: f64,
    /// Set train.epochs from the warm-up's measured speed so that the jobs finish whole
    /// within the budget where they can (needs --parallel auto).
    #[arg(long)]
    fit_epochs: bool,
    /// Seconds until everything must be packed; each job is given what is left.
    #[arg(long)]
    budget_secs: f64,
    /// Seconds kept back from each job's budget for its final evaluation and the packing.
    #[arg(long, default_value_t = 30.0)]
    reserve_secs: f64,
    /// Start a job only with at least this many seconds left for it.
    #[arg(long, default_value_t = 60.0)]
    min_run_secs: f64,
    /// Folder for the runs, `launch-status.json` and `launch.log`.
    #[arg(long)]
    out: PathBuf,
    /// Also pack the results into this `.tar.gz` (no checkpoints or event files).
    #[arg(long)]
    archive: Option<PathBuf>,
    /// Backend for every job (passed on as `--backend`).
    #[arg(long)]
    backend: Option<String>,
}

#[derive(Args)]
struct PredictArgs {
    /// Checkpoint directory, or a run directory (its latest checkpoint).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Image files or folders of them.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Classes listed per image, best first.
    #[arg(long, default_value_t = 3)]
    top_k: usize,
    /// Images per forward pass (default: the run's evaluation batch size).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Write each input beside its reconstruction (the predicted class's capsule decoded) as
    /// PNG into this folder.
    #[arg(long)]
    reconstruct: Option<PathBuf>,
    /// Backend (default: the run's).
    #[arg(long)]
    backend: Option<String>,
    /// Print JSON (one object with every prediction).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct EvalArgs {
    /// Checkpoint directory, or a run directory (its latest checkpoint). Repeat it to evaluate
    /// an ensemble: the members' class scores are summed.
    #[arg(long, required = true)]
    checkpoint: Vec<PathBuf>,
    /// Dataset directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Backend to evaluate on (default: the run's).
    #[arg(long)]
    backend: Option<String>,
    /// Evaluate with this many routing iterations instead of the trained setting (routing
    /// algorithms that iterate: dynamic).
    #[arg(long)]
    routing_iterations: Option<usize>,
    /// Evaluate only the first N test images (source images for generated test sets).
    #[arg(long)]
    limit: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    experiment: ExperimentArgs,
    /// Batch size.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// The machine's peak fp32 GFLOP/s, to report the fraction reached.
    #[arg(long)]
    peak_gflops: Option<f64>,
}

/// `println!` that ends the program quietly (exit 0) when stdout's reader has gone away
/// (`capsnet parity … | head`), as Unix tools do, instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        stdout_line(format_args!($($arg)*))?
    };
}

fn stdout_line(args: std::fmt::Arguments) -> std::io::Result<()> {
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{args}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => other,
    }
}

fn main() {
    // Before anything allocates tensors (see `capsnet_train::allocator`).
    capsnet_train::allocator::apply();
    let cli = Cli::parse();
    if let Err(err) = run(cli) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => train(args),
        Command::Eval(args) => eval(args),
        Command::Predict(args) => predict(args),
        Command::Export(args) => export(args),
        Command::Launch(args) => launch(args),
        Command::Import(args) => import(args),
        Command::Info(args) => info_cmd(args),
        Command::Bench(args) => bench_cmd(args),
        Command::SweepPlan(args) => sweep_plan(args),
        Command::Figures(args) => figures(args),
        Command::Download(args) => download(args),
        Command::Parity(args) => parity_cmd(args),
        Command::Backends => {
            for kind in BackendKind::ALL {
                let status = match kind.devices() {
                    Some(devices) => format!("compiled in: {devices}"),
                    None => format!("not compiled (cargo feature `{}`)", kind.feature()),
                };
                outln!("{:<9} {}", kind.name(), status);
            }
            Ok(())
        }
    }
}

fn with_shorthands(
    mut overrides: Vec<String>,
    backend: Option<String>,
    data_dir: Option<&Path>,
) -> Vec<String> {
    if let Some(b) = backend {
        overrides.push(format!("runtime.backend={}", toml_string(&b)));
    }
    if let Some(dir) = data_dir {
        overrides.push(format!(
            "data.root={}",
            toml_string(&dir.display().to_string())
        ));
    }
    overrides
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn train(args: TrainArgs) -> Result<()> {
    if let Some(secs) = args.stop_after_secs
        && !(secs > 0.0 && secs.is_finite())
    {
        bail!("--stop-after-secs {secs}: must be a positive number of seconds");
    }
    let overrides = with_shorthands(args.overrides, args.backend, args.data_dir.as_deref());
    let resolved = load::load_experiment(&args.experiment, &overrides)?;
    let run_dir = args
        .run_dir
        .unwrap_or_else(|| Path::new("runs").join(&resolved.config.name));
    let progress = if args.quiet {
        ProgressMode::Quiet
    } else if args.plain {
        ProgressMode::Plain
    } else {
        ProgressMode::Auto
    };
    let options = TrainOptions {
        run_dir: run_dir.clone(),
        resume: args.resume || (args.resume_or_start && run_dir::holds_run(&run_dir)),
        overwrite: args.overwrite,
        progress,
        stop_after_steps: args.stop_after_steps,
        stop_after_secs: args.stop_after_secs,
    };
    let summary = capsnet_train::train(&resolved, &options)?;
    outln!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

/// A checkpoint (or a run's latest), its run directory and the run's resolved experiment.
fn open_checkpoint(path: &Path) -> Result<(PathBuf, PathBuf, capsnet_train::ExperimentConfig)> {
    let ckpt = checkpoint::resolve(path)?;
    let run = checkpoint::run_dir_of(&ckpt)
        .with_context(|| format!("{} is not inside a run directory", ckpt.display()))?;
    let config_path = run.join(run_dir::RESOLVED_CONFIG);
    let text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let config = load::parse_str(&text, &config_path.display().to_string())?;
    Ok((ckpt, run, config))
}

fn figures(args: FiguresArgs) -> Result<()> {
    let (ckpt, run, mut config) = open_checkpoint(&args.checkpoint)?;
    if let Some(dir) = args.data_dir {
        config.data.root = Some(dir);
    }
    config.validate()?;
    let device = capsnet_train::device::training_device(&config)?.without_autodiff();
    let capsnet_train::net::Net::Capsnet(net) = checkpoint::load_net(&ckpt, &config, &device)?
    else {
        bail!(
            "figures need a CapsNet run; {} is arch = \"{}\"",
            run.display(),
            config.arch.name()
        );
    };
    let mut log = RunLog::stderr_only(ProgressMode::Plain);
    let data = load_experiment_data(&config, &mut log)?;
    let step = i64::try_from(checkpoint::load_loop_state(&ckpt)?.step).unwrap_or(i64::MAX);
    let mut board = capsnet_tensorboard::EventWriter::open(&run)
        .with_context(|| format!("cannot open the event file in {}", run.display()))?;
    let out = args.out.unwrap_or_else(|| run.join("figures"));
    let figures = capsnet_train::figures::write(
        &net,
        &data.test.source,
        capsnet_train::figures::FigureOptions {
            images: args.images,
            perturbed: args.perturbed,
            step,
        },
        &out,
        Some(&mut board),
        &device,
    )?;
    for file in &figures.files {
        outln!("{}", file.display());
    }
    Ok(())
}

fn launch(args: LaunchArgs) -> Result<()> {
    use capsnet_train::launch::{JobState, LaunchOptions, Parallel, pack, run_plan};
    if !(args.budget_secs > 0.0 && args.budget_secs.is_finite()) {
        bail!(
            "--budget-secs {}: must be a positive number of seconds",
            args.budget_secs
        );
    }
    let text = std::fs::read_to_string(&args.plan)
        .with_context(|| format!("cannot read the plan {}", args.plan.display()))?;
    let plan: capsnet_common::sweep::SweepPlan =
        serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a sweep plan (write one with `capsnet sweep-plan EXP --json`)",
                args.plan.display()
            )
        })?;
    let exe = std::env::current_exe().context("cannot find this binary to run the jobs")?;
    if !(args.warmup_secs > 0.0 && args.warmup_secs.is_finite()) {
        bail!(
            "--warmup-secs {}: must be a positive number of seconds",
            args.warmup_secs
        );
    }
    let parallel = match args.parallel {
        Parallel::Auto { .. } if args.max_parallel == 0 => {
            bail!("--max-parallel must be at least 1")
        }
        Parallel::Auto { .. } => Parallel::Auto {
            max: args.max_parallel,
        },
        Parallel::Fixed(_) if args.fit_epochs => {
            bail!("--fit-epochs sizes epochs from the warm-up's speed: it needs --parallel auto")
        }
        fixed => fixed,
    };
    let options = LaunchOptions {
        parallel,
        warmup_secs: args.warmup_secs,
        fit_epochs: args.fit_epochs,
        budget_secs: args.budget_secs,
        reserve_secs: args.reserve_secs,
        min_run_secs: args.min_run_secs,
        out: args.out.clone(),
        extra_args: args
            .backend
            .iter()
            .flat_map(|b| ["--backend".to_string(), b.clone()])
            .collect(),
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let log_path = args.out.join("launch.log");
    let mut log_file = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot write {}", log_path.display()))?;
    let mut log = |line: &str| {
        let line = format!("[{}] {line}", capsnet_train::report::utc_now());
        eprintln!("{line}");
        let _ = std::io::Write::write_all(&mut log_file, format!("{line}\n").as_bytes());
    };
    let outcomes = run_plan(&plan, &exe, &options, &mut log)?;
    let count = |state| outcomes.iter().filter(|o| o.state == state).count();
    log(&format!(
        "{} completed, {} cut short, {} failed, {} not started",
        count(JobState::Completed),
        count(JobState::CutShort),
        count(JobState::Failed),
        count(JobState::NotStarted)
    ));
    if let Some(archive) = &args.archive {
        let files = pack(&args.out, archive)?;
        outln!("{} ({files} files)", archive.display());
    }
    if count(JobState::Failed) > 0 {
        bail!(
            "{} job(s) failed: see <job>.launch.log beside their run directories in {}",
            count(JobState::Failed),
            args.out.display()
        );
    }
    Ok(())
}

fn export(args: ExportArgs) -> Result<()> {
    if args.format != "safetensors" {
        bail!(
            "--format {}: only `safetensors` is written (PyTorch reads it with the safetensors package, or torch.load after conversion)",
            args.format
        );
    }
    let (ckpt, run, mut config) = open_checkpoint(&args.checkpoint)?;
    if let Some(dir) = &args.data_dir {
        config.data.root = Some(dir.clone());
    }
    config.validate()?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| run.join("export").join("model.safetensors"));
    let device = capsnet_train::device::training_device(&config)?;
    let net = checkpoint::load_net(&ckpt, &config, &device)?;
    capsnet_train::export::export(&net, &config, &out)?;
    outln!("{}", out.display());
    if let Some(n) = args.reference_batch {
        if n == 0 {
            bail!("--reference-batch must be positive");
        }
        let mut log = RunLog::stderr_only(ProgressMode::Plain);
        let data = load_experiment_data(&config, &mut log)?;
        let written = capsnet_train::export::reference_batch(
            &net,
            &config,
            &data.test.source,
            n,
            &out,
            &device,
        )?;
        for path in written {
            outln!("{}", path.display());
        }
    }
    Ok(())
}

fn import(args: ImportArgs) -> Result<()> {
    let resolved = load::load_experiment(&args.experiment, &args.overrides)?;
    let config = &resolved.config;
    let run = args
        .run_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&config.name));
    let device = capsnet_train::device::training_device(config)?;
    let mut net = capsnet_train::net::Net::init(config, &device)?;
    capsnet_train::export::import(&mut net, config, &args.weights)?;
    run_dir::prepare(&run, &resolved, false, args.overwrite)?;
    let optim = capsnet_train::optim::optimizer(config);
    let state = checkpoint::LoopState::start();
    let ckpt = checkpoint::save(&run, &net, &optim, &state, config.train.keep_checkpoints)?;
    outln!(
        "{} → {} (evaluate with `capsnet eval --checkpoint {}`, train on with `capsnet train {} --run-dir {} --resume`)",
        args.weights.display(),
        ckpt.display(),
        run.display(),
        args.experiment.display(),
        run.display()
    );
    Ok(())
}

fn predict(args: PredictArgs) -> Result<()> {
    use capsnet_train::predict::{PredictOptions, collect_images};
    let (ckpt, run, mut config) = open_checkpoint(&args.checkpoint)?;
    if let Some(b) = &args.backend {
        config.runtime.backend = BackendKind::parse(b)?;
    }
    config.validate()?;
    if args.top_k == 0 || args.batch_size == Some(0) {
        bail!("--top-k and --batch-size must be positive");
    }
    let files = collect_images(&args.images)?;
    let classes = match run_dir::read_classes(&run)? {
        Some(names) => names,
        // Runs older than classes.json: the built-in dataset's names, else the labels.
        None => match capsnet_train::data::builtin_class_names(config.data.dataset) {
            names if names.is_empty() => (0..config.network_input().3)
                .map(|c| c.to_string())
                .collect(),
            names => names,
        },
    };
    let device = capsnet_train::device::training_device(&config)?.without_autodiff();
    let net = checkpoint::load_net(&ckpt, &config, &device)?;
    let mut log = RunLog::stderr_only(if args.json {
        ProgressMode::Quiet
    } else {
        ProgressMode::Auto
    });
    let options = PredictOptions {
        top_k: args.top_k,
        batch_size: args.batch_size.unwrap_or(config.train.eval_batch_size),
        reconstruct: args.reconstruct.clone(),
    };
    let predictions = capsnet_train::predict::predict(
        &net, &config, &classes, &files, &options, &device, &mut log,
    )?;
    if args.json {
        let json = serde_json::json!({
            "checkpoint": ckpt,
            "classes": classes,
            "score": if config.arch == capsnet_train::Arch::BaselineCnn {
                "softmax probability"
            } else {
                "capsule length"
            },
            "predictions": predictions,
        });
        outln!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    for p in &predictions {
        let top: Vec<String> = p
            .top
            .iter()
            .map(|r| format!("{} {:.3}", r.name, r.score))
            .collect();
        outln!(
            "{}\t{}\t{:.3}\ttop-{}: {}{}",
            p.file.display(),
            p.name,
            p.score,
            p.top.len(),
            top.join(", "),
            p.reconstruction
                .as_ref()
                .map(|r| format!("\treconstruction: {}", r.display()))
                .unwrap_or_default()
        );
    }
    Ok(())
}

fn eval(args: EvalArgs) -> Result<()> {
    let mut members = Vec::new();
    for path in &args.checkpoint {
        let (ckpt, _run, mut config) = open_checkpoint(path)?;
        if let Some(b) = &args.backend {
            config.runtime.backend = BackendKind::parse(b)?;
        }
        if let Some(dir) = &args.data_dir {
            config.data.root = Some(dir.clone());
        }
        if let Some(limit) = args.limit {
            config.data.test_limit = Some(limit);
        }
        config.validate()?;
        members.push((ckpt, config));
    }
    let (first_ckpt, config) = members[0].clone();
    for (ckpt, other) in &members[1..] {
        let comparable = |c: &capsnet_train::ExperimentConfig| {
            let mut data = c.data.clone();
            data.root = None;
            (data, c.arch)
        };
        if comparable(other) != comparable(&config) {
            bail!(
                "{} and {} were trained on different data or architectures (compare their [data] sections and arch); an ensemble needs the same inputs and score kind",
                first_ckpt.display(),
                ckpt.display()
            );
        }
    }
    let device = capsnet_train::device::training_device(&config)?.without_autodiff();
    let mut nets = Vec::new();
    for (ckpt, member_config) in &members {
        let mut net = checkpoint::load_net(ckpt, member_config, &device)?;
        if let Some(r) = args.routing_iterations {
            net.set_routing_iterations(r)
                .with_context(|| format!("--routing-iterations {r} for {}", ckpt.display()))?;
        }
        nets.push(net);
    }
    let mut log = RunLog::stderr_only(ProgressMode::Plain);
    let data = load_experiment_data(&config, &mut log)?;
    let checkpoints: Vec<PathBuf> = members.iter().map(|(ckpt, _)| ckpt.clone()).collect();
    let mut sets = Vec::new();
    for set in data.eval_sets() {
        let result = evaluate_ensemble(&nets, &set.source, &config, &device)?;
        if !args.json {
            for ((ckpt, _), e) in members.iter().zip(&result.members) {
                outln!(
                    "{} [{}]: accuracy {:.2}% (error {:.2}%) on {} examples, loss {:.4}",
                    ckpt.display(),
                    set.name,
                    e.accuracy,
                    100.0 - e.accuracy,
                    e.images,
                    e.loss
                );
            }
            if nets.len() > 1 {
                outln!(
                    "ensemble of {} [{}]: accuracy {:.2}% (error {:.2}%)",
                    nets.len(),
                    set.name,
                    result.accuracy,
                    100.0 - result.accuracy
                );
            }
        }
        sets.push(EvalSetReport::new(&set.name, &checkpoints, &result));
    }
    if args.json {
        let report = EvalReport::new(config.runtime.backend.name(), sets)
            .context("no evaluation set or no checkpoint to report")?;
        outln!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

fn info_cmd(args: ExperimentArgs) -> Result<()> {
    let overrides = with_shorthands(args.overrides, args.backend, None);
    let resolved = load::load_experiment(&args.experiment, &overrides)?;
    let (rows, total) = info::layers(&resolved.config)?;
    let macs = info::forward_macs(&resolved.config);
    let memory = info::memory(&resolved.config, &rows, total);
    let routing = resolved.config.routing();
    if args.json {
        let json = info::InfoReport {
            name: resolved.config.name.clone(),
            arch: resolved.config.arch.name().into(),
            layers: rows,
            params: total,
            routing: routing
                .map(|r| -> Result<_> {
                    Ok(info::RoutingInfo {
                        algorithm: r.algorithm().name().into(),
                        options: toml::Table::try_from(r)?,
                        description: r.describe(),
                        forward_macs: macs.routing,
                    })
                })
                .transpose()?,
            forward_macs: macs,
            train_gflop_per_image: macs.train_flops() / 1e9,
            inference_gflop_per_image: macs.inference_flops() / 1e9,
            memory,
        };
        outln!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        outln!(
            "{} ({} files merged)",
            resolved.config.name,
            resolved.files.len()
        );
        print!("{}", info::render(&rows, total));
        if let Some(r) = routing {
            let options = serde_json::to_value(r)?;
            let options: Vec<String> = options
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| k.as_str() != "algorithm")
                .map(|(k, v)| format!("{k} = {v}"))
                .collect();
            outln!(
                "routing: {} ({}), {:.2} MFLOP per image forward",
                r.algorithm().name(),
                options.join(", "),
                2.0 * macs.routing as f64 / 1e6
            );
        }
        outln!(
            "FLOPs per image: {:.3} GFLOP forward, {:.3} GFLOP per trained image (forward + backward ≈ 3 × forward)",
            macs.inference_flops() / 1e9,
            macs.train_flops() / 1e9
        );
        print!("{}", info::render_memory(&memory));
    }
    Ok(())
}

fn parity_cmd(args: ParityArgs) -> Result<()> {
    let resolved = load::load_experiment(&args.experiment, &args.overrides)?;
    if args.batch_size == 0 {
        bail!("--batch-size must be positive");
    }
    let reference = BackendKind::parse(&args.reference)?;
    let other = BackendKind::parse(&args.backend)?;
    let fused = resolved.config.runtime.fused_ops;
    let report = capsnet_train::parity::check_sides(
        &resolved.config,
        capsnet_train::parity::Side {
            backend: reference,
            fused: fused && !args.reference_generic,
        },
        capsnet_train::parity::Side {
            backend: other,
            fused,
        },
        args.batch_size,
    )?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!(
            "{} vs {} (batch {}), scale-relative max difference per quantity:",
            report.other,
            report.reference,
            report.batch
        );
        for q in &report.quantities {
            outln!(
                "  {:<24} {:>9} values  {:>10.2e}  (tolerance {:.0e})  {}",
                q.name,
                q.values,
                q.scaled_diff,
                q.tolerance,
                if q.ok { "ok" } else { "MISMATCH" }
            );
        }
    }
    if !report.ok {
        bail!(
            "{} disagrees with {} beyond tolerance",
            report.other,
            report.reference
        );
    }
    Ok(())
}

fn bench_cmd(args: BenchArgs) -> Result<()> {
    let e = args.experiment;
    let overrides = with_shorthands(e.overrides, e.backend, None);
    let resolved = load::load_experiment(&e.experiment, &overrides)?;
    if args.batch_size == 0 || args.steps == 0 {
        bail!("--batch-size and --steps must be positive");
    }
    eprintln!(
        "benchmarking {} on {} at batch {} ({} warm-up + {} timed steps)…",
        resolved.config.name,
        resolved.config.runtime.backend,
        args.batch_size,
        args.warmup,
        args.steps
    );
    let result = bench::run(
        &resolved.config,
        BenchOptions {
            batch_size: args.batch_size,
            warmup: args.warmup,
            steps: args.steps,
            peak_gflops: args.peak_gflops,
        },
    )?;
    outln!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}

fn sweep_plan(args: SweepPlanArgs) -> Result<()> {
    let plan = capsnet_train::sweep::plan(&args.experiment, &args.overrides, &args.runs_dir)?;
    if args.json {
        let jobs = plan
            .jobs
            .iter()
            .map(|p| {
                let mut overrides = args.overrides.clone();
                overrides.extend(p.job.overrides.iter().cloned());
                capsnet_common::sweep::PlannedJob {
                    index: p.job.index,
                    name: p.job.name.clone(),
                    sweep_overrides: p.job.overrides.clone(),
                    overrides,
                    run_dir: p.run_dir.clone(),
                    backend: p.resolved.config.runtime.backend.name().into(),
                    epochs: p.resolved.config.train.epochs,
                }
            })
            .collect();
        let json = capsnet_common::sweep::SweepPlan {
            name: plan.base.config.name.clone(),
            experiment: args.experiment.clone(),
            dir: plan.dir.clone(),
            jobs,
        };
        outln!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        outln!(
            "{}: {} jobs in {}",
            plan.base.config.name,
            plan.jobs.len(),
            plan.dir.display()
        );
        for p in &plan.jobs {
            outln!(
                "{:>4}  {:<48} {}",
                p.job.index,
                p.job.name,
                p.job.overrides.join(" ")
            );
        }
    }
    Ok(())
}

fn download(args: DownloadArgs) -> Result<()> {
    use capsnet_data::{BuiltinDataset, DataSources, Split};
    // Every built-in dataset the data crate can fetch, by its facts.
    let fetchable: Vec<&str> = BuiltinDataset::ALL
        .into_iter()
        .filter(|d| d.facts().fetchable)
        .map(BuiltinDataset::name)
        .collect();
    let mut wanted: Vec<&str> = Vec::new();
    for name in args.dataset.split(',').map(str::trim) {
        match name {
            "all" => {
                for &n in &fetchable {
                    if !wanted.contains(&n) {
                        wanted.push(n);
                    }
                }
            }
            name => match fetchable.iter().find(|n| **n == name.to_ascii_lowercase()) {
                Some(n) if wanted.contains(n) => {}
                Some(n) => wanted.push(n),
                None => bail!(
                    "--dataset {name}: expected one of {} or all, or several separated by commas (multimnist and expanded-mnist are generated from mnist)",
                    fetchable.join(", ")
                ),
            },
        }
    }
    let mut sources = DataSources::from_env(args.dir.clone());
    if let Some(dir) = &args.dir {
        // Download into the folder asked for, whatever CAPSNET_DATA says.
        sources.env = None;
        sources.cache = Some(dir.clone());
    }
    sources.download = true;
    let progress = capsnet_train::report::DownloadBars::new(std::io::IsTerminal::is_terminal(
        &std::io::stderr(),
    ));
    let mut root = None;
    for name in wanted {
        let dataset: BuiltinDataset = name.parse()?;
        for split in [Split::Train, Split::Test] {
            let loaded = dataset.load(split, &sources, &progress)?;
            let dir = &loaded.provenance.dir;
            outln!(
                "{name} {split}: {} images, {}, in {}",
                loaded.images.len(),
                loaded.provenance.check(),
                dir.display()
            );
            root = dir
                .ancestors()
                .find(|d| d.file_name().is_some_and(|n| n == name))
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .or(root);
        }
    }
    if let Some(root) = root {
        outln!(
            "use it offline and for the tests with: export CAPSNET_DATA={}",
            root.display()
        );
    }
    Ok(())
}
