//! `cargo xtask sweep`: run every job of an experiment's `[sweep]` as its own `capsnet` process,
//! locally (N at a time) or as a Slurm job array, with a status file, resume and a summary.
//!
//! The schema lives in `capsnet` (`capsnet sweep-plan --json` expands and validates every job);
//! this module only orchestrates. Each job gets a script `<sweep>/jobs/<i>.sh` that both
//! launchers run; it resumes the job's run from its last checkpoint if there is one and writes
//! its exit code to `<sweep>/jobs/<i>.exit`. `<sweep>/manifest.json` lists every job (index,
//! name, overrides, run directory).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::slurm::{self, SlurmOptions};

/// Where jobs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// Child processes on this machine.
    Local,
    /// A Slurm job array.
    Slurm,
}

/// Parsed `cargo xtask sweep` arguments.
#[derive(Debug)]
pub struct SweepArgs {
    experiment: PathBuf,
    jobs: usize,
    dry_run: bool,
    resume: bool,
    launcher: Launcher,
    features: Vec<String>,
    runs_dir: PathBuf,
    overrides: Vec<String>,
    slurm: SlurmOptions,
}

pub const USAGE: &str = "usage: cargo xtask sweep EXPERIMENT.toml [--jobs N] [--dry-run] [--resume]
       [--launcher local|slurm] [--features f1,f2] [--runs-dir DIR]
       [--partition P] [--time-limit T] [--cpus-per-task N] [key=value ...]";

impl SweepArgs {
    /// Parses the arguments after `sweep`.
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut out = SweepArgs {
            experiment: PathBuf::new(),
            jobs: 1,
            dry_run: false,
            resume: false,
            launcher: Launcher::Local,
            features: Vec::new(),
            runs_dir: PathBuf::from("runs"),
            overrides: Vec::new(),
            slurm: SlurmOptions::default(),
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .cloned()
                    .with_context(|| format!("{name} needs a value\n{USAGE}"))
            };
            match arg.as_str() {
                "--jobs" | "-j" => {
                    out.jobs = value("--jobs")?
                        .parse()
                        .context("--jobs takes a positive number")?;
                    if out.jobs == 0 {
                        bail!("--jobs must be at least 1");
                    }
                }
                "--dry-run" => out.dry_run = true,
                "--resume" => out.resume = true,
                "--launcher" => {
                    out.launcher = match value("--launcher")?.as_str() {
                        "local" => Launcher::Local,
                        "slurm" => Launcher::Slurm,
                        other => bail!("unknown launcher `{other}`: expected local or slurm"),
                    }
                }
                "--features" => {
                    out.features = value("--features")?
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect();
                }
                "--runs-dir" => out.runs_dir = PathBuf::from(value("--runs-dir")?),
                "--partition" => out.slurm.partition = Some(value("--partition")?),
                "--time-limit" => out.slurm.time_limit = Some(value("--time-limit")?),
                "--cpus-per-task" => {
                    out.slurm.cpus_per_task = Some(
                        value("--cpus-per-task")?
                            .parse()
                            .context("--cpus-per-task")?,
                    )
                }
                "-h" | "--help" => bail!("{USAGE}"),
                flag if flag.starts_with('-') => bail!("unknown option `{flag}`\n{USAGE}"),
                text if text.contains('=') => out.overrides.push(text.to_string()),
                path if out.experiment.as_os_str().is_empty() => {
                    out.experiment = PathBuf::from(path)
                }
                extra => {
                    bail!("unexpected argument `{extra}` (overrides look like key=value)\n{USAGE}")
                }
            }
        }
        if out.experiment.as_os_str().is_empty() {
            bail!("no experiment file given\n{USAGE}");
        }
        if out.launcher == Launcher::Slurm && out.jobs > 1 {
            out.slurm.max_parallel = Some(out.jobs);
        }
        Ok(out)
    }
}

/// The plan printed by `capsnet sweep-plan --json`.
#[derive(Debug, Clone, Deserialize)]
struct Plan {
    name: String,
    dir: PathBuf,
    jobs: Vec<PlanJob>,
    /// The JSON as printed, saved as `<sweep>/manifest.json`.
    #[serde(skip)]
    raw: String,
}

#[derive(Debug, Clone, Deserialize)]
struct PlanJob {
    index: usize,
    name: String,
    overrides: Vec<String>,
    run_dir: PathBuf,
    backend: String,
    epochs: usize,
}

/// One job's line in `sweep-status.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct JobStatus {
    index: usize,
    name: String,
    run_dir: PathBuf,
    status: String,
    exit_code: Option<i32>,
    seconds: Option<f64>,
    final_test_error_pct: Option<f64>,
    epochs_completed: Option<u64>,
    train_images_per_sec: Option<f64>,
}

