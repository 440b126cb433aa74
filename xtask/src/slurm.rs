//! Slurm launcher for sweeps ([`SlurmLauncher`], `--launcher slurm`): runs the sweep's job
//! scripts as one Slurm job array.
//!
//! Job `i` of a sweep is the script `SWEEP_DIR/jobs/<i>.sh` (it writes its exit code to
//! `SWEEP_DIR/jobs/<i>.exit`). [`submit_and_wait`] writes `SWEEP_DIR/slurm/array.sbatch`, whose
//! task `k` runs `bash SWEEP_DIR/jobs/k.sh`, submits it for the requested indices with
//! `sbatch --array=…`, and polls `squeue` until every task has left the queue. Task logs go to
//! `SWEEP_DIR/slurm/<job id>_<index>.out` / `.err`. For a single-node test cluster on this machine
//! see `scripts/slurm/local-cluster.sh`; the design is described in `scripts/slurm/README.md`.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::launcher::{JobState, LaunchArgs, Launcher, SweepContext, finish};

/// How long `squeue` may keep failing (controller restarting, network blip) before
/// [`submit_and_wait`] gives up waiting. The job itself is left alone.
const SQUEUE_FAILURE_BUDGET: Duration = Duration::from_secs(10 * 60);

/// What to tell people who have no Slurm to talk to.
const CLUSTER_HINT: &str = "run this on a Slurm login node, or start a single-node cluster \
     on this machine with `sudo scripts/slurm/local-cluster.sh`";

/// How sweep jobs are submitted to Slurm. `Default` leaves everything to the cluster's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmOptions {
    /// `--partition`; `None`: the cluster's default partition.
    pub partition: Option<String>,
    /// `--time` per array task, in any Slurm format (`30`, `4:00:00`, `1-12:00:00`); `None`: the
    /// partition's default limit.
    pub time_limit: Option<String>,
    /// `--cpus-per-task`; `None`: Slurm's default (one).
    pub cpus_per_task: Option<u32>,
    /// `--gpus-per-task`; `None`: no GPUs requested. Slurm sets `CUDA_VISIBLE_DEVICES` to the
    /// task's GPUs, and the job (run without a device argument) uses the first of them.
    pub gpus_per_task: Option<u32>,
    /// Further `sbatch` arguments, passed as they are before the script (e.g. `--gres=gpu:1`,
    /// `--mem=16G`, `--account=proj`).
    pub extra_args: Vec<String>,
    /// How often to ask `squeue` for progress.
    pub poll: Duration,
    /// At most this many array tasks run at once (`--array=…%N`); `None`: no limit.
    pub max_parallel: Option<usize>,
}

impl Default for SlurmOptions {
    fn default() -> Self {
        SlurmOptions {
            partition: None,
            time_limit: None,
            cpus_per_task: None,
            gpus_per_task: None,
            extra_args: Vec::new(),
            poll: Duration::from_secs(5),
            max_parallel: None,
        }
    }
}

/// Runs a sweep's jobs as one Slurm job array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmLauncher {
    options: SlurmOptions,
}

/// `--launcher slurm` from the sweep's flags (refuses the local-only `--devices`).
pub fn make(args: &LaunchArgs) -> Result<Box<dyn Launcher>> {
    Ok(Box::new(SlurmLauncher {
        options: options(args)?,
    }))
}

/// The [`SlurmOptions`] the sweep's flags ask for: `--jobs N` (N > 1) limits the running tasks.
pub fn options(args: &LaunchArgs) -> Result<SlurmOptions> {
    if args.devices.is_some() {
        bail!(
            "--devices is for the local launcher; on Slurm use --gpus-per-task N (Slurm picks \
             the GPUs and each task uses the first it gets)"
        );
    }
    Ok(SlurmOptions {
        partition: args.partition.clone(),
        time_limit: args.time_limit.clone(),
        cpus_per_task: args.cpus_per_task,
        gpus_per_task: args.gpus_per_task,
        max_parallel: args.jobs.filter(|&j| j > 1),
        ..SlurmOptions::default()
    })
}

