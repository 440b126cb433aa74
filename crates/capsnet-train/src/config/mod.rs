//! The experiment schema: one fully resolved experiment, strict about keys and values.
//!
//! Every field has a code default (the paper's MNIST setup); experiment files, `CAPSNET_…__…`
//! environment variables and `key=value` overrides are layered over them (see [`crate::load`]),
//! and [`ExperimentConfig::validate`] rejects impossible values before any data is read or any
//! training starts.
//!
//! One file per section: [`data`] (`[data]`, the datasets and a user's data), [`train`]
//! (`[train]`, the optimisation), [`runtime`] (`[runtime]`, backend, device, precision, kernels);
//! the network sections are the model crate's configs. This module holds the whole experiment,
//! its cross-section checks and the error helpers the sections share.

mod data;
mod runtime;
mod train;

pub use data::*;
pub use runtime::*;
pub use train::*;

use capsnet_model::{
    BaselineCnnConfig, CapsNetConfig, EfficientCapsNetConfig, LossConfig, ModelConfigError,
};
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
    /// Efficient-CapsNet (Mazzia et al. 2021), configured by `[efficient]`.
    EfficientCapsnet,
}

impl Arch {
    /// The name used in experiment files (`capsnet`, `baseline-cnn`, `efficient-capsnet`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::Capsnet => "capsnet",
            Arch::BaselineCnn => "baseline-cnn",
            Arch::EfficientCapsnet => "efficient-capsnet",
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
    /// Efficient-CapsNet architecture (used when `arch = "efficient-capsnet"`).
    pub efficient: EfficientCapsNetConfig,
    /// Capsule networks' loss (CapsNet and Efficient-CapsNet).
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
            efficient: EfficientCapsNetConfig::default(),
            loss: LossConfig::default(),
            train: TrainConfig::default(),
            runtime: RuntimeConfig::default(),
        }
    }
}

/// The error for `key = value`, with the reason.
pub(crate) fn invalid(
    key: &str,
    value: impl ToString,
    reason: impl Into<String>,
) -> Result<(), ConfigError> {
    Err(ConfigError::Invalid {
        key: key.into(),
        value: value.to_string(),
        reason: reason.into(),
    })
}

/// Fails on the first `(key, value)` that is zero.
pub(crate) fn positive(values: &[(&str, usize)]) -> Result<(), ConfigError> {
    match values.iter().find(|(_, v)| *v == 0) {
        Some((key, _)) => invalid(key, 0, "must be positive"),
        None => Ok(()),
    }
}

