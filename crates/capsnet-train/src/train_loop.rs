//! The training loop: Adam, learning-rate schedule, evaluation every epoch, checkpoints,
//! exact resume, metrics and the run summary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Device;
use capsnet_data::{Batch, Loader, LoaderConfig, Rng};

use crate::checkpoint::{self, LastEval, LoopState};
use crate::config::{ExperimentConfig, LrSchedule, TrainConfig};
use crate::data::{ExperimentData, load_experiment_data};
use crate::device::training_device;
use crate::error::TrainError;
use crate::eval::{Evaluation, evaluate, read_values};
use crate::load::Resolved;
use crate::net::{Net, batch_tensors};
use crate::optim::optimizer;
use crate::recorder::Recorder;
use crate::report::{EvalRecord, ProgressMode, RunLog, StepValues, TrainWindow};
use crate::run_dir::{self, Start};

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
    /// A time budget in seconds for this process: at the first step boundary past it the run
    /// evaluates on its test sets, writes a checkpoint and a summary marked as cut short
    /// (`stopped`), so a run on a lease that ends comes back with a result.
    pub stop_after_secs: Option<f64>,
}

pub use capsnet_common::summary::Summary;

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

/// Trains the experiment into `options.run_dir`, resuming if asked. Returns the run summary.
///
/// The phases: [`Run::start`] (a fresh run or the resumed one), then [`Run::epoch`] and
/// [`Run::end_epoch`] (evaluate and record when due, checkpoint) until the last epoch, then
/// [`Run::finish`]. A run stopped by `stop_after_steps` ends in [`Run::stop`].
pub fn train(resolved: &Resolved, options: &TrainOptions) -> Result<Summary, TrainError> {
    let (mut run, mut net) = Run::start(resolved, options)?;
    while run.state.epoch < run.epochs {
        let (trained, end) = run.epoch(net)?;
        net = trained;
        match end {
            EpochEnd::Stopped => return run.stop(),
            EpochEnd::OutOfTime => return run.out_of_time(&net),
            EpochEnd::Done => run.end_epoch(&net)?,
        }
    }
    run.finish()
}

/// How an epoch ended.
enum EpochEnd {
    /// Its last batch (or the run's last step) was trained.
    Done,
    /// `stop_after_steps` was reached; a checkpoint was written.
    Stopped,
    /// The time budget (`stop_after_secs`) ran out at a step boundary; nothing written yet.
    OutOfTime,
}

/// A run in progress: everything the phases of [`train`] share but the network, which each
/// step consumes and replaces (so that the optimizer may update its parameters in place).
struct Run<'a> {
    config: &'a ExperimentConfig,
    options: &'a TrainOptions,
    log: RunLog,
    device: Device,
    data: ExperimentData,
    optim: ModuleOptimizer,
    state: LoopState,
    recorder: Recorder,
    params: usize,
    steps_per_epoch: usize,
    /// Epochs of the run: `train.epochs`, or the passes `train.steps` needs.
    epochs: usize,
    /// `train.steps`, the step that ends the run.
    last_step: Option<u64>,
    /// When this process started the run (for `stop_after_secs`).
    started: Instant,
}

impl<'a> Run<'a> {
    /// Prepares the run directory, loads the data and builds the network and optimizer, fresh
    /// or from the latest checkpoint of a resumed run.
    fn start(resolved: &'a Resolved, options: &'a TrainOptions) -> Result<(Self, Net), TrainError> {
        let started = Instant::now();
        let config = &resolved.config;
        // Checked first, written only once the data has been read: a bad dataset leaves the
        // run directory as it was.
        run_dir::check(
            &options.run_dir,
            resolved,
            options.resume,
            options.overwrite,
        )?;
        let mut log = RunLog::stderr_only(options.progress);
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
        let rows = crate::info::layer_table(config);
        let params = rows.iter().map(|r| r.params).sum();
        if let Some(warning) = crate::info::memory(config, &rows, params).warning {
            log.info(&format!("warning: {warning}"));
        }
        let data = load_experiment_data(config, &mut log)?;
        let start = run_dir::prepare(
            &options.run_dir,
            resolved,
            options.resume,
            options.overwrite,
        )?;
        log.attach(&options.run_dir)?;
        run_dir::write_atomic(
            &options.run_dir.join(crate::run_dir::CLASSES_FILE),
            crate::run_dir::classes_json(&data.classes).as_bytes(),
        )?;
        let resume_from = match start {
            Start::Resume => checkpoint::latest(&options.run_dir)?,
            Start::Fresh => None,
        };

        device.seed(config.seed);
        let (net, optim, state) = match &resume_from {
            Some(dir) => {
                let net = checkpoint::load_net(dir, config, &device)?;
                let (optim, state) = checkpoint::load_training_state(dir, optimizer(config))?;
                log.info(&format!(
                    "resuming from {} (epoch {}, batch {}, step {})",
                    dir.display(),
                    state.epoch + 1,
                    state.next_batch,
                    state.step
                ));
                (net, optim, state)
            }
            None => (
                Net::init(config, &device)?,
                optimizer(config),
                LoopState::start(),
            ),
        };
        let recorder = Recorder::open(
            &options.run_dir,
            resolved,
            resume_from.as_ref().map(|_| state.step),
        )?;
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
        let run = Self {
            config,
            options,
            log,
            device,
            params: net.trainable_params(),
            data,
            optim,
            state,
            recorder,
            steps_per_epoch,
            epochs,
            last_step: config.train.steps.map(|s| s as u64),
            started,
        };
        Ok((run, net))
    }