impl Launcher for SlurmLauncher {
    fn name(&self) -> &'static str {
        "slurm"
    }

    /// Marks the jobs submitted, runs them as one array ([`submit_and_wait`]) and reads each
    /// job's `.exit` file and summary once the array has left the queue.
    fn launch(&self, ctx: &SweepContext, jobs: &[usize]) -> Result<()> {
        ctx.statuses
            .update(|statuses| {
                for &i in jobs {
                    statuses[i].status = JobState::Submitted;
                }
            })
            .1?;
        submit_and_wait(&ctx.plan.dir, jobs, &self.options)?;
        let mut statuses = ctx.statuses.lock();
        for &i in jobs {
            finish(&ctx.jobs_dir, &mut statuses[i], None);
        }
        Ok(())
    }
}

/// Writes `SWEEP_DIR/slurm/array.sbatch` (a job array; task `k` runs
/// `bash SWEEP_DIR/jobs/$SLURM_ARRAY_TASK_ID.sh`; stdout/stderr to `SWEEP_DIR/slurm/%A_%a.out` /
/// `.err`), submits it with `sbatch --parsable --array=<indices>[%max_parallel]`, prints the job
/// id, then waits until no task of that job is pending or running (polling `squeue`, tolerating
/// transient `squeue` errors) and prints a progress line whenever the counts change.
///
/// Returns the Slurm job id, or an empty string (and submits nothing) when `indices` is empty.
/// Success means only that every task left the queue: whether a job succeeded is in its
/// `jobs/<i>.exit`, which is missing when Slurm killed the task (time limit, memory, node failure;
/// the reason is in `slurm/<id>_<i>.err`). Interrupting the wait does not cancel the array
/// (`scancel <id>` does).
pub fn submit_and_wait(
    sweep_dir: &Path,
    indices: &[usize],
    options: &SlurmOptions,
) -> Result<String> {
    if indices.is_empty() {
        eprintln!("slurm: no jobs to submit");
        return Ok(String::new());
    }
    let sweep_dir = sweep_dir
        .canonicalize()
        .with_context(|| format!("sweep directory {} not found", sweep_dir.display()))?;
    for &i in indices {
        let job = job_script(&sweep_dir, i);
        if !job.is_file() {
            bail!("job script {} is missing", job.display());
        }
    }
    let slurm_dir = sweep_dir.join("slurm");
    std::fs::create_dir_all(&slurm_dir)
        .with_context(|| format!("cannot create {}", slurm_dir.display()))?;
    let script_path = slurm_dir.join("array.sbatch");
    let script = sbatch_script(&sweep_dir, options)?;
    std::fs::write(&script_path, script)
        .with_context(|| format!("cannot write {}", script_path.display()))?;

    let args = sbatch_args(indices, options, &script_path);
    eprintln!("$ sbatch {}", args.join(" "));
    let out = match Command::new("sbatch").args(&args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            bail!("`sbatch` not found on PATH: {CLUSTER_HINT}")
        }
        Err(e) => return Err(e).context("cannot run `sbatch`"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!(
            "sbatch refused the job array ({}): {}\n{}",
            out.status,
            stderr.trim(),
            refusal_hint(&stderr)
        );
    }
    let job_id = parse_job_id(&stdout).with_context(|| {
        format!("cannot read a job id from sbatch's output {stdout:?} (stderr: {stderr:?})")
    })?;
    eprintln!(
        "slurm: submitted job {job_id}: {} tasks, logs in {}/{job_id}_<index>.out|.err \
         (cancel with `scancel {job_id}`)",
        indices.len(),
        slurm_dir.display()
    );
    wait(&job_id, indices.len(), options.poll)?;
    Ok(job_id)
}

