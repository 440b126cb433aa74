//! Resumable checkpoints: model + optimizer + loop position, written atomically.
//!
//! Layout: `<run>/checkpoints/step-00001234/{model.bpk, optim.bpk, state.json}` and
//! `<run>/checkpoints/latest` (the name of the newest complete checkpoint). A checkpoint is
//! written into a temporary directory and renamed into place, then `latest` is replaced by
//! rename, so a run killed at any moment leaves the previous checkpoint intact.
//!
//! The random state needs no storage beyond `seed`, `epoch` and `next_batch`: shuffling and
//! augmentation of every batch are derived from them, and burn's generator (dropout) is
//! reseeded from `(seed, step)` before every step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::config::ExperimentConfig;
use crate::error::TrainError;
use crate::eval::Evaluation;
use crate::net::Net;

/// Where the training loop stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// Current epoch (0-based); the epoch `next_batch` belongs to.
    pub epoch: usize,
    /// First batch of `epoch` still to train.
    pub next_batch: usize,
    /// Optimizer steps done so far.
    pub step: u64,
    /// Training images processed so far.
    pub images_seen: u64,
    /// Seconds spent in training steps so far (all sessions of the run).
    pub train_secs: f64,
    /// Seconds spent in evaluation so far.
    pub eval_secs: f64,
    /// Training metrics accumulated since the last log line.
    #[serde(default)]
    pub window: crate::report::TrainWindow,
    /// The last evaluation, which the summary reports (absent in checkpoints written before
    /// it was kept here; the next evaluation fills it).
    #[serde(default)]
    pub last_eval: Option<LastEval>,
}

/// The last evaluation of a run: the epoch, the main test set and the extra sets' accuracies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastEval {
    /// Epoch (1-based) after which it ran.
    pub epoch: usize,
    /// Step at which it ran (absent in checkpoints written before it was kept).
    #[serde(default)]
    pub step: Option<u64>,
    /// The main test set.
    pub test: Evaluation,
    /// Accuracy (%) on each extra evaluation set.
    pub extra: BTreeMap<String, f64>,
}

impl LoopState {
    /// The state of a fresh run.
    pub fn start() -> Self {
        Self {
            epoch: 0,
            next_batch: 0,
            step: 0,
            images_seen: 0,
            train_secs: 0.0,
            eval_secs: 0.0,
            window: Default::default(),
            last_eval: None,
        }
    }
}

const LATEST: &str = "latest";

/// Writes a checkpoint for `state` under `run_dir/checkpoints`, prunes old ones beyond `keep`,
/// and returns its directory.
pub fn save(
    run_dir: &Path,
    net: &Net,
    optim: &ModuleOptimizer,
    state: &LoopState,
    keep: usize,
) -> Result<PathBuf, TrainError> {
    let root = run_dir.join("checkpoints");
    std::fs::create_dir_all(&root).map_err(|e| TrainError::io(&root, e))?;
    let name = format!("step-{:08}", state.step);
    let tmp = root.join(format!(".tmp-{name}"));
    let final_dir = root.join(&name);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    let ckpt_err = |what: &str, e: &dyn std::fmt::Display| TrainError::Checkpoint {
        path: tmp.clone(),
        reason: format!("cannot write {what}: {e}"),
    };
    // burn's `RunningState` (batch norm's running statistics) holds its latest update aside
    // until it is read again, and a record reads the value before it: `valid()` merges the
    // pending update into the shared state first, so the checkpoint holds what the next step
    // would use and resume stays exact.
    drop(net.valid());
    net.clone()
        .save_file(tmp.join("model.bpk"))
        .map_err(|e| ckpt_err("model", &e))?;
    optim
        .save(tmp.join("optim.bpk"))
        .map_err(|e| ckpt_err("optimizer state", &e))?;
    let json = serde_json::to_string_pretty(state).expect("loop state serialises");
    std::fs::write(tmp.join("state.json"), json).map_err(|e| TrainError::io(&tmp, e))?;
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(|e| TrainError::io(&final_dir, e))?;
    }
    std::fs::rename(&tmp, &final_dir).map_err(|e| TrainError::io(&final_dir, e))?;
    crate::run_dir::write_atomic(&root.join(LATEST), name.as_bytes())?;
    prune(&root, keep)?;
    Ok(final_dir)
}

fn prune(root: &Path, keep: usize) -> Result<(), TrainError> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .map_err(|e| TrainError::io(root, e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("step-"))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(keep.max(1));
    for name in &names[..excess] {
        let dir = root.join(name);
        std::fs::remove_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
    }
    Ok(())
}

/// The newest complete checkpoint of a run directory, if any.
pub fn latest(run_dir: &Path) -> Result<Option<PathBuf>, TrainError> {
    let root = run_dir.join("checkpoints");
    let pointer = root.join(LATEST);
    match std::fs::read_to_string(&pointer) {
        Ok(name) => Ok(Some(root.join(name.trim()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TrainError::io(pointer, e)),
    }
}

/// Resolves what a user passed as `--checkpoint`: a checkpoint directory, or a run directory
/// (its latest checkpoint).
pub fn resolve(path: &Path) -> Result<PathBuf, TrainError> {
    if path.join("model.bpk").is_file() {
        return Ok(path.to_path_buf());
    }
    match latest(path)? {
        Some(dir) => Ok(dir),
        None => Err(TrainError::Checkpoint {
            path: path.to_path_buf(),
            reason: "neither a checkpoint directory (with model.bpk) nor a run directory with \
                     checkpoints/latest"
                .into(),
        }),
    }
}

/// The run directory a checkpoint directory belongs to (`<run>/checkpoints/<ckpt>`).
pub fn run_dir_of(checkpoint: &Path) -> Option<PathBuf> {
    checkpoint.parent()?.parent().map(Path::to_path_buf)
}

/// Loads the network of `config` from `dir/model.bpk` onto `device`.
pub fn load_net(dir: &Path, config: &ExperimentConfig, device: &Device) -> Result<Net, TrainError> {
    let net = Net::init(config, device)?;
    net.try_load_file(dir.join("model.bpk"))
        .map_err(|e| TrainError::Checkpoint {
            path: dir.to_path_buf(),
            reason: format!("model.bpk does not fit the configured network: {e}"),
        })
}

/// Loads the optimizer state and loop position of a checkpoint.
pub fn load_training_state(
    dir: &Path,
    optim: ModuleOptimizer,
) -> Result<(ModuleOptimizer, LoopState), TrainError> {
    let optim = optim
        .load(dir.join("optim.bpk"))
        .map_err(|e| TrainError::Checkpoint {
            path: dir.to_path_buf(),
            reason: format!("cannot load optim.bpk: {e}"),
        })?;
    Ok((optim, load_loop_state(dir)?))
}

/// The loop state (`state.json`) of the checkpoint in `dir`.
pub fn load_loop_state(dir: &Path) -> Result<LoopState, TrainError> {
    let path = dir.join("state.json");
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::Checkpoint {
        path: dir.to_path_buf(),
        reason: format!("state.json: {e}"),
    })
}
