//! Experiments, training loop, checkpoints and metrics for capsnet; the `capsnet` binary.
//!
//! - [`config`]: the experiment schema ([`ExperimentConfig`]) and its validation.
//! - [`load`]: figment layers (defaults, `extends` files, `CAPSNET_` environment, `key=value`
//!   overrides), strict key checking.
//! - [`backend`]: backend names → burn devices (cargo features of the binary).
//! - [`train_loop`]: Adam, LR schedule, evaluation, checkpoints, exact resume, `summary.json`.
//! - [`sweep`]: `[sweep]` grids and zips expanded into validated jobs.
//! - [`export`]: weights as safetensors with the PyTorch reference's names, and back.
//! - [`launch`]: a sweep plan run several processes at once within a time budget, packed.
//! - [`predict`]: a trained network on the user's image files.
//! - [`info`] and [`bench`]: layer shapes, parameter counts and throughput.
#![warn(missing_docs)]

pub mod allocator;
pub mod backend;
pub mod bench;
pub mod board;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod device;
pub mod error;
pub mod eval;
pub mod export;
pub mod figures;
pub mod info;
pub mod launch;
pub mod load;
pub mod machine;
pub mod net;
pub mod optim;
pub mod parity;
pub mod predict;
pub mod recorder;
pub mod report;
pub mod run_dir;
pub mod sweep;
pub mod sweep_spec;
pub mod train_loop;

pub use config::{Arch, ExperimentConfig};
pub use error::{BackendError, ConfigError, TrainError};
pub use load::{Resolved, load_experiment};
pub use train_loop::{Summary, TrainOptions, train};
