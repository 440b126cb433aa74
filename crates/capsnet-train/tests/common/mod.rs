//! Shared test helpers: the dataset folder and small experiments.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The folder holding `mnist/`: CAPSNET_DATA, else the workplace's shared datasets, else the
/// download cache (`cargo capsnet download`). Fails loudly when none has the data: these tests
/// must never pass vacuously.
pub fn data_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("CAPSNET_DATA").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets");
    let cache = capsnet_data::dataset::default_cache_dir(
        std::env::var_os("XDG_CACHE_HOME"),
        std::env::var_os("HOME"),
    );
    [Some(shared.clone()), cache]
        .into_iter()
        .flatten()
        .find(|dir| dir.join("mnist").is_dir())
        .unwrap_or_else(|| {
            panic!(
                "MNIST not found: run `cargo capsnet download` or set CAPSNET_DATA to a folder \
                 holding mnist/ (tried {} and the cache)",
                shared.display()
            )
        })
}

/// Writes an experiment file into `dir` and returns its path.
pub fn write_experiment(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, format!("name = \"{name}\"\n{body}")).unwrap();
    path
}

/// A tiny CapsNet experiment on a subset of MNIST (seconds on a CPU).
pub const TINY: &str = r#"
seed = 3
[data]
train_limit = 320
test_limit = 200
shift_pixels = 2
[model]
conv1_channels = 16
primary_types = 4
decoder.hidden = [64, 128]
[train]
epochs = 2
batch_size = 32
checkpoint_every_steps = 4
log_every_steps = 2
eval_batch_size = 100
"#;

/// Parameter values of the latest checkpoint of a run (ids differ between runs; values must not).
pub fn final_weights(run: &Path) -> Vec<f32> {
    let ckpt = capsnet_train::checkpoint::latest(run)
        .unwrap()
        .expect("a checkpoint");
    let text = std::fs::read_to_string(run.join("config.resolved.toml")).unwrap();
    let config = capsnet_train::load::parse_str(&text, "resolved").unwrap();
    let device = capsnet_train::backend::BackendKind::Flex
        .device(Default::default())
        .unwrap();
    let net = capsnet_train::checkpoint::load_net(&ckpt, &config, &device).unwrap();
    capsnet_train::net::parameter_values(&net)
}

/// [`options`] for a run that stops (with a checkpoint) after `steps` steps.
pub fn stop_after(run_dir: &Path, steps: u64) -> capsnet_train::TrainOptions {
    capsnet_train::TrainOptions {
        stop_after_steps: Some(steps),
        ..options(run_dir)
    }
}

/// [`options`] resuming the run in `run_dir`.
pub fn resuming(run_dir: &Path) -> capsnet_train::TrainOptions {
    capsnet_train::TrainOptions {
        resume: true,
        ..options(run_dir)
    }
}

/// Quiet training options for a fresh run in `run_dir`.
pub fn options(run_dir: &Path) -> capsnet_train::TrainOptions {
    capsnet_train::TrainOptions {
        run_dir: run_dir.to_path_buf(),
        resume: false,
        overwrite: false,
        progress: capsnet_train::report::ProgressMode::Quiet,
        stop_after_steps: None,
        stop_after_secs: None,
    }
}

/// The records of `kind` (`train` or `eval`) in a run's `metrics.jsonl`.
pub fn records(run_dir: &Path, kind: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == kind)
        .collect()
}

/// The training loss of a run's first and last train records.
pub fn first_and_last_loss(run_dir: &Path) -> (f64, f64) {
    let train = records(run_dir, "train");
    let loss = |r: &serde_json::Value| r["loss"].as_f64().unwrap();
    (loss(&train[0]), loss(&train[train.len() - 1]))
}
