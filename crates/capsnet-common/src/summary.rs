//! `summary.json`, what a training run reports when it ends: written by the `capsnet` binary,
//! read by `capsnet launch`, `cargo xtask sweep`, `collect` and `tables`. One type, so a renamed
//! field is a compile error in every reader.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::device::DeviceSelector;
use crate::machine::MachineInfo;

/// What a run reports when it ends (`summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Experiment name.
    pub name: String,
    /// `capsnet`, `efficient-capsnet` or `baseline-cnn`.
    pub arch: String,
    /// Dataset name.
    pub dataset: String,
    /// The capsule network's routing, as `capsnet_model::RoutingConfig::describe` writes it
    /// (`dynamic r=3`, `self-attention`); absent for the CNN and in older summaries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<String>,
    /// Whether all configured epochs ran.
    pub completed: bool,
    /// Why a run ended before its last epoch (`--stop-after-secs`, `--stop-after-steps`);
    /// absent for a completed run and in summaries older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Epochs configured.
    pub epochs: usize,
    /// Epochs finished.
    pub epochs_completed: usize,
    /// Optimizer steps.
    pub steps: u64,
    /// Batch size.
    pub batch_size: usize,
    /// Training images (after `train_limit`).
    pub train_images: usize,
    /// Test images (after `test_limit`).
    pub test_images: usize,
    /// Trainable parameters.
    pub params: usize,
    /// Training FLOPs per image of the network's FLOP model (`capsnet info`); absent in older
    /// summaries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_gflop_per_image: Option<f64>,
    /// Epoch of the last evaluation (the final epoch for a completed run; never the best one).
    pub final_eval_epoch: Option<usize>,
    /// Test error (%) at `final_eval_epoch`.
    pub final_test_error_pct: Option<f64>,
    /// Test accuracy (%) at `final_eval_epoch`.
    pub final_test_accuracy: Option<f64>,
    /// Test loss at `final_eval_epoch`.
    pub final_test_loss: Option<f64>,
    /// Accuracy (%) on each extra evaluation set (e.g. `affine`, `affnist`) at
    /// `final_eval_epoch`.
    #[serde(default)]
    pub final_extra_accuracy: BTreeMap<String, f64>,
    /// Seconds in training steps (all sessions of the run).
    pub train_secs: f64,
    /// Seconds in evaluation.
    pub eval_secs: f64,
    /// Training + evaluation seconds.
    pub wall_time_secs: f64,
    /// Training images per second.
    pub train_images_per_sec: f64,
    /// Backend name.
    pub backend: String,
    /// The `runtime.device` it ran with.
    pub device: DeviceSelector,
    /// Machine the run finished on.
    pub machine: MachineInfo,
    /// The GPU a GPU backend ran on (absent for CPU backends and in older summaries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<Accelerator>,
    /// The git revision the binary was built from (embedded at build time; `-dirty` when the
    /// tree had uncommitted changes then).
    pub git_revision: String,
    /// SHA-256 of the binary that wrote the summary (absent in older summaries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_sha256: Option<String>,
    /// capsnet version.
    pub capsnet_version: String,
    /// burn version.
    pub burn_version: String,
}

/// The GPU a run used, as the driver and the binary know it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accelerator {
    /// Device name (`NVIDIA H100 80GB HBM3`), from `nvidia-smi`.
    pub name: String,
    /// Driver version, from `nvidia-smi`.
    pub driver: String,
    /// The highest CUDA version the driver supports, from `nvidia-smi`.
    pub cuda_driver_api: Option<String>,
    /// Memory in MiB, from `nvidia-smi`.
    pub memory_mib: Option<u64>,
    /// The libtorch (PyTorch) version the binary was built against (tch backends).
    pub libtorch: Option<String>,
    /// cuDNN's version as libtorch reports it (`tch-cuda`; absent in older records).
    #[serde(default)]
    pub cudnn: Option<String>,
    /// TensorFloat-32 for float32 matrix products and convolutions: how it was set.
    pub tf32: String,
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn summaries(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                summaries(&path, out);
            } else if path.file_name().is_some_and(|n| n == "summary.json") {
                out.push(path);
            }
        }
    }

    /// Every committed run record parses as the one `Summary` type, and writing it back and
    /// reading it again gives the same value: the writer and every reader agree on the fields.
    #[test]
    fn committed_summaries_round_trip() {
        let raw = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results/raw");
        let mut files = Vec::new();
        summaries(&raw, &mut files);
        assert!(files.len() > 50, "expected the committed run records");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let summary: Summary =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let again: Summary =
                serde_json::from_str(&serde_json::to_string(&summary).unwrap()).unwrap();
            assert_eq!(summary, again, "{}", file.display());
        }
    }

    /// A field the binary renames or drops breaks this test, not a reader at run time.
    #[test]
    fn written_field_names_are_the_contract() {
        let summary = Summary {
            name: "x".into(),
            arch: "capsnet".into(),
            dataset: "mnist".into(),
            routing: Some("dynamic r=3".into()),
            completed: false,
            stopped: Some("time budget".into()),
            epochs: 2,
            epochs_completed: 1,
            steps: 10,
            batch_size: 8,
            train_images: 80,
            test_images: 20,
            params: 100,
            train_gflop_per_image: Some(0.5),
            final_eval_epoch: Some(1),
            final_test_error_pct: Some(1.5),
            final_test_accuracy: Some(98.5),
            final_test_loss: Some(0.1),
            final_extra_accuracy: BTreeMap::from([("affine".into(), 80.0)]),
            train_secs: 1.0,
            eval_secs: 0.5,
            wall_time_secs: 1.5,
            train_images_per_sec: 80.0,
            backend: "flex".into(),
            device: DeviceSelector::Index(1),
            machine: MachineInfo::current(|_| "gemm".into()),
            accelerator: Some(Accelerator {
                name: "GPU".into(),
                driver: "580".into(),
                cuda_driver_api: Some("13.0".into()),
                memory_mib: Some(81559),
                libtorch: Some("2.11.0".into()),
                cudnn: Some("91002".into()),
                tf32: "off".into(),
            }),
            git_revision: "abc".into(),
            binary_sha256: Some("00".into()),
            capsnet_version: "0.1.0".into(),
            burn_version: crate::machine::BURN_VERSION.into(),
        };
        let json: serde_json::Value = serde_json::to_value(&summary).unwrap();
        for key in [
            "completed",
            "stopped",
            "epochs_completed",
            "final_test_error_pct",
            "final_extra_accuracy",
            "train_images_per_sec",
            "wall_time_secs",
            "params",
            "train_gflop_per_image",
        ] {
            assert!(json.get(key).is_some(), "summary.json lost `{key}`");
        }
        assert_eq!(json["device"], 1);
        assert_eq!(json["machine"]["cpu"], summary.machine.cpu.as_str());
        assert_eq!(json["accelerator"]["tf32"], "off");
        assert_eq!(serde_json::from_value::<Summary>(json).unwrap(), summary);
    }
}
