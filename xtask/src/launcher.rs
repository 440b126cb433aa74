//! The seam between `cargo xtask sweep` and where its jobs run: the [`Launcher`] trait, the
//! [`SweepContext`] a launcher gets, the job states it keeps current ([`StatusBoard`], written to
//! `<sweep>/sweep-status.json`) and the command-line flags launchers read ([`LaunchArgs`]).
//!
//! The implementations are `local.rs` (child processes on this machine) and `slurm.rs` (a Slurm
//! job array); `sweep.rs` chooses one by `--launcher` name. A new launcher is a file implementing
//! [`Launcher`] with a `make` function, plus its line in `sweep::LAUNCHERS`.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use capsnet_common::summary::Summary;
use capsnet_common::sweep::SweepPlan;
use serde::{Deserialize, Serialize};

/// Runs a sweep's jobs somewhere.
pub trait Launcher {
    /// Its `--launcher` name, also written to `sweep-status.json`.
    fn name(&self) -> &'static str;

    /// Runs the jobs `jobs` (plan indices, each `bash <jobs_dir>/<i>.sh [DEVICE]`) and returns
    /// once none is left running. Keeps `ctx.statuses` current as jobs start, and [`finish`]es
    /// every job of `jobs` (state `done` or `failed`) before returning. An error means the
    /// launcher itself failed (e.g. Slurm refused the array), not that a job failed.
    fn launch(&self, ctx: &SweepContext, jobs: &[usize]) -> Result<()>;
}

/// The flags of `cargo xtask sweep` that say how jobs are launched. Each launcher reads the ones
/// it understands and refuses the ones meant for another.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LaunchArgs {
    /// Run N jobs at a time (local; default 1), or at most N array tasks (Slurm).
    #[arg(short = 'j', long, value_name = "N", value_parser = at_least_one::<usize>)]
    pub jobs: Option<usize>,
    /// Local: one running job per listed device, each given runtime.device=<its device>; jobs
    /// start as devices free up. --jobs defaults to the number of devices; a larger --jobs is
    /// capped at it (one job per device).
    #[arg(long, value_name = "0,1,...", value_parser = parse_devices)]
    pub devices: Option<Devices>,
    /// Slurm: the partition (default: the cluster's).
    #[arg(long, value_name = "P")]
    pub partition: Option<String>,
    /// Slurm: time limit per array task, in any Slurm format (30, 4:00:00, 1-12:00:00).
    #[arg(long, value_name = "T")]
    pub time_limit: Option<String>,
    /// Slurm: #SBATCH --cpus-per-task=N.
    #[arg(long, value_name = "N")]
    pub cpus_per_task: Option<u32>,
    /// Slurm: #SBATCH --gpus-per-task=N; each task runs on the first GPU Slurm gives it
    /// (CUDA_VISIBLE_DEVICES), so leave runtime.device unset.
    #[arg(long, value_name = "N", value_parser = at_least_one::<u32>)]
    pub gpus_per_task: Option<u32>,
}

impl LaunchArgs {
    /// Whether xtask chooses each job's device (`--devices`, `--gpus-per-task`), so that no
    /// override may set `runtime.device`.
    pub fn chooses_device(&self) -> bool {
        self.devices.is_some() || self.gpus_per_task.is_some()
    }
}

/// `--devices 0,1,3`: device indices, no duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Devices(pub Vec<usize>);

impl std::ops::Deref for Devices {
    type Target = [usize];
    fn deref(&self) -> &[usize] {
        &self.0
    }
}

/// Parses `--devices 0,1,3`.
fn parse_devices(text: &str) -> Result<Devices> {
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
    Ok(Devices(devices))
}

/// A whole number of at least 1 (`--jobs`, `--gpus-per-task`).
fn at_least_one<T: std::str::FromStr + PartialEq + From<u8>>(text: &str) -> Result<T> {
    let n: T = text
        .parse()
        .map_err(|_| anyhow::anyhow!("takes a positive number, not `{text}`"))?;
    if n == T::from(0) {
        bail!("must be at least 1");
    }
    Ok(n)
}

