//! Facts about the machine and the code a run used, for summaries and benchmarks.

use serde::{Deserialize, Serialize};

/// The burn version this binary was built against (pinned in the workspace).
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
    pub vector_isa: capsnet_common::cpu::VectorIsa,
    /// The GEMM kernels flex runs on this CPU (absent in older records).
    #[serde(default)]
    pub flex_gemm: String,
}

/// Which of the `gemm` crate's kernels flex dispatches to here: burn-flex is built without its
/// `x86-v4` feature (AVX-512 kernels), so the widest is x86-v3 (AVX2 + FMA).
pub fn flex_gemm(isa: &capsnet_common::cpu::VectorIsa) -> String {
    let has = |f: &str| isa.features.iter().any(|x| x == f);
    let kernels = if has("avx2") && has("fma") {
        "x86-v3 kernels (AVX2 + FMA)"
    } else if has("asimd") {
        "NEON kernels"
    } else {
        "scalar/SSE kernels"
    };
    format!("gemm 0.19, {kernels}; AVX-512 kernels not compiled in (burn-flex `x86-v4` off)")
}

impl MachineInfo {
    /// Reads the current machine.
    pub fn current() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let isa = capsnet_common::cpu::vector_isa();
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

/// The git revision this binary was built from (`<sha>`, `<sha>-dirty` when the tree had
/// uncommitted changes to tracked files at build time, or `unknown` outside a checkout),
/// embedded by `build.rs`: what a record says ran, wherever the binary runs.
pub fn build_revision() -> &'static str {
    env!("CAPSNET_BUILD_REVISION")
}

/// Lowercase hex SHA-256 of the running executable (`None` if it cannot be read): which
/// build made a record, when revisions are dirty or binaries are copied between machines.
pub fn binary_sha256() -> Option<String> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(std::env::current_exe().ok()?).ok()?;
    Some(
        Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}