#[derive(Debug, Serialize)]
struct StatusFile<'a> {
    sweep: &'a str,
    experiment: &'a Path,
    launcher: &'a str,
    updated_unix: u64,
    jobs: &'a [JobStatus],
}

/// Runs `cargo xtask sweep`.
pub fn run(args: SweepArgs) -> Result<()> {
    let root = crate::repo_root()?;
    let capsnet = build_capsnet(&root, &args.features)?;
    let experiment = absolute(&args.experiment)?;
    let runs_dir = absolute(&args.runs_dir)?;
    let plan = sweep_plan(&capsnet, &experiment, &args.overrides, &runs_dir)?;
    eprintln!(
        "sweep {}: {} jobs in {}",
        plan.name,
        plan.jobs.len(),
        plan.dir.display()
    );
    if args.dry_run {
        for job in &plan.jobs {
            println!(
                "{:>4}  {:<44} {:<8} {:>3} epochs  {}",
                job.index,
                job.name,
                job.backend,
                job.epochs,
                job.overrides.join(" ")
            );
        }
        return Ok(());
    }
    let existing: Vec<&PlanJob> = plan.jobs.iter().filter(|j| j.run_dir.exists()).collect();
    if !args.resume && !existing.is_empty() {
        bail!(
            "{} of {} job directories already exist under {} (e.g. {}): pass --resume to skip \
             finished jobs and continue the others, or delete the sweep directory",
            existing.len(),
            plan.jobs.len(),
            plan.dir.display(),
            existing[0].run_dir.display()
        );
    }
    let jobs_dir = plan.dir.join("jobs");
    std::fs::create_dir_all(&jobs_dir)
        .with_context(|| format!("cannot create {}", jobs_dir.display()))?;
    for job in &plan.jobs {
        write_job_script(&root, &capsnet, &experiment, &jobs_dir, job)?;
    }
    // The manifest: what each array index / job script runs.
    let manifest = plan.dir.join("manifest.json");
    std::fs::write(&manifest, &plan.raw)
        .with_context(|| format!("cannot write {}", manifest.display()))?;
    let mut statuses: Vec<JobStatus> = plan
        .jobs
        .iter()
        .map(|job| {
            let mut status = JobStatus {
                index: job.index,
                name: job.name.clone(),
                run_dir: job.run_dir.clone(),
                status: "pending".into(),
                exit_code: None,
                seconds: None,
                final_test_error_pct: None,
                epochs_completed: None,
                train_images_per_sec: None,
            };
            if args.resume && read_summary(&job.run_dir).is_some_and(|s| s.completed) {
                status.status = "skipped (finished)".into();
                fill_from_summary(&mut status);
            }
            status
        })
        .collect();
    let to_run: Vec<usize> = statuses
        .iter()
        .filter(|s| s.status == "pending")
        .map(|s| s.index)
        .collect();
    let launcher_name = match args.launcher {
        Launcher::Local => "local",
        Launcher::Slurm => "slurm",
    };
    let status_path = plan.dir.join("sweep-status.json");
    write_status(&status_path, &plan, &experiment, launcher_name, &statuses)?;
    eprintln!(
        "running {} jobs ({} already finished) with the {launcher_name} launcher",
        to_run.len(),
        statuses.len() - to_run.len()
    );
    for &i in &to_run {
        let _ = std::fs::remove_file(jobs_dir.join(format!("{i}.exit")));
    }
    match args.launcher {
        Launcher::Local => run_local(
            &plan,
            &experiment,
            &jobs_dir,
            &to_run,
            args.jobs,
            &status_path,
            &mut statuses,
        )?,
        Launcher::Slurm => {
            for &i in &to_run {
                statuses[i].status = "submitted".into();
            }
            write_status(&status_path, &plan, &experiment, launcher_name, &statuses)?;
            slurm::submit_and_wait(&plan.dir, &to_run, &args.slurm)?;
            for &i in &to_run {
                finish(&jobs_dir, &mut statuses[i], None);
            }
        }
    }
    write_status(&status_path, &plan, &experiment, launcher_name, &statuses)?;
    print_table(&statuses);
    let failed: Vec<&JobStatus> = statuses.iter().filter(|s| s.status == "failed").collect();
    if !failed.is_empty() {
        bail!(
            "{} of {} jobs failed (logs in {}/<index>.log); rerun with --resume to retry them",
            failed.len(),
            statuses.len(),
            jobs_dir.display()
        );
    }
    eprintln!("status: {}", status_path.display());
    Ok(())
}

