//! CapsNet (Sabour, Frosst & Hinton, "Dynamic Routing Between Capsules", NIPS 2017) on burn.
//!
//! Pure math: layers, routing-by-agreement, losses and the paper's baseline CNN. No I/O, no
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
pub mod error;
pub mod loss;
pub mod routing;
pub mod squash;

pub use baseline::BaselineCnn;
pub use capsnet::{CapsNet, CapsNetOutput, DigitCaps, PrimaryCaps, predictions};
pub use config::{BaselineCnnConfig, CapsNetConfig, DecoderConfig};
pub use error::ModelConfigError;
pub use loss::{
    LossConfig, LossParts, cross_entropy, label_column, margin_loss, multi_hot, reconstruction_sse,
    sigmoid_cross_entropy,
};
pub use routing::{Routed, RoutingConfig, couplings_from_logits, route};
pub use squash::{capsule_lengths, squash};
