//! What `capsnet bench` prints: one type for the binary and `cargo xtask bench-compare`.

use serde::{Deserialize, Serialize};

use crate::machine::MachineInfo;

/// Measured throughput.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// Experiment name.
    pub name: String,
    /// Network.
    pub arch: String,
    /// Backend.
    pub backend: String,
    /// Batch size.
    pub batch_size: usize,
    /// Timed steps.
    pub steps: usize,
    /// Training images per second (forward, backward, Adam step, loss read back).
    pub train_images_per_sec: f64,
    /// Median milliseconds per training step.
    pub train_ms_per_step_median: f64,
    /// Inference images per second (forward without autodiff, scores read back).
    pub inference_images_per_sec: f64,
    /// FLOP model: GFLOP per trained image (3 × forward, element-wise work not counted).
    pub train_gflop_per_image: f64,
    /// Achieved training GFLOP/s under the FLOP model.
    pub train_gflops: f64,
    /// Achieved inference GFLOP/s under the FLOP model.
    pub inference_gflops: f64,
    /// Fraction of `peak_gflops` reached in training, when a peak was given.
    pub train_peak_fraction: Option<f64>,
    /// The machine's peak GFLOP/s as given by the user (`--peak-gflops`).
    pub peak_gflops: Option<f64>,
    /// Peak resident memory of the process (MiB; CPU backends hold tensors there).
    pub peak_rss_mib: Option<f64>,
    /// Machine.
    pub machine: MachineInfo,
    /// Code revision.
    pub git_revision: String,
    /// The allocator settings the process ran with (absent in records older than this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocator: Option<AllocatorSettings>,
}

/// The allocator settings a process runs with: set in-process at start by
/// `capsnet_train::allocator::apply` (the binary, `capsnet bench`, the criterion benches and
/// the profiling examples alike), or left to the user's own environment variables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocatorSettings {
    /// The global allocator (`mimalloc`).
    pub global: String,
    /// mimalloc's purge delay in effect (ms): how long freed pages stay mapped for reuse.
    pub mimalloc_purge_delay_ms: i64,
    /// glibc malloc (libtorch's tensors): the settings applied with `mallopt`, or what the
    /// user's `GLIBC_TUNABLES` says when it is set (then nothing is applied).
    pub glibc: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The capsnet side of every committed bench-compare record parses as `BenchResult` and
    /// survives a round trip.
    #[test]
    fn committed_bench_records_round_trip() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results/bench");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let record: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let Some(ours) = record.get("capsnet") else {
                continue;
            };
            let result: BenchResult = serde_json::from_value(ours.clone())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let again: BenchResult =
                serde_json::from_str(&serde_json::to_string(&result).unwrap()).unwrap();
            assert_eq!(result, again, "{}", path.display());
            seen += 1;
        }
        assert!(seen > 3, "expected the committed bench records");
    }
}
