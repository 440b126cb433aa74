//! Download progress on an indicatif bar (terminal) or as start/finish lines.

use std::sync::Mutex;

use capsnet_data::DownloadProgress;
use indicatif::{ProgressBar, ProgressStyle};

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