/// Compresses indices into Slurm's array syntax ("0-3,5,7-8"). Order and duplicates in `indices`
/// do not matter; an empty slice gives an empty string.
pub fn array_spec(indices: &[usize]) -> String {
    let mut sorted = indices.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

fn job_script(sweep_dir: &Path, index: usize) -> PathBuf {
    sweep_dir.join("jobs").join(format!("{index}.sh"))
}

/// The batch script for the array. `sweep_dir` must be absolute: tasks may start in another
/// working directory, on another machine.
fn sbatch_script(sweep_dir: &Path, options: &SlurmOptions) -> Result<String> {
    let dir = sweep_dir
        .to_str()
        .with_context(|| format!("sweep directory {} is not valid UTF-8", sweep_dir.display()))?;
    if !sweep_dir.is_absolute() {
        bail!("sweep directory {dir} must be an absolute path");
    }
    // `#SBATCH` lines are split on whitespace and `%` starts a Slurm filename pattern.
    if dir
        .chars()
        .any(|c| c.is_whitespace() || c == '%' || c == '"' || c == '\'')
    {
        bail!("sweep directory {dir:?} contains whitespace, quotes or `%`, which Slurm cannot use");
    }
    let name = sweep_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("sweep");
    let mut s = String::new();
    s.push_str("#!/usr/bin/env bash\n");
    s.push_str(
        "# Written by `cargo xtask sweep` (xtask/src/slurm.rs): one array task per sweep job.\n",
    );
    s.push_str(&format!("#SBATCH --job-name=sweep-{name}\n"));
    s.push_str(&format!("#SBATCH --output={dir}/slurm/%A_%a.out\n"));
    s.push_str(&format!("#SBATCH --error={dir}/slurm/%A_%a.err\n"));
    s.push_str("#SBATCH --nodes=1\n#SBATCH --ntasks=1\n");
    if let Some(partition) = &options.partition {
        s.push_str(&format!("#SBATCH --partition={partition}\n"));
    }
    if let Some(time) = &options.time_limit {
        s.push_str(&format!("#SBATCH --time={time}\n"));
    }
    if let Some(cpus) = options.cpus_per_task {
        s.push_str(&format!("#SBATCH --cpus-per-task={cpus}\n"));
    }
    if let Some(gpus) = options.gpus_per_task {
        s.push_str(&format!("#SBATCH --gpus-per-task={gpus}\n"));
        s.push_str(
            "# Slurm sets CUDA_VISIBLE_DEVICES to this task's GPUs; the job script gets no device\n\
             # argument, so the run uses the first of them (runtime.device 0).\n",
        );
    }
    s.push_str("set -euo pipefail\n");
    s.push_str(&format!(
        "exec bash {dir}/jobs/\"$SLURM_ARRAY_TASK_ID\".sh\n"
    ));
    Ok(s)
}

/// `sbatch` arguments: array spec, the caller's extra arguments, the script.
fn sbatch_args(indices: &[usize], options: &SlurmOptions, script: &Path) -> Vec<String> {
    let mut array = array_spec(indices);
    if let Some(max) = options.max_parallel {
        array.push_str(&format!("%{}", max.max(1)));
    }
    let mut args = vec!["--parsable".to_string(), format!("--array={array}")];
    args.extend(options.extra_args.iter().cloned());
    args.push(script.display().to_string());
    args
}

/// `sbatch --parsable` prints `<job id>` or `<job id>;<cluster>`.
fn parse_job_id(stdout: &str) -> Option<String> {
    let line = stdout.lines().rev().find(|l| !l.trim().is_empty())?;
    let id = line.split(';').next()?.trim();
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_string())
}

fn refusal_hint(stderr: &str) -> &'static str {
    let lower = stderr.to_lowercase();
    if lower.contains("unable to contact slurm controller") || lower.contains("connection refused")
    {
        "No Slurm controller answers: start one with `sudo scripts/slurm/local-cluster.sh`, or \
         check `sinfo` on your cluster."
    } else if lower.contains("partition") {
        "Check the partition with `sinfo -s` (set it with --partition)."
    } else if lower.contains("time limit") {
        "The time limit exceeds the partition's (`sinfo -o '%P %l'`); lower --time-limit."
    } else if lower.contains("array") {
        "The array is too large or its indices exceed MaxArraySize (`scontrol show config | grep \
         MaxArraySize`)."
    } else {
        "Check the options with `sbatch --test-only`; for a local test cluster run \
         `sudo scripts/slurm/local-cluster.sh`."
    }
}

