//! Run records as `cargo xtask tables` and its figures read them: each run's `summary.json` (the
//! binary's own type, `capsnet_common::summary::Summary`) and flattened `config.resolved.toml`
//! from a folder of records (the folder is kept, for the learning curves' optional
//! `metrics.jsonl` beside them: `curves.rs`), selection by resolved-config keys,
//! and the statistics and CSV quoting both the tables and the figures use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use toml::Value;

pub(crate) use capsnet_common::summary::Summary;

/// One run record: its folder name, summary and flattened resolved config.
pub(crate) struct Run {
    pub(crate) name: String,
    /// The record's folder (where `metrics.jsonl` is, when it was collected).
    pub(crate) dir: PathBuf,
    pub(crate) summary: Summary,
    pub(crate) config: BTreeMap<String, Value>,
}

/// Fails unless `run` finished all its epochs and was evaluated at the end: after its last
/// epoch, or (`train.eval_every_steps`) at its last step, which the test set's last record in
/// `metrics.jsonl` shows (binaries built before session 10's fix numbered a step
/// evaluation at the step that ends the last epoch with the epochs completed before it; the
/// records collected from them keep that number).
pub(crate) fn check_finished(run: &Run) -> Result<()> {
    let s = &run.summary;
    if !s.completed || s.epochs_completed != s.epochs {
        bail!("run {} did not finish all {} epochs", run.name, s.epochs);
    }
    if s.final_eval_epoch != Some(s.epochs) && last_test_eval_step(run) != Some(s.steps) {
        bail!(
            "run {} was not evaluated at the end of its last epoch (epoch {}, step {})",
            run.name,
            s.epochs,
            s.steps
        );
    }
    Ok(())
}

/// The step of the main test set's last evaluation in the run's `metrics.jsonl`, if collected.
fn last_test_eval_step(run: &Run) -> Option<u64> {
    let text = std::fs::read_to_string(run.dir.join("metrics.jsonl")).ok()?;
    text.lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|r| r["kind"] == "eval" && r.get("set").is_none())
        .find_map(|r| r["step"].as_u64())
}

/// `s` as one CSV field (quoted when it holds a comma, quote or newline).
pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Mean and sample standard deviation (None for a single value).
pub(crate) fn mean_std(values: &[f64]) -> (f64, Option<f64>) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, None);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, Some(var.sqrt()))
}

/// Whether `run`'s resolved config has every (dotted, possibly nested) key of `wanted` with
/// its value (an integer equals the same float).
pub(crate) fn matches(run: &Run, wanted: &toml::Table) -> bool {
    let flat = capsnet_common::flatten_toml(&Value::Table(wanted.clone()));
    flat.iter()
        .all(|(k, v)| run.config.get(k).is_some_and(|have| same_value(have, v)))
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Integer(x), Value::Float(y)) | (Value::Float(y), Value::Integer(x)) => {
            (*x as f64) == *y
        }
        _ => a == b,
    }
}

/// Every run record (a folder with `summary.json` and `config.resolved.toml`) in `raw`, sorted
/// by folder name; no records is an error.
pub(crate) fn read_runs(raw: &Path) -> Result<Vec<Run>> {
    let mut runs = Vec::new();
    let entries = std::fs::read_dir(raw).with_context(|| {
        format!(
            "no run records in {} (collect them with `cargo xtask collect`)",
            raw.display()
        )
    })?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let summary_path = dir.join("summary.json");
        let summary: Summary = serde_json::from_str(
            &std::fs::read_to_string(&summary_path)
                .with_context(|| format!("missing {}", summary_path.display()))?,
        )
        .with_context(|| format!("{} is not a run summary", summary_path.display()))?;
        let config_path = dir.join("config.resolved.toml");
        let config_value: Value = toml::from_str(
            &std::fs::read_to_string(&config_path)
                .with_context(|| format!("missing {}", config_path.display()))?,
        )
        .with_context(|| format!("{} is invalid", config_path.display()))?;
        let config = capsnet_common::flatten_toml(&config_value);
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        runs.push(Run {
            name,
            dir,
            summary,
            config,
        });
    }
    if runs.is_empty() {
        bail!("no run records in {}", raw.display());
    }
    Ok(runs)
}
