//! Run directories: `config.resolved.toml`, `sources.json`, `train.log`, `metrics.jsonl`,
//! `checkpoints/`, `summary.json`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::TrainError;
use crate::load::{Resolved, flatten_toml, parse_str, to_toml};

/// File holding the fully resolved configuration of a run.
pub const RESOLVED_CONFIG: &str = "config.resolved.toml";

/// File holding the class names of a run's data, in label order (`{"classes": [...]}`), for
/// `capsnet predict`.
pub const CLASSES_FILE: &str = "classes.json";

/// The contents of [`CLASSES_FILE`].
pub fn classes_json(classes: &[String]) -> String {
    serde_json::to_string_pretty(&serde_json::json!({ "classes": classes }))
        .expect("strings serialise")
}

/// The class names a run recorded; runs older than [`CLASSES_FILE`] get `None`.
pub fn read_classes(dir: &Path) -> Result<Option<Vec<String>>, TrainError> {
    let path = dir.join(CLASSES_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    #[derive(serde::Deserialize)]
    struct Classes {
        classes: Vec<String>,
    }
    let parsed: Classes = serde_json::from_str(&text).map_err(|e| TrainError::RunDir {
        path: path.clone(),
        reason: format!("unreadable class list: {e}"),
    })?;
    Ok(Some(parsed.classes))
}

/// How a prepared run directory starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A new run in an empty directory.
    Fresh,
    /// Continue the run in the directory (from its latest checkpoint, if it has one).
    Resume,
}

/// Whether `dir` holds a run (its resolved configuration): what `train --resume-or-start`
/// resumes. A directory without one is started (and refused if it holds anything else).
pub fn holds_run(dir: &Path) -> bool {
    dir.join(RESOLVED_CONFIG).is_file()
}

/// Prepares `dir` for a run.
///
/// - New run: `dir` must not exist or be empty (or `overwrite` deletes it).
/// - `resume`: `dir` must hold a run of the same configuration (only `train.epochs`, to extend
///   a run, and `runtime.device`, the index of the same kind of device, as when a sweep hands
///   an interrupted job to whichever GPU is free, may differ); without a checkpoint yet, the run
///   starts over in place.
pub fn prepare(
    dir: &Path,
    resolved: &Resolved,
    resume: bool,
    overwrite: bool,
) -> Result<Start, TrainError> {
    prepare_or_check(dir, resolved, resume, overwrite, true)
}

/// What [`prepare`] would do, or its error, without writing or deleting anything: a run checks
/// its directory, then reads its data, and only then prepares the directory, so that a bad
/// dataset leaves nothing behind (and `--overwrite` deletes nothing).
pub fn check(
    dir: &Path,
    resolved: &Resolved,
    resume: bool,
    overwrite: bool,
) -> Result<Start, TrainError> {
    prepare_or_check(dir, resolved, resume, overwrite, false)
}

fn prepare_or_check(
    dir: &Path,
    resolved: &Resolved,
    resume: bool,
    overwrite: bool,
    write: bool,
) -> Result<Start, TrainError> {
    let has_content = dir
        .read_dir()
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if resume {
        let stored_path = dir.join(RESOLVED_CONFIG);
        let stored_text =
            std::fs::read_to_string(&stored_path).map_err(|_| TrainError::RunDir {
                path: dir.to_path_buf(),
                reason: format!("nothing to resume: {RESOLVED_CONFIG} is missing"),
            })?;
        let stored = parse_str(&stored_text, &stored_path.display().to_string())?;
        let mut now = resolved.config.clone();
        now.train.epochs = stored.train.epochs;
        now.train.steps = stored.train.steps;
        now.runtime.device = stored.runtime.device;
        let differences = diff(&to_toml(&stored), &to_toml(&now));
        if !differences.is_empty() {
            return Err(TrainError::RunDir {
                path: dir.to_path_buf(),
                reason: format!(
                    "the experiment differs from the run being resumed (only train.epochs, \
                     train.steps and runtime.device may change): {}",
                    differences.join(", ")
                ),
            });
        }
        if write {
            write_config(dir, resolved)?;
        }
        return Ok(Start::Resume);
    }
    if has_content {
        if !overwrite {
            return Err(TrainError::RunDir {
                path: dir.to_path_buf(),
                reason: "already exists: pass --resume to continue it, --overwrite to start over, \
                         or --run-dir to choose another directory"
                    .into(),
            });
        }
        if write {
            std::fs::remove_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        }
    }
    if write {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        write_config(dir, resolved)?;
    }
    Ok(Start::Fresh)
}

fn write_config(dir: &Path, resolved: &Resolved) -> Result<(), TrainError> {
    let toml = to_toml(&resolved.config);
    write_atomic(&dir.join(RESOLVED_CONFIG), toml.as_bytes())?;
    let sources = serde_json::json!({
        "files": resolved.files,
        "env": resolved.env,
        "overrides": resolved.overrides,
        "command": std::env::args().collect::<Vec<_>>(),
        "git_revision": crate::machine::build_revision().to_string(),
    });
    let json = serde_json::to_string_pretty(&sources).expect("sources serialise");
    write_atomic(&dir.join("sources.json"), json.as_bytes())
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| TrainError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
}

/// Dotted keys whose values differ between two TOML documents.
fn diff(a: &str, b: &str) -> Vec<String> {
    let (a, b) = (flatten_toml(a), flatten_toml(b));
    let (a, b): (BTreeMap<String, String>, BTreeMap<String, String>) = (
        a.into_iter().map(|(k, v)| (k, v.to_string())).collect(),
        b.into_iter().map(|(k, v)| (k, v.to_string())).collect(),
    );
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            format!(
                "{k}: {} → {}",
                a.get(k).map(String::as_str).unwrap_or("unset"),
                b.get(k).map(String::as_str).unwrap_or("unset")
            )
        })
        .collect()
}
