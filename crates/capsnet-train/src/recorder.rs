//! Where a run's measurements go: every record is appended to `metrics.jsonl` and, when
//! `train.tensorboard` is on, written to the run's TensorBoard event file, in one call.

use std::path::Path;
use std::sync::Arc;

use burn::tensor::Device;
use capsnet_data::BatchSource;

use crate::board::RunBoard;
use crate::error::TrainError;
use crate::load::Resolved;
use crate::net::Net;
use crate::report::{EvalRecord, MetricsFile, TrainRecord};

/// `metrics.jsonl` and the optional TensorBoard writer of one run.
pub struct Recorder {
    metrics: MetricsFile,
    board: Option<RunBoard>,
}

impl Recorder {
    /// Opens the run's records. `resumed_at`: the step of the checkpoint a resumed run starts
    /// from (later records, written by the interrupted session, are dropped and written again).
    pub fn open(
        run_dir: &Path,
        resolved: &Resolved,
        resumed_at: Option<u64>,
    ) -> Result<Self, TrainError> {
        let metrics = MetricsFile::open(run_dir, Some(resumed_at.unwrap_or(0)))?;
        let board = match resolved.config.train.tensorboard {
            true => Some(RunBoard::open(run_dir, resolved, resumed_at.is_none())?),
            false => None,
        };
        Ok(Self { metrics, board })
    }

    /// One training log window.
    pub fn train(&mut self, record: &TrainRecord) -> Result<(), TrainError> {
        self.metrics.write(record)?;
        match &mut self.board {
            Some(board) => board.train(record),
            None => Ok(()),
        }
    }

    /// An evaluation on the main test set; TensorBoard also gets images and histograms of
    /// `net` on the first examples of `test`.
    pub fn eval(
        &mut self,
        record: &EvalRecord,
        net: &Net,
        test: &Arc<dyn BatchSource>,
        device: &Device,
    ) -> Result<(), TrainError> {
        self.metrics.write(record)?;
        match &mut self.board {
            Some(board) => board.eval(record, net, test, device),
            None => Ok(()),
        }
    }

    /// An evaluation on the extra set `name`.
    pub fn eval_extra(&mut self, name: &str, record: &EvalRecord) -> Result<(), TrainError> {
        self.metrics.write(record)?;
        match &mut self.board {
            Some(board) => board.eval_extra(name, record),
            None => Ok(()),
        }
    }

    /// Closes the TensorBoard session as finished (`success`) or failed.
    pub fn finish(&mut self, success: bool) -> Result<(), TrainError> {
        match &mut self.board {
            Some(board) => board.finish(success),
            None => Ok(()),
        }
    }
}
