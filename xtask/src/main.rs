//! Project orchestration: `cargo xtask <task>`. No burn dependency, so it builds in seconds.
//!
//! - `ci`: what CI runs: `cargo fmt --check`, `cargo clippy -D warnings`, `cargo nextest`
//!   (release), `cargo xtask tables --check`.
//! - `test`: only the test suite.
//! - `setup`: only what `ci` and `test` do first: install what the tests need (cargo-nextest, a
//!   Python venv with `tensorboard`; see `setup.rs`).
//! - `sweep`: run an experiment's `[sweep]` locally or on Slurm (see `sweep.rs`; the launchers
//!   behind `launcher.rs`'s trait are `local.rs` and `slurm.rs`).
//! - `collect`, `tables`: results tables and figures from run records (see `tables.rs`; the
//!   figures are `figures.rs`, their learning curves `curves.rs`).
//! - `bench-compare`: capsnet vs the PyTorch reference on the same machine (`bench_compare.rs`).
//! - `capsnet`: build the CLI like the tests do and run it.
//!
//! The command line is one clap [`Cli`]: each task's arguments are declared beside the task
//! (`sweep::SweepArgs`, `tables::TablesArgs`, …) and the help text comes from their doc
//! comments. `test`, `ci` and `capsnet` pass the arguments after them through verbatim.

mod bench_compare;
mod curves;
mod figures;
mod launcher;
mod local;
mod paired;
mod quotes;
mod runs;
mod setup;
mod slurm;
mod sweep;
mod tables;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser, Subcommand};

/// Project orchestration (`cargo xtask <task>`).
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    task: Option<Task>,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// fmt check, clippy -D warnings, nextest (release), tables --check — what CI runs.
    #[command(disable_help_flag = true)]
    Ci {
        /// Extra arguments for `cargo nextest run`, passed through as they are.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The test suite (release).
    #[command(disable_help_flag = true)]
    Test {
        /// Arguments for `cargo nextest run`, passed through as they are.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// What ci and test do first: install cargo-nextest if missing, make the tests' Python venv
    /// (target/xtask-venv, pinned tensorboard); a CAPSNET_PYTHON you set is used instead of the
    /// venv.
    Setup,
    // Its help is `SweepArgs`'s doc comment.
    Sweep(sweep::SweepArgs),
    /// Copy finished runs' summaries, resolved configs and metrics.jsonl into
    /// results/raw/<table> (SWEEP_DIR may be a .tar.gz from `capsnet launch --archive`).
    Collect(tables::CollectArgs),
    /// Write results/<table>.md/.csv and results/figures/ from results/raw (or check they are
    /// current).
    Tables(tables::TablesArgs),
    /// Build the `capsnet` CLI like the tests do and run it (`cargo capsnet …`).
    #[command(disable_help_flag = true)]
    Capsnet {
        /// Arguments for capsnet, passed through as they are.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    // Its help is `BenchCompareArgs`'s doc comment.
    BenchCompare(bench_compare::BenchCompareArgs),
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // Help and version are not errors; a bad command line exits 1, as every other error.
            let _ = err.print();
            std::process::exit(if err.use_stderr() { 1 } else { 0 });
        }
    };
    if let Err(err) = run(cli) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.task {
        Some(Task::Ci { args }) => ci(&args),
        Some(Task::Test { args }) => test(&args),
        Some(Task::Setup) => {
            let python = prepare_tests(&repo_root()?)?;
            println!("CAPSNET_PYTHON={}", python.to_string_lossy());
            Ok(())
        }
        Some(Task::Sweep(args)) => sweep::run(args),
        Some(Task::Collect(args)) => tables::collect(&args.sweep, &args.raw),
        Some(Task::Tables(args)) => {
            tables::tables(&repo_root()?, args.check, args.results.as_deref())
        }
        Some(Task::Capsnet { args }) => capsnet(&args),
        Some(Task::BenchCompare(args)) => bench_compare::run(args.validate()?),
        None => {
            Cli::command().print_help()?;
            Ok(())
        }
    }
}

fn repo_root() -> Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    Ok(manifest
        .parent()
        .context("xtask lives in the workspace")?
        .to_path_buf())
}

/// `cargo capsnet …`: builds the CLI with the test suite's feature resolution (one shared build
/// of burn for tests, sweeps and the CLI) and runs it with the given arguments.
fn capsnet(args: &[String]) -> Result<()> {
    let binary = sweep::build_capsnet(&repo_root()?, &[])?;
    let status = Command::new(&binary)
        .args(args)
        .status()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    std::process::exit(status.code().unwrap_or(1));
}

