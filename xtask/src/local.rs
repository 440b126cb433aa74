//! The local launcher of `cargo xtask sweep`: each job a child process on this machine.
//!
//! [`schedule`] runs one worker per slot, each slot owning at most one device (`--devices`),
//! taking the next job from a shared queue whenever its previous job ends; without `--devices`
//! there are `--jobs` slots and no device override.

use std::collections::VecDeque;
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Result, bail};

use crate::launcher::{JobState, LaunchArgs, Launcher, SweepContext, finish};

/// Runs jobs on this machine, one per slot at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalLauncher {
    /// One per job that may run at once, each with the device its jobs get (`None`: no
    /// `runtime.device` override).
    slots: Vec<Option<usize>>,
    /// Printed when the jobs start: `--jobs` was capped at the number of devices.
    note: Option<String>,
}

/// `--launcher local` from the sweep's flags (refuses the Slurm-only `--gpus-per-task`).
pub fn make(args: &LaunchArgs) -> Result<Box<dyn Launcher>> {
    if args.gpus_per_task.is_some() {
        bail!(
            "--gpus-per-task is for --launcher slurm; the local launcher takes --devices 0,1,..."
        );
    }
    let (slots, note) = local_slots(args.jobs, args.devices.as_deref());
    Ok(Box::new(LocalLauncher { slots, note }))
}

impl Launcher for LocalLauncher {
    fn name(&self) -> &'static str {
        "local"
    }

    fn launch(&self, ctx: &SweepContext, jobs: &[usize]) -> Result<()> {
        if let Some(note) = &self.note {
            eprintln!("{note}");
        }
        self.run_with(ctx, jobs, &|i, device| {
            Command::new("bash")
                .arg(ctx.jobs_dir.join(format!("{i}.sh")))
                .args(device.map(|d| d.to_string()))
                .status()
                .ok()
                .and_then(|s| s.code())
        });
        Ok(())
    }
}

impl LocalLauncher {
    /// A local launcher on `slots` (tests).
    #[cfg(test)]
    pub(crate) fn with_slots(slots: Vec<Option<usize>>) -> Self {
        LocalLauncher { slots, note: None }
    }

    /// [`schedule`]s `jobs` on the slots, keeping `ctx.statuses` and the status file current.
    /// `run_job(index, device)` runs a job and returns its exit code (`bash jobs/<i>.sh
    /// [DEVICE]`; a fake in tests).
    pub(crate) fn run_with(
        &self,
        ctx: &SweepContext,
        jobs: &[usize],
        run_job: &(dyn Fn(usize, Option<usize>) -> Option<i32> + Sync),
    ) {
        let done = Mutex::new(0usize);
        let total = jobs.len();
        schedule(jobs, &self.slots, |i, device| {
            let _ = ctx.statuses.update(|statuses| {
                statuses[i].status = JobState::Running;
                statuses[i].device = device;
            });
            eprintln!(
                "[start] {} ({i}){}",
                ctx.plan.jobs[i].name,
                device
                    .map(|d| format!(" on device {d}"))
                    .unwrap_or_default()
            );
            let start = Instant::now();
            let code = run_job(i, device);
            let mut done = done.lock().expect("count");
            *done += 1;
            let _ = ctx.statuses.update(|statuses| {
                let s = &mut statuses[i];
                finish(&ctx.jobs_dir, s, code);
                s.seconds = Some(start.elapsed().as_secs_f64());
                eprintln!(
                    "[{}/{}] {} {} in {:.0} s{}",
                    *done,
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
            });
        });
    }
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

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
    pub(crate) struct Recorder {
        pub(crate) runs: Mutex<Vec<(usize, Option<usize>)>>,
        busy: Mutex<Vec<Option<usize>>>,
        running: Mutex<usize>,
        pub(crate) max_running: Mutex<usize>,
        pub(crate) violations: Mutex<Vec<String>>,
    }

    impl Recorder {
        pub(crate) fn start(&self, job: usize, device: Option<usize>) {
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

        pub(crate) fn end(&self, job: usize, device: Option<usize>) {
            if let Some(d) = device {
                let mut busy = self.busy.lock().unwrap();
                let at = busy.iter().position(|&b| b == Some(d)).unwrap();
                busy.remove(at);
            }
            *self.running.lock().unwrap() -= 1;
            self.runs.lock().unwrap().push((job, device));
        }

        pub(crate) fn jobs_run(&self) -> Vec<usize> {
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
}
