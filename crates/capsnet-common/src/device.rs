//! `runtime.device`: which device of a backend a run uses (serde form shared by the
//! experiment files, `summary.json` and xtask).

use serde::{Deserialize, Serialize};

/// Which device of a backend `runtime.device` names.
///
/// - `"default"` (the default): the backend's best device. wgpu takes its preferred adapter (a
///   discrete GPU where there is one, else an integrated one, else a software one such as
///   lavapipe); the CUDA backends take device 0; CPU backends have one device.
/// - An index `N` (`0`, `1`, …; what `cargo xtask sweep --devices` hands each job): CUDA device
///   `N`, or the `N`-th discrete GPU for wgpu.
/// - wgpu adapter kinds: `"discrete:N"`, `"integrated:N"`, `"virtual:N"` (the `N`-th adapter of
///   that kind) and `"cpu"` (a software adapter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSelector {
    /// The backend's best device.
    #[default]
    Default,
    /// Device `N` of the backend's usual kind.
    Index(usize),
    /// The `N`-th discrete GPU (wgpu).
    Discrete(usize),
    /// The `N`-th integrated GPU (wgpu).
    Integrated(usize),
    /// The `N`-th virtual GPU (wgpu).
    Virtual(usize),
    /// A CPU (software) adapter (wgpu).
    Cpu,
}

impl DeviceSelector {
    /// What `runtime.device` accepts, for error messages.
    pub const EXPECTED: &'static str = "an index (0, 1, …), \"default\", \"cpu\", \"discrete:N\", \"integrated:N\" or \"virtual:N\"";

    /// Parses the string form (`"default"`, `"cpu"`, `"discrete:0"`, `"1"`, …).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        match text {
            "default" => return Some(Self::Default),
            "cpu" => return Some(Self::Cpu),
            _ => {}
        }
        if let Ok(n) = text.parse() {
            return Some(Self::Index(n));
        }
        let (kind, n) = text.split_once(':')?;
        let n = n.trim().parse().ok()?;
        match kind.trim() {
            "discrete" => Some(Self::Discrete(n)),
            "integrated" => Some(Self::Integrated(n)),
            "virtual" => Some(Self::Virtual(n)),
            _ => None,
        }
    }

    /// The CUDA device index this names, if it names one (`default` is device 0).
    pub fn cuda_index(self) -> Option<usize> {
        match self {
            Self::Default => Some(0),
            Self::Index(n) | Self::Discrete(n) => Some(n),
            Self::Integrated(_) | Self::Virtual(_) | Self::Cpu => None,
        }
    }
}

impl std::fmt::Display for DeviceSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Default => write!(f, "default"),
            Self::Index(n) => write!(f, "{n}"),
            Self::Discrete(n) => write!(f, "discrete:{n}"),
            Self::Integrated(n) => write!(f, "integrated:{n}"),
            Self::Virtual(n) => write!(f, "virtual:{n}"),
            Self::Cpu => write!(f, "cpu"),
        }
    }
}

impl Serialize for DeviceSelector {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            // An index stays a TOML/JSON integer, as `runtime.device` always was.
            Self::Index(n) => serializer.serialize_u64(*n as u64),
            other => serializer.collect_str(other),
        }
    }
}

impl<'de> Deserialize<'de> for DeviceSelector {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = DeviceSelector;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(DeviceSelector::EXPECTED)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                usize::try_from(v)
                    .map(DeviceSelector::Index)
                    .map_err(|_| E::custom(format!("device index {v} is too large")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("device index {v} is negative")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                DeviceSelector::parse(v).ok_or_else(|| {
                    E::custom(format!(
                        "unknown device {v:?}: expected {}",
                        DeviceSelector::EXPECTED
                    ))
                })
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}
