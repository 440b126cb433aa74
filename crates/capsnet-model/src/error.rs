//! Errors of model configuration.

/// A model configuration that cannot be built. Keys are relative to the network's section
/// (`routing.iterations`); the experiment loader prefixes the section (`model.`, `efficient.`).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModelConfigError {
    /// A size that must be positive is zero.
    #[error("{key} must be positive")]
    NotPositive {
        /// The key at fault.
        key: &'static str,
    },
    /// A value outside its allowed range.
    #[error("{key} = {value} is invalid: {reason}")]
    Invalid {
        /// The key at fault.
        key: &'static str,
        /// The rejected value.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
    /// The input is smaller than the receptive field of the convolutions before the capsules.
    #[error(
        "input_height/input_width: {height}x{width} is too small for the network's convolutions: need at least {needed}x{needed}"
    )]
    InputTooSmall {
        /// Input height.
        height: usize,
        /// Input width.
        width: usize,
        /// Smallest side that yields a 1×1 primary capsule grid.
        needed: usize,
    },
}
