//! `capsnet launch`: runs a sweep plan (`capsnet sweep-plan EXP --json`) on a machine without
//! cargo, several `capsnet train` processes at once, within a time budget, and packs what came
//! back into one archive. Made for a leased GPU (docs/gpu.md): every job started gets
//! `--stop-after-secs` set to the time left, so it ends with an evaluated result even when the
//! lease would end mid-run; a job that cannot get `min_run_secs` any more is not started; the
//! archive holds summaries, resolved configs, metrics and logs, never checkpoints or event files.
//!
//! With [`Parallel::Auto`] the launcher first measures: it trains the plan's first jobs for
//! `warmup_secs` with 1, 2, … processes at once (each given `cores / n` CPU threads), reads
//! their training images/s, and keeps the process count with the highest total (it stops
//! trying once one more process adds under 10%). The warm-up trains the real jobs in their own
//! run directories, and every job is started with `--resume-or-start`, so nothing measured is
//! thrown away. With `fit_epochs` it then sizes `train.epochs` from the measured speed, so that
//! the jobs left finish whole within the budget where they can ([`fit_epochs`]); the
//! measurements and the decision go to `launch-sizing.json`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use capsnet_common::sweep::{PlannedJob, SweepPlan};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// How many training processes run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parallel {
    /// This many.
    Fixed(usize),
    /// Measured by a warm-up, at most `max`.
    Auto {
        /// The most processes tried.
        max: usize,
    },
}

impl std::str::FromStr for Parallel {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "auto" => Ok(Self::Auto { max: 4 }),
            n => match n.parse::<usize>() {
                Ok(n) if n > 0 => Ok(Self::Fixed(n)),
                _ => Err(format!(
                    "`{text}`: expected a number of processes (1, 2, …) or `auto`"
                )),
            },
        }
    }
}

/// How a plan runs.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// Training processes at once.
    pub parallel: Parallel,
    /// Seconds each warm-up trial trains (with [`Parallel::Auto`]).
    pub warmup_secs: f64,
    /// Set `train.epochs` from the measured speed so that jobs finish within the budget.
    pub fit_epochs: bool,
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

/// The warm-up's measurements and the launcher's sizing decisions, in `out`.
pub const SIZING_FILE: &str = "launch-sizing.json";

/// One warm-up trial: `processes` jobs trained at once for the warm-up time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Processes at once.
    pub processes: usize,
    /// CPU threads each was given (`RAYON_NUM_THREADS`, `OMP_NUM_THREADS`).
    pub threads_per_process: usize,
    /// The plan's job indices trained.
    pub jobs: Vec<usize>,
    /// Training images per second of each, over this trial's steps.
    pub images_per_sec: Vec<f64>,
    /// Their sum.
    pub total_images_per_sec: f64,
    /// Seconds of evaluation per evaluation, the largest seen.
    pub eval_secs: f64,
    /// Wall seconds the trial took (start-up and the stop's evaluation included).
    pub wall_secs: f64,
}

/// What the launcher measured and decided (`launch-sizing.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sizing {
    /// The warm-up trials (empty with a fixed process count).
    pub trials: Vec<Trial>,
    /// Processes at once.
    pub parallel: usize,
    /// CPU threads per process, when the launcher set them (warm-up).
    pub threads_per_process: Option<usize>,
    /// `train.epochs` given to every job (at most its own), when fitted.
    pub epochs: Option<usize>,
    /// How the epochs were fitted, or why not.
    pub note: String,
}

/// The epochs that fit: `rounds` rounds of jobs (one per process at a time) in `secs` seconds,
/// each epoch `train_images / images_per_sec` of training plus one evaluation of `eval_secs`,
/// with 10% kept back for start-up and the variance of a shared machine. At least 1.
pub fn fit_epochs(
    secs: f64,
    rounds: usize,
    train_images: usize,
    images_per_sec: f64,
    eval_secs: f64,
) -> usize {
    let epoch_secs = train_images as f64 / images_per_sec + eval_secs;
    let per_job = secs / rounds.max(1) as f64 * 0.9;
    ((per_job / epoch_secs).floor() as usize).max(1)
}

