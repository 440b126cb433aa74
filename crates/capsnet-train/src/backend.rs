//! Backend selection at run time. Backends are cargo features of the `capsnet` binary; asking
//! for one that was not compiled in is an error naming the feature to build with.

use burn::tensor::Device;

use crate::error::BackendError;

/// A burn backend (and device family) by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// burn's pure-Rust CPU backend (default).
    Flex,
    /// burn's ndarray CPU backend (deprecated upstream in 0.22).
    Ndarray,
    /// libtorch on the CPU.
    Tch,
    /// libtorch on a CUDA GPU.
    TchCuda,
    /// wgpu (Vulkan, Metal, DX12).
    Wgpu,
    /// CubeCL CUDA.
    Cuda,
}

impl BackendKind {
    /// Every backend name, for help texts and listings.
    pub const ALL: [BackendKind; 6] = [
        BackendKind::Flex,
        BackendKind::Ndarray,
        BackendKind::Tch,
        BackendKind::TchCuda,
        BackendKind::Wgpu,
        BackendKind::Cuda,
    ];

    /// Every backend name, comma-separated (the one list error messages use).
    pub fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }

    /// Parses a backend name (`flex`, `ndarray`, `tch`, `tch-cuda`, `wgpu`, `cuda`).
    pub fn parse(name: &str) -> Result<Self, BackendError> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| BackendError::Unknown(name.to_string()))
    }

    /// The name used in experiment files and `--backend`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Ndarray => "ndarray",
            Self::Tch => "tch",
            Self::TchCuda => "tch-cuda",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        }
    }

    /// The cargo feature of `capsnet-train` that compiles this backend in.
    pub fn feature(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Ndarray => "ndarray",
            Self::Tch | Self::TchCuda => "tch",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        }
    }

    /// Whether this binary was built with the backend's feature.
    pub fn compiled(self) -> bool {
        match self {
            Self::Flex => cfg!(feature = "flex"),
            Self::Ndarray => cfg!(feature = "ndarray"),
            Self::Tch | Self::TchCuda => cfg!(feature = "tch"),
            Self::Wgpu => cfg!(feature = "wgpu"),
            Self::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// Whether the backend runs on the CPU.
    pub fn is_cpu(self) -> bool {
        matches!(self, Self::Flex | Self::Ndarray | Self::Tch)
    }

    /// An error naming the cargo feature to build with, if the backend is not compiled in.
    pub fn ensure_compiled(self) -> Result<(), BackendError> {
        if !self.compiled() {
            let hint = match self {
                Self::Tch | Self::TchCuda => {
                    " (libtorch is needed at build time: see docs/backends.md, e.g. LIBTORCH_USE_PYTORCH=1)"
                }
                _ => "",
            };
            return Err(BackendError::NotCompiled {
                name: self.name().into(),
                feature: self.feature(),
                hint,
            });
        }
        Ok(())
    }

    /// The devices this backend sees, in words (for `capsnet backends`); `None` when not
    /// compiled in. GPU backends other than libtorch's are not probed (opening them costs
    /// seconds); ask `capsnet parity` or `bench` to use one.
    pub fn devices(self) -> Option<String> {
        if !self.compiled() {
            return None;
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Some(match self {
            Self::Flex | Self::Ndarray | Self::Tch => format!("cpu ({threads} threads)"),
            #[cfg(feature = "tch")]
            Self::TchCuda => {
                let n = Device::enumerate(burn::tensor::DeviceType::LibTorch).len();
                format!("{n} CUDA device(s) visible to libtorch")
            }
            _ => "GPU devices not probed".into(),
        })
    }

    /// The (non-autodiff) device with index `index`, or an error if not compiled in.
    pub fn device(self, index: usize) -> Result<Device, BackendError> {
        self.ensure_compiled()?;
        let _ = index;
        Ok(match self {
            #[cfg(feature = "flex")]
            Self::Flex => Device::flex(),
            // Deprecated upstream in burn 0.22 in favour of flex; kept as a second CPU backend
            // for parity checks and comparisons.
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            Self::Ndarray => Device::ndarray(),
            // burn-tch is deprecated upstream in 0.22 but is the backend that runs on the
            // GPU machines available to this project (docs/gpu.md).
            #[cfg(feature = "tch")]
            #[allow(deprecated)]
            Self::Tch => Device::libtorch(),
            #[cfg(feature = "tch")]
            Self::TchCuda => {
                // Without this check libtorch panics on the first tensor ("Found no NVIDIA
                // driver…").
                let found = Device::enumerate(burn::tensor::DeviceType::LibTorch).len();
                if index >= found {
                    return Err(BackendError::NoDevice {
                        name: self.name().into(),
                        index,
                        found,
                    });
                }
                #[allow(deprecated)]
                Device::libtorch_cuda(index)
            }
            #[cfg(feature = "wgpu")]
            Self::Wgpu => Device::wgpu(burn::tensor::DeviceKind::DiscreteGpu(index)),
            #[cfg(feature = "cuda")]
            Self::Cuda => Device::cuda(index),
            #[allow(unreachable_patterns)]
            _ => unreachable!("compiled() checked the feature"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_is_rejected() {
        for kind in BackendKind::ALL {
            assert_eq!(BackendKind::parse(kind.name()).unwrap(), kind);
        }
        let err = BackendKind::parse("tpu").unwrap_err().to_string();
        assert!(err.contains("tpu") && err.contains("flex"), "{err}");
        assert!(
            err.ends_with("expected one of flex, ndarray, tch, tch-cuda, wgpu, cuda"),
            "{err}"
        );
    }

    #[test]
    fn missing_backend_names_the_feature() {
        for kind in BackendKind::ALL.into_iter().filter(|k| !k.compiled()) {
            let err = kind.device(0).unwrap_err().to_string();
            assert!(
                err.contains(&format!("--features {}", kind.feature())),
                "{err}"
            );
        }
    }

    #[cfg(feature = "flex")]
    #[test]
    fn flex_is_compiled_by_default() {
        assert!(BackendKind::Flex.device(0).is_ok());
    }
}
