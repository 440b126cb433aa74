//! The training loop: Adam, learning-rate schedule, evaluation every epoch, checkpoints,
//! exact resume, metrics and the run summary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use capsnet_data::{Batch, BatchSource, DownloadProgress, Loader, LoaderConfig, Rng};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
use crate::board::RunBoard;
use crate::checkpoint::{self, LoopState};
use crate::config::{ExperimentConfig, LrSchedule, TrainConfig};
use crate::data::{ExperimentData, load_experiment_data};
use crate::error::TrainError;
use crate::load::{Resolved, to_toml};
use crate::net::{Net, Targets};
use crate::report::{EvalRecord, MetricsFile, ProgressMode, RunLog, TrainWindow};
use crate::run_dir;

/// Stream id for burn's generator (dropout), reseeded from `(seed, step)` before every step.
const STREAM_DROPOUT: u64 = 0x4452_4f50; // "DROP"

/// How to run `train`.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Continue the run in `run_dir` from its latest checkpoint.
    pub resume: bool,
    /// Delete an existing run directory and start over.
    pub overwrite: bool,
    /// Progress display.
    pub progress: ProgressMode,
    /// Stop (after writing a checkpoint) once this many steps are done: time-boxed runs.
    pub stop_after_steps: Option<u64>,
}

/// What a run reports when it ends (`summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Experiment name.
    pub name: String,
    /// `capsnet` or `baseline-cnn`.
    pub arch: String,
    /// Dataset name.
    pub dataset: String,
    /// Whether all configured epochs ran.
    pub completed: bool,
    /// Epochs configured.
    pub epochs: usize,
    /// Epochs finished.
    pub epochs_completed: usize,
    /// Optimizer steps.
    pub steps: u64,
    /// Batch size.
    pub batch_size: usize,
    /// Training images (after `train_limit`).
    pub train_images: usize,
    /// Test images (after `test_limit`).
    pub test_images: usize,
    /// Trainable parameters.
    pub params: usize,
    /// Epoch of the last evaluation (the final epoch for a completed run; never the best one).
    pub final_eval_epoch: Option<usize>,
    /// Test error (%) at `final_eval_epoch`.
    pub final_test_error_pct: Option<f64>,
    /// Test accuracy (%) at `final_eval_epoch`.
    pub final_test_accuracy: Option<f64>,
    /// Test loss at `final_eval_epoch`.
    pub final_test_loss: Option<f64>,
    /// Accuracy (%) on each extra evaluation set (e.g. `affine`, `affnist`) at
    /// `final_eval_epoch`.
    #[serde(default)]
    pub final_extra_accuracy: BTreeMap<String, f64>,
    /// Seconds in training steps (all sessions of the run).
    pub train_secs: f64,
    /// Seconds in evaluation.
    pub eval_secs: f64,
    /// Training + evaluation seconds.
    pub wall_time_secs: f64,
    /// Training images per second.
    pub train_images_per_sec: f64,
    /// Backend name.
    pub backend: String,
    /// The `runtime.device` it ran with.
    pub device: crate::backend::DeviceSelector,
    /// Machine the run finished on.
    pub machine: crate::machine::MachineInfo,
    /// `git describe`-like revision of the working tree.
    pub git_revision: String,
    /// capsnet version.
    pub capsnet_version: String,
    /// burn version.
    pub burn_version: String,
}

/// Learning rate at global step `step` (0-based) of epoch `epoch`.
pub fn learning_rate(train: &TrainConfig, step: u64, epoch: usize) -> f64 {
    let lr = match train.lr_schedule {
        LrSchedule::ExponentialSteps => {
            train.lr
                * train
                    .lr_decay
                    .powf(step as f64 / train.lr_decay_steps as f64)
        }
        LrSchedule::PerEpoch => train.lr * train.lr_decay.powi(epoch as i32),
        LrSchedule::Constant => train.lr,
    };
    lr.max(train.lr_min)
}

