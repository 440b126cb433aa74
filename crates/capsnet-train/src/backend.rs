//! Backend selection at run time. Backends are cargo features of the `capsnet` binary; asking
//! for one that was not compiled in is an error naming the feature to build with.

use burn::tensor::Device;

pub use capsnet_common::device::DeviceSelector;

/// A backend that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The name is not a backend at all.
    #[error(
        "unknown backend `{0}`: expected one of {expected}",
        expected = BackendKind::names()
    )]
    Unknown(String),
    /// A known backend this binary was built without.
    #[error(
        "backend `{name}` is not compiled into this binary: rebuild with `cargo build --release -p capsnet-train --features {feature}`{hint}"
    )]
    NotCompiled {
        /// Backend name.
        name: String,
        /// Cargo feature that enables it.
        feature: &'static str,
        /// Extra advice (e.g. for libtorch).
        hint: &'static str,
    },
    /// `runtime.device` names a kind of device this backend does not have.
    #[error("backend `{name}`: `runtime.device = {device}` does not apply: {reason}")]
    BadDevice {
        /// Backend name.
        name: String,
        /// The selector as written.
        device: String,
        /// Why.
        reason: String,
    },
    /// wgpu sees no adapter of the kind `runtime.device` asks for.
    #[error(
        "backend `wgpu`: no adapter for `runtime.device = {device}`; wgpu sees: {found} (`runtime.device` takes \"default\", \"cpu\", \"discrete:N\", \"integrated:N\", \"virtual:N\" or an index = discrete:N)"
    )]
    NoAdapter {
        /// The selector as written.
        device: String,
        /// The adapters found, in words.
        found: String,
    },
    /// The backend is compiled in but the machine has no such device.
    #[error(
        "backend `{name}`: no device {index} on this machine ({found} found; check the GPU driver and `runtime.device`)"
    )]
    NoDevice {
        /// Backend name.
        name: String,
        /// Requested device index.
        index: usize,
        /// Devices found.
        found: usize,
    },
}

/// A burn backend (and device family) by name: `runtime.backend` (the experiment files and
/// `config.resolved.toml` spell it by [`BackendKind::name`]; an unknown name is a config error
/// listing the known ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// burn's pure-Rust CPU backend (default).
    #[default]
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

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for BackendKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for BackendKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::parse(&name).map_err(serde::de::Error::custom)
    }
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
            #[cfg(feature = "wgpu")]
            Self::Wgpu => wgpu_adapters::describe(&wgpu_adapters::list()),
            _ => "GPU devices not probed".into(),
        })
    }

    /// The CUDA device index `selector` names for this (CUDA) backend.
    #[cfg(any(feature = "tch", feature = "cuda"))]
    fn cuda_index(self, selector: DeviceSelector) -> Result<usize, BackendError> {
        selector
            .cuda_index()
            .ok_or_else(|| BackendError::BadDevice {
                name: self.name().into(),
                device: selector.to_string(),
                reason: "this backend takes a device index (or \"default\")".into(),
            })
    }

    /// The (non-autodiff) device `selector` names, or an error if the backend is not compiled
    /// in, the selector does not apply to it, or the machine has no such device.
    // Only the GPU backends read `selector`; a CPU-only build has one device per backend.
    #[cfg_attr(
        not(any(feature = "tch", feature = "wgpu", feature = "cuda")),
        allow(unused_variables)
    )]
    pub fn device(self, selector: DeviceSelector) -> Result<Device, BackendError> {
        self.ensure_compiled()?;
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
                let index = self.cuda_index(selector)?;
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
            Self::Wgpu => wgpu_adapters::device(selector)?,
            #[cfg(feature = "cuda")]
            Self::Cuda => Device::cuda(self.cuda_index(selector)?),
            #[allow(unreachable_patterns)]
            _ => unreachable!("compiled() checked the feature"),
        })
    }
}

/// The adapters wgpu sees, so that a `runtime.device` naming none is an error that lists them
/// instead of burn's panic on the first tensor.
#[cfg(feature = "wgpu")]
mod wgpu_adapters {
    use super::{BackendError, Device, DeviceSelector};
    use burn::tensor::DeviceKind;
    use wgpu::{AdapterInfo, DeviceType};