fn run_local(
    plan: &Plan,
    experiment: &Path,
    jobs_dir: &Path,
    to_run: &[usize],
    parallel: usize,
    status_path: &Path,
    statuses: &mut Vec<JobStatus>,
) -> Result<()> {
    let queue = Arc::new(Mutex::new(to_run.iter().copied().collect::<VecDeque<_>>()));
    let shared = Arc::new(Mutex::new((std::mem::take(statuses), 0usize)));
    let total = to_run.len();
    std::thread::scope(|scope| {
        for _ in 0..parallel.min(total.max(1)) {
            let queue = Arc::clone(&queue);
            let shared = Arc::clone(&shared);
            scope.spawn(move || {
                loop {
                    let Some(i) = queue.lock().expect("queue").pop_front() else {
                        break;
                    };
                    {
                        let mut guard = shared.lock().expect("status");
                        guard.0[i].status = "running".into();
                        let _ = write_status(status_path, plan, experiment, "local", &guard.0);
                        eprintln!("[start] {} ({})", plan.jobs[i].name, i);
                    }
                    let start = Instant::now();
                    let code = Command::new("bash")
                        .arg(jobs_dir.join(format!("{i}.sh")))
                        .status()
                        .ok()
                        .and_then(|s| s.code());
                    let mut guard = shared.lock().expect("status");
                    let (statuses, done) = &mut *guard;
                    *done += 1;
                    finish(jobs_dir, &mut statuses[i], code);
                    statuses[i].seconds = Some(start.elapsed().as_secs_f64());
                    let s = &statuses[i];
                    eprintln!(
                        "[{}/{}] {} {} in {:.0} s{}",
                        done,
                        total,
                        if s.status == "done" { "done" } else { "FAILED" },
                        s.name,
                        start.elapsed().as_secs_f64(),
                        s.final_test_error_pct
                            .map(|e| format!(", test error {e:.2}%"))
                            .unwrap_or_default()
                    );
                    let _ = write_status(status_path, plan, experiment, "local", statuses);
                }
            });
        }
    });
    let (done, _) = Arc::try_unwrap(shared)
        .map_err(|_| anyhow::anyhow!("workers still hold the status"))?
        .into_inner()
        .expect("status lock");
    *statuses = done;
    Ok(())
}

/// Sets a finished job's status from its `.exit` file (or `code`) and its run summary.
fn finish(jobs_dir: &Path, status: &mut JobStatus, code: Option<i32>) {
    let from_file = std::fs::read_to_string(jobs_dir.join(format!("{}.exit", status.index)))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    status.exit_code = from_file.or(code);
    let completed = read_summary(&status.run_dir).is_some_and(|s| s.completed);
    status.status = if status.exit_code == Some(0) && completed {
        "done"
    } else {
        "failed"
    }
    .into();
    fill_from_summary(status);
}

#[derive(Debug, Deserialize)]
struct RunSummary {
    completed: bool,
    epochs_completed: u64,
    final_test_error_pct: Option<f64>,
    train_images_per_sec: f64,
    wall_time_secs: f64,
}

fn read_summary(run_dir: &Path) -> Option<RunSummary> {
    let text = std::fs::read_to_string(run_dir.join("summary.json")).ok()?;
    serde_json::from_str(&text).ok()
}

fn fill_from_summary(status: &mut JobStatus) {
    if let Some(s) = read_summary(&status.run_dir) {
        status.final_test_error_pct = s.final_test_error_pct;
        status.epochs_completed = Some(s.epochs_completed);
        status.train_images_per_sec = Some(s.train_images_per_sec);
        status.seconds = status.seconds.or(Some(s.wall_time_secs));
    }
}

fn write_status(
    path: &Path,
    plan: &Plan,
    experiment: &Path,
    launcher: &str,
    jobs: &[JobStatus],
) -> Result<()> {
    let file = StatusFile {
        sweep: &plan.name,
        experiment,
        launcher,
        updated_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        jobs,
    };
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&file)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

