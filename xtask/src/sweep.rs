//! `cargo xtask sweep`: run every job of an experiment's `[sweep]` as its own `capsnet` process,
//! locally (N at a time, or one per GPU with `--devices`) or as a Slurm job array, with a status
//! file, resume and a summary.
//!
//! The schema lives in `capsnet` (`capsnet sweep-plan --json` expands and validates every job);
//! this module only orchestrates. Each job gets a script `<sweep>/jobs/<i>.sh` that every
//! launcher runs; it runs `capsnet train EXP --run-dir DIR --resume-or-start ...` (the binary
//! resumes the job's run from its latest checkpoint if there is one, else starts it) and writes
//! its exit code to `<sweep>/jobs/<i>.exit`. An optional argument, `jobs/<i>.sh DEVICE`, adds the
//! override `runtime.device=DEVICE` (the local launcher's `--devices`; Slurm tasks run without it
//! and use the first GPU Slurm gives them). `<sweep>/manifest.json` lists every job (index,
//! name, overrides, run directory).
//!
//! Launchers implement [`crate::launcher::Launcher`] and are chosen by `--launcher` from
//! [`LAUNCHERS`]: `local.rs` (child processes on this machine) and `slurm.rs` (a job array).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use capsnet_common::sweep::{PlannedJob, SweepPlan};

use crate::launcher::{
    JobState, JobStatus, LaunchArgs, Launcher, StatusBoard, SweepContext, fill_from_summary,
    read_summary,
};

/// How a launcher is made from the sweep's flags (refusing flags meant for another launcher).
type MakeLauncher = fn(&LaunchArgs) -> Result<Box<dyn Launcher>>;

/// The launchers `--launcher` chooses from, by name; the first is the default.
pub const LAUNCHERS: [(&str, MakeLauncher); 2] =
    [("local", crate::local::make), ("slurm", crate::slurm::make)];

/// Run an experiment's [sweep]: every job its own `capsnet train` process, locally or on Slurm.
#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    /// The experiment file (the first argument without `=`), then overrides as key=value
    /// applied to every job.
    #[arg(value_name = "EXPERIMENT.toml|KEY=VALUE", required = true, num_args = 1..)]
    positional: Vec<String>,
    /// The experiment file, from the positional arguments ([`SweepArgs::validate`]).
    #[arg(skip)]
    experiment: PathBuf,
    /// The overrides, from the positional arguments ([`SweepArgs::validate`]).
    #[arg(skip)]
    overrides: Vec<String>,
    /// Print the jobs and stop.
    #[arg(long)]
    dry_run: bool,
    /// Skip finished jobs, continue interrupted ones from their last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Where jobs run.
    #[arg(long, value_name = "NAME", default_value = LAUNCHERS[0].0,
          value_parser = clap::builder::PossibleValuesParser::new(LAUNCHERS.map(|(name, _)| name)))]
    launcher: String,
    /// Build capsnet with these features (f1,f2), in their own target directory.
    #[arg(long, value_name = "f1,f2", value_delimiter = ',')]
    features: Vec<String>,
    /// Folder the sweep's directory goes in.
    #[arg(long, value_name = "DIR", default_value = "runs")]
    runs_dir: PathBuf,
    #[command(flatten)]
    launch: LaunchArgs,
}

impl SweepArgs {
    /// Checks what clap cannot: splits the positional arguments into the experiment and the
    /// overrides (anything with `=`), and asks the chosen launcher whether it takes the flags
    /// given (e.g. `--devices` is the local launcher's). [`run`] calls it; calling it again
    /// changes nothing.
    pub fn validate(&mut self) -> Result<()> {
        self.features = self
            .features
            .iter()
            .map(|f| f.trim())
            .filter(|f| !f.is_empty())
            .map(String::from)
            .collect();
        self.overrides.clear();
        let mut experiment = None;
        for arg in &self.positional {
            if arg.contains('=') {
                self.overrides.push(arg.clone());
            } else if experiment.is_none() {
                experiment = Some(PathBuf::from(arg));
            } else {
                bail!("unexpected argument `{arg}` (overrides look like key=value)");
            }
        }
        self.experiment = experiment.context("no experiment file given")?;
        self.make_launcher()?;
        if self.launch.chooses_device() {
            check_no_device_override(&self.overrides)?;
        }
        Ok(())
    }