impl ExperimentConfig {
    /// Rejects impossible values, naming the key at fault: each section in turn, then whether
    /// the network's input fits the data and the backend is compiled in.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.trim().is_empty()
            || self.name.contains(['/', '\\'])
            || self.name.starts_with('.')
        {
            return invalid(
                "name",
                &self.name,
                "must be a non-empty file-name-safe string",
            );
        }
        let (c, h, w, _) = self.network_input();
        self.data.validate((c, h, w))?;
        self.train.validate()?;
        validate_loss(&self.loss)?;
        self.validate_network_input()?;
        self.runtime.backend.ensure_compiled()?;
        Ok(())
    }

    /// The section of the network `arch` selects: `model`, `baseline` or `efficient`.
    pub fn network_section(&self) -> &'static str {
        match self.arch {
            Arch::Capsnet => "model",
            Arch::BaselineCnn => "baseline",
            Arch::EfficientCapsnet => "efficient",
        }
    }

    /// A model error in the network's section, as a configuration error naming the section.
    pub fn model_error(&self, source: ModelConfigError) -> ConfigError {
        ConfigError::Model {
            section: self.network_section(),
            error: source,
        }
    }

    /// `(channels, height, width, classes)` of the network `arch` selects.
    pub fn network_input(&self) -> (usize, usize, usize, usize) {
        match self.arch {
            Arch::Capsnet => {
                let m = &self.model;
                (m.input_channels, m.input_height, m.input_width, m.classes)
            }
            Arch::BaselineCnn => {
                let b = &self.baseline;
                (b.input_channels, b.input_height, b.input_width, b.classes)
            }
            Arch::EfficientCapsnet => {
                let e = &self.efficient;
                (e.input_channels, e.input_height, e.input_width, e.classes)
            }
        }
    }

    /// The routing of the capsule network `arch` selects (`None` for the CNN).
    pub fn routing(&self) -> Option<&capsnet_model::RoutingConfig> {
        match self.arch {
            Arch::Capsnet => Some(&self.model.routing),
            Arch::BaselineCnn => None,
            Arch::EfficientCapsnet => Some(&self.efficient.routing),
        }
    }

    /// The network (`[model]`, `[baseline]` or `[efficient]`) is valid and takes the data's
    /// image shape.
    fn validate_network_input(&self) -> Result<(), ConfigError> {
        let section = self.network_section();
        match self.arch {
            Arch::Capsnet => self.model.validate(),
            Arch::BaselineCnn => self.baseline.validate(),
            Arch::EfficientCapsnet => self.efficient.validate(),
        }
        .map_err(|e| self.model_error(e))?;
        let (c, h, w, classes) = self.network_input();
        let input = (c, h, w);
        let dataset = self.data.dataset;
        if self.arch == Arch::EfficientCapsnet && dataset == Dataset::MultiMnist {
            return invalid(
                "arch",
                self.arch.name(),
                "two-target datasets (multimnist) are implemented for capsnet and baseline-cnn only",
            );
        }
        if self.arch == Arch::BaselineCnn
            && self.baseline.decoder.enabled
            && dataset == Dataset::MultiMnist
        {
            return invalid(
                "baseline.decoder.enabled",
                true,
                "the baseline's decoder reconstructs one digit; multimnist has two per image",
            );
        }
        if let Some(known) = dataset.classes()
            && classes != known
        {
            return invalid(
                &format!("{section}.classes"),
                classes,
                format!(
                    "data.dataset = {:?} has {known} classes; set {section}.classes = {known}",
                    dataset.name(),
                ),
            );
        }
        let names = &self.data.idx.class_names;
        if dataset == Dataset::Idx && !names.is_empty() && names.len() != classes {
            return invalid(
                "data.idx.class_names",
                format!("{names:?}"),
                format!(
                    "names {} classes but {section}.classes = {classes}",
                    names.len()
                ),
            );
        }
        // A user's IDX files say their shape when they are read (see `data::check_user_data`).
        let Some(expected) = self.data.input_dims(input) else {
            return Ok(());
        };
        if input == expected {
            return Ok(());
        }
        let key = if input.0 != expected.0 {
            "input_channels"
        } else if input.1 != expected.1 {
            "input_height"
        } else {
            "input_width"
        };
        invalid(
            &format!("{section}.{key}"),
            format!("{}x{}x{}", input.0, input.1, input.2),
            format!(
                "data.dataset = {:?} gives {}x{}x{} inputs (channels x height x width); set {section}.input_channels/input_height/input_width to match",
                self.data.dataset.name(),
                expected.0,
                expected.1,
                expected.2
            ),
        )
    }
}

/// The margin loss's margins and weights (`[loss]`).
fn validate_loss(l: &LossConfig) -> Result<(), ConfigError> {
    for (key, value) in [
        ("loss.m_plus", l.m_plus),
        ("loss.m_minus", l.m_minus),
        ("loss.lambda", l.lambda),
        ("loss.recon_weight", l.recon_weight),
    ] {
        if !(value >= 0.0 && value.is_finite()) {
            return invalid(key, value, "must be a finite number ≥ 0");
        }
    }
    if l.m_minus >= l.m_plus {
        return invalid("loss.m_minus", l.m_minus, "must be below loss.m_plus");
    }
    Ok(())
}
