//! `cargo xtask sweep`: run every job of an experiment's `[sweep]` as its own `capsnet` process,
//! locally (N at a time, or one per GPU with `--devices`) or as a Slurm job array, with a status
//! file, resume and a summary.
//!
//! The schema lives in `capsnet` (`capsnet sweep-plan --json` expands and validates every job);
//! this module only orchestrates. Each job gets a script `<sweep>/jobs/<i>.sh` that both
//! launchers run; it runs `capsnet train EXP --run-dir DIR --resume-or-start ...` (the binary
//! resumes the job's run from its latest checkpoint if there is one, else starts it) and writes
//! its exit code to `<sweep>/jobs/<i>.exit`. An optional argument, `jobs/<i>.sh DEVICE`, adds the
//! override `runtime.device=DEVICE` (the local launcher's `--devices`; Slurm tasks run without it
//! and use the first GPU Slurm gives them). `<sweep>/manifest.json` lists every job (index,
//! name, overrides, run directory).
//!
//! The local launcher is [`schedule`]: one worker per slot, each slot owning at most one device,
//! taking the next job from a shared queue whenever its previous job ends.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use capsnet_common::sweep::{PlannedJob, SweepPlan};
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
    /// `--jobs`, if given.
    jobs: Option<usize>,
    /// `--devices`: device indices for the local launcher, at most one running job on each.
    devices: Option<Vec<usize>>,
    dry_run: bool,
    resume: bool,
    launcher: Launcher,
    features: Vec<String>,
    runs_dir: PathBuf,
    overrides: Vec<String>,
    slurm: SlurmOptions,
}

pub const USAGE: &str = "usage: cargo xtask sweep EXPERIMENT.toml [--jobs N] [--devices 0,1,...]
       [--dry-run] [--resume] [--launcher local|slurm] [--features f1,f2] [--runs-dir DIR]
       [--partition P] [--time-limit T] [--cpus-per-task N] [--gpus-per-task N] [key=value ...]
  --jobs N            run N jobs at a time (local; default 1), or at most N array tasks (Slurm)
  --devices 0,1,...   local: one running job per listed device, each given runtime.device=<its
                      device>; jobs start as devices free up. --jobs defaults to the number of
                      devices; a larger --jobs is capped at it (one job per device)
  --gpus-per-task N   Slurm: #SBATCH --gpus-per-task=N; each task runs on the first GPU Slurm
                      gives it (CUDA_VISIBLE_DEVICES), so leave runtime.device unset
  --resume            skip finished jobs, continue interrupted ones from their last checkpoint";

impl SweepArgs {
    /// Parses the arguments after `sweep`.
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut out = SweepArgs {
            experiment: PathBuf::new(),
            jobs: None,
            devices: None,
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
                    let jobs: usize = value("--jobs")?
                        .parse()
                        .context("--jobs takes a positive number")?;
                    if jobs == 0 {
                        bail!("--jobs must be at least 1");
                    }
                    out.jobs = Some(jobs);
                }
                "--devices" => out.devices = Some(parse_devices(&value("--devices")?)?),
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
                "--gpus-per-task" => {
                    let gpus: u32 = value("--gpus-per-task")?
                        .parse()
                        .context("--gpus-per-task takes a positive number")?;
                    if gpus == 0 {
                        bail!("--gpus-per-task must be at least 1");
                    }
                    out.slurm.gpus_per_task = Some(gpus);
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
        match out.launcher {
            Launcher::Local if out.slurm.gpus_per_task.is_some() => bail!(
                "--gpus-per-task is for --launcher slurm; the local launcher takes --devices 0,1,..."
            ),
            Launcher::Slurm if out.devices.is_some() => bail!(
                "--devices is for the local launcher; on Slurm use --gpus-per-task N (Slurm picks \
                 the GPUs and each task uses the first it gets)"
            ),
            _ => {}
        }
        if out.devices.is_some() || out.slurm.gpus_per_task.is_some() {
            check_no_device_override(&out.overrides)?;
        }
        if out.launcher == Launcher::Slurm
            && let Some(jobs) = out.jobs.filter(|&j| j > 1)
        {
            out.slurm.max_parallel = Some(jobs);
        }
        Ok(out)
    }
}

