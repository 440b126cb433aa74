//! The machine a run or benchmark ran on, and the burn version the binaries are built against:
//! one type for `summary.json`, `capsnet bench` and xtask's reports.

use serde::{Deserialize, Serialize};

use crate::cpu::VectorIsa;

/// The burn version the burn crates are built against (pinned in the workspace).
pub const BURN_VERSION: &str = "0.22.1";

/// The machine a run or benchmark ran on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineInfo {
    /// Host name.
    pub hostname: String,
    /// CPU model (from /proc/cpuinfo where available).
    pub cpu: String,
    /// Hardware threads available to this process.
    pub threads: usize,
    /// Operating system and architecture.
    pub os: String,
    /// The CPU's vector instruction sets (absent in records older than this field).
    #[serde(default)]
    pub vector_isa: VectorIsa,
    /// The GEMM kernels flex runs on this CPU (absent in older records).
    #[serde(default)]
    pub flex_gemm: String,
}

impl MachineInfo {
    /// Reads the current machine; `flex_gemm` is the backend's own description of its GEMM
    /// kernels (the burn crates know which were compiled in).
    pub fn current(flex_gemm: impl FnOnce(&VectorIsa) -> String) -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let isa = crate::cpu::vector_isa();
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        Self {
            hostname,
            cpu,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            flex_gemm: flex_gemm(&isa),
            vector_isa: isa,
        }
    }
}
