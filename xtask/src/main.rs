//! Project orchestration: `cargo xtask <task>`. No burn dependency, so it builds in seconds.
//!
//! - `ci`: what CI runs: `cargo fmt --check`, `cargo clippy -D warnings`, `cargo nextest`
//!   (release), `cargo xtask tables --check`.
//! - `test`: only the test suite.
//! - `setup`: only what `ci` and `test` do first: install what the tests need (cargo-nextest, a
//!   Python venv with `tensorboard`; see `setup.rs`).
//! - `sweep`: run an experiment's `[sweep]` locally or on Slurm (see `sweep.rs`).
//! - `collect`, `tables`: results tables from run summaries (see `tables.rs`).
//! - `bench-compare`: capsnet vs the PyTorch reference on the same machine (`bench_compare.rs`).

mod bench_compare;
mod figures;
mod runs;
mod setup;
mod slurm;
mod sweep;
mod tables;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const HELP: &str = "usage: cargo xtask <task> [args]
  ci                      fmt check, clippy -D warnings, nextest (release), tables --check — what CI runs
  test [nextest args]     the test suite (release)
  setup                   what ci and test do first: install cargo-nextest if missing, make the
                          tests' Python venv (target/xtask-venv, pinned tensorboard); a
                          CAPSNET_PYTHON you set is used instead of the venv
  sweep EXP.toml [...]    run a sweep (`cargo xtask sweep --help`)
  collect SWEEP_DIR RAW   copy finished runs' summaries into results/raw/<table> (SWEEP_DIR may
                          be a .tar.gz from `capsnet launch --archive`)
  tables [--check]        write results/<table>.md/.csv from results/raw (or check they are current)
  capsnet [args]          build the `capsnet` CLI like the tests do and run it (`cargo capsnet …`)
  bench-compare [...]     capsnet vs the PyTorch reference (scripts/reference) on this machine";

fn main() {
    if let Err(err) = run() {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        Some("ci") => ci(rest),
        Some("test") => test(rest),
        Some("setup") => {
            let python = prepare_tests(&repo_root()?)?;
            println!("CAPSNET_PYTHON={}", python.to_string_lossy());
            Ok(())
        }
        Some("sweep") if rest.iter().any(|a| a == "-h" || a == "--help") => {
            println!("{}", sweep::USAGE);
            Ok(())
        }
        Some("sweep") => sweep::run(sweep::SweepArgs::parse(rest)?),
        Some("collect") => tables::collect(rest),
        Some("tables") => tables::tables(&repo_root()?, rest),
        Some("capsnet") => capsnet(rest),
        Some("bench-compare") => bench_compare::run(rest),
        Some("help") | Some("--help") | Some("-h") | None => {
            println!("{HELP}");
            Ok(())
        }
        Some(other) => bail!("unknown task `{other}`\n{HELP}"),
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
    tables::tables(&root, &["--check".into()])
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