    /// The launcher `--launcher` names, made from the flags.
    fn make_launcher(&self) -> Result<Box<dyn Launcher>> {
        let (_, make) = LAUNCHERS
            .iter()
            .find(|(name, _)| *name == self.launcher)
            .with_context(|| format!("unknown launcher `{}`", self.launcher))?;
        make(&self.launch)
    }
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

/// Runs `cargo xtask sweep`.
pub fn run(mut args: SweepArgs) -> Result<()> {
    args.validate()?;
    let launcher = args.make_launcher()?;
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
    if args.launch.chooses_device() {
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
    let statuses = initial_statuses(&plan, args.resume);
    let to_run = pending(&statuses);
    let finished = statuses.len() - to_run.len();
    let status_path = plan.dir.join("sweep-status.json");
    let ctx = SweepContext {
        plan: &plan,
        jobs_dir: jobs_dir.clone(),
        statuses: StatusBoard::new(
            status_path.clone(),
            &plan,
            &experiment,
            launcher.name(),
            statuses,
        ),
    };
    ctx.statuses.write()?;
    eprintln!(
        "running {} jobs ({finished} already finished) with the {} launcher",
        to_run.len(),
        launcher.name()
    );
    for &i in &to_run {
        let _ = std::fs::remove_file(jobs_dir.join(format!("{i}.exit")));
    }
    launcher.launch(&ctx, &to_run)?;
    ctx.statuses.write()?;
    let statuses = ctx.statuses.into_jobs();
    print_table(&statuses);
    let failed = statuses
        .iter()
        .filter(|s| s.status == JobState::Failed)
        .count();
    if failed > 0 {
        bail!(
            "{failed} of {} jobs failed (logs in {}/<index>.log); rerun with --resume to retry them",
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
    use crate::local::LocalLauncher;
    use crate::local::tests::Recorder;

    #[test]
    fn arguments_parse() {
        let parsed = parse(&[
            "exp.toml",
            "--jobs",
            "2",
            "--resume",
            "--features",
            "tch,wgpu",
            "train.epochs=1",
        ])
        .unwrap();
        assert_eq!(parsed.experiment, Path::new("exp.toml"));
        assert_eq!(parsed.launch.jobs, Some(2));
        assert_eq!(parsed.launch.devices, None);
        assert!(parsed.resume && !parsed.dry_run);
        assert_eq!(parsed.features, ["tch", "wgpu"]);
        assert_eq!(parsed.overrides, ["train.epochs=1"]);
        assert!(parse(&["--jobs"]).is_err());
        assert!(parse(&["a.toml", "--launcher", "k8s"]).is_err());
        assert!(parse(&["a.toml", "b.toml"]).is_err());
        assert!(parse(&[]).is_err());
        // An override may come before the experiment; `--jobs 0` and unknown flags are errors.
        let parsed = parse(&["seed=1", "exp.toml", "-j", "3"]).unwrap();
        assert_eq!(
            (parsed.experiment.as_path(), parsed.overrides.as_slice()),
            (Path::new("exp.toml"), &["seed=1".to_string()][..])
        );
        assert_eq!(parsed.launch.jobs, Some(3));
        assert!(parse(&["seed=1"]).is_err());
        assert!(parse(&["a.toml", "--jobs", "0"]).is_err());
        assert!(parse(&["a.toml", "--bogus"]).is_err());
    }

    /// `cargo xtask sweep ARGS` through the command line parser and [`SweepArgs::validate`].
    fn parse(args: &[&str]) -> Result<SweepArgs> {
        let argv = std::iter::once("sweep").chain(args.iter().copied());
        match crate::parse_task(argv)? {
            crate::Task::Sweep(mut args) => {
                args.validate()?;
                Ok(args)
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    fn scratch(tag: &str) -> PathBuf {
        crate::scratch_dir(tag)
    }

    #[test]
    fn devices_parse_and_conflicts_are_errors() {
        let parsed = parse(&["e.toml", "--devices", "0,1, 2,3"]).unwrap();
        assert_eq!(parsed.launch.devices.as_deref(), Some(&[0, 1, 2, 3][..]));
        assert_eq!(parsed.launch.jobs, None);
        let err = |args: &[&str]| format!("{:#}", parse(args).unwrap_err());
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
        assert!(parse(&["e.toml", "runtime.device=1"]).is_ok());
        let slurm = parse(&[
            "e.toml",
            "--launcher",
            "slurm",
            "--gpus-per-task",
            "2",
            "-j",
            "3",
        ])
        .unwrap();
        let slurm = crate::slurm::options(&slurm.launch).unwrap();
        assert_eq!(slurm.gpus_per_task, Some(2));
        assert_eq!(slurm.max_parallel, Some(3));
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
        let summary = crate::summary_json(serde_json::json!({
            "completed": completed, "epochs_completed": 1, "final_test_error_pct": 1.5,
            "train_images_per_sec": 100.0, "wall_time_secs": 2.0
        }));
        std::fs::write(run_dir.join("summary.json"), summary.to_string()).unwrap();
    }

    /// Runs `jobs` of `plan` with the local launcher on devices 2 and 3, each job run by `fake`;
    /// returns the statuses it leaves.
    fn launch_local(
        plan: &Plan,
        status_path: &Path,
        statuses: Vec<JobStatus>,
        jobs: &[usize],
        fake: &(dyn Fn(usize, Option<usize>) -> Option<i32> + Sync),
    ) -> Vec<JobStatus> {
        let experiment = Path::new("e.toml");
        let ctx = SweepContext {
            plan,
            jobs_dir: plan.dir.join("jobs"),
            statuses: StatusBoard::new(
                status_path.to_path_buf(),
                plan,
                experiment,
                "local",
                statuses,
            ),
        };
        LocalLauncher::with_slots(vec![Some(2), Some(3)]).run_with(&ctx, jobs, fake);
        ctx.statuses.into_jobs()
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
        let statuses = initial_statuses(&plan, true);
        let to_run = pending(&statuses);
        assert_eq!(to_run, [0, 2, 3, 5, 6]);
        let statuses = launch_local(&plan, &status_path, statuses, &to_run, &fake);
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
        let statuses = initial_statuses(&plan, true);
        assert_eq!(pending(&statuses), [6]);
        let rerun = Recorder::default();
        let fake = |i: usize, device: Option<usize>| {
            rerun.start(i, device);
            write_summary(&plan.jobs[i].run_dir, true);
            std::fs::write(jobs_dir.join(format!("{i}.exit")), "0\n").unwrap();
            rerun.end(i, device);
            Some(0)
        };
        let statuses = launch_local(&plan, &status_path, statuses, &[6], &fake);
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