/// Tasks of the job still in the queue, by state.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Queue {
    pending: usize,
    running: usize,
}

/// Reads `squeue -h -r -j <id> -o %t` (one line per array task; finished tasks are either absent
/// or listed with a final state).
fn parse_squeue(stdout: &str) -> Queue {
    let mut q = Queue::default();
    for state in stdout.split_whitespace() {
        match state {
            // Pending, or held after a requeue: waiting to start.
            "PD" | "RH" | "RQ" | "RS" | "SE" => q.pending += 1,
            // Running or on its way in or out of running.
            "R" | "CF" | "CG" | "S" | "ST" | "SI" | "SO" | "RD" | "RF" | "RV" => q.running += 1,
            // CD, F, CA, TO, OOM, NF, PR, BF, DL: finished.
            _ => {}
        }
    }
    q
}

/// Polls `squeue` until no task of `job_id` is pending or running.
fn wait(job_id: &str, total: usize, poll: Duration) -> Result<()> {
    let poll = poll.max(Duration::from_millis(100));
    let mut last: Option<Queue> = None;
    let mut failing_since: Option<Instant> = None;
    loop {
        let queue = match squeue(job_id) {
            Ok(q) => {
                failing_since = None;
                q
            }
            Err(e) => {
                if failing_since.is_none() {
                    eprintln!("slurm: squeue failed, retrying: {e:#}");
                }
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() > SQUEUE_FAILURE_BUDGET {
                    return Err(e).context(format!(
                        "squeue kept failing for {} s; job {job_id} may still be running \
                         (check `squeue -j {job_id}`)",
                        SQUEUE_FAILURE_BUDGET.as_secs()
                    ));
                }
                thread::sleep(poll);
                continue;
            }
        };
        if last.as_ref() != Some(&queue) {
            let active = queue.pending + queue.running;
            eprintln!(
                "slurm: job {job_id}: {} done, {} running, {} pending (of {total})",
                total.saturating_sub(active),
                queue.running,
                queue.pending
            );
            last = Some(queue.clone());
        }
        if queue.pending + queue.running == 0 {
            return Ok(());
        }
        thread::sleep(poll);
    }
}