fn ci(extra: &[String]) -> Result<()> {
    let root = repo_root()?;
    // Set-up first: a missing Python should fail before a long build, not after it.
    let python = prepare_tests(&root)?;
    run_cmd("cargo", &["fmt", "--all", "--", "--check"])?;
    run_cmd(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--release",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    let mut args = vec!["--profile".to_string(), "ci".to_string()];
    args.extend(extra.iter().cloned());
    run_tests(&python, &args)?;
    tables::tables(&root, true, None)
}

fn test(extra: &[String]) -> Result<()> {
    let python = prepare_tests(&repo_root()?)?;
    run_tests(&python, extra)
}

/// Installs what the tests need (see `setup.rs`); returns the Python for `CAPSNET_PYTHON`.
fn prepare_tests(root: &Path) -> Result<OsString> {
    setup::ensure_nextest(&setup::cargo())?;
    setup::test_python(root)
}

fn run_tests(python: &OsString, extra: &[String]) -> Result<()> {
    let mut args = vec!["nextest", "run", "--workspace", "--release"];
    args.extend(extra.iter().map(String::as_str));
    eprintln!(
        "$ CAPSNET_PYTHON={} cargo {}",
        python.to_string_lossy(),
        args.join(" ")
    );
    let status = Command::new("cargo")
        .args(&args)
        .env("CAPSNET_PYTHON", python)
        .status()
        .context("cannot start cargo")?;
    if !status.success() {
        bail!("`cargo {}` failed with {status}", args.join(" "));
    }
    Ok(())
}

fn run_cmd(program: &str, args: &[&str]) -> Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("cannot start {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed with {status}", args.join(" "));
    }
    Ok(())
}

/// A new empty folder under the system's temporary directory, for tests.
#[cfg(test)]
pub(crate) fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "xtask-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A complete `summary.json` as `capsnet train` writes it (`capsnet_common::summary::Summary`),
/// with the top-level `fields` replaced, for tests.
#[cfg(test)]
pub(crate) fn summary_json(fields: serde_json::Value) -> serde_json::Value {
    let mut summary = serde_json::json!({
        "name": "test", "arch": "capsnet", "dataset": "mnist", "completed": true,
        "epochs": 1, "epochs_completed": 1, "steps": 10, "batch_size": 64,
        "train_images": 640, "test_images": 100, "params": 1000,
        "final_eval_epoch": 1, "final_test_error_pct": 1.0, "final_test_accuracy": 99.0,
        "final_test_loss": 0.1, "train_secs": 1.0, "eval_secs": 1.0, "wall_time_secs": 2.0,
        "train_images_per_sec": 640.0, "backend": "flex", "device": 0,
        "machine": {"hostname": "test", "cpu": "Test CPU", "threads": 2, "os": "linux x86_64"},
        "git_revision": "abc", "capsnet_version": "0.1.0", "burn_version": "0.22.1",
    });
    for (key, value) in fields.as_object().expect("fields are an object") {
        summary[key] = value.clone();
    }
    summary
}

/// The task `cargo xtask ARGS` parses to (tests of the tasks' arguments).
#[cfg(test)]
fn parse_task<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<Task, clap::Error> {
    let cli = Cli::try_parse_from(std::iter::once("xtask").chain(args))?;
    Ok(cli.task.expect("a task"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// `test`, `ci` and `capsnet` pass what follows them through verbatim, flags and `--help`
    /// included.
    #[test]
    fn trailing_arguments_pass_through() {
        let parse = |args: &[&str]| parse_task(args.iter().copied()).unwrap();
        let Task::Test { args } = parse(&["test", "-E", "test(foo)", "--no-capture"]) else {
            panic!("not test")
        };
        assert_eq!(args, ["-E", "test(foo)", "--no-capture"]);
        let Task::Ci { args } = parse(&["ci", "--retries", "2"]) else {
            panic!("not ci")
        };
        assert_eq!(args, ["--retries", "2"]);
        let Task::Capsnet { args } = parse(&["capsnet", "--help"]) else {
            panic!("not capsnet")
        };
        assert_eq!(args, ["--help"]);
        let Task::Capsnet { args } = parse(&["capsnet", "train", "e.toml", "--run-dir", "r"])
        else {
            panic!("not capsnet")
        };
        assert_eq!(args, ["train", "e.toml", "--run-dir", "r"]);
        assert!(Cli::try_parse_from(["xtask", "bogus"]).is_err());
        assert!(Cli::try_parse_from(["xtask"]).unwrap().task.is_none());
    }
}