/// The autodiff training device of an experiment, with its float precision set.
///
/// A precision other than f32 must be set before the device creates any tensor: in a process
/// that has already used the device with another precision this is an error.
pub fn training_device(config: &ExperimentConfig) -> Result<Device, TrainError> {
    let kind = BackendKind::parse(&config.runtime.backend).map_err(crate::ConfigError::from)?;
    let mut device = kind
        .device(config.runtime.device)
        .map_err(crate::ConfigError::from)?;
    let precision = config.runtime.precision;
    let current = device.settings().float_dtype;
    if current != precision.dtype() {
        device
            .configure(precision.dtype())
            .map_err(|e| crate::ConfigError::Invalid {
                key: "runtime.precision".into(),
                value: precision.name().into(),
                reason: format!(
                    "backend `{}` cannot use it here: {e:?}",
                    config.runtime.backend
                ),
            })?;
    }
    Ok(device.autodiff())
}

/// Download progress on an indicatif bar (terminal) or as start/finish lines.
pub struct DownloadBars {
    bars: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl DownloadBars {
    /// Bars when `bars` (a terminal), else start/finish lines.
    pub fn new(bars: bool) -> Self {
        Self {
            bars,
            bar: Mutex::new(None),
        }
    }
}

impl DownloadProgress for DownloadBars {
    fn start(&self, url: &str, total: Option<u64>) {
        eprintln!("downloading {url}");
        if self.bars {
            let bar = ProgressBar::new(total.unwrap_or(0));
            bar.set_style(
                ProgressStyle::with_template("  [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            *self.bar.lock().expect("progress lock") = Some(bar);
        }
    }
    fn advance(&self, bytes: u64) {
        if let Some(bar) = self.bar.lock().expect("progress lock").as_ref() {
            bar.inc(bytes);
        }
    }
    fn finish(&self) {
        if let Some(bar) = self.bar.lock().expect("progress lock").take() {
            bar.finish_and_clear();
        }
    }
}

/// Turns a loader batch into tensors on `device`: images `[B, C, H, W]` and the targets.
pub fn batch_tensors(batch: Batch, device: &Device) -> (Tensor<4>, Targets) {
    let shape = batch.shape();
    let (len, count) = (batch.len, batch.targets.max(1));
    let images = Tensor::from_data(TensorData::new(batch.images, shape), device);
    let labels = Tensor::from_data(TensorData::new(batch.labels, [len, count]), device);
    let parts = (!batch.parts.is_empty()).then(|| {
        let pixels = batch.dims.size();
        Tensor::from_data(TensorData::new(batch.parts, [len, count, pixels]), device)
    });
    (images, Targets { labels, parts })
}

/// Test-set evaluation result.
#[derive(Debug, Clone, Copy)]
pub struct Evaluation {
    /// Mean loss.
    pub loss: f64,
    /// Accuracy (%).
    pub accuracy: f64,
    /// Images evaluated.
    pub images: usize,
    /// Seconds taken.
    pub secs: f64,
}

/// Evaluates `net` (an inference copy from `Module::valid`) on `set`. With one target the
/// decoder is masked by the longest capsule; with two (MultiMNIST) the loss decodes each true
/// class's capsule, as in training, so the test loss is teacher-forced there (the accuracy
/// never depends on the decoder).
pub fn evaluate(
    net: &Net,
    set: &Arc<dyn BatchSource>,
    config: &ExperimentConfig,
    device: &Device,
) -> Result<Evaluation, TrainError> {
    let mut result = evaluate_ensemble(std::slice::from_ref(net), set, config, device)?;
    Ok(result.members.remove(0))
}

/// Several networks evaluated on the same examples, alone and together.
#[derive(Debug, Clone)]
pub struct EnsembleEvaluation {
    /// Each network alone, in the order given.
    pub members: Vec<Evaluation>,
    /// Accuracy (%) of the ensemble: the class scores (capsule lengths or logits) of all
    /// members summed, then classified like a single network.
    pub accuracy: f64,
    /// Examples evaluated.
    pub images: usize,
    /// Seconds taken.
    pub secs: f64,
}

/// Evaluates `nets` (inference copies) on `set`, each alone and as an ensemble whose scores
/// are the sum of the members' (the official code's ensemble rule). With one network the
/// ensemble is that network and no extra work is done.
pub fn evaluate_ensemble(
    nets: &[Net],
    set: &Arc<dyn BatchSource>,
    config: &ExperimentConfig,
    device: &Device,
) -> Result<EnsembleEvaluation, TrainError> {
    let start = Instant::now();
    let loader = Loader::from_source(set.clone(), LoaderConfig::new(config.train.eval_batch_size))?;
    let mut loss_sums = vec![0.0; nets.len()];
    let mut correct = vec![0.0; nets.len()];
    let mut ensemble_correct = 0.0;
    for batch in loader {
        let batch = batch?;
        let len = batch.len as f64;
        let (images, targets) = batch_tensors(batch, device);
        let mut parts = Vec::with_capacity(2 * nets.len() + 1);
        let mut sum: Option<Tensor<2>> = None;
        for net in nets {
            let out = net.step(images.clone(), &targets, &config.loss, false);
            parts.push(out.total);
            parts.push(Net::correct(out.scores.clone(), &targets).float());
            if nets.len() > 1 {
                sum = Some(match sum {
                    Some(s) => s + out.scores,
                    None => out.scores,
                });
            }
        }
        if let Some(sum) = sum {
            parts.push(Net::correct(sum, &targets).float());
        }
        let values = read_values(parts);
        for (k, pair) in values.chunks_exact(2).take(nets.len()).enumerate() {
            loss_sums[k] += pair[0] * len;
            correct[k] += pair[1];
        }
        if nets.len() > 1 {
            ensemble_correct += values[2 * nets.len()];
        }
    }
    if nets.len() == 1 {
        ensemble_correct = correct[0];
    }
    let n = set.len();
    let secs = start.elapsed().as_secs_f64();
    Ok(EnsembleEvaluation {
        members: loss_sums
            .iter()
            .zip(&correct)
            .map(|(&loss, &c)| Evaluation {
                loss: loss / n as f64,
                accuracy: 100.0 * c / n as f64,
                images: n,
                secs,
            })
            .collect(),
        accuracy: 100.0 * ensemble_correct / n as f64,
        images: n,
        secs,
    })
}

/// Reads several one-element tensors with a single device synchronisation.
fn read_values(parts: Vec<Tensor<1>>) -> Vec<f64> {
    Tensor::cat(parts, 0)
        .into_data()
        .try_into_vec_as::<f64>()
        .expect("float tensor converts to f64")
}

/// Adam with the experiment's hyper-parameters, fused where the backend has the kernel and
/// `runtime.fused_ops` is on (see [`crate::optim`]).
pub fn optimizer(config: &ExperimentConfig) -> ModuleOptimizer {
    crate::optim::adam(&config.train, config.runtime.fused_ops)
}

/// Trains the experiment into `options.run_dir`, resuming if asked. Returns the run summary.
pub fn train(resolved: &Resolved, options: &TrainOptions) -> Result<Summary, TrainError> {
    let config = &resolved.config;
    let resume_from = run_dir::prepare(
        &options.run_dir,
        resolved,
        options.resume,
        options.overwrite,
    )?;
    let mut log = RunLog::open(&options.run_dir, options.progress)?;
    let device = training_device(config)?;
    log.info(&format!(
        "run {} ({}, backend {}, {}, batch {})",
        options.run_dir.display(),
        config.arch.name(),
        config.runtime.backend,
        match config.train.steps {
            Some(steps) => format!("{steps} steps"),
            None => format!("{} epochs", config.train.epochs),
        },
        config.train.batch_size
    ));
    let data = load_experiment_data(config, &mut log)?;

    device.seed(config.seed);
    let mut optim = optimizer(config);
    let (mut net, mut state) = match &resume_from {
        Some(dir) => {
            let net = checkpoint::load_net(dir, config, &device)?;
            let (loaded, state) = checkpoint::load_training_state(dir, optim)?;
            optim = loaded;
            log.info(&format!(
                "resuming from {} (epoch {}, batch {}, step {})",
                dir.display(),
                state.epoch + 1,
                state.next_batch,
                state.step
            ));
            (net, state)
        }
        None => (Net::init(config, &device)?, LoopState::start()),
    };
    let mut metrics = MetricsFile::open(&options.run_dir, Some(state.step))?;
    let mut board = match config.train.tensorboard {
        true => Some(RunBoard::open(
            &options.run_dir,
            resolved,
            resume_from.is_none(),
        )?),
        false => None,
    };
    let params = net.num_params();
    let steps_per_epoch =
        capsnet_data::num_batches(data.train.len(), config.train.batch_size, false);
    // `train.steps` fixes the number of optimisation steps; the last pass is cut short.
    let epochs = match config.train.steps {
        Some(steps) => {
            let epochs = steps.div_ceil(steps_per_epoch);
            log.info(&format!(
                "{steps} steps on {} training images: {epochs} passes of {steps_per_epoch} batches",
                data.train.len()
            ));
            epochs
        }
        None => config.train.epochs,
    };
    let last_step = config.train.steps.map(|s| s as u64);
    let mut last_extra = previous_extra_evals(&options.run_dir, state.step);
    let mut last_eval: Option<(usize, Evaluation)> = previous_eval(&options.run_dir, state.step);
    let save_checkpoint = |net: &Net, optim: &ModuleOptimizer, state: &LoopState| {
        checkpoint::save(
            &options.run_dir,
            net,
            optim,
            state,
            config.train.keep_checkpoints,
        )
    };

    while state.epoch < epochs {
        let epoch = state.epoch;
        let loader = Loader::from_source(
            data.train.clone(),
            LoaderConfig {
                batch_size: config.train.batch_size,
                seed: config.seed,
                epoch: epoch as u64,
                shuffle: config.data.shuffle,
                shift_px: 0,
                augment: true,
                drop_last: false,
                start_batch: state.next_batch,
                prefetch: 2,
            },
        )?;
        log.start_bar(
            steps_per_epoch as u64,
            state.next_batch as u64,
            format!("epoch {}/{}", epoch + 1, epochs),
        );

        for batch in loader {
            let batch = batch?;
            let step_start = Instant::now();
            let len = batch.len;
            let lr = learning_rate(&config.train, state.step, epoch);
            let (images, targets) = batch_tensors(batch, &device);
            device.seed(Rng::derive(config.seed, &[STREAM_DROPOUT, state.step]).next_u64());
            let out = net.step(images, &targets, &config.loss, true);
            let hits = Net::correct(out.scores.clone().detach(), &targets).float();
            let mut parts = vec![out.total.clone().detach(), hits];
            parts.extend(out.margin.iter().map(|t| t.clone().detach()));
            parts.extend(out.reconstruction.iter().map(|t| t.clone().detach()));
            let grads = GradientsParams::from_grads(out.total.backward(), &net);
            net = optim.step(lr, net, grads);
            let values = read_values(parts);
            if !values[0].is_finite() {
                if let Some(board) = &mut board {
                    board.finish(false)?;
                }
                return Err(TrainError::Diverged {
                    step: state.step,
                    loss: values[0],
                });
            }
            let secs = step_start.elapsed().as_secs_f64();
            state.step += 1;
            state.next_batch += 1;
            state.images_seen += len as u64;
            state.train_secs += secs;
            state.window.add(&values, out.margin.is_some(), len, secs);

            let position = state.next_batch as u64;
            let finished = last_step == Some(state.step);
            log.update_bar(position, state.window.message());
            if state.step % config.train.log_every_steps as u64 == 0
                || position == steps_per_epoch as u64
                || finished
            {
                let record = state.window.record(epoch + 1, state.step, lr);
                if !log.has_bars() {
                    log.info(&format!(
                        "epoch {}/{} step {} ({position}/{steps_per_epoch}) {}",
                        epoch + 1,
                        epochs,
                        state.step,
                        state.window.message()
                    ));
                }
                metrics.write(&record)?;
                if let Some(board) = &mut board {
                    board.train(&record)?;
                }
                state.window = TrainWindow::default();
            }
            let stop = options.stop_after_steps.is_some_and(|s| state.step >= s);
            let every = config.train.checkpoint_every_steps as u64;
            if stop
                || (every > 0
                    && state.step % every == 0
                    && position < steps_per_epoch as u64
                    && !finished)
            {
                save_checkpoint(&net, &optim, &state)?;
            }
            if stop {
                log.finish_bar();
                log.info(&format!(
                    "stopped after step {} as asked; resume with --resume",
                    state.step
                ));
                let summary = summarize(
                    config,
                    epochs,
                    &state,
                    &data,
                    params,
                    last_eval,
                    &last_extra,
                );
                write_summary(&options.run_dir, &summary)?;
                return Ok(summary);
            }
            if finished {
                break;
            }
        }
        log.finish_bar();
        state.epoch += 1;
        state.next_batch = 0;
        if state.epoch % config.train.eval_every_epochs == 0 || state.epoch == epochs {
            let eval_device = device.clone().without_autodiff();
            let valid = net.valid();
            let eval = evaluate(&valid, &data.test.source, config, &eval_device)?;
            state.eval_secs += eval.secs;
            let record = eval_record(None, &state, &eval);
            metrics.write(&record)?;
            if let Some(board) = &mut board {
                board.eval(&record, &valid, &data.test.source, &eval_device)?;
            }
            last_extra.clear();
            for extra in &data.extra {
                let e = evaluate(&valid, &extra.source, config, &eval_device)?;
                state.eval_secs += e.secs;
                let record = eval_record(Some(extra.name.clone()), &state, &e);
                metrics.write(&record)?;
                if let Some(board) = &mut board {
                    board.eval_extra(&extra.name, &record)?;
                }
                log.info(&format!(
                    "epoch {}/{}: {} accuracy {:.2}% ({} examples)",
                    state.epoch, epochs, extra.name, e.accuracy, e.images
                ));
                last_extra.insert(extra.name.clone(), e.accuracy);
            }
            log.info(&format!(
                "epoch {}/{}: test accuracy {:.2}% (error {:.2}%), test loss {:.4}, train {:.0} img/s",
                state.epoch,
                epochs,
                eval.accuracy,
                100.0 - eval.accuracy,
                eval.loss,
                state.images_seen as f64 / state.train_secs.max(1e-9),
            ));
            last_eval = Some((state.epoch, eval));
        }
        if state.epoch % config.train.checkpoint_every_epochs == 0 || state.epoch == epochs {
            save_checkpoint(&net, &optim, &state)?;
        }
    }
    let summary = summarize(
        config,
        epochs,
        &state,
        &data,
        params,
        last_eval,
        &last_extra,
    );
    write_summary(&options.run_dir, &summary)?;
    if let Some(board) = &mut board {
        board.finish(true)?;
    }
    log.info(&format!(
        "done: final test error {} after {} epochs, {:.0} s training at {:.0} img/s",
        summary
            .final_test_error_pct
            .map(|e| format!("{e:.2}%"))
            .unwrap_or_else(|| "n/a".into()),
        summary.epochs_completed,
        summary.train_secs,
        summary.train_images_per_sec
    ));
    Ok(summary)
}

/// The `metrics.jsonl` record of an evaluation at the loop's position; `set` names an extra
/// evaluation set (`None` for the main test set).
fn eval_record(set: Option<String>, state: &LoopState, e: &Evaluation) -> EvalRecord {
    EvalRecord {
        kind: "eval",
        set,
        epoch: state.epoch,
        step: state.step,
        test_loss: e.loss,
        test_accuracy: e.accuracy,
        test_error_pct: 100.0 - e.accuracy,
        test_images: e.images,
        images_per_sec: e.images as f64 / e.secs.max(1e-9),
    }
}

/// The last evaluation recorded in `metrics.jsonl` up to `step` (for resumed runs).
fn previous_eval(run_dir: &Path, step: u64) -> Option<(usize, Evaluation)> {
    let text = std::fs::read_to_string(run_dir.join("metrics.jsonl")).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| {
            v["kind"] == "eval"
                && v.get("set").is_none()
                && v["step"].as_u64().is_some_and(|s| s <= step)
        })
        .map(|v| {
            (
                v["epoch"].as_u64().unwrap_or(0) as usize,
                Evaluation {
                    loss: v["test_loss"].as_f64().unwrap_or(f64::NAN),
                    accuracy: v["test_accuracy"].as_f64().unwrap_or(f64::NAN),
                    images: v["test_images"].as_u64().unwrap_or(0) as usize,
                    secs: 0.0,
                },
            )
        })
}

/// Accuracies on the extra evaluation sets at the last evaluation up to `step` (resumed runs).
fn previous_extra_evals(run_dir: &Path, step: u64) -> BTreeMap<String, f64> {
    let Ok(text) = std::fs::read_to_string(run_dir.join("metrics.jsonl")) else {
        return BTreeMap::new();
    };
    let records: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| {
            v["kind"] == "eval" && v["step"].as_u64().is_some_and(|s| s <= step)
        })
        .collect();
    let Some(last) = records.iter().rev().find(|v| v.get("set").is_none()) else {
        return BTreeMap::new();
    };
    records
        .iter()
        .filter(|v| v["step"] == last["step"])
        .filter_map(|v| Some((v["set"].as_str()?.to_string(), v["test_accuracy"].as_f64()?)))
        .collect()
}

fn summarize(
    config: &ExperimentConfig,
    epochs: usize,
    state: &LoopState,
    data: &ExperimentData,
    params: usize,
    last_eval: Option<(usize, Evaluation)>,
    extra: &BTreeMap<String, f64>,
) -> Summary {
    Summary {
        name: config.name.clone(),
        arch: config.arch.name().into(),
        dataset: config.data.dataset.clone(),
        completed: state.epoch == epochs,
        epochs,
        epochs_completed: state.epoch,
        steps: state.step,
        batch_size: config.train.batch_size,
        train_images: data.train.len(),
        test_images: data.test.source.len(),
        params,
        final_eval_epoch: last_eval.map(|(e, _)| e),
        final_test_error_pct: last_eval.map(|(_, e)| 100.0 - e.accuracy),
        final_test_accuracy: last_eval.map(|(_, e)| e.accuracy),
        final_test_loss: last_eval.map(|(_, e)| e.loss),
        final_extra_accuracy: extra.clone(),
        train_secs: state.train_secs,
        eval_secs: state.eval_secs,
        wall_time_secs: state.train_secs + state.eval_secs,
        train_images_per_sec: state.images_seen as f64 / state.train_secs.max(1e-9),
        backend: config.runtime.backend.clone(),
        device: config.runtime.device,
        machine: crate::machine::MachineInfo::current(),
        git_revision: crate::machine::git_revision(),
        capsnet_version: env!("CARGO_PKG_VERSION").into(),
        burn_version: crate::machine::BURN_VERSION.into(),
    }
}

fn write_summary(run_dir: &Path, summary: &Summary) -> Result<(), TrainError> {
    let json = serde_json::to_string_pretty(summary).expect("summary serialises");
    checkpoint::write_atomic(&run_dir.join("summary.json"), json.as_bytes())
}

/// Writes the resolved configuration of a run (used by [`run_dir::prepare`]).
pub(crate) fn resolved_toml(resolved: &Resolved) -> String {
    to_toml(&resolved.config)
}