/// A run's `summary.json`, if it has one.
fn read_summary(run_dir: &Path) -> Option<crate::Summary> {
    let text = std::fs::read_to_string(run_dir.join("summary.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// CPU threads each of `processes` processes gets.
fn threads_for(processes: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cores / processes.max(1)).max(1)
}

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
    if matches!(
        options.parallel,
        Parallel::Fixed(0) | Parallel::Auto { max: 0 }
    ) {
        return Err(TrainError::Invalid("--parallel must be at least 1".into()));
    }
    std::fs::create_dir_all(&options.out).map_err(|e| TrainError::io(&options.out, e))?;
    let started = Instant::now();
    let left = || options.budget_secs - started.elapsed().as_secs_f64();
    let sizing = size(plan, exe, options, &left, log)?;
    let extra_overrides: Vec<String> = sizing
        .epochs
        .map(|e| format!("train.epochs={e}"))
        .into_iter()
        .collect();
    let threads = sizing.threads_per_process;
    let parallel = sizing.parallel;
    let sizing_path = options.out.join(SIZING_FILE);
    let json = serde_json::to_string_pretty(&sizing).expect("sizing serialises");
    crate::run_dir::write_atomic(&sizing_path, json.as_bytes())?;
    let mut queue: Vec<&PlannedJob> = plan.jobs.iter().collect();
    queue.reverse(); // pop() takes jobs in plan order
    let mut running: Vec<(Child, JobOutcome, Instant)> = Vec::new();
    let mut done: Vec<JobOutcome> = Vec::new();
    log(&format!(
        "{}: {} jobs, {} at once, budget {:.0} s",
        plan.name,
        plan.jobs.len(),
        parallel,
        options.budget_secs
    ));
    loop {
        while running.len() < parallel && !queue.is_empty() {
            let budget = left() - options.reserve_secs;
            if budget < options.min_run_secs {
                break;
            }
            let job = queue.pop().expect("checked above");
            let run_dir = options.out.join(dir_name(job));
            let child = spawn_job(plan, job, exe, options, &extra_overrides, budget, threads)?;
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

/// The file a job's output goes to: `<out>/<job>.launch.log`, beside its run directory (a
/// file inside would make a new run directory non-empty); packed as `<job>/launch.log`.
pub fn job_log(out: &Path, job: &PlannedJob) -> PathBuf {
    out.join(format!("{}.launch.log", dir_name(job)))
}

/// Starts `job` as `capsnet train … --resume-or-start --stop-after-secs budget` in its run
/// directory under `out`, its output appended to [`job_log`] (a job the warm-up trained keeps
/// that part of its log).
fn spawn_job(
    plan: &SweepPlan,
    job: &PlannedJob,
    exe: &Path,
    options: &LaunchOptions,
    extra_overrides: &[String],
    budget: f64,
    threads: Option<usize>,
) -> Result<Child, TrainError> {
    let run_dir = options.out.join(dir_name(job));
    let log_path = job_log(&options.out, job);
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| TrainError::io(&log_path, e))?;
    let err = out.try_clone().map_err(|e| TrainError::io(&log_path, e))?;
    let mut command = Command::new(exe);
    command
        .arg("train")
        .arg(&plan.experiment)
        .args(&job.overrides)
        .args(extra_overrides)
        .arg("--run-dir")
        .arg(&run_dir)
        .arg("--resume-or-start")
        .arg("--plain")
        .arg("--stop-after-secs")
        .arg(format!("{:.0}", budget.max(1.0)))
        .args(&options.extra_args)
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    if let Some(threads) = threads {
        command
            .env("RAYON_NUM_THREADS", threads.to_string())
            .env("OMP_NUM_THREADS", threads.to_string());
    }
    command.spawn().map_err(|e| TrainError::io(exe, e))
}

/// The process count (measured with [`Parallel::Auto`]) and the epochs (with `fit_epochs`).
fn size(
    plan: &SweepPlan,
    exe: &Path,
    options: &LaunchOptions,
    left: &dyn Fn() -> f64,
    log: &mut dyn FnMut(&str),
) -> Result<Sizing, TrainError> {
    let Parallel::Auto { max } = options.parallel else {
        let Parallel::Fixed(n) = options.parallel else {
            unreachable!()
        };
        return Ok(Sizing {
            trials: Vec::new(),
            parallel: n,
            threads_per_process: None,
            epochs: None,
            note: "fixed process count, no warm-up: epochs as planned".into(),
        });
    };
    let mut trials: Vec<Trial> = Vec::new();
    for n in 1..=max.min(plan.jobs.len()) {
        let trial = warm_up(plan, exe, options, n, log)?;
        let best = trials
            .iter()
            .map(|t| t.total_images_per_sec)
            .fold(0.0, f64::max);
        let gain = trial.total_images_per_sec / best;
        trials.push(trial);
        if best > 0.0 && gain < 1.1 {
            break;
        }
        if left() - options.reserve_secs < options.min_run_secs {
            break;
        }
    }
    let chosen = trials
        .iter()
        .max_by(|a, b| a.total_images_per_sec.total_cmp(&b.total_images_per_sec))
        .cloned();
    let Some(chosen) = chosen else {
        return Err(TrainError::Invalid(
            "the plan has no jobs to measure".into(),
        ));
    };
    let parallel = chosen.processes;
    log(&format!(
        "warm-up: {} at once ({:.0} img/s in all, {} threads each)",
        parallel, chosen.total_images_per_sec, chosen.threads_per_process
    ));
    let (epochs, note) = if options.fit_epochs {
        fit_plan_epochs(plan, options, &chosen, left())
    } else {
        (None, "epochs as planned (no --fit-epochs)".to_string())
    };
    log(&format!("sizing: {note}"));
    Ok(Sizing {
        trials,
        parallel,
        threads_per_process: Some(chosen.threads_per_process),
        epochs,
        note,
    })
}

/// `train.epochs` for the jobs from the chosen trial's speed and the seconds left.
fn fit_plan_epochs(
    plan: &SweepPlan,
    options: &LaunchOptions,
    chosen: &Trial,
    left: f64,
) -> (Option<usize>, String) {
    let first = &plan.jobs[chosen.jobs[0]];
    let Some(summary) = read_summary(&options.out.join(dir_name(first))) else {
        return (None, "no warm-up summary: epochs as planned".into());
    };
    let per_process = chosen.total_images_per_sec / chosen.processes as f64;
    let rounds = plan.jobs.len().div_ceil(chosen.processes);
    let secs = left - options.reserve_secs;
    let fitted = fit_epochs(
        secs,
        rounds,
        summary.train_images,
        per_process,
        chosen.eval_secs,
    );
    let planned = plan.jobs.iter().map(|j| j.epochs).max().unwrap_or(1);
    let how = format!(
        "{} jobs in {rounds} round(s) of {} in {secs:.0} s at {per_process:.0} img/s each \
         ({} training images, {:.1} s per evaluation): {fitted} epoch(s) fit",
        plan.jobs.len(),
        chosen.processes,
        summary.train_images,
        chosen.eval_secs
    );
    if fitted >= planned {
        (None, format!("{how}; the planned {planned} fit"))
    } else {
        (
            Some(fitted),
            format!("{how}; train.epochs={fitted} instead of {planned}"),
        )
    }
}

/// Trains the plan's first `n` jobs at once for `warmup_secs`, `cores / n` threads each, and
/// measures each one's training images/s over the steps it made in this trial.
fn warm_up(
    plan: &SweepPlan,
    exe: &Path,
    options: &LaunchOptions,
    n: usize,
    log: &mut dyn FnMut(&str),
) -> Result<Trial, TrainError> {
    let threads = threads_for(n);
    let jobs: Vec<&PlannedJob> = plan.jobs.iter().take(n).collect();
    let before: Vec<(u64, f64)> = jobs
        .iter()
        .map(|j| {
            read_summary(&options.out.join(dir_name(j)))
                .map_or((0, 0.0), |s| (s.steps, s.train_secs))
        })
        .collect();
    let began = Instant::now();
    let mut children = Vec::new();
    for job in &jobs {
        children.push(spawn_job(
            plan,
            job,
            exe,
            options,
            &[],
            options.warmup_secs,
            Some(threads),
        )?);
    }
    for (child, job) in children.iter_mut().zip(&jobs) {
        let status = child.wait().map_err(|e| TrainError::io(exe, e))?;
        if !status.success() {
            return Err(TrainError::Invalid(format!(
                "warm-up: job {} `{}` failed ({status}); see {}",
                job.index,
                job.name,
                job_log(&options.out, job).display()
            )));
        }
    }
    let mut images_per_sec = Vec::new();
    let mut eval_secs: f64 = 0.0;
    for (job, (steps0, secs0)) in jobs.iter().zip(before) {
        let run_dir = options.out.join(dir_name(job));
        let s = read_summary(&run_dir).ok_or_else(|| {
            TrainError::Invalid(format!(
                "warm-up: job `{}` wrote no summary in {}",
                job.name,
                run_dir.display()
            ))
        })?;
        let images = (s.steps - steps0) as f64 * s.batch_size as f64;
        let secs = s.train_secs - secs0;
        images_per_sec.push(if secs > 0.0 { images / secs } else { 0.0 });
        eval_secs = eval_secs.max(s.eval_secs / (s.epochs_completed + 1).max(1) as f64);
    }
    let trial = Trial {
        processes: n,
        threads_per_process: threads,
        jobs: jobs.iter().map(|j| j.index).collect(),
        total_images_per_sec: images_per_sec.iter().sum(),
        images_per_sec,
        eval_secs,
        wall_secs: began.elapsed().as_secs_f64(),
    };
    log(&format!(
        "warm-up with {n} at once ({threads} threads each): {:.0} img/s in all ({:.0} s)",
        trial.total_images_per_sec, trial.wall_secs
    ));
    Ok(trial)
}

/// Completed or cut short, from the run's `summary.json` (failed without one).
fn finished_state(run_dir: &Path) -> JobState {
    match read_summary(run_dir) {
        Some(s) if s.completed => JobState::Completed,
        Some(_) => JobState::CutShort,
        None => JobState::Failed,
    }
}

/// Packs `out`'s status and sizing files, launcher log and each run's [`KEPT_FILES`] (and its
/// [`job_log`], as `<run>/launch.log`)
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
    for name in [STATUS_FILE, SIZING_FILE, "launch.log"] {
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
        for name in KEPT_FILES {
            let path = run.join(name);
            if path.is_file() {
                add(&path, &Path::new(&run_name).join(name))?;
            }
        }
        let mut log_name = run_name.clone();
        log_name.push(".launch.log");
        let log = out.join(log_name);
        if log.is_file() {
            add(&log, &Path::new(&run_name).join("launch.log"))?;
        }
    }
    let encoder = builder.into_inner().map_err(|e| TrainError::io(&tmp, e))?;
    encoder.finish().map_err(|e| TrainError::io(&tmp, e))?;
    std::fs::rename(&tmp, archive).map_err(|e| TrainError::io(archive, e))?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_fit_the_rounds_and_never_go_below_one() {
        // 1,000 images at 100 img/s + 1 s of evaluation: 11 s an epoch. 100 s for 2 rounds,
        // 10% kept back: 45 s a job, 4 whole epochs.
        assert_eq!(fit_epochs(100.0, 2, 1000, 100.0, 1.0), 4);
        assert_eq!(fit_epochs(100.0, 1, 1000, 100.0, 1.0), 8);
        assert_eq!(fit_epochs(5.0, 3, 1000, 100.0, 1.0), 1);
    }

    #[test]
    fn parallel_parses_numbers_and_auto() {
        assert_eq!("3".parse::<Parallel>(), Ok(Parallel::Fixed(3)));
        assert_eq!("auto".parse::<Parallel>(), Ok(Parallel::Auto { max: 4 }));
        for bad in ["0", "-1", "two", ""] {
            let err = bad.parse::<Parallel>().unwrap_err();
            assert!(err.contains("or `auto`"), "{err}");
        }
    }
}
