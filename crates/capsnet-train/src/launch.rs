//! `capsnet launch`: runs a sweep plan (`capsnet sweep-plan EXP --json`) on a machine without
//! cargo, several `capsnet train` processes at once, within a time budget, and packs what came
//! back into one archive. Made for a leased GPU (docs/gpu.md): every job started gets
//! `--stop-after-secs` set to the time left, so it ends with an evaluated result even when the
//! lease would end mid-run; a job that cannot get `min_run_secs` any more is not started; the
//! archive holds summaries, resolved configs, metrics and logs, never checkpoints or event files.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use capsnet_common::sweep::{PlannedJob, SweepPlan};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// How a plan runs.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// Training processes at once.
    pub parallel: usize,
    /// Seconds from the launcher's start until everything must be packed.
    pub budget_secs: f64,
    /// Seconds kept back from each job's budget for its final evaluation and for packing.
    pub reserve_secs: f64,
    /// A job is started only with at least this many seconds of budget left for it.
    pub min_run_secs: f64,
    /// Folder of the runs (`<out>/<job name>/`), the status file and the launcher log.
    pub out: PathBuf,
    /// Arguments added to every `capsnet train` (e.g. `--backend tch-cuda`).
    pub extra_args: Vec<String>,
}

/// How one job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    /// Trained every epoch.
    Completed,
    /// Stopped by its time budget, with an evaluated result.
    CutShort,
    /// The process failed (see its `launch.log`).
    Failed,
    /// Not started: too little budget left.
    NotStarted,
}

/// One job's outcome (`launch-status.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobOutcome {
    /// The plan's job index.
    pub index: usize,
    /// The job's name.
    pub name: String,
    /// How it ended.
    pub state: JobState,
    /// Its run directory under `out`.
    pub run_dir: PathBuf,
    /// The time budget it was given, in seconds.
    pub budget_secs: Option<f64>,
    /// Wall seconds it ran.
    pub secs: Option<f64>,
    /// The process's exit code when it failed.
    pub exit_code: Option<i32>,
}

/// File names kept in the archive, per run directory.
pub const KEPT_FILES: [&str; 6] = [
    "summary.json",
    "config.resolved.toml",
    "sources.json",
    "metrics.jsonl",
    "train.log",
    "classes.json",
];

/// The status file the launcher writes into `out`.
pub const STATUS_FILE: &str = "launch-status.json";

/// A run directory name for a job: its name with path separators replaced.
fn dir_name(job: &PlannedJob) -> String {
    job.name.replace(['/', '\\'], "_")
}

