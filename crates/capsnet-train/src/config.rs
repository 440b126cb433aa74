//! The experiment schema: one fully resolved experiment, strict about keys and values.
//!
//! Every field has a code default (the paper's MNIST setup), experiment files override them
//! (see [`crate::load`]), and [`ExperimentConfig::validate`] rejects impossible values before
//! any data is read or any training starts.

use std::path::PathBuf;

use capsnet_model::{BaselineCnnConfig, CapsNetConfig, LossConfig};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Which network an experiment trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// CapsNet, configured by `[model]`.
    Capsnet,
    /// The paper's baseline CNN, configured by `[baseline]`.
    BaselineCnn,
}

impl Arch {
    /// The name used in experiment files (`capsnet`, `baseline-cnn`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::Capsnet => "capsnet",
            Arch::BaselineCnn => "baseline-cnn",
        }
    }
}

/// One experiment, fully resolved. Written to `<run dir>/config.resolved.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExperimentConfig {
    /// Experiment name; the default run directory is `runs/<name>`.
    pub name: String,
    /// Seed for initialisation, shuffling, augmentation and dropout.
    pub seed: u64,
    /// Network to train.
    pub arch: Arch,
    /// Dataset and input pipeline.
    pub data: DataConfig,
    /// CapsNet architecture (used when `arch = "capsnet"`).
    pub model: CapsNetConfig,
    /// Baseline CNN architecture (used when `arch = "baseline-cnn"`).
    pub baseline: BaselineCnnConfig,
    /// CapsNet loss.
    pub loss: LossConfig,
    /// Optimisation and schedule.
    pub train: TrainConfig,
    /// Backend and device.
    pub runtime: RuntimeConfig,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        Self {
            name: "experiment".into(),
            seed: 0,
            arch: Arch::Capsnet,
            data: DataConfig::default(),
            model: CapsNetConfig::paper_mnist(),
            baseline: BaselineCnnConfig::default(),
            loss: LossConfig::default(),
            train: TrainConfig::default(),
            runtime: RuntimeConfig::default(),
        }
    }
}

/// Dataset and input pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// `mnist` or `fashion-mnist`.
    pub dataset: String,
    /// Directory holding the dataset (checked first; then `CAPSNET_DATA`, the cache, download).
    pub root: Option<PathBuf>,
    /// Download into the cache when the files are found nowhere.
    pub download: bool,
    /// Verify the SHA-256 of the decompressed files against the canonical values.
    pub verify_checksums: bool,
    /// Use only the first N training images (quick runs, tests).
    pub train_limit: Option<usize>,
    /// Use only the first N test images.
    pub test_limit: Option<usize>,
    /// Random shift augmentation of up to this many pixels, zero padded (paper: 2).
    pub shift_pixels: usize,
    /// Shuffle the training set every epoch.
    pub shuffle: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: "mnist".into(),
            root: None,
            download: true,
            verify_checksums: true,
            train_limit: None,
            test_limit: None,
            shift_pixels: 2,
            shuffle: true,
        }
    }
}

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
    /// Number of passes over the training set.
    pub epochs: usize,
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
    /// Write a TensorBoard event file into the run directory.
    pub tensorboard: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 50,
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
            tensorboard: true,
        }
    }
}

/// Backend and device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// `flex` (default CPU), `ndarray`, `tch` (libtorch CPU), `tch-cuda`, `wgpu`, `cuda`.
    pub backend: String,
    /// Device index for GPU backends.
    pub device: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            backend: "flex".into(),
            device: 0,
        }
    }
}

impl ExperimentConfig {
    /// Rejects impossible values, naming the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, value: String, reason: &str| {
            Err(ConfigError::Invalid {
                key: key.into(),
                value,
                reason: reason.into(),
            })
        };
        if self.name.trim().is_empty()
            || self.name.contains(['/', '\\'])
            || self.name.starts_with('.')
        {
            return invalid(
                "name",
                self.name.clone(),
                "must be a non-empty file-name-safe string",
            );
        }
        if self
            .data
            .dataset
            .parse::<capsnet_data::DatasetKind>()
            .is_err()
        {
            return invalid(
                "data.dataset",
                self.data.dataset.clone(),
                "expected mnist or fashion-mnist",
            );
        }
        if self.data.train_limit == Some(0) {
            return invalid(
                "data.train_limit",
                "0".into(),
                "an empty training subset trains nothing",
            );
        }
        if self.data.test_limit == Some(0) {
            return invalid(
                "data.test_limit",
                "0".into(),
                "an empty test subset evaluates nothing",
            );
        }
        let t = &self.train;
        for (key, value) in [
            ("train.epochs", t.epochs),
            ("train.batch_size", t.batch_size),
            ("train.eval_batch_size", t.eval_batch_size),
            ("train.lr_decay_steps", t.lr_decay_steps),
            ("train.log_every_steps", t.log_every_steps),
            ("train.eval_every_epochs", t.eval_every_epochs),
            ("train.keep_checkpoints", t.keep_checkpoints),
        ] {
            if value == 0 {
                return invalid(key, "0".into(), "must be positive");
            }
        }
        if !(t.lr > 0.0 && t.lr.is_finite()) {
            return invalid("train.lr", t.lr.to_string(), "must be a finite number > 0");
        }
        if !(t.lr_decay > 0.0 && t.lr_decay <= 1.0) {
            return invalid(
                "train.lr_decay",
                t.lr_decay.to_string(),
                "must be in (0, 1]",
            );
        }
        if !(t.lr_min >= 0.0 && t.lr_min <= t.lr) {
            return invalid(
                "train.lr_min",
                t.lr_min.to_string(),
                "must be in [0, train.lr]",
            );
        }
        for (key, value) in [
            ("train.adam_beta1", t.adam_beta1),
            ("train.adam_beta2", t.adam_beta2),
        ] {
            if !(0.0..1.0).contains(&value) {
                return invalid(key, value.to_string(), "must be in [0, 1)");
            }
        }
        if t.adam_epsilon.is_nan() || t.adam_epsilon <= 0.0 {
            return invalid(
                "train.adam_epsilon",
                t.adam_epsilon.to_string(),
                "must be > 0",
            );
        }
        let l = &self.loss;
        for (key, value) in [
            ("loss.m_plus", l.m_plus),
            ("loss.m_minus", l.m_minus),
            ("loss.lambda", l.lambda),
            ("loss.recon_weight", l.recon_weight),
        ] {
            if !(value >= 0.0 && value.is_finite()) {
                return invalid(key, value.to_string(), "must be a finite number ≥ 0");
            }
        }
        if l.m_minus >= l.m_plus {
            return invalid(
                "loss.m_minus",
                l.m_minus.to_string(),
                "must be below loss.m_plus",
            );
        }
        let input = match self.arch {
            Arch::Capsnet => {
                self.model.validate().map_err(ConfigError::Model)?;
                (
                    self.model.input_channels,
                    self.model.input_height,
                    self.model.input_width,
                )
            }
            Arch::BaselineCnn => {
                self.baseline.validate().map_err(ConfigError::Model)?;
                (
                    self.baseline.input_channels,
                    self.baseline.input_height,
                    self.baseline.input_width,
                )
            }
        };
        if input != (1, 28, 28) {
            return invalid(
                if self.arch == Arch::Capsnet {
                    "model.input_height"
                } else {
                    "baseline.input_height"
                },
                format!("{}x{}x{}", input.0, input.1, input.2),
                "MNIST-family data is 1x28x28",
            );
        }
        crate::backend::BackendKind::parse(&self.runtime.backend)?.ensure_compiled()?;
        Ok(())
    }
}
