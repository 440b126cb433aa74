//! The sweep plan as `capsnet sweep-plan --json` prints it and `cargo xtask sweep` reads it: one
//! definition for both sides (the `capsnet` binary expands and validates the jobs; xtask, which
//! must build without burn, runs them).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Every job of a sweep, expanded from its experiment file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepPlan {
    /// The experiment's `name`.
    pub name: String,
    /// The experiment file the plan was made from.
    pub experiment: PathBuf,
    /// The sweep's directory (`<runs>/<name>`).
    pub dir: PathBuf,
    /// The jobs, in index order.
    pub jobs: Vec<PlannedJob>,
}

/// One job of a [`SweepPlan`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlannedJob {
    /// Position in the sweep (0-based).
    pub index: usize,
    /// Run name (the sweep axes' values).
    pub name: String,
    /// The overrides this job's sweep axes set.
    pub sweep_overrides: Vec<String>,
    /// All overrides to run it with: the command line's, then the job's.
    pub overrides: Vec<String>,
    /// Its run directory.
    pub run_dir: PathBuf,
    /// `runtime.backend` after the overrides.
    pub backend: String,
    /// `train.epochs` after the overrides.
    pub epochs: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_unknown_fields() {
        let plan = SweepPlan {
            name: "s".into(),
            experiment: "e.toml".into(),
            dir: "runs/s".into(),
            jobs: vec![PlannedJob {
                index: 0,
                name: "r=1".into(),
                sweep_overrides: vec!["model.routing.iterations=1".into()],
                overrides: vec!["seed=2".into(), "model.routing.iterations=1".into()],
                run_dir: "runs/s/r=1".into(),
                backend: "flex".into(),
                epochs: 3,
            }],
        };
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<SweepPlan>(&json).unwrap(), plan);
        let extra = json.replacen("\"name\":\"s\"", "\"name\":\"s\",\"surprise\":1", 1);
        assert!(serde_json::from_str::<SweepPlan>(&extra).is_err());
    }
}
