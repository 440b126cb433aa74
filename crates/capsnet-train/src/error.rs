//! Errors of the training library. Each keeps the file, key or value at fault.

use std::path::PathBuf;

pub use crate::backend::BackendError;

/// An experiment that cannot be loaded or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An experiment file (or one it extends) could not be read.
    #[error("cannot read experiment file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not valid TOML.
    #[error("{path} is not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// `extends` is malformed or forms a cycle.
    #[error("{path}: bad `extends`: {reason}")]
    Extends {
        /// The file holding the `extends`.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A command-line override is not `dotted.key=value`.
    #[error("bad override `{text}`: {reason}")]
    Override {
        /// The override as given.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// A key the schema does not know.
    #[error("unknown key `{key}` (from {source_name}){}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownKey {
        /// Dotted key.
        key: String,
        /// File or override it came from.
        source_name: String,
        /// Closest valid key.
        suggestion: Option<String>,
    },
    /// A value of the wrong type.
    #[error("`{key}` (from {source_name}): {message}")]
    WrongType {
        /// Dotted key.
        key: String,
        /// File or override it came from.
        source_name: String,
        /// The deserializer's message, naming the expected type.
        message: String,
    },
    /// A value outside its allowed range.
    #[error("`{key}` = {value} is invalid: {reason}")]
    Invalid {
        /// Dotted key.
        key: String,
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
    /// A network section (`model`, `efficient`, `baseline`) is inconsistent.
    #[error("{section}.{error}")]
    Model {
        /// The section.
        section: &'static str,
        /// What is wrong in it (its message is this error's, so it is not also a source).
        error: capsnet_model::ModelConfigError,
    },
    /// A backend that is unknown or not compiled into this binary.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Errors of training, evaluation and checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Bad experiment.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Dataset problem.
    #[error(transparent)]
    Data(#[from] capsnet_data::DataError),
    /// File I/O on a run directory.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint that cannot be read or does not fit the model.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A run directory in a state that does not allow the requested action.
    #[error("run directory {path}: {reason}")]
    RunDir {
        /// The run directory.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// Writing the TensorBoard event file failed.
    #[error("TensorBoard output: {0}")]
    Tensorboard(String),
    /// A request this run cannot serve (e.g. reconstructions from a network without decoder).
    #[error("{0}")]
    Invalid(String),
    /// Training diverged.
    #[error("training diverged at step {step}: loss is {loss}")]
    Diverged {
        /// Global step.
        step: u64,
        /// The non-finite loss.
        loss: f64,
    },
}

impl TrainError {
    /// An I/O error at `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
