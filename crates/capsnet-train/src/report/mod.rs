//! What a run reports while it runs and after, one file per concept:
//!
//! - [`log`]: the run log (`train.log`) and progress on stderr: on a terminal, an indicatif bar
//!   per epoch shows loss, accuracy and img/s; otherwise (CI, pipes, Slurm) plain lines are
//!   printed every `log_every_steps` steps. Everything printed is also appended to
//!   `<run>/train.log`.
//! - [`metrics`]: `metrics.jsonl`, its records and the training window they summarise.
//! - [`eval`]: what `capsnet eval --json` prints.
//! - [`download`]: download progress bars.

pub mod download;
pub mod eval;
pub mod log;
pub mod metrics;

pub use download::DownloadBars;
pub use eval::{EvalMemberReport, EvalReport, EvalSetReport};
pub use log::{ProgressMode, RunLog, format_utc, utc_now};
pub use metrics::{EvalRecord, MetricsFile, StepValues, TrainRecord, TrainWindow};