/// Parses `--devices 0,1,3`: device indices, no duplicates.
fn parse_devices(text: &str) -> Result<Vec<usize>> {
    let mut devices = Vec::new();
    for part in text.split(',').map(str::trim) {
        let device: usize = part.parse().with_context(|| {
            format!(
                "--devices takes device indices separated by commas (e.g. 0,1,2,3), not `{text}`"
            )
        })?;
        if devices.contains(&device) {
            bail!("--devices lists device {device} twice (at most one job runs on each device)");
        }
        devices.push(device);
    }
    Ok(devices)
}

/// With `--devices` (or `--gpus-per-task`) xtask chooses the device: an override of
/// `runtime.device` (on the command line or as a sweep axis) would contradict it.
fn check_no_device_override(overrides: &[String]) -> Result<()> {
    if let Some(o) = overrides.iter().find(|o| {
        o.split_once('=')
            .is_some_and(|(k, _)| k.trim() == "runtime.device")
    }) {
        bail!(
            "`{o}` sets the device, but --devices / --gpus-per-task choose it for every job: drop \
             one of them"
        );
    }
    Ok(())
}

/// The local launcher's worker slots: one per job that may run at once, each with the device
/// its jobs get (`None`: no `runtime.device` override). Also returns a note when `--jobs` was
/// capped at the number of devices.
fn local_slots(
    jobs: Option<usize>,
    devices: Option<&[usize]>,
) -> (Vec<Option<usize>>, Option<String>) {
    match devices {
        None => (vec![None; jobs.unwrap_or(1)], None),
        Some(devices) => {
            let n = jobs.unwrap_or(devices.len());
            let note = (n > devices.len()).then(|| {
                format!(
                    "--jobs {n} capped at {}: at most one job runs on each of --devices {}",
                    devices.len(),
                    devices
                        .iter()
                        .map(usize::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                )
            });
            (devices.iter().take(n).map(|&d| Some(d)).collect(), note)
        }
    }
}

/// The plan printed by `capsnet sweep-plan --json` (its type is shared with the binary:
/// `capsnet_common::sweep`), with the JSON as printed, saved as `<sweep>/manifest.json`.
#[derive(Debug, Clone)]
struct Plan {
    plan: SweepPlan,
    raw: String,
}

impl std::ops::Deref for Plan {
    type Target = SweepPlan;
    fn deref(&self) -> &SweepPlan {
        &self.plan
    }
}

impl std::ops::DerefMut for Plan {
    fn deref_mut(&mut self) -> &mut SweepPlan {
        &mut self.plan
    }
}

/// Where a job stands. Serialized (in `sweep-status.json`) and displayed (in the summary table)
/// as the lower-case words of [`JobState::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum JobState {
    /// Still to run.
    #[serde(rename = "pending")]
    Pending,
    /// Running now (local launcher).
    #[serde(rename = "running")]
    Running,
    /// Handed to Slurm, not finished yet.
    #[serde(rename = "submitted")]
    Submitted,
    /// Exited with 0 and its run summary says completed.
    #[serde(rename = "done")]
    Done,
    /// Anything else after it ran.
    #[serde(rename = "failed")]
    Failed,
    /// Finished in an earlier sweep (`--resume`), not run again.
    #[serde(rename = "skipped (finished)")]
    Skipped,
}

impl JobState {
    /// The state as written to `sweep-status.json` and printed.
    fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Submitted => "submitted",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Skipped => "skipped (finished)",
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so that widths in the summary table apply.
        f.pad(self.as_str())
    }
}

