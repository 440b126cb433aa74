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

pub use capsnet_common::summary::Accelerator;

/// The GPU a run on `backend` uses (`None` for CPU backends, or when `nvidia-smi` cannot say):
/// name, driver, CUDA version and memory from `nvidia-smi`, the libtorch version the binary was
/// built against and cuDNN's (tch), and how TF32 is set ([`tf32_state`]).
pub fn accelerator(
    backend: crate::backend::BackendKind,
    device: crate::backend::DeviceSelector,
) -> Option<Accelerator> {
    use crate::backend::BackendKind;
    if !matches!(
        backend,
        BackendKind::TchCuda | BackendKind::Cuda | BackendKind::Wgpu
    ) {
        return None;
    }
    let run = |args: &[&str]| -> Option<String> {
        let out = std::process::Command::new("nvidia-smi")
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let index = physical_gpu(
        device.cuda_index().unwrap_or(0),
        std::env::var("CUDA_VISIBLE_DEVICES").ok().as_deref(),
    );
    let table = run(&[
        "--query-gpu=index,name,driver_version,memory.total",
        "--format=csv,noheader,nounits",
    ])?;
    let header = run(&[]).unwrap_or_default();
    let mut gpu = parse_nvidia_smi(&table, &index)?;
    gpu.cuda_driver_api = cuda_version(&header);
    gpu.libtorch = option_env!("CAPSNET_LIBTORCH_VERSION").map(str::to_string);
    gpu.cudnn = cudnn(backend);
    gpu.tf32 = tf32_state(
        backend,
        std::env::var("NVIDIA_TF32_OVERRIDE").ok().as_deref(),
    );
    Some(gpu)
}

/// cuDNN's version as libtorch reports it, for `tch-cuda` runs.
#[cfg(feature = "tch")]
fn cudnn(backend: crate::backend::BackendKind) -> Option<String> {
    (backend == crate::backend::BackendKind::TchCuda)
        .then(|| capsnet_ops::cudnn_version().to_string())
}

/// Without the `tch` backend there is no libtorch to ask.
#[cfg(not(feature = "tch"))]
fn cudnn(_backend: crate::backend::BackendKind) -> Option<String> {
    None
}

/// The `nvidia-smi` index of the process's CUDA device `index`: `CUDA_VISIBLE_DEVICES` renumbers
/// devices (`2,3` makes device 0 the machine's GPU 2; entries may also be UUIDs).
pub fn physical_gpu(index: usize, visible: Option<&str>) -> String {
    visible
        .and_then(|v| v.split(',').nth(index))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| index.to_string())
}

/// The row of `nvidia-smi --query-gpu=index,name,driver_version,memory.total
/// --format=csv,noheader,nounits` for GPU `index`.
pub fn parse_nvidia_smi(table: &str, index: &str) -> Option<Accelerator> {
    table.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        match fields.as_slice() {
            [i, name, driver, memory, ..] if *i == index => Some(Accelerator {
                name: name.to_string(),
                driver: driver.to_string(),
                cuda_driver_api: None,
                memory_mib: memory.parse().ok(),
                libtorch: None,
                cudnn: None,
                tf32: String::new(),
            }),
            _ => None,
        }
    })
}

/// `CUDA Version: 13.0` from `nvidia-smi`'s banner.
pub fn cuda_version(banner: &str) -> Option<String> {
    let rest = banner.split("CUDA Version:").nth(1)?;
    rest.split_whitespace()
        .next()
        .map(|v| v.trim_end_matches('|').to_string())
}

/// How TF32 is set for a run: `NVIDIA_TF32_OVERRIDE=0` turns it off in cuBLAS and cuDNN for the
/// whole process (what `scripts/gpu/run.sh` sets for capsnet and the PyTorch reference alike);
/// otherwise each library's defaults hold.
pub fn tf32_state(backend: crate::backend::BackendKind, override_var: Option<&str>) -> String {
    match override_var {
        Some("0") => "off (NVIDIA_TF32_OVERRIDE=0: cuBLAS and cuDNN)".into(),
        Some(other) => format!("NVIDIA_TF32_OVERRIDE={other}: the libraries' defaults"),
        None if backend == crate::backend::BackendKind::TchCuda => {
            "libtorch's defaults (off for matrix products, on for cuDNN convolutions)".into()
        }
        None => "the backend's defaults (not pinned)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendKind;

    #[test]
    fn reads_nvidia_smi() {
        let table = "0, NVIDIA H100 80GB HBM3, 580.65.06, 81559\n1, NVIDIA H100 80GB HBM3, 580.65.06, 81559\n";
        let gpu = parse_nvidia_smi(table, "1").unwrap();
        assert_eq!(gpu.name, "NVIDIA H100 80GB HBM3");
        assert_eq!(gpu.driver, "580.65.06");
        assert_eq!(gpu.memory_mib, Some(81559));
        assert!(parse_nvidia_smi(table, "2").is_none());
        let banner =
            "| NVIDIA-SMI 580.65.06   Driver Version: 580.65.06   CUDA Version: 13.0     |";
        assert_eq!(cuda_version(banner).as_deref(), Some("13.0"));
        assert_eq!(cuda_version("no banner"), None);
        assert_eq!(physical_gpu(0, Some("2,3")), "2");
        assert_eq!(physical_gpu(1, None), "1");
        assert_eq!(physical_gpu(0, Some("GPU-abc")), "GPU-abc");
    }

    #[test]
    fn tf32_is_stated() {
        assert!(tf32_state(BackendKind::TchCuda, Some("0")).starts_with("off"));
        assert!(tf32_state(BackendKind::TchCuda, None).contains("libtorch's defaults"));
        assert!(tf32_state(BackendKind::Wgpu, None).contains("not pinned"));
    }
}