/// Runs `plan` with `exe train` (the `capsnet` binary) as `options` say; returns every job's
/// outcome, also written to `<out>/launch-status.json`. `log` receives one line per event.
pub fn run_plan(
    plan: &SweepPlan,
    exe: &Path,
    options: &LaunchOptions,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<JobOutcome>, TrainError> {
    if options.parallel == 0 {
        return Err(TrainError::Invalid("--parallel must be at least 1".into()));
    }
    std::fs::create_dir_all(&options.out).map_err(|e| TrainError::io(&options.out, e))?;
    let started = Instant::now();
    let left = || options.budget_secs - started.elapsed().as_secs_f64();
    let mut queue: Vec<&PlannedJob> = plan.jobs.iter().collect();
    queue.reverse(); // pop() takes jobs in plan order
    let mut running: Vec<(Child, JobOutcome, Instant)> = Vec::new();
    let mut done: Vec<JobOutcome> = Vec::new();
    log(&format!(
        "{}: {} jobs, {} at once, budget {:.0} s",
        plan.name,
        plan.jobs.len(),
        options.parallel,
        options.budget_secs
    ));
    loop {
        while running.len() < options.parallel && !queue.is_empty() {
            let budget = left() - options.reserve_secs;
            if budget < options.min_run_secs {
                break;
            }
            let job = queue.pop().expect("checked above");
            let run_dir = options.out.join(dir_name(job));
            std::fs::create_dir_all(&run_dir).map_err(|e| TrainError::io(&run_dir, e))?;
            let log_path = run_dir.join("launch.log");
            let out = std::fs::File::create(&log_path).map_err(|e| TrainError::io(&log_path, e))?;
            let err = out.try_clone().map_err(|e| TrainError::io(&log_path, e))?;
            let child = Command::new(exe)
                .arg("train")
                .arg(&plan.experiment)
                .args(&job.overrides)
                .arg("--run-dir")
                .arg(&run_dir)
                .arg("--overwrite")
                .arg("--plain")
                .arg("--stop-after-secs")
                .arg(format!("{budget:.0}"))
                .args(&options.extra_args)
                .stdout(Stdio::from(out))
                .stderr(Stdio::from(err))
                .spawn()
                .map_err(|e| TrainError::io(exe, e))?;
            log(&format!(
                "started job {} `{}` with {budget:.0} s ({} left)",
                job.index,
                job.name,
                queue.len()
            ));
            running.push((
                child,
                JobOutcome {
                    index: job.index,
                    name: job.name.clone(),
                    state: JobState::Failed,
                    run_dir,
                    budget_secs: Some(budget),
                    secs: None,
                    exit_code: None,
                },
                Instant::now(),
            ));
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut i = 0;
        while i < running.len() {
            let status = running[i]
                .0
                .try_wait()
                .map_err(|e| TrainError::io(exe, e))?;
            let Some(status) = status else {
                i += 1;
                continue;
            };
            let (_, mut outcome, began) = running.swap_remove(i);
            outcome.secs = Some(began.elapsed().as_secs_f64());
            outcome.state = if status.success() {
                finished_state(&outcome.run_dir)
            } else {
                outcome.exit_code = status.code();
                JobState::Failed
            };
            log(&format!(
                "job {} `{}`: {:?} after {:.0} s",
                outcome.index,
                outcome.name,
                outcome.state,
                outcome.secs.unwrap_or_default()
            ));
            done.push(outcome);
        }
    }
    for job in queue.into_iter().rev() {
        done.push(JobOutcome {
            index: job.index,
            name: job.name.clone(),
            state: JobState::NotStarted,
            run_dir: options.out.join(dir_name(job)),
            budget_secs: None,
            secs: None,
            exit_code: None,
        });
    }
    done.sort_by_key(|o| o.index);
    let status = options.out.join(STATUS_FILE);
    let json = serde_json::to_string_pretty(&done).expect("outcomes serialise");
    crate::run_dir::write_atomic(&status, json.as_bytes())?;
    Ok(done)
}

/// Completed or cut short, from the run's `summary.json` (failed without one).
fn finished_state(run_dir: &Path) -> JobState {
    let summary = std::fs::read_to_string(run_dir.join("summary.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<crate::Summary>(&t).ok());
    match summary {
        Some(s) if s.completed => JobState::Completed,
        Some(_) => JobState::CutShort,
        None => JobState::Failed,
    }
}

/// Packs `out`'s status file, launcher log and each run's [`KEPT_FILES`] (and `launch.log`)
/// into the gzipped tar `archive` (paths relative to `out`). Returns the number of files.
pub fn pack(out: &Path, archive: &Path) -> Result<usize, TrainError> {
    use flate2::Compression;
    use flate2::write::GzEncoder;
    let tmp = archive.with_extension("part");
    let file = std::fs::File::create(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    let mut builder = tar::Builder::new(GzEncoder::new(file, Compression::default()));
    let mut count = 0;
    let mut add = |path: &Path, name: &Path| -> Result<(), TrainError> {
        builder
            .append_path_with_name(path, name)
            .map_err(|e| TrainError::io(path, e))?;
        count += 1;
        Ok(())
    };
    for name in [STATUS_FILE, "launch.log"] {
        let path = out.join(name);
        if path.is_file() {
            add(&path, Path::new(name))?;
        }
    }
    let mut runs: Vec<PathBuf> = std::fs::read_dir(out)
        .map_err(|e| TrainError::io(out, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    runs.sort();
    for run in runs {
        let run_name = run
            .file_name()
            .expect("a directory entry has a name")
            .to_owned();
        for name in KEPT_FILES.iter().chain(&["launch.log"]) {
            let path = run.join(name);
            if path.is_file() {
                add(&path, &Path::new(&run_name).join(name))?;
            }
        }
    }
    let encoder = builder.into_inner().map_err(|e| TrainError::io(&tmp, e))?;
    encoder.finish().map_err(|e| TrainError::io(&tmp, e))?;
    std::fs::rename(&tmp, archive).map_err(|e| TrainError::io(archive, e))?;
    Ok(count)
}
