//! Sweeps: an experiment file's `[sweep]` ([`crate::sweep_spec`]) resolved into a plan, every
//! job a validated experiment with its run directory, before anything runs ([`plan`]).

use std::path::{Path, PathBuf};

use crate::error::ConfigError;
use crate::load::{Resolved, load_experiment};
pub use crate::sweep_spec::{Axis, Job, SweepSpec};

/// A validated sweep: every job resolved before anything runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The experiment without its sweep.
    pub base: Resolved,
    /// The sweep directory (`<runs>/<name>`).
    pub dir: PathBuf,
    /// Jobs with their resolved experiments and run directories.
    pub jobs: Vec<PlannedJob>,
}

/// A job with its resolved experiment.
#[derive(Debug, Clone)]
pub struct PlannedJob {
    /// The job.
    pub job: Job,
    /// Its experiment, resolved and validated.
    pub resolved: Resolved,
    /// Its run directory.
    pub run_dir: PathBuf,
}

/// Resolves and validates every job of the sweep in `path` (with command-line `overrides`).
/// An experiment without a sweep is a single job named after the experiment.
pub fn plan(path: &Path, overrides: &[String], runs_dir: &Path) -> Result<Plan, ConfigError> {
    let base = load_experiment(path, overrides)?;
    let dir = runs_dir.join(&base.config.name);
    let jobs = base
        .sweep
        .as_ref()
        .map(SweepSpec::jobs)
        .transpose()?
        .unwrap_or_default();
    let mut planned = Vec::with_capacity(jobs.len());
    for job in jobs {
        let mut all = overrides.to_vec();
        all.extend(job.overrides.iter().cloned());
        let resolved = load_experiment(path, &all).map_err(|e| match e {
            ConfigError::UnknownKey {
                key, suggestion, ..
            } => ConfigError::UnknownKey {
                key,
                source_name: format!("{} (sweep axis)", path.display()),
                suggestion,
            },
            other => other,
        })?;
        if let Some(same) = planned
            .iter()
            .find(|p: &&PlannedJob| p.resolved.config == resolved.config)
        {
            return Err(ConfigError::Invalid {
                key: "sweep".into(),
                value: job.name.clone(),
                reason: format!(
                    "job `{}` resolves to the same experiment as `{}`",
                    job.name, same.job.name
                ),
            });
        }
        let run_dir = dir.join(&job.name);
        planned.push(PlannedJob {
            job,
            resolved,
            run_dir,
        });
    }
    if planned.is_empty() {
        let job = Job {
            index: 0,
            name: base.config.name.clone(),
            overrides: Vec::new(),
        };
        planned.push(PlannedJob {
            job,
            resolved: base.clone(),
            run_dir: dir.clone(),
        });
    }
    Ok(Plan {
        base,
        dir,
        jobs: planned,
    })
}
