//! `[runtime]`: backend, device, precision and kernels.

use capsnet_model::{ConvAlgorithm, Kernels};
use serde::{Deserialize, Serialize};

/// Backend and device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// `flex` (default CPU), `ndarray`, `tch` (libtorch CPU), `tch-cuda`, `wgpu`, `cuda`.
    pub backend: crate::backend::BackendKind,
    /// Which device (see [`crate::backend::DeviceSelector`]): `"default"` (the backend's best:
    /// wgpu's preferred adapter, CUDA device 0; the default), an index `N` (CUDA device `N`, the
    /// `N`-th discrete GPU for wgpu), or for wgpu `"discrete:N"`, `"integrated:N"`,
    /// `"virtual:N"`, `"cpu"`.
    pub device: crate::backend::DeviceSelector,
    /// Float type of every tensor (parameters, activations, gradients, Adam state): `f32` (the
    /// paper's, default), `bf16`, `f16`, or `f64`. Set on the device before anything is created;
    /// a backend that lacks the type is an error. This is whole-network low precision, not
    /// autocast with f32 master weights (burn 0.22 has no autocast).
    pub precision: Precision,
    /// Run CapsNet's hot paths (the convolutions, DigitCaps votes + routing) as capsnet-ops'
    /// fused kernels with hand-written backward passes, on backends that have them (`flex`, in
    /// f32/f64); elsewhere, or with `false`, burn's generic operations run (the reference the
    /// fused kernels are tested against). Default `true`.
    pub fused_ops: bool,
    /// How the fused convolution runs: `"auto"` (the backend's choice per layer, default),
    /// `"blocked"` (GEMMs over blocks of the input) or `"spectral"` (frequency domain); same
    /// function, other arithmetic order. For A/B measurements; no effect on generic paths.
    pub conv_algorithm: ConvAlgorithm,
}

impl RuntimeConfig {
    /// The networks' kernel setting.
    pub fn kernels(&self) -> Kernels {
        Kernels {
            fused: self.fused_ops,
            conv: self.conv_algorithm,
        }
    }
}

/// Float precision of a run (see [`RuntimeConfig::precision`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit IEEE floats (default).
    F32,
    /// bfloat16.
    Bf16,
    /// IEEE half precision.
    F16,
    /// 64-bit floats (slow; for checks).
    F64,
}

impl Precision {
    /// The name used in experiment files.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
            Self::F64 => "f64",
        }
    }

    /// burn's float type.
    pub fn dtype(self) -> burn::tensor::FloatDType {
        match self {
            Self::F32 => burn::tensor::FloatDType::F32,
            Self::Bf16 => burn::tensor::FloatDType::BF16,
            Self::F16 => burn::tensor::FloatDType::F16,
            Self::F64 => burn::tensor::FloatDType::F64,
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            backend: crate::backend::BackendKind::Flex,
            device: crate::backend::DeviceSelector::Default,
            precision: Precision::F32,
            fused_ops: true,
            conv_algorithm: ConvAlgorithm::Auto,
        }
    }
}
