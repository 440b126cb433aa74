//! `[train]`: optimisation (Adam, as the paper), schedule, evaluation and checkpoints.

use serde::{Deserialize, Serialize};

use super::{invalid, positive};
use crate::error::ConfigError;

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrSchedule {
    /// `lr · decay^(step / decay_steps)`, continuous (official code: 0.96 per 2,000 steps).
    ExponentialSteps,
    /// `lr · decay^epoch` (what several ports use).
    PerEpoch,
    /// No decay.
    Constant,
}

/// Optimisation settings (Adam, as the paper).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Number of passes over the training set (ignored when `steps` is set).
    pub epochs: usize,
    /// Train for exactly this many optimisation steps, passing over the training set as often
    /// as needed (the last pass is cut short): the same budget for every training-set size.
    /// Replaces `epochs`, which becomes ⌈steps / batches per pass⌉.
    pub steps: Option<usize>,
    /// Training batch size (official code: 128).
    pub batch_size: usize,
    /// Evaluation batch size (no effect on results).
    pub eval_batch_size: usize,
    /// Initial learning rate.
    pub lr: f64,
    /// Decay schedule.
    pub lr_schedule: LrSchedule,
    /// Decay factor per `lr_decay_steps` steps (or per epoch).
    pub lr_decay: f64,
    /// Steps per decay factor for `exponential-steps`.
    pub lr_decay_steps: usize,
    /// Floor of the learning rate.
    pub lr_min: f64,
    /// Adam β₁.
    pub adam_beta1: f64,
    /// Adam β₂.
    pub adam_beta2: f64,
    /// Adam ε (TensorFlow's default, as the official code).
    pub adam_epsilon: f64,
    /// Write a resumable checkpoint every N steps (0: only at the end of each epoch).
    pub checkpoint_every_steps: usize,
    /// Number of step checkpoints to keep (the last epoch checkpoint is always kept).
    pub keep_checkpoints: usize,
    /// Log a progress line every N steps when stderr is not a terminal.
    pub log_every_steps: usize,
    /// Evaluate on the test set every N epochs (the last epoch is always evaluated).
    pub eval_every_epochs: usize,
    /// Also evaluate every N steps, mid-epoch included (0: off), for learning curves of runs
    /// whose epochs are a few steps long (small `data.train_subset`) or very long.
    pub eval_every_steps: usize,
    /// Write a checkpoint at the end of every N-th epoch (the last epoch always gets one);
    /// raise it when epochs are a few steps long (small `data.train_subset` with `steps`).
    pub checkpoint_every_epochs: usize,
    /// Write a TensorBoard event file into the run directory.
    pub tensorboard: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 50,
            steps: None,
            batch_size: 128,
            eval_batch_size: 500,
            lr: 1e-3,
            lr_schedule: LrSchedule::ExponentialSteps,
            lr_decay: 0.96,
            lr_decay_steps: 2000,
            lr_min: 1e-6,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            checkpoint_every_steps: 500,
            keep_checkpoints: 2,
            log_every_steps: 50,
            eval_every_epochs: 1,
            eval_every_steps: 0,
            checkpoint_every_epochs: 1,
            tensorboard: true,
        }
    }
}

impl TrainConfig {
    /// Counts, the learning-rate schedule and Adam's hyper-parameters.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.steps == Some(0) {
            return invalid("train.steps", 0, "must be positive");
        }
        positive(&[
            ("train.epochs", self.epochs),
            ("train.batch_size", self.batch_size),
            ("train.eval_batch_size", self.eval_batch_size),
            ("train.lr_decay_steps", self.lr_decay_steps),
            ("train.log_every_steps", self.log_every_steps),
            ("train.eval_every_epochs", self.eval_every_epochs),
            (
                "train.checkpoint_every_epochs",
                self.checkpoint_every_epochs,
            ),
            ("train.keep_checkpoints", self.keep_checkpoints),
        ])?;
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return invalid("train.lr", self.lr, "must be a finite number > 0");
        }
        if !(self.lr_decay > 0.0 && self.lr_decay <= 1.0) {
            return invalid("train.lr_decay", self.lr_decay, "must be in (0, 1]");
        }
        if !(self.lr_min >= 0.0 && self.lr_min <= self.lr) {
            return invalid("train.lr_min", self.lr_min, "must be in [0, train.lr]");
        }
        for (key, value) in [
            ("train.adam_beta1", self.adam_beta1),
            ("train.adam_beta2", self.adam_beta2),
        ] {
            if !(0.0..1.0).contains(&value) {
                return invalid(key, value, "must be in [0, 1)");
            }
        }
        if self.adam_epsilon.is_nan() || self.adam_epsilon <= 0.0 {
            return invalid("train.adam_epsilon", self.adam_epsilon, "must be > 0");
        }
        Ok(())
    }
}
