//! Project orchestration: `cargo xtask <task>`. No burn dependency, so it builds in seconds.
//!
//! - `ci`: what CI runs: `cargo fmt --check`, `cargo clippy -D warnings`, `cargo nextest` (release).
//! - `test`: only the test suite.

use std::process::Command;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("help") | Some("--help") | Some("-h") | None => {
            println!("usage: cargo xtask <ci|test> [extra nextest args]");
            println!("  ci    fmt check, clippy -D warnings, nextest (release) — what CI runs");
            println!("  test  nextest (release) only");
            Ok(())
        }
        Some(other) => bail!("unknown task `{other}` (try `cargo xtask help`)"),
    }
}

fn ci(extra: &[String]) -> Result<()> {
    run("cargo", &["fmt", "--all", "--", "--check"])?;
    run(
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
    let mut args = vec!["--profile", "ci"];
    args.extend(extra.iter().map(String::as_str));
    test(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
}

fn test(extra: &[String]) -> Result<()> {
    let mut args = vec!["nextest", "run", "--workspace", "--release"];
    args.extend(extra.iter().map(String::as_str));
    run("cargo", &args)
}

fn run(program: &str, args: &[&str]) -> Result<()> {
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