/// What a launcher works with: the plan, the folder of job scripts and the job statuses.
pub struct SweepContext<'a> {
    /// The sweep (`capsnet sweep-plan --json`).
    pub plan: &'a SweepPlan,
    /// `<sweep>/jobs`: `<i>.sh` runs job `i` and writes `<i>.exit`.
    pub jobs_dir: PathBuf,
    /// Every job's status, mirrored to `<sweep>/sweep-status.json`.
    pub statuses: StatusBoard<'a>,
}

/// Where a job stands. Serialized (in `sweep-status.json`) and displayed (in the summary table)
/// as the words of [`JobState::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobState {
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
    pub fn as_str(self) -> &'static str {
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
pub struct JobStatus {
    pub index: usize,
    pub name: String,
    pub run_dir: PathBuf,
    pub status: JobState,
    pub exit_code: Option<i32>,
    pub seconds: Option<f64>,
    pub final_test_error_pct: Option<f64>,
    pub epochs_completed: Option<u64>,
    pub train_images_per_sec: Option<f64>,
    /// The device it last ran on (`--devices` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<usize>,
}

/// Every job's [`JobStatus`], shared by a launcher's threads, and the status file they are
/// written to.
pub struct StatusBoard<'a> {
    path: PathBuf,
    sweep: &'a str,
    experiment: &'a Path,
    launcher: &'static str,
    jobs: Mutex<Vec<JobStatus>>,
}

#[derive(Serialize)]
struct StatusFile<'a> {
    sweep: &'a str,
    experiment: &'a Path,
    launcher: &'a str,
    updated_unix: u64,
    jobs: &'a [JobStatus],
}

impl<'a> StatusBoard<'a> {
    /// The statuses `jobs` of `plan`'s jobs, run by `launcher`, written to `path`.
    pub fn new(
        path: PathBuf,
        plan: &'a SweepPlan,
        experiment: &'a Path,
        launcher: &'static str,
        jobs: Vec<JobStatus>,
    ) -> Self {
        StatusBoard {
            path,
            sweep: &plan.name,
            experiment,
            launcher,
            jobs: Mutex::new(jobs),
        }
    }

    /// The statuses, locked (for changes that are written with [`StatusBoard::write`]).
    pub fn lock(&self) -> MutexGuard<'_, Vec<JobStatus>> {
        self.jobs.lock().expect("job statuses")
    }

    /// Changes the statuses with `change` and writes the status file.
    pub fn update<R>(&self, change: impl FnOnce(&mut [JobStatus]) -> R) -> (R, Result<()>) {
        let mut jobs = self.lock();
        let out = change(&mut jobs);
        (out, self.write_locked(&jobs))
    }

    /// Writes the status file (atomically: a temporary file renamed over it).
    pub fn write(&self) -> Result<()> {
        self.write_locked(&self.lock())
    }

    fn write_locked(&self, jobs: &[JobStatus]) -> Result<()> {
        let file = StatusFile {
            sweep: self.sweep,
            experiment: self.experiment,
            launcher: self.launcher,
            updated_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            jobs,
        };
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&file)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// The statuses, for the summary.
    pub fn into_jobs(self) -> Vec<JobStatus> {
        self.jobs.into_inner().expect("job statuses")
    }
}

/// Sets a finished job's status from its `.exit` file (or `code`) and its run summary.
pub fn finish(jobs_dir: &Path, status: &mut JobStatus, code: Option<i32>) {
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

/// The summary of the run in `run_dir`, if it wrote one.
pub fn read_summary(run_dir: &Path) -> Option<Summary> {
    let text = std::fs::read_to_string(run_dir.join("summary.json")).ok()?;
    serde_json::from_str(text.as_str()).ok()
}

/// Copies the run summary's numbers (if the run wrote one) into `status`.
pub fn fill_from_summary(status: &mut JobStatus) {
    if let Some(s) = read_summary(&status.run_dir) {
        status.final_test_error_pct = s.final_test_error_pct;
        status.epochs_completed = Some(s.epochs_completed as u64);
        status.train_images_per_sec = Some(s.train_images_per_sec);
        status.seconds = status.seconds.or(Some(s.wall_time_secs));
    }
}
