//! The CPU's vector instruction sets, from `/proc/cpuinfo`'s flags: speed ratios between
//! capsnet and PyTorch depend on them (AVX2 vs AVX-512), so every bench record states them.

use serde::{Deserialize, Serialize};

/// What the CPU offers for vector arithmetic.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VectorIsa {
    /// The widest level, e.g. `AVX-512`, `AVX2`, `SSE4.2`, `SVE`, `NEON`, or `unknown`.
    pub widest: String,
    /// The flags behind it that matter to GEMM kernels (`avx2`, `fma`, `avx512f`,
    /// `avx512_vnni`, `avx512_bf16`, `amx_tile`, …), in /proc/cpuinfo's spelling.
    pub features: Vec<String>,
}

/// Flags reported, in order, when present.
const REPORTED: [&str; 15] = [
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "asimd",
    "sve",
    "sve2",
];

/// The [`VectorIsa`] described by the text of `/proc/cpuinfo` (x86 `flags`, Arm `Features`).
pub fn vector_isa_from_cpuinfo(cpuinfo: &str) -> VectorIsa {
    let flags: Vec<&str> = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags") || l.starts_with("Features"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.split_whitespace().collect())
        .unwrap_or_default();
    let has = |f: &str| flags.contains(&f);
    let widest = if has("amx_tile") {
        "AMX + AVX-512"
    } else if has("avx512f") {
        "AVX-512"
    } else if has("avx2") {
        "AVX2"
    } else if has("avx") {
        "AVX"
    } else if has("sse4_2") {
        "SSE4.2"
    } else if has("sve") {
        "SVE"
    } else if has("asimd") {
        "NEON"
    } else {
        "unknown"
    };
    VectorIsa {
        widest: widest.into(),
        features: REPORTED
            .iter()
            .filter(|f| has(f))
            .map(|f| (*f).to_string())
            .collect(),
    }
}

/// This machine's [`VectorIsa`] (`unknown` without `/proc/cpuinfo`).
pub fn vector_isa() -> VectorIsa {
    vector_isa_from_cpuinfo(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default())
}

impl std::fmt::Display for VectorIsa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.widest, self.features.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_x86_and_arm_flags() {
        let epyc = "processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma bmi2\n";
        let isa = vector_isa_from_cpuinfo(epyc);
        assert_eq!(isa.widest, "AVX2");
        assert_eq!(isa.features, ["sse4_2", "avx", "avx2", "fma"]);
        let server = "flags : avx2 fma avx512f avx512bw avx512vl avx512_vnni\n";
        assert_eq!(vector_isa_from_cpuinfo(server).widest, "AVX-512");
        let arm = "Features\t: fp asimd evtstrm sve\n";
        assert_eq!(vector_isa_from_cpuinfo(arm).widest, "SVE");
        assert_eq!(vector_isa_from_cpuinfo("").widest, "unknown");
        assert_eq!(
            vector_isa_from_cpuinfo(epyc).to_string(),
            "AVX2 (sse4_2, avx, avx2, fma)"
        );
    }
}