fn squeue(job_id: &str) -> Result<Queue> {
    let out = Command::new("squeue")
        .args(["-h", "-r", "-j", job_id, "-o", "%t"])
        .output()
        .context("cannot run `squeue`")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // Once a finished job has been purged from the controller (MinJobAge), squeue rejects
        // its id: nothing of it is left in the queue.
        if stderr.contains("Invalid job id") {
            return Ok(Queue::default());
        }
        bail!(
            "`squeue -j {job_id}` failed ({}): {}",
            out.status,
            stderr.trim()
        );
    }
    Ok(parse_squeue(&String::from_utf8_lossy(&out.stdout)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_spec_compresses_runs() {
        assert_eq!(array_spec(&[]), "");
        assert_eq!(array_spec(&[4]), "4");
        assert_eq!(array_spec(&[0, 1, 2, 3]), "0-3");
        assert_eq!(array_spec(&[0, 2, 5, 6, 7]), "0,2,5-7");
        assert_eq!(array_spec(&[0, 1, 2, 3, 5, 7, 8]), "0-3,5,7-8");
        assert_eq!(array_spec(&[1, 3]), "1,3");
        assert_eq!(array_spec(&[10, 11]), "10-11");
    }

    #[test]
    fn array_spec_sorts_and_dedups() {
        assert_eq!(array_spec(&[7, 5, 0, 8, 2, 1, 3, 3, 0]), "0-3,5,7-8");
    }

    #[test]
    fn default_sbatch_script() {
        let text = sbatch_script(
            Path::new("/scratch/sweeps/table1"),
            &SlurmOptions::default(),
        )
        .unwrap();
        assert_eq!(
            text,
            "#!/usr/bin/env bash\n\
             # Written by `cargo xtask sweep` (xtask/src/slurm.rs): one array task per sweep job.\n\
             #SBATCH --job-name=sweep-table1\n\
             #SBATCH --output=/scratch/sweeps/table1/slurm/%A_%a.out\n\
             #SBATCH --error=/scratch/sweeps/table1/slurm/%A_%a.err\n\
             #SBATCH --nodes=1\n\
             #SBATCH --ntasks=1\n\
             set -euo pipefail\n\
             exec bash /scratch/sweeps/table1/jobs/\"$SLURM_ARRAY_TASK_ID\".sh\n"
        );
    }

    #[test]
    fn sbatch_script_with_options() {
        let options = SlurmOptions {
            partition: Some("gpu".into()),
            time_limit: Some("4:00:00".into()),
            cpus_per_task: Some(8),
            gpus_per_task: Some(2),
            extra_args: vec!["--gres=gpu:1".into()],
            poll: Duration::from_secs(1),
            max_parallel: Some(2),
        };
        let text = sbatch_script(Path::new("/s/x"), &options).unwrap();
        let directives: Vec<&str> = text.lines().filter(|l| l.starts_with("#SBATCH")).collect();
        assert_eq!(
            directives,
            [
                "#SBATCH --job-name=sweep-x",
                "#SBATCH --output=/s/x/slurm/%A_%a.out",
                "#SBATCH --error=/s/x/slurm/%A_%a.err",
                "#SBATCH --nodes=1",
                "#SBATCH --ntasks=1",
                "#SBATCH --partition=gpu",
                "#SBATCH --time=4:00:00",
                "#SBATCH --cpus-per-task=8",
                "#SBATCH --gpus-per-task=2",
            ]
        );
        // Extra arguments go on the command line, not into the script.
        assert!(!text.contains("gres"));
        // The task runs its job script without a device argument: no runtime.device override
        // fights the GPUs Slurm hands out.
        assert_eq!(
            text.lines().last(),
            Some("exec bash /s/x/jobs/\"$SLURM_ARRAY_TASK_ID\".sh")
        );
    }

    #[test]
    fn sbatch_script_rejects_paths_slurm_cannot_use() {
        let options = SlurmOptions::default();
        assert!(sbatch_script(Path::new("relative/sweep"), &options).is_err());
        assert!(sbatch_script(Path::new("/with space/sweep"), &options).is_err());
        assert!(sbatch_script(Path::new("/100%/sweep"), &options).is_err());
    }

    #[test]
    fn sbatch_command_line() {
        let script = Path::new("/s/x/slurm/array.sbatch");
        let mut options = SlurmOptions::default();
        assert_eq!(
            sbatch_args(&[0, 2, 5, 6, 7], &options, script),
            ["--parsable", "--array=0,2,5-7", "/s/x/slurm/array.sbatch"]
        );
        options.max_parallel = Some(3);
        options.extra_args = vec!["--mem=8G".into(), "--account=caps".into()];
        assert_eq!(
            sbatch_args(&[0, 1, 2], &options, script),
            [
                "--parsable",
                "--array=0-2%3",
                "--mem=8G",
                "--account=caps",
                "/s/x/slurm/array.sbatch"
            ]
        );
    }

    #[test]
    fn job_id_from_parsable_output() {
        assert_eq!(parse_job_id("42\n").as_deref(), Some("42"));
        assert_eq!(parse_job_id("1234;cluster\n").as_deref(), Some("1234"));
        assert_eq!(parse_job_id(""), None);
        assert_eq!(parse_job_id("Submitted batch job 7\n"), None);
    }

    #[test]
    fn squeue_states_are_counted() {
        assert_eq!(parse_squeue(""), Queue::default());
        assert_eq!(
            parse_squeue("PD\nPD\nR\nCG\nCD\nF\nTO\n"),
            Queue {
                pending: 2,
                running: 2
            }
        );
    }

    #[test]
    fn default_options() {
        let o = SlurmOptions::default();
        assert_eq!(o.partition, None);
        assert_eq!(o.max_parallel, None);
        assert_eq!(o.gpus_per_task, None);
        assert!(o.extra_args.is_empty());
        assert!(o.poll > Duration::ZERO);
    }
}
