//! Errors of model configuration.

/// A model configuration that cannot be built.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModelConfigError {
    /// A size that must be positive is zero.
    #[error("model.{key} must be positive")]
    NotPositive {
        /// The key at fault.
        key: &'static str,
    },
    /// A value outside its allowed range.
    #[error("model.{key} = {value} is invalid: {reason}")]
    Invalid {
        /// The key at fault.
        key: &'static str,
        /// The rejected value.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
    /// The input is smaller than the receptive field of conv1 + PrimaryCaps.
    #[error(
        "input {height}x{width} is too small for conv1 + PrimaryCaps: need at least {needed}x{needed}"
    )]
    InputTooSmall {
        /// Input height.
        height: usize,
        /// Input width.
        width: usize,
        /// Smallest side that yields a 1×1 PrimaryCaps grid.
        needed: usize,
    },
}