    /// Trains the rest of the current epoch (from `state.next_batch`), logging every
    /// `log_every_steps` and checkpointing every `checkpoint_every_steps`.
    fn epoch(&mut self, mut net: Net) -> Result<(Net, EpochEnd), TrainError> {
        let config = self.config;
        let epoch = self.state.epoch;
        let loader = Loader::from_source(
            self.data.train.clone(),
            LoaderConfig {
                batch_size: config.train.batch_size,
                seed: config.seed,
                epoch: epoch as u64,
                shuffle: config.data.shuffle,
                augment: true,
                drop_last: false,
                start_batch: self.state.next_batch,
                prefetch: 2,
            },
        )?;
        let per_epoch = self.steps_per_epoch as u64;
        self.log.start_bar(
            per_epoch,
            self.state.next_batch as u64,
            format!("epoch {}/{}", epoch + 1, self.epochs),
        );
        for batch in loader {
            let lr = learning_rate(&config.train, self.state.step, epoch);
            net = self.step(net, batch?, lr)?;
            let position = self.state.next_batch as u64;
            let finished = self.last_step == Some(self.state.step);
            self.log.update_bar(position, self.state.window.message());
            if self
                .state
                .step
                .is_multiple_of(config.train.log_every_steps as u64)
                || position == per_epoch
                || finished
            {
                let record = self.state.window.record(epoch + 1, self.state.step, lr);
                if !self.log.has_bars() {
                    self.log.info(&format!(
                        "epoch {}/{} step {} ({position}/{per_epoch}) {}",
                        epoch + 1,
                        self.epochs,
                        self.state.step,
                        self.state.window.message()
                    ));
                }
                self.recorder.train(&record)?;
                self.state.window = TrainWindow::default();
            }
            // A step evaluation at an epoch's last step is end_epoch's, numbered with that epoch.
            if self.step_evaluation_due() && position < per_epoch && !finished {
                self.evaluate_and_record(&net)?;
            }
            let stop = self
                .options
                .stop_after_steps
                .is_some_and(|s| self.state.step >= s);
            let every = config.train.checkpoint_every_steps as u64;
            if stop
                || (every > 0
                    && self.state.step.is_multiple_of(every)
                    && position < per_epoch
                    && !finished)
            {
                self.save_checkpoint(&net)?;
            }
            if stop {
                self.log.finish_bar();
                return Ok((net, EpochEnd::Stopped));
            }
            if !finished
                && self
                    .options
                    .stop_after_secs
                    .is_some_and(|budget| self.started.elapsed().as_secs_f64() >= budget)
            {
                self.log.finish_bar();
                return Ok((net, EpochEnd::OutOfTime));
            }
            if finished {
                break;
            }
        }
        self.log.finish_bar();
        self.state.epoch += 1;
        self.state.next_batch = 0;
        Ok((net, EpochEnd::Done))
    }

