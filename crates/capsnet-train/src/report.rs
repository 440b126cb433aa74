//! Progress output, the run log and `metrics.jsonl`.
//!
//! On a terminal, an indicatif bar per epoch shows loss, accuracy and img/s; otherwise (CI,
//! pipes, Slurm) plain lines are printed every `log_every_steps` steps. Everything printed is
//! also appended to `<run>/train.log`.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use capsnet_data::DownloadProgress;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Bars when stderr is a terminal, plain lines otherwise.
    Auto,
    /// Plain periodic lines.
    Plain,
    /// Nothing on stderr (the log file still gets everything).
    Quiet,
}

/// The run's log: `train.log`, stderr lines or a progress bar.
pub struct RunLog {
    file: Option<File>,
    /// Lines logged before the run directory was prepared ([`RunLog::attach`] writes them).
    pending: Vec<String>,
    bar: Option<ProgressBar>,
    bars: bool,
    quiet: bool,
}

impl RunLog {
    /// Opens (appends to) `<run_dir>/train.log`.
    pub fn open(run_dir: &Path, mode: ProgressMode) -> Result<Self, TrainError> {
        let path = run_dir.join("train.log");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        Ok(Self {
            file: Some(file),
            pending: Vec::new(),
            bar: None,
            bars: mode == ProgressMode::Auto && std::io::stderr().is_terminal(),
            quiet: mode == ProgressMode::Quiet,
        })
    }

    /// A log that only prints (for commands without a run directory).
    pub fn stderr_only(mode: ProgressMode) -> Self {
        Self {
            file: None,
            pending: Vec::new(),
            bar: None,
            bars: mode == ProgressMode::Auto && std::io::stderr().is_terminal(),
            quiet: mode == ProgressMode::Quiet,
        }
    }

    /// Whether progress bars are shown (else plain periodic lines).
    pub fn has_bars(&self) -> bool {
        self.bars
    }

    /// Opens `<run_dir>/train.log` for a log made with [`RunLog::stderr_only`], writing the
    /// lines logged so far into it first.
    pub fn attach(&mut self, run_dir: &Path) -> Result<(), TrainError> {
        let mut opened = Self::open(run_dir, ProgressMode::Quiet)?;
        if let Some(file) = &mut opened.file {
            for line in self.pending.drain(..) {
                let _ = writeln!(file, "{line}");
            }
        }
        self.file = opened.file;
        Ok(())
    }

    /// Logs one line.
    pub fn info(&mut self, line: &str) {
        match &mut self.file {
            Some(file) => {
                let _ = writeln!(file, "[{}] {line}", utc_now());
            }
            None => self.pending.push(format!("[{}] {line}", utc_now())),
        }
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Starts a bar over `len` steps (no-op without bars).
    pub fn start_bar(&mut self, len: u64, position: u64, prefix: String) {
        if !self.bars {
            return;
        }
        let bar = ProgressBar::new(len)
            .with_position(position)
            .with_prefix(prefix);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} {elapsed_precise}<{eta_precise} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        self.bar = Some(bar);
    }

    /// Updates the bar's position and message.
    pub fn update_bar(&self, position: u64, message: String) {
        if let Some(bar) = &self.bar {
            bar.set_position(position);
            bar.set_message(message);
        }
    }

    /// Removes the bar.
    pub fn finish_bar(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// The current UTC time as `YYYY-MM-DD HH:MM:SS`.
pub fn utc_now() -> String {
    format_utc(capsnet_common::unix_now())
}

pub use capsnet_common::format_utc;

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

/// Download progress on an indicatif bar (terminal) or as start/finish lines.
pub struct DownloadBars {
    bars: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl DownloadBars {
    /// Bars when `bars` (a terminal), else start/finish lines.
    pub fn new(bars: bool) -> Self {
        Self {
            bars,
            bar: Mutex::new(None),
        }
    }
}

impl DownloadProgress for DownloadBars {
    fn start(&self, url: &str, total: Option<u64>) {
        eprintln!("downloading {url}");
        if self.bars {
            let bar = ProgressBar::new(total.unwrap_or(0));
            bar.set_style(
                ProgressStyle::with_template("  [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            *self.bar.lock().expect("progress lock") = Some(bar);
        }
    }
    fn advance(&self, bytes: u64) {
        if let Some(bar) = self.bar.lock().expect("progress lock").as_ref() {
            bar.inc(bytes);
        }
    }
    fn finish(&self) {
        if let Some(bar) = self.bar.lock().expect("progress lock").take() {
            bar.finish_and_clear();
        }
    }
}
