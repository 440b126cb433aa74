//! The device an experiment trains on: its backend's device (`runtime.backend`,
//! `runtime.device`) with its float precision (`runtime.precision`) set, under autodiff.

use burn::tensor::Device;

use crate::config::ExperimentConfig;
use crate::error::TrainError;

/// The autodiff training device of an experiment, with its float precision set.
///
/// A precision other than f32 must be set before the device creates any tensor: in a process
/// that has already used the device with another precision this is an error.
pub fn training_device(config: &ExperimentConfig) -> Result<Device, TrainError> {
    let mut device = config
        .runtime
        .backend
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
