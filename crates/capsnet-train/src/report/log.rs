//! The run log (`train.log`) and progress on stderr (bars on a terminal, plain lines
//! otherwise).

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};

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
