//! Facts about the machine and the code a run used, for summaries and benchmarks.

pub use capsnet_common::machine::{BURN_VERSION, MachineInfo};

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

/// The current machine, with flex's GEMM kernels.
pub fn current() -> MachineInfo {
    MachineInfo::current(flex_gemm)
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
