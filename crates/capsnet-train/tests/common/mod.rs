//! Shared test helpers: the dataset folder, small experiments, and running the binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `capsnet` binary with `args`: `CAPSNET_DATA` removed, then `env` set.
pub fn capsnet_env(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_capsnet"));
    cmd.args(args).env_remove("CAPSNET_DATA");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Runs the `capsnet` binary with `args` and without `CAPSNET_DATA`.
pub fn capsnet(args: &[&str]) -> Output {
    capsnet_env(args, &[])
}

/// A command's stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The stdout of a command that must have succeeded (else its stderr is the failure).
pub fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// Exit code 1 with a message holding every needle, never a panic.
pub fn assert_clean_failure(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit code 1, got {:?}: {err}",
        out.status
    );
    assert!(
        !err.contains("panicked"),
        "panic instead of an error: {err}"
    );
    for needle in needles {
        assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    }
}

/// A path as a command-line argument.
pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

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
