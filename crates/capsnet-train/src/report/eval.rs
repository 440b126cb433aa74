//! What `capsnet eval --json` prints.

use std::path::PathBuf;

use serde::Serialize;

/// What `capsnet eval --json` prints: the first checkpoint's result on the first evaluation set
/// at the top (the keys a run's `summary.json` uses), then every set with every member and the
/// ensemble.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// The first checkpoint given.
    pub checkpoint: PathBuf,
    /// Examples in the first evaluation set.
    pub test_images: usize,
    /// The first checkpoint's accuracy (%) on the first set.
    pub test_accuracy: f64,
    /// `100 − test_accuracy`.
    pub test_error_pct: f64,
    /// The first checkpoint's mean loss on the first set.
    pub test_loss: f64,
    /// The backend it ran on.
    pub backend: String,
    /// Every evaluation set (test, then extra sets such as affNIST).
    pub sets: Vec<EvalSetReport>,
}

/// One evaluation set of an [`EvalReport`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalSetReport {
    /// The set's name.
    pub set: String,
    /// Examples in it.
    pub images: usize,
    /// Each checkpoint alone, in the order given.
    pub members: Vec<EvalMemberReport>,
    /// Accuracy (%) of the ensemble (summed class scores); `None` for one checkpoint.
    pub ensemble_accuracy: Option<f64>,
    /// `100 − ensemble_accuracy`.
    pub ensemble_error_pct: Option<f64>,
    /// Images per second over all members.
    pub images_per_sec: f64,
}

/// One checkpoint's result on one set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalMemberReport {
    /// The checkpoint.
    pub checkpoint: PathBuf,
    /// Accuracy (%).
    pub accuracy: f64,
    /// `100 − accuracy`.
    pub error_pct: f64,
    /// Mean loss.
    pub loss: f64,
}

impl EvalSetReport {
    /// The report of `result`, the evaluation of `checkpoints` (in that order) on set `set`.
    pub fn new(
        set: &str,
        checkpoints: &[PathBuf],
        result: &crate::eval::EnsembleEvaluation,
    ) -> Self {
        let ensemble = checkpoints.len() > 1;
        Self {
            set: set.to_string(),
            images: result.images,
            members: checkpoints
                .iter()
                .zip(&result.members)
                .map(|(checkpoint, e)| EvalMemberReport {
                    checkpoint: checkpoint.clone(),
                    accuracy: e.accuracy,
                    error_pct: 100.0 - e.accuracy,
                    loss: e.loss,
                })
                .collect(),
            ensemble_accuracy: ensemble.then_some(result.accuracy),
            ensemble_error_pct: ensemble.then_some(100.0 - result.accuracy),
            images_per_sec: (result.images * checkpoints.len()) as f64 / result.secs.max(1e-9),
        }
    }
}

impl EvalReport {
    /// The report of `sets` (at least one, each with at least one member) on `backend`;
    /// `None` if there is no set or no member to put at the top.
    pub fn new(backend: &str, sets: Vec<EvalSetReport>) -> Option<Self> {
        let first = sets.first()?;
        let main = first.members.first()?;
        Some(Self {
            checkpoint: main.checkpoint.clone(),
            test_images: first.images,
            test_accuracy: main.accuracy,
            test_error_pct: main.error_pct,
            test_loss: main.loss,
            backend: backend.to_string(),
            sets,
        })
    }
}
