//! `metrics.jsonl`, the source of truth for results tables: its records and the training
//! window they summarise.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// Appends JSON lines to `<run>/metrics.jsonl`, the source of truth for results tables.
pub struct MetricsFile {
    path: PathBuf,
    file: File,
}

impl MetricsFile {
    /// Opens `<run_dir>/metrics.jsonl`, dropping records after `keep_until_step` (the lines a
    /// killed run wrote after its last checkpoint, which the resumed run writes again).
    pub fn open(run_dir: &Path, keep_until_step: Option<u64>) -> Result<Self, TrainError> {
        let path = run_dir.join("metrics.jsonl");
        if let Some(limit) = keep_until_step
            && path.exists()
        {
            let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
            let kept: String = text
                .lines()
                .filter(|line| {
                    serde_json::from_str::<serde_json::Value>(line)
                        .ok()
                        .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                        .is_some_and(|step| step <= limit)
                })
                .map(|line| format!("{line}\n"))
                .collect();
            crate::run_dir::write_atomic(&path, kept.as_bytes())?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        Ok(Self { path, file })
    }

    /// Appends one record.
    pub fn write(&mut self, record: &impl Serialize) -> Result<(), TrainError> {
        let line = serde_json::to_string(record).expect("metrics serialise");
        writeln!(self.file, "{line}").map_err(|e| TrainError::io(&self.path, e))?;
        self.file.flush().map_err(|e| TrainError::io(&self.path, e))
    }
}

/// A window of training metrics, logged every `log_every_steps`.
#[derive(Debug, Clone, Serialize)]
pub struct TrainRecord {
    /// Always `"train"`.
    pub kind: &'static str,
    /// Epoch (1-based).
    pub epoch: usize,
    /// Global step at the end of the window.
    pub step: u64,
    /// Mean total loss over the window.
    pub loss: f64,
    /// Mean margin loss (CapsNet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub margin_loss: Option<f64>,
    /// Mean unweighted reconstruction SSE (CapsNet with decoder).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recon_loss: Option<f64>,
    /// Training accuracy over the window (%).
    pub accuracy: f64,
    /// Learning rate at the last step.
    pub lr: f64,
    /// Training images per second over the window.
    pub images_per_sec: f64,
}

/// One evaluation on the test set.
#[derive(Debug, Clone, Serialize)]
pub struct EvalRecord {
    /// Always `"eval"`.
    pub kind: &'static str,
    /// Which evaluation set, for the extra ones (`affine`, `affnist`); absent for the main
    /// test set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set: Option<String>,
    /// Epoch (1-based) just finished.
    pub epoch: usize,
    /// Global step.
    pub step: u64,
    /// Mean test loss.
    pub test_loss: f64,
    /// Test accuracy (%).
    pub test_accuracy: f64,
    /// Test error (%).
    pub test_error_pct: f64,
    /// Mean margin loss (CapsNet, Efficient-CapsNet): the classifying part of `test_loss`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub margin_loss: Option<f64>,
    /// Mean unweighted reconstruction SSE per image (networks with a decoder, masked by the
    /// predicted class).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recon_loss: Option<f64>,
    /// Number of test images.
    pub test_images: usize,
    /// Test images per second.
    pub images_per_sec: f64,
}

/// What one training step measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepValues {
    /// The loss minimised.
    pub loss: f64,
    /// Correctly classified examples of the batch.
    pub correct: f64,
    /// Margin loss (CapsNet).
    pub margin: Option<f64>,
    /// Mean unweighted reconstruction SSE (CapsNet with decoder).
    pub reconstruction: Option<f64>,
}

/// Running sums over the steps since the last log line (saved in checkpoints, so that a
/// resumed run logs exactly what an uninterrupted one would).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainWindow {
    steps: usize,
    images: usize,
    loss: f64,
    correct: f64,
    margin: f64,
    recon: f64,
    has_margin: bool,
    has_recon: bool,
    secs: f64,
}

impl TrainWindow {
    /// Adds one step that trained on `images` examples in `secs` seconds.
    pub fn add(&mut self, values: &StepValues, images: usize, secs: f64) {
        self.steps += 1;
        self.images += images;
        self.loss += values.loss;
        self.correct += values.correct;
        if let Some(margin) = values.margin {
            self.has_margin = true;
            self.margin += margin;
        }
        if let Some(recon) = values.reconstruction {
            self.has_recon = true;
            self.recon += recon;
        }
        self.secs += secs;
    }

    fn mean(&self, sum: f64) -> f64 {
        sum / self.steps.max(1) as f64
    }

    fn accuracy(&self) -> f64 {
        100.0 * self.correct / self.images.max(1) as f64
    }

    fn images_per_sec(&self) -> f64 {
        self.images as f64 / self.secs.max(1e-9)
    }

    /// One-line summary for progress output.
    pub fn message(&self) -> String {
        format!(
            "loss {:.4} acc {:.2}% {:.0} img/s",
            self.mean(self.loss),
            self.accuracy(),
            self.images_per_sec()
        )
    }

    /// The `metrics.jsonl` record of this window.
    pub fn record(&self, epoch: usize, step: u64, lr: f64) -> TrainRecord {
        TrainRecord {
            kind: "train",
            epoch,
            step,
            loss: self.mean(self.loss),
            margin_loss: self.has_margin.then(|| self.mean(self.margin)),
            recon_loss: self.has_recon.then(|| self.mean(self.recon)),
            accuracy: self.accuracy(),
            lr,
            images_per_sec: self.images_per_sec(),
        }
    }
}
