//! CapsNet (Sabour, Frosst & Hinton, "Dynamic Routing Between Capsules", NIPS 2017) on burn,
//! with Efficient-CapsNet (Mazzia et al. 2021) and its self-attention routing beside it.
//!
//! Pure math: layers, the routing algorithms ([`routing`]), losses and the paper's baseline
//! CNN. The fused kernels of capsnet-ops are reached through [`kernels`] only. No I/O, no
//! logging setup, no CLI. Everything runs on any burn [`Device`](burn::tensor::Device); the
//! backend is chosen by the binary at run time.
//!
//! Shapes follow the paper's MNIST model: `[B, 1, 28, 28]` → conv1 `[B, 256, 20, 20]` →
//! PrimaryCaps `[B, 1152, 8]` → votes `[B, 10, 1152, 16]` → DigitCaps `[B, 10, 16]` →
//! lengths `[B, 10]` and reconstruction `[B, 784]`.
#![warn(missing_docs)]

pub mod baseline;
pub mod capsnet;
pub mod config;
pub mod efficient;
pub mod error;
pub mod kernels;
pub mod loss;
pub mod routing;
pub mod squash;

pub use baseline::{BaselineCnn, BaselineOutput};
pub use capsnet::{CapsNet, CapsNetOutput, DigitCaps, PrimaryCaps, predictions};
pub use config::{BaselineCnnConfig, CapsNetConfig, DecoderConfig};
pub use efficient::{EfficientCapsNet, EfficientCapsNetConfig, StemConv};
pub use error::ModelConfigError;
pub use kernels::{ConvAlgorithm, Kernels};
pub use loss::{
    LossConfig, LossParts, cross_entropy, label_column, margin_loss, multi_hot, reconstruction_sse,
    sigmoid_cross_entropy,
};
pub use routing::{
    Algorithm, DynamicRouting, MAX_ROUTING_ITERATIONS, Routed, RoutingConfig, SelfAttentionRouting,
    couplings_from_logits, route,
};
pub use squash::{Squash, SquashKind, capsule_lengths, squash};