/// One job's line in `sweep-status.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct JobStatus {
    index: usize,
    name: String,
    run_dir: PathBuf,
    status: JobState,
    exit_code: Option<i32>,
    seconds: Option<f64>,
    final_test_error_pct: Option<f64>,
    epochs_completed: Option<u64>,
    train_images_per_sec: Option<f64>,
    /// The device it last ran on (`--devices` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device: Option<usize>,
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
    if args.devices.is_some() || args.slurm.gpus_per_task.is_some() {
        for job in &plan.jobs {
            check_no_device_override(&job.overrides)
                .with_context(|| format!("job {} ({})", job.index, job.name))?;
        }
    }
    let existing: Vec<&PlannedJob> = plan.jobs.iter().filter(|j| j.run_dir.exists()).collect();
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
    let mut statuses = initial_statuses(&plan, args.resume);
    let to_run = pending(&statuses);
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
        Launcher::Local => {
            let (slots, note) = local_slots(args.jobs, args.devices.as_deref());
            if let Some(note) = note {
                eprintln!("{note}");
            }
            let run_script = |i: usize, device: Option<usize>| {
                Command::new("bash")
                    .arg(jobs_dir.join(format!("{i}.sh")))
                    .args(device.map(|d| d.to_string()))
                    .status()
                    .ok()
                    .and_then(|s| s.code())
            };
            run_local(
                &plan,
                &experiment,
                &jobs_dir,
                &to_run,
                &slots,
                &status_path,
                &mut statuses,
                &run_script,
            )?
        }
        Launcher::Slurm => {
            for &i in &to_run {
                statuses[i].status = JobState::Submitted;
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
    let failed: Vec<&JobStatus> = statuses
        .iter()
        .filter(|s| s.status == JobState::Failed)
        .collect();
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

/// Every job's status before launching: `pending`, or with `resume`, `skipped (finished)` for
/// jobs whose run has a completed `summary.json`.
fn initial_statuses(plan: &Plan, resume: bool) -> Vec<JobStatus> {
    plan.jobs
        .iter()
        .map(|job| {
            let mut status = JobStatus {
                index: job.index,
                name: job.name.clone(),
                run_dir: job.run_dir.clone(),
                status: JobState::Pending,
                exit_code: None,
                seconds: None,
                final_test_error_pct: None,
                epochs_completed: None,
                train_images_per_sec: None,
                device: None,
            };
            if resume && read_summary(&job.run_dir).is_some_and(|s| s.completed) {
                status.status = JobState::Skipped;
                fill_from_summary(&mut status);
            }
            status
        })
        .collect()
}

/// Indices of the jobs still to run.
fn pending(statuses: &[JobStatus]) -> Vec<usize> {
    statuses
        .iter()
        .filter(|s| s.status == JobState::Pending)
        .map(|s| s.index)
        .collect()
}

/// Runs every job in `queue` (in order) on `slots`: one worker thread per slot (at most one per
/// job), each running its jobs one after another, so a slot's device never has two jobs at
/// once, and a job starts as soon as any slot is free. `run(job, device)` runs one job.
fn schedule<F>(queue: &[usize], slots: &[Option<usize>], run: F)
where
    F: Fn(usize, Option<usize>) + Sync,
{
    let queue = Mutex::new(queue.iter().copied().collect::<VecDeque<_>>());
    let workers = slots.len().min(queue.lock().expect("queue").len());
    std::thread::scope(|scope| {
        for &device in &slots[..workers] {
            let (queue, run) = (&queue, &run);
            scope.spawn(move || {
                loop {
                    let Some(i) = queue.lock().expect("queue").pop_front() else {
                        break;
                    };
                    run(i, device);
                }
            });
        }
    });
}

/// The local launcher: [`schedule`]s `to_run` on `slots`, keeping `statuses` and the status file
/// current. `run_job(index, device)` runs a job and returns its exit code (`bash jobs/<i>.sh
/// [DEVICE]`; a fake in tests).
#[allow(clippy::too_many_arguments)]
fn run_local(
    plan: &Plan,
    experiment: &Path,
    jobs_dir: &Path,
    to_run: &[usize],
    slots: &[Option<usize>],
    status_path: &Path,
    statuses: &mut Vec<JobStatus>,
    run_job: &(dyn Fn(usize, Option<usize>) -> Option<i32> + Sync),
) -> Result<()> {
    let shared = Mutex::new((std::mem::take(statuses), 0usize));
    let total = to_run.len();
    schedule(to_run, slots, |i, device| {
        {
            let mut guard = shared.lock().expect("status");
            guard.0[i].status = JobState::Running;
            guard.0[i].device = device;
            let _ = write_status(status_path, plan, experiment, "local", &guard.0);
            eprintln!(
                "[start] {} ({i}){}",
                plan.jobs[i].name,
                device
                    .map(|d| format!(" on device {d}"))
                    .unwrap_or_default()
            );
        }
        let start = Instant::now();
        let code = run_job(i, device);
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
            if s.status == JobState::Done {
                "done"
            } else {
                "FAILED"
            },
            s.name,
            start.elapsed().as_secs_f64(),
            s.final_test_error_pct
                .map(|e| format!(", test error {e:.2}%"))
                .unwrap_or_default()
        );
        let _ = write_status(status_path, plan, experiment, "local", statuses);
    });
    *statuses = shared.into_inner().expect("status lock").0;
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
        JobState::Done
    } else {
        JobState::Failed
    };
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
    job: &PlannedJob,
) -> Result<()> {
    let i = job.index;
    let overrides: Vec<String> = job.overrides.iter().map(|o| quote(o)).collect();
    let script = format!(
        "#!/usr/bin/env bash
# Job {i}: {name}. Written by `cargo xtask sweep`; run by the local and Slurm launchers.
# Usage: {i}.sh [DEVICE]; DEVICE adds the override runtime.device=DEVICE (local --devices).
# capsnet decides whether to resume (--resume-or-start: from the run's latest checkpoint if the
# run directory holds a run, else it starts the run).
set -u
cd {root}
device=()
if [ $# -ge 1 ]; then device=(\"runtime.device=$1\"); fi
{capsnet} train {experiment} --run-dir {run_dir} --resume-or-start --plain {overrides} \"${{device[@]}}\" >{log} 2>&1
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
    let plan: SweepPlan = serde_json::from_slice(&out.stdout)
        .context("cannot read `capsnet sweep-plan --json` output")?;
    Ok(Plan {
        plan,
        raw: String::from_utf8_lossy(&out.stdout).into_owned(),
    })
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
        assert_eq!(parsed.jobs, Some(2));
        assert_eq!(parsed.devices, None);
        assert!(parsed.resume && !parsed.dry_run);
        assert_eq!(parsed.features, ["tch", "wgpu"]);
        assert_eq!(parsed.overrides, ["train.epochs=1"]);
        assert!(SweepArgs::parse(&["--jobs".into()]).is_err());
        assert!(SweepArgs::parse(&["a.toml".into(), "--launcher".into(), "k8s".into()]).is_err());
        assert!(SweepArgs::parse(&["a.toml".into(), "b.toml".into()]).is_err());
        assert!(SweepArgs::parse(&[]).is_err());
    }

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    fn scratch(tag: &str) -> PathBuf {
        crate::scratch_dir(tag)
    }

    #[test]
    fn devices_parse_and_conflicts_are_errors() {
        let parsed = SweepArgs::parse(&strings(&["e.toml", "--devices", "0,1, 2,3"])).unwrap();
        assert_eq!(parsed.devices.as_deref(), Some(&[0, 1, 2, 3][..]));
        assert_eq!(parsed.jobs, None);
        let err = |args: &[&str]| format!("{:#}", SweepArgs::parse(&strings(args)).unwrap_err());
        assert!(err(&["e.toml", "--devices", "0,0"]).contains("twice"));
        assert!(err(&["e.toml", "--devices", "0,gpu1"]).contains("device indices"));
        assert!(err(&["e.toml", "--devices", ""]).contains("device indices"));
        assert!(
            err(&["e.toml", "--launcher", "slurm", "--devices", "0,1"]).contains("--gpus-per-task")
        );
        assert!(err(&["e.toml", "--gpus-per-task", "1"]).contains("--launcher slurm"));
        assert!(
            err(&["e.toml", "--launcher", "slurm", "--gpus-per-task", "0"]).contains("at least 1")
        );
        assert!(
            err(&["e.toml", "--devices", "0,1", "runtime.device=1"]).contains("runtime.device=1")
        );
        assert!(
            err(&[
                "e.toml",
                "--launcher",
                "slurm",
                "--gpus-per-task",
                "1",
                "runtime.device=0"
            ])
            .contains("runtime.device=0")
        );
        // Without --devices, runtime.device is an ordinary override.
        assert!(SweepArgs::parse(&strings(&["e.toml", "runtime.device=1"])).is_ok());
        let slurm = SweepArgs::parse(&strings(&[
            "e.toml",
            "--launcher",
            "slurm",
            "--gpus-per-task",
            "2",
            "-j",
            "3",
        ]))
        .unwrap();
        assert_eq!(slurm.slurm.gpus_per_task, Some(2));
        assert_eq!(slurm.slurm.max_parallel, Some(3));
    }

    #[test]
    fn slots_follow_jobs_and_devices() {
        assert_eq!(local_slots(None, None), (vec![None], None));
        assert_eq!(local_slots(Some(3), None), (vec![None; 3], None));
        assert_eq!(
            local_slots(None, Some(&[0, 1, 2, 3])),
            (vec![Some(0), Some(1), Some(2), Some(3)], None)
        );
        assert_eq!(
            local_slots(Some(2), Some(&[5, 7, 9])),
            (vec![Some(5), Some(7)], None)
        );
        let (slots, note) = local_slots(Some(8), Some(&[0, 1, 2, 3]));
        assert_eq!(slots, [Some(0), Some(1), Some(2), Some(3)]);
        assert!(note.unwrap().contains("--jobs 8 capped at 4"));
    }

    /// What a fake job runner saw: which job ran on which device, and any overlap on a device.
    #[derive(Default)]
    struct Recorder {
        runs: Mutex<Vec<(usize, Option<usize>)>>,
        busy: Mutex<Vec<Option<usize>>>,
        running: Mutex<usize>,
        max_running: Mutex<usize>,
        violations: Mutex<Vec<String>>,
    }

    impl Recorder {
        fn start(&self, job: usize, device: Option<usize>) {
            if let Some(d) = device {
                let mut busy = self.busy.lock().unwrap();
                if busy.contains(&Some(d)) {
                    self.violations
                        .lock()
                        .unwrap()
                        .push(format!("job {job} started on busy device {d}"));
                }
                busy.push(Some(d));
            }
            let mut running = self.running.lock().unwrap();
            *running += 1;
            let mut max = self.max_running.lock().unwrap();
            *max = (*max).max(*running);
        }

        fn end(&self, job: usize, device: Option<usize>) {
            if let Some(d) = device {
                let mut busy = self.busy.lock().unwrap();
                let at = busy.iter().position(|&b| b == Some(d)).unwrap();
                busy.remove(at);
            }
            *self.running.lock().unwrap() -= 1;
            self.runs.lock().unwrap().push((job, device));
        }

        fn jobs_run(&self) -> Vec<usize> {
            let mut jobs: Vec<usize> = self.runs.lock().unwrap().iter().map(|r| r.0).collect();
            jobs.sort_unstable();
            jobs
        }
    }

    #[test]
    fn scheduler_never_puts_two_jobs_on_one_device_and_runs_each_once() {
        let recorder = Recorder::default();
        let queue: Vec<usize> = (0..24).collect();
        let slots = [Some(0), Some(1), Some(2), Some(3)];
        schedule(&queue, &slots, |job, device| {
            recorder.start(job, device);
            // Uneven job lengths, so devices free up in a shifting order.
            std::thread::sleep(std::time::Duration::from_millis(1 + (job as u64 * 7) % 9));
            recorder.end(job, device);
        });
        assert_eq!(*recorder.violations.lock().unwrap(), Vec::<String>::new());
        assert_eq!(recorder.jobs_run(), queue);
        assert!(*recorder.max_running.lock().unwrap() <= 4);
        let mut devices: Vec<usize> = recorder
            .runs
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.1.expect("every job has a device"))
            .collect();
        devices.sort_unstable();
        devices.dedup();
        assert_eq!(devices, [0, 1, 2, 3]);
    }

    #[test]
    fn scheduler_hands_out_jobs_as_devices_free_up() {
        // The first job started holds its device until every other job has finished. With jobs
        // handed out as devices free up, the others all run on the remaining three devices; a
        // static split (every fourth job per device) would wait forever (the timeout fails it).
        let others_done = Mutex::new(0usize);
        let first = Mutex::new(None::<(usize, Option<usize>)>);
        let recorder = Recorder::default();
        let queue: Vec<usize> = (0..13).collect();
        schedule(
            &queue,
            &[Some(0), Some(1), Some(2), Some(3)],
            |job, device| {
                recorder.start(job, device);
                let is_first = {
                    let mut first = first.lock().unwrap();
                    first.is_none() && {
                        *first = Some((job, device));
                        true
                    }
                };
                if is_first {
                    let start = Instant::now();
                    while *others_done.lock().unwrap() < 12 {
                        assert!(
                            start.elapsed().as_secs() < 20,
                            "the other jobs waited for the busy device"
                        );
                        std::thread::sleep(std::time::Duration::from_millis(2));
                    }
                } else {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    *others_done.lock().unwrap() += 1;
                }
                recorder.end(job, device);
            },
        );
        let (first_job, first_device) = first.lock().unwrap().unwrap();
        let on_first_device: Vec<usize> = recorder
            .runs
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.1 == first_device)
            .map(|r| r.0)
            .collect();
        assert_eq!(on_first_device, [first_job]);
        assert_eq!(recorder.jobs_run(), queue);
        assert!(recorder.violations.lock().unwrap().is_empty());
    }

    #[test]
    fn scheduler_without_devices_runs_n_at_a_time() {
        let recorder = Recorder::default();
        let queue: Vec<usize> = (0..10).collect();
        schedule(&queue, &[None, None, None], |job, device| {
            assert_eq!(device, None);
            recorder.start(job, device);
            std::thread::sleep(std::time::Duration::from_millis(3));
            recorder.end(job, device);
        });
        assert_eq!(recorder.jobs_run(), queue);
        assert!(*recorder.max_running.lock().unwrap() <= 3);
        // More slots than jobs, and no jobs at all.
        let recorder = Recorder::default();
        schedule(&[4], &[Some(0), Some(1)], |job, device| {
            recorder.start(job, device);
            recorder.end(job, device);
        });
        assert_eq!(recorder.jobs_run(), [4]);
        schedule(&[], &[Some(0)], |_, _| panic!("no job to run"));
    }

    fn test_plan(dir: &Path, n: usize) -> Plan {
        let plan = SweepPlan {
            name: "fake".into(),
            experiment: "fake.toml".into(),
            dir: dir.to_path_buf(),
            jobs: (0..n)
                .map(|index| PlannedJob {
                    index,
                    name: format!("job-{index}"),
                    sweep_overrides: vec![format!("seed={index}")],
                    overrides: vec![format!("seed={index}")],
                    run_dir: dir.join(format!("job-{index}")),
                    backend: "flex".into(),
                    epochs: 1,
                })
                .collect(),
        };
        Plan {
            plan,
            raw: String::new(),
        }
    }

    fn write_summary(run_dir: &Path, completed: bool) {
        std::fs::create_dir_all(run_dir).unwrap();
        std::fs::write(
            run_dir.join("summary.json"),
            format!(
                r#"{{"completed": {completed}, "epochs_completed": 1, "final_test_error_pct": 1.5,
                   "train_images_per_sec": 100.0, "wall_time_secs": 2.0}}"#
            ),
        )
        .unwrap();
    }

    #[test]
    fn local_launcher_resumes_skipping_finished_jobs() {
        let dir = scratch("resume");
        let jobs_dir = dir.join("jobs");
        std::fs::create_dir_all(&jobs_dir).unwrap();
        let plan = test_plan(&dir, 7);
        // Jobs 1 and 4 finished earlier; job 5 was interrupted (summary says not completed).
        write_summary(&plan.jobs[1].run_dir, true);
        write_summary(&plan.jobs[4].run_dir, true);
        write_summary(&plan.jobs[5].run_dir, false);
        let status_path = dir.join("sweep-status.json");
        let recorder = Recorder::default();
        // A fake job: succeeds, except job 6, which fails.
        let fake = |i: usize, device: Option<usize>| {
            recorder.start(i, device);
            std::thread::sleep(std::time::Duration::from_millis(2));
            let code = if i == 6 { 1 } else { 0 };
            if code == 0 {
                write_summary(&plan.jobs[i].run_dir, true);
            }
            std::fs::write(jobs_dir.join(format!("{i}.exit")), format!("{code}\n")).unwrap();
            recorder.end(i, device);
            Some(code)
        };
        let mut statuses = initial_statuses(&plan, true);
        let to_run = pending(&statuses);
        assert_eq!(to_run, [0, 2, 3, 5, 6]);
        let exp = Path::new("e.toml");
        run_local(
            &plan,
            exp,
            &jobs_dir,
            &to_run,
            &[Some(2), Some(3)],
            &status_path,
            &mut statuses,
            &fake,
        )
        .unwrap();
        assert_eq!(recorder.jobs_run(), [0, 2, 3, 5, 6]);
        assert!(recorder.violations.lock().unwrap().is_empty());
        let by_job: Vec<(&str, Option<usize>)> = statuses
            .iter()
            .map(|s| (s.status.as_str(), s.device))
            .collect();
        for (i, (status, device)) in by_job.iter().enumerate() {
            match i {
                1 | 4 => assert_eq!((*status, *device), ("skipped (finished)", None)),
                6 => assert_eq!(*status, "failed"),
                _ => assert_eq!(*status, "done"),
            }
            if !matches!(i, 1 | 4) {
                assert!(matches!(device, Some(2) | Some(3)), "job {i} on {device:?}");
            }
        }
        // The status file records the same.
        let file: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&status_path).unwrap()).unwrap();
        assert_eq!(file["jobs"][0]["status"], "done");
        assert!(file["jobs"][0]["device"].is_u64());
        assert_eq!(file["jobs"][1]["status"], "skipped (finished)");
        assert!(file["jobs"][1].get("device").is_none());
        assert_eq!(file["jobs"][6]["status"], "failed");

        // Resuming again runs only the failed job.
        let mut statuses = initial_statuses(&plan, true);
        assert_eq!(pending(&statuses), [6]);
        let rerun = Recorder::default();
        let fake = |i: usize, device: Option<usize>| {
            rerun.start(i, device);
            write_summary(&plan.jobs[i].run_dir, true);
            std::fs::write(jobs_dir.join(format!("{i}.exit")), "0\n").unwrap();
            rerun.end(i, device);
            Some(0)
        };
        run_local(
            &plan,
            exp,
            &jobs_dir,
            &[6],
            &[Some(2), Some(3)],
            &status_path,
            &mut statuses,
            &fake,
        )
        .unwrap();
        assert_eq!(rerun.jobs_run(), [6]);
        assert!(
            statuses
                .iter()
                .all(|s| s.status.as_str() != "failed" && s.status.as_str() != "pending")
        );
        // Without --resume nothing is skipped.
        assert_eq!(
            pending(&initial_statuses(&plan, false)),
            (0..7).collect::<Vec<_>>()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn job_script_passes_the_overrides_and_the_device() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("script");
        let jobs_dir = dir.join("jobs");
        std::fs::create_dir_all(&jobs_dir).unwrap();
        // A fake `capsnet` that records its arguments, one per line.
        let capsnet = dir.join("capsnet");
        let args_file = dir.join("args");
        std::fs::write(
            &capsnet,
            format!(
                "#!/usr/bin/env bash
printf '%s\\n' \"$@\" > '{}'
",
                args_file.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&capsnet, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut plan = test_plan(&dir, 1);
        plan.jobs[0].overrides = vec!["model.routing.iterations=3".into(), "name=\"it's\"".into()];
        let job = &plan.jobs[0];
        let experiment = dir.join("exp.toml");
        write_job_script(&dir, &capsnet, &experiment, &jobs_dir, job).unwrap();
        let script = jobs_dir.join("0.sh");
        let run = |extra: &[&str]| {
            let status = Command::new("bash")
                .arg(&script)
                .args(extra)
                .status()
                .unwrap();
            assert!(status.success());
            assert_eq!(
                std::fs::read_to_string(jobs_dir.join("0.exit")).unwrap(),
                "0\n"
            );
            std::fs::read_to_string(&args_file)
                .unwrap()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        let run_dir = job.run_dir.display().to_string();
        let experiment = experiment.display().to_string();
        let expected = |device: &[&str]| -> Vec<String> {
            let mut args = vec![
                "train",
                experiment.as_str(),
                "--run-dir",
                run_dir.as_str(),
                "--resume-or-start",
                "--plain",
                "model.routing.iterations=3",
                "name=\"it's\"",
            ];
            args.extend(device);
            args.into_iter().map(String::from).collect()
        };
        // With a device (local --devices): the job's overrides, then runtime.device.
        assert_eq!(run(&["2"]), expected(&["runtime.device=2"]));
        // Without (plain --jobs, and every Slurm task): no device override at all.
        assert_eq!(run(&[]), expected(&[]));
        // Whether to resume is the binary's decision (--resume-or-start): the script has no
        // checkpoint test of its own and runs the same command when a checkpoint exists.
        let text = std::fs::read_to_string(&script).unwrap();
        assert!(
            !text.contains("checkpoints") && !text.contains("--overwrite"),
            "{text}"
        );
        std::fs::create_dir_all(job.run_dir.join("checkpoints")).unwrap();
        std::fs::write(job.run_dir.join("checkpoints/latest"), "step-1").unwrap();
        assert_eq!(run(&["0"]), expected(&["runtime.device=0"]));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn job_states_keep_their_status_file_words() {
        use JobState::*;
        for (state, word) in [
            (Pending, "pending"),
            (Running, "running"),
            (Submitted, "submitted"),
            (Done, "done"),
            (Failed, "failed"),
            (Skipped, "skipped (finished)"),
        ] {
            assert_eq!(serde_json::to_value(state).unwrap(), word);
            assert_eq!(
                serde_json::from_value::<JobState>(word.into()).unwrap(),
                state
            );
            assert_eq!(format!("{state:<8}|"), format!("{word:<8}|"));
        }
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
    }
}