    /// One optimisation step of `net` on `batch` at learning rate `lr`.
    fn step(&mut self, net: Net, batch: Batch, lr: f64) -> Result<Net, TrainError> {
        let start = Instant::now();
        let len = batch.len;
        let (images, targets) = batch_tensors(batch, &self.device);
        self.device
            .seed(Rng::derive(self.config.seed, &[STREAM_DROPOUT, self.state.step]).next_u64());
        let out = net.step(images, &targets, &self.config.loss, true);
        let hits = Net::correct(out.scores.clone().detach(), &targets).float();
        let mut parts = vec![out.total.clone().detach(), hits];
        parts.extend(out.margin.iter().map(|t| t.clone().detach()));
        parts.extend(out.reconstruction.iter().map(|t| t.clone().detach()));
        let grads = GradientsParams::from_grads(out.total.backward(), &net);
        let net = self.optim.step(lr, net, grads);
        let mut read = read_values(parts).into_iter();
        let mut next = || read.next().expect("one value per part");
        let values = StepValues {
            loss: next(),
            correct: next(),
            margin: out.margin.is_some().then(&mut next),
            reconstruction: out.reconstruction.is_some().then(&mut next),
        };
        if !values.loss.is_finite() {
            self.recorder.finish(false)?;
            return Err(TrainError::Diverged {
                step: self.state.step,
                loss: values.loss,
            });
        }
        let secs = start.elapsed().as_secs_f64();
        let state = &mut self.state;
        state.step += 1;
        state.next_batch += 1;
        state.images_seen += len as u64;
        state.train_secs += secs;
        state.window.add(&values, len, secs);
        Ok(net)
    }

    /// After an epoch: evaluate and record when due (every `eval_every_epochs` and at the
    /// last), then checkpoint when due (every `checkpoint_every_epochs` and at the last).
    fn end_epoch(&mut self, net: &Net) -> Result<(), TrainError> {
        let train = &self.config.train;
        let last = self.state.epoch == self.epochs;
        if self.state.epoch.is_multiple_of(train.eval_every_epochs)
            || last
            || self.step_evaluation_due()
        {
            self.evaluate_and_record(net)?;
        }
        if self
            .state
            .epoch
            .is_multiple_of(train.checkpoint_every_epochs)
            || last
        {
            self.save_checkpoint(net)?;
        }
        Ok(())
    }

    /// Whether `train.eval_every_steps` asks for an evaluation at the current step.
    fn step_evaluation_due(&self) -> bool {
        let every = self.config.train.eval_every_steps as u64;
        every > 0 && self.state.step.is_multiple_of(every)
    }

    /// Whether the last evaluation ran at the current step (`train.eval_every_steps` already
    /// evaluated the network the time budget would evaluate again).
    fn evaluated_at_this_step(&self) -> bool {
        self.state
            .last_eval
            .as_ref()
            .is_some_and(|last| last.step == Some(self.state.step))
    }

    /// Evaluates on the test set and every extra set, records the results and keeps them in
    /// the loop state for the summary.
    fn evaluate_and_record(&mut self, net: &Net) -> Result<(), TrainError> {
        let (config, epochs) = (self.config, self.epochs);
        let device = self.device.clone().without_autodiff();
        let valid = net.valid();
        // Mid-epoch evaluations (`train.eval_every_steps`) name their step.
        let at = match self.state.next_batch {
            0 => format!("epoch {}/{epochs}", self.state.epoch),
            _ => format!(
                "step {} (epoch {}/{epochs})",
                self.state.step,
                self.state.epoch + 1
            ),
        };
        let test = evaluate(&valid, &self.data.test.source, config, &device)?;
        self.state.eval_secs += test.secs;
        let record = eval_record(None, &self.state, &test);
        self.recorder
            .eval(&record, &valid, &self.data.test.source, &device)?;
        let mut extra = BTreeMap::new();
        for set in &self.data.extra {
            let e = evaluate(&valid, &set.source, config, &device)?;
            self.state.eval_secs += e.secs;
            let record = eval_record(Some(set.name.clone()), &self.state, &e);
            self.recorder.eval_extra(&set.name, &record)?;
            self.log.info(&format!(
                "{at}: {} accuracy {:.2}% ({} examples)",
                set.name, e.accuracy, e.images
            ));
            extra.insert(set.name.clone(), e.accuracy);
        }
        self.log.info(&format!(
            "{at}: test accuracy {:.2}% (error {:.2}%), test loss {:.4}, train {:.0} img/s",
            test.accuracy,
            100.0 - test.accuracy,
            test.loss,
            self.state.images_seen as f64 / self.state.train_secs.max(1e-9),
        ));
        self.state.last_eval = Some(LastEval {
            epoch: self.state.epoch,
            step: Some(self.state.step),
            test,
            extra,
        });
        Ok(())
    }