    /// Every adapter of the primary graphics APIs (Vulkan, Metal, DX12; not OpenGL, whose
    /// software fallback deadlocked on real sizes), in wgpu's order.
    pub(super) fn list() -> Vec<AdapterInfo> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::PRIMARY,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        futures_lite::future::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY))
            .iter()
            .map(wgpu::Adapter::get_info)
            .collect()
    }

    fn kind_name(t: DeviceType) -> &'static str {
        match t {
            DeviceType::DiscreteGpu => "discrete",
            DeviceType::IntegratedGpu => "integrated",
            DeviceType::VirtualGpu => "virtual",
            DeviceType::Cpu => "cpu",
            DeviceType::Other => "other",
        }
    }

    /// `"llvmpipe (LLVM 15.0.6, 256 bits)" (cpu, Vulkan); …`, or a sentence when there is none.
    pub(super) fn describe(adapters: &[AdapterInfo]) -> String {
        if adapters.is_empty() {
            return "no adapter (is a Vulkan, Metal or DX12 driver installed?)".into();
        }
        adapters
            .iter()
            .map(|a| {
                format!(
                    "{:?} ({}, {:?})",
                    a.name,
                    kind_name(a.device_type),
                    a.backend
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The burn device for `selector`, after checking that wgpu sees such an adapter.
    pub(super) fn device(selector: DeviceSelector) -> Result<Device, BackendError> {
        let (kind, wanted, index) = match selector {
            DeviceSelector::Default => (DeviceKind::DefaultDevice, None, 0),
            DeviceSelector::Index(n) | DeviceSelector::Discrete(n) => {
                (DeviceKind::DiscreteGpu(n), Some(DeviceType::DiscreteGpu), n)
            }
            DeviceSelector::Integrated(n) => (
                DeviceKind::IntegratedGpu(n),
                Some(DeviceType::IntegratedGpu),
                n,
            ),
            DeviceSelector::Virtual(n) => {
                (DeviceKind::VirtualGpu(n), Some(DeviceType::VirtualGpu), n)
            }
            DeviceSelector::Cpu => (DeviceKind::Cpu, Some(DeviceType::Cpu), 0),
        };
        let adapters = list();
        let matching = adapters
            .iter()
            .filter(|a| wanted.is_none_or(|t| a.device_type == t))
            .count();
        if matching <= index {
            return Err(BackendError::NoAdapter {
                device: selector.to_string(),
                found: describe(&adapters),
            });
        }
        Ok(Device::wgpu(kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_selectors_parse_print_and_keep_indices_integers() {
        for (text, selector) in [
            ("default", DeviceSelector::Default),
            ("2", DeviceSelector::Index(2)),
            ("discrete:1", DeviceSelector::Discrete(1)),
            ("integrated:0", DeviceSelector::Integrated(0)),
            ("virtual:3", DeviceSelector::Virtual(3)),
            ("cpu", DeviceSelector::Cpu),
        ] {
            assert_eq!(DeviceSelector::parse(text), Some(selector), "{text}");
            assert_eq!(selector.to_string(), text);
        }
        for bad in ["", "gpu", "discrete", "discrete:x", "cpu:0", "-1"] {
            assert_eq!(DeviceSelector::parse(bad), None, "{bad}");
        }
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct Runtime {
            device: DeviceSelector,
        }
        let int: Runtime = toml::from_str("device = 1").unwrap();
        assert_eq!(int.device, DeviceSelector::Index(1));
        assert_eq!(toml::to_string(&int).unwrap().trim(), "device = 1");
        let kind: Runtime = toml::from_str("device = \"integrated:0\"").unwrap();
        assert_eq!(kind.device, DeviceSelector::Integrated(0));
        assert_eq!(
            toml::to_string(&kind).unwrap().trim(),
            "device = \"integrated:0\""
        );
        let err = toml::from_str::<Runtime>("device = \"gpu\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("gpu") && err.contains("discrete:N"), "{err}");
        let err = toml::from_str::<Runtime>("device = -1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("negative"), "{err}");
        assert_eq!(DeviceSelector::Cpu.cuda_index(), None);
        assert_eq!(DeviceSelector::Default.cuda_index(), Some(0));
    }

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
            let err = kind
                .device(DeviceSelector::Default)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("--features {}", kind.feature())),
                "{err}"
            );
        }
    }

    #[cfg(feature = "flex")]
    #[test]
    fn flex_is_compiled_by_default() {
        assert!(BackendKind::Flex.device(DeviceSelector::Default).is_ok());
    }
}