fn print_table(statuses: &[JobStatus]) {
    println!(
        "{:>4}  {:<44} {:<19} {:>10} {:>7} {:>9} {:>8}",
        "#", "job", "status", "test err %", "epochs", "train i/s", "secs"
    );
    for s in statuses {
        let opt = |v: Option<f64>, digits: usize| {
            v.map(|x| format!("{x:.digits$}"))
                .unwrap_or_else(|| "-".into())
        };
        println!(
            "{:>4}  {:<44} {:<19} {:>10} {:>7} {:>9} {:>8}",
            s.index,
            s.name,
            s.status,
            opt(s.final_test_error_pct, 2),
            s.epochs_completed
                .map(|e| e.to_string())
                .unwrap_or_else(|| "-".into()),
            opt(s.train_images_per_sec, 0),
            opt(s.seconds, 0),
        );
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn write_job_script(
    root: &Path,
    capsnet: &Path,
    experiment: &Path,
    jobs_dir: &Path,
    job: &PlanJob,
) -> Result<()> {
    let i = job.index;
    let overrides: Vec<String> = job.overrides.iter().map(|o| quote(o)).collect();
    let script = format!(
        "#!/usr/bin/env bash
# Job {i}: {name}. Written by `cargo xtask sweep`; run by the local and Slurm launchers.
# Resumes from the run's last checkpoint if there is one.
set -u
cd {root}
run_dir={run_dir}
mode=()
if [ -f \"$run_dir/checkpoints/latest\" ]; then mode=(--resume); elif [ -e \"$run_dir\" ]; then mode=(--overwrite); fi
{capsnet} train {experiment} {overrides} --run-dir \"$run_dir\" --plain \"${{mode[@]}}\" >{log} 2>&1
code=$?
echo \"$code\" >{exit}
exit \"$code\"
",
        name = job.name,
        root = quote(&root.display().to_string()),
        run_dir = quote(&job.run_dir.display().to_string()),
        capsnet = quote(&capsnet.display().to_string()),
        experiment = quote(&experiment.display().to_string()),
        overrides = overrides.join(" "),
        log = quote(&jobs_dir.join(format!("{i}.log")).display().to_string()),
        exit = quote(&jobs_dir.join(format!("{i}.exit")).display().to_string()),
    );
    let path = jobs_dir.join(format!("{i}.sh"));
    std::fs::write(&path, script).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

fn sweep_plan(
    capsnet: &Path,
    experiment: &Path,
    overrides: &[String],
    runs: &Path,
) -> Result<Plan> {
    let out = Command::new(capsnet)
        .arg("sweep-plan")
        .arg(experiment)
        .args(overrides)
        .arg("--runs-dir")
        .arg(runs)
        .arg("--json")
        .output()
        .with_context(|| format!("cannot run {}", capsnet.display()))?;
    if !out.status.success() {
        bail!(
            "the sweep is invalid, nothing was started:\n{}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut plan: Plan = serde_json::from_slice(&out.stdout)
        .context("cannot read `capsnet sweep-plan --json` output")?;
    plan.raw = String::from_utf8_lossy(&out.stdout).into_owned();
    Ok(plan)
}

/// Builds the `capsnet` binary (release; with extra backend features in its own target dir).
pub fn build_capsnet(root: &Path, features: &[String]) -> Result<PathBuf> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root);
    let target = if features.is_empty() {
        // Build like the test suite: `--workspace --all-targets` unifies the same dependency
        // features as `cargo nextest run --workspace --release`, so a sweep after the tests
        // reuses their build of burn instead of compiling it a second time.
        cmd.args(["build", "--release", "--workspace", "--all-targets"]);
        root.join("target")
    } else {
        let mut sorted = features.to_vec();
        sorted.sort();
        cmd.args([
            "build",
            "--release",
            "-p",
            "capsnet-train",
            "--bin",
            "capsnet",
        ]);
        cmd.arg("--features").arg(sorted.join(","));
        // Each feature set rebuilds most of burn: keep it in its own target directory.
        root.join("target")
            .join(format!("features-{}", sorted.join("-")))
    };
    cmd.arg("--target-dir").arg(&target);
    cmd.arg("--quiet");
    eprintln!(
        "building capsnet{} (cargo build --release; the first build compiles burn and takes minutes)",
        if features.is_empty() {
            String::new()
        } else {
            format!(" with {}", features.join(","))
        }
    );
    let status = cmd.status().context("cannot run cargo")?;
    if !status.success() {
        bail!("building capsnet failed");
    }
    Ok(target.join("release").join("capsnet"))
}

fn absolute(path: &Path) -> Result<PathBuf> {
    if path.is_absolute() {
        Ok(path.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_parse() {
        let args: Vec<String> = [
            "exp.toml",
            "--jobs",
            "2",
            "--resume",
            "--features",
            "tch,wgpu",
            "train.epochs=1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let parsed = SweepArgs::parse(&args).unwrap();
        assert_eq!(parsed.jobs, 2);
        assert!(parsed.resume && !parsed.dry_run);
        assert_eq!(parsed.features, ["tch", "wgpu"]);
        assert_eq!(parsed.overrides, ["train.epochs=1"]);
        assert!(SweepArgs::parse(&["--jobs".into()]).is_err());
        assert!(SweepArgs::parse(&["a.toml".into(), "--launcher".into(), "k8s".into()]).is_err());
        assert!(SweepArgs::parse(&["a.toml".into(), "b.toml".into()]).is_err());
        assert!(SweepArgs::parse(&[]).is_err());
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
    }
}