    fn save_checkpoint(&self, net: &Net) -> Result<(), TrainError> {
        checkpoint::save(
            &self.options.run_dir,
            net,
            &self.optim,
            &self.state,
            self.config.train.keep_checkpoints,
        )?;
        Ok(())
    }

    /// Ends a run stopped by `stop_after_steps` (its checkpoint is written): an incomplete
    /// summary.
    fn stop(mut self) -> Result<Summary, TrainError> {
        self.log.info(&format!(
            "stopped after step {} as asked; resume with --resume",
            self.state.step
        ));
        let mut summary = self.summary();
        summary.stopped = Some(format!("stopped after step {} as asked", self.state.step));
        write_summary(&self.options.run_dir, &summary)?;
        Ok(summary)
    }

    /// Ends a run whose time budget ran out mid-run: evaluated where it stands (so the summary
    /// has a result), checkpointed (resumable), summary marked `stopped`.
    fn out_of_time(mut self, net: &Net) -> Result<Summary, TrainError> {
        let budget = self.options.stop_after_secs.unwrap_or_default();
        let reason = format!(
            "time budget of {budget:.0} s reached at step {} (epoch {} of {}, batch {} of {})",
            self.state.step,
            self.state.epoch + 1,
            self.epochs,
            self.state.next_batch,
            self.steps_per_epoch
        );
        self.log.info(&format!(
            "{reason}: evaluating where it stands, then a checkpoint (resume with --resume)"
        ));
        if !self.evaluated_at_this_step() {
            self.evaluate_and_record(net)?;
        }
        self.save_checkpoint(net)?;
        let mut summary = self.summary();
        summary.stopped = Some(reason);
        write_summary(&self.options.run_dir, &summary)?;
        self.recorder.finish(true)?;
        Ok(summary)
    }

    /// Ends a run that trained every epoch: the summary, and the TensorBoard session closed.
    fn finish(mut self) -> Result<Summary, TrainError> {
        let summary = self.summary();
        write_summary(&self.options.run_dir, &summary)?;
        self.recorder.finish(true)?;
        self.log.info(&format!(
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

    fn summary(&self) -> Summary {
        let (config, state) = (self.config, &self.state);
        let last = state.last_eval.as_ref();
        Summary {
            name: config.name.clone(),
            arch: config.arch.name().into(),
            dataset: config.data.dataset.name().into(),
            routing: config.routing().map(|r| r.describe()),
            completed: state.epoch == self.epochs,
            stopped: None,
            epochs: self.epochs,
            epochs_completed: state.epoch,
            steps: state.step,
            batch_size: config.train.batch_size,
            train_images: self.data.train.len(),
            test_images: self.data.test.source.len(),
            params: self.params,
            train_gflop_per_image: Some(crate::info::forward_macs(config).train_flops() / 1e9),
            final_eval_epoch: last.map(|l| l.epoch),
            final_test_error_pct: last.map(|l| 100.0 - l.test.accuracy),
            final_test_accuracy: last.map(|l| l.test.accuracy),
            final_test_loss: last.map(|l| l.test.loss),
            final_extra_accuracy: last.map(|l| l.extra.clone()).unwrap_or_default(),
            train_secs: state.train_secs,
            eval_secs: state.eval_secs,
            wall_time_secs: state.train_secs + state.eval_secs,
            train_images_per_sec: state.images_seen as f64 / state.train_secs.max(1e-9),
            backend: config.runtime.backend.name().into(),
            device: config.runtime.device,
            machine: crate::machine::current(),
            accelerator: crate::machine::accelerator(config.runtime.backend, config.runtime.device),
            git_revision: crate::machine::build_revision().to_string(),
            binary_sha256: crate::machine::binary_sha256(),
            capsnet_version: env!("CARGO_PKG_VERSION").into(),
            burn_version: crate::machine::BURN_VERSION.into(),
        }
    }
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
        margin_loss: e.margin,
        recon_loss: e.reconstruction,
        test_images: e.images,
        images_per_sec: e.images as f64 / e.secs.max(1e-9),
    }
}

fn write_summary(run_dir: &Path, summary: &Summary) -> Result<(), TrainError> {
    let json = serde_json::to_string_pretty(summary).expect("summary serialises");
    run_dir::write_atomic(&run_dir.join("summary.json"), json.as_bytes())
}
