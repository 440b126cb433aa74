//! What `capsnet info --json` prints (the layer table, FLOP model and memory estimate of an
//! experiment's network), read by `cargo xtask bench-compare` to check that both sides build
//! the same network.

use serde::{Deserialize, Serialize};

/// One row of the layer table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// Layer name.
    pub name: String,
    /// Output shape per example (batch dimension omitted).
    pub output: Vec<usize>,
    /// Parameters of the layer.
    pub params: usize,
}

/// Multiply-accumulates of one forward pass per image, by part of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardMacs {
    /// Convolutions (CapsNet: conv1 + PrimaryCaps; CNN: all convolutions).
    pub convolutions: u64,
    /// CapsNet votes û = W·u.
    pub votes: u64,
    /// CapsNet routing: weighted sums and agreements over all iterations.
    pub routing: u64,
    /// Fully connected layers (CapsNet decoder; CNN classifier).
    pub dense: u64,
}

impl ForwardMacs {
    /// Total forward multiply-accumulates per image.
    pub fn total(&self) -> u64 {
        self.convolutions + self.votes + self.routing + self.dense
    }

    /// FLOPs per image of a training step: forward + backward ≈ 3 × forward, 2 FLOPs per MAC.
    pub fn train_flops(&self) -> f64 {
        6.0 * self.total() as f64
    }

    /// FLOPs per image of inference (2 per MAC).
    pub fn inference_flops(&self) -> f64 {
        2.0 * self.total() as f64
    }
}

/// Estimated memory of training an experiment's network (`capsnet info`): what one example
/// costs and an estimated peak at the configured batch. An estimate from the shapes, not a
/// measurement (docs/performance.md compares it with measured peaks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryEstimate {
    /// Bytes per value (`runtime.precision`).
    pub bytes_per_value: u64,
    /// Every layer's output for one example (the layer table's shapes), in bytes.
    pub activations_per_example: u64,
    /// The votes `û_{j|i}` of one example (children × classes × class dim), in bytes.
    pub votes_per_example: u64,
    /// Routing intermediates of one example kept for the backward pass (logits, couplings
    /// and agreements per iteration; children × classes each), in bytes.
    pub routing_per_example: u64,
    /// Capsules routed from (children) and to (parents).
    pub capsules: Option<(usize, usize)>,
    /// Parameters, their gradients and Adam's two moments, in bytes.
    pub parameters_and_optimizer: u64,
    /// `train.batch_size`.
    pub batch: usize,
    /// `parameters_and_optimizer + batch × 2 × (activations + votes + routing)`: the values
    /// kept for the backward pass and as many again for their gradients.
    pub training_peak: u64,
    /// Set when the votes and routing of one example exceed `capsnet_train::info::ROUTING_WARNING_BYTES` (64 MiB).
    pub warning: Option<String>,
}

/// The routing of a capsule network, as `capsnet info --json` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingInfo {
    /// The algorithm's name (`dynamic`, `self-attention`).
    pub algorithm: String,
    /// Its options as the experiment file spells them (`algorithm` included).
    pub options: toml::Table,
    /// One-line description (`dynamic r=3`).
    pub description: String,
    /// Multiply-accumulates of the routing per image, forward.
    pub forward_macs: u64,
}

/// `capsnet info --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfoReport {
    /// Experiment name.
    pub name: String,
    /// Network (`capsnet`, `efficient-capsnet`, `baseline-cnn`).
    pub arch: String,
    /// The layer table.
    pub layers: Vec<LayerInfo>,
    /// Trainable parameters (the layer table's sum).
    pub params: usize,
    /// The capsule routing; absent for the CNN.
    pub routing: Option<RoutingInfo>,
    /// Forward multiply-accumulates per image, by part.
    pub forward_macs: ForwardMacs,
    /// GFLOP per trained image under the FLOP model.
    pub train_gflop_per_image: f64,
    /// GFLOP per image of inference.
    pub inference_gflop_per_image: f64,
    /// Estimated training memory.
    pub memory: MemoryEstimate,
}
