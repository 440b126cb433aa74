//! Efficient-CapsNet (Mazzia, Salvetti & Chiaberge 2021, "Efficient-CapsNet: capsule network
//! with self-attention routing", Scientific Reports 11), the MNIST network.
//!
//! As in the authors' code (EscVM/Efficient-CapsNet, `efficient_capsnet_graph_mnist.py`):
//!
//! ```text
//! input [B,1,28,28]
//! stem: conv 32@5x5 → ReLU → BN, conv 64@3x3 → ReLU → BN, conv 64@3x3 → ReLU → BN,
//!       conv 128@3x3 stride 2 → ReLU → BN                       → [B,128,9,9]
//! primary capsules: depthwise conv 9x9 (128 channels, bias)      → [B,128,1,1]
//!       → 16 capsules × 8 (channel 8n + d is dimension d of capsule n), Efficient squash
//! FCCaps: votes W [16, 8, 10·16] and self-attention routing      → [B,10,16]
//! lengths; decoder (masked 160 → 512 → 1024 → 784), as CapsNet's
//! ```
//!
//! 161,824 trainable parameters without the decoder (the paper's count), 1,573,168 with it.
//! Batch norm is burn's (`momentum` in burn's convention: 0.01 is Keras' 0.99); it uses batch
//! statistics on an autodiff device and the running ones otherwise.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::capsnet::{CapsNetOutput, Decoder, DigitCaps, reconstruct_into, single_target_loss};
use crate::config::{DecoderConfig, validate_squash_eps};
use crate::error::ModelConfigError;
use crate::kernels::{self, Kernels};
use crate::loss::{LossConfig, LossParts};
use crate::routing::{RoutingConfig, SelfAttentionRouting};
use crate::squash::{DEFAULT_EPS, Squash, SquashKind};

/// One convolution of the stem (valid padding, bias, then ReLU and batch norm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StemConv {
    /// Output channels.
    pub channels: usize,
    /// Kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
}

/// Efficient-CapsNet's architecture (`[efficient]` in experiment files). Defaults are the
/// paper's MNIST network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EfficientCapsNetConfig {
    /// Input channels.
    pub input_channels: usize,
    /// Input height.
    pub input_height: usize,
    /// Input width.
    pub input_width: usize,
    /// The stem's convolutions, in order (paper: 32@5x5, 64@3x3, 64@3x3, 128@3x3 stride 2).
    pub stem: Vec<StemConv>,
    /// Batch norm momentum in burn's convention, the weight of the batch statistic in the
    /// running average (Keras' default 0.99 is 0.01 here).
    pub batch_norm_momentum: f64,
    /// Batch norm ε (Keras' default, 1e-3).
    pub batch_norm_eps: f64,
    /// Kernel of the depthwise convolution of the primary capsules (paper: 9, the stem's
    /// output size, so each channel becomes one number).
    pub primary_kernel: usize,
    /// Primary capsule dimension (paper: 8; the depthwise output is cut into capsules of it).
    pub primary_dim: usize,
    /// Number of classes = class capsules.
    pub classes: usize,
    /// Class capsule dimension (paper: 16).
    pub class_dim: usize,
    /// Standard deviation of the normal initialisation of the FCCaps weight (the official
    /// code's he_normal: √(2 / 1280) ≈ 0.0395, truncated at 2σ there, not here).
    pub weight_init_std: f64,
    /// Routing between primary and class capsules (paper: self-attention).
    pub routing: RoutingConfig,
    /// Squashing function (paper: `"efficient"`).
    pub squash: SquashKind,
    /// ε under the squash's and the lengths' square roots (the official code adds 1e-20 in
    /// the squash and 1e-7 in the lengths; see [`DEFAULT_EPS`]).
    pub squash_eps: f64,
    /// Reconstruction decoder (paper: 512, 1024).
    pub decoder: DecoderConfig,
}

impl Default for EfficientCapsNetConfig {
    fn default() -> Self {
        Self::paper_mnist()
    }
}

impl EfficientCapsNetConfig {
    /// The paper's MNIST network.
    pub fn paper_mnist() -> Self {
        let conv = |channels, kernel, stride| StemConv {
            channels,
            kernel,
            stride,
        };
        Self {
            input_channels: 1,
            input_height: 28,
            input_width: 28,
            stem: vec![
                conv(32, 5, 1),
                conv(64, 3, 1),
                conv(64, 3, 1),
                conv(128, 3, 2),
            ],
            batch_norm_momentum: 0.01,
            batch_norm_eps: 1e-3,
            primary_kernel: 9,
            primary_dim: 8,
            classes: 10,
            class_dim: 16,
            weight_init_std: (2.0f64 / 1280.0).sqrt(),
            routing: RoutingConfig::SelfAttention(SelfAttentionRouting::default()),
            squash: SquashKind::Efficient,
            squash_eps: DEFAULT_EPS,
            decoder: DecoderConfig::default(),
        }
    }

    /// `(channels, height, width)` after each stem convolution (valid padding).
    pub fn stem_shapes(&self) -> Vec<(usize, usize, usize)> {
        let mut shape = (self.input_channels, self.input_height, self.input_width);
        self.stem
            .iter()
            .map(|c| {
                let out = |n: usize| {
                    if n < c.kernel || c.stride == 0 {
                        0
                    } else {
                        (n - c.kernel) / c.stride + 1
                    }
                };
                shape = (c.channels, out(shape.1), out(shape.2));
                shape
            })
            .collect()
    }

    /// `(channels, height, width)` of the depthwise convolution's output.
    pub fn primary_grid(&self) -> (usize, usize, usize) {
        let (c, h, w) = self.stem_shapes().last().copied().unwrap_or((
            self.input_channels,
            self.input_height,
            self.input_width,
        ));
        let out = |n: usize| (n + 1).saturating_sub(self.primary_kernel);
        (c, out(h), out(w))
    }

    /// Number of primary capsules (paper: 16).
    pub fn primary_capsules(&self) -> usize {
        let (c, h, w) = self.primary_grid();
        c * h * w / self.primary_dim.max(1)
    }

    /// Input pixels times channels (the decoder's output width).
    pub fn input_len(&self) -> usize {
        self.input_channels * self.input_height * self.input_width
    }

    /// The network's squashing function.
    pub fn squash(&self) -> Squash {
        Squash {
            kind: self.squash,
            eps: self.squash_eps,
        }
    }

    /// Checks sizes, the stem against the input and the capsule split.
    pub fn validate(&self) -> Result<(), ModelConfigError> {
        for (key, value) in [
            ("input_channels", self.input_channels),
            ("input_height", self.input_height),
            ("input_width", self.input_width),
            ("primary_kernel", self.primary_kernel),
            ("primary_dim", self.primary_dim),
            ("class_dim", self.class_dim),
        ] {
            if value == 0 {
                return Err(ModelConfigError::NotPositive { key });
            }
        }
        if self.stem.is_empty() {
            return Err(ModelConfigError::Invalid {
                key: "stem",
                value: "[]".into(),
                reason: "needs at least one convolution".into(),
            });
        }
        if self
            .stem
            .iter()
            .any(|c| c.channels == 0 || c.kernel == 0 || c.stride == 0)
        {
            return Err(ModelConfigError::NotPositive {
                key: "stem (channels, kernel and stride of every convolution)",
            });
        }
        if self.classes < 2 {
            return Err(ModelConfigError::Invalid {
                key: "classes",
                value: self.classes.to_string(),
                reason: "need at least 2 classes".into(),
            });
        }
        for (key, value, ok) in [
            (
                "batch_norm_momentum",
                self.batch_norm_momentum,
                (0.0..=1.0).contains(&self.batch_norm_momentum),
            ),
            (
                "batch_norm_eps",
                self.batch_norm_eps,
                self.batch_norm_eps > 0.0 && self.batch_norm_eps.is_finite(),
            ),
            (
                "weight_init_std",
                self.weight_init_std,
                self.weight_init_std > 0.0 && self.weight_init_std.is_finite(),
            ),
        ] {
            if !ok {
                return Err(ModelConfigError::Invalid {
                    key,
                    value: value.to_string(),
                    reason: "out of range (momentum in [0, 1]; ε and std finite and > 0)".into(),
                });
            }
        }
        self.routing.validate()?;
        validate_squash_eps(self.squash_eps)?;
        if self.decoder.hidden.contains(&0) {
            return Err(ModelConfigError::NotPositive {
                key: "decoder.hidden",
            });
        }
        let (c, h, w) = self.primary_grid();
        if self.stem_shapes().iter().any(|s| s.1 == 0 || s.2 == 0) || h == 0 || w == 0 {
            let mut needed = self.primary_kernel;
            for conv in self.stem.iter().rev() {
                needed = (needed - 1) * conv.stride + conv.kernel;
            }
            return Err(ModelConfigError::InputTooSmall {
                height: self.input_height,
                width: self.input_width,
                needed,
            });
        }
        if (c * h * w) % self.primary_dim != 0 {
            return Err(ModelConfigError::Invalid {
                key: "primary_dim",
                value: self.primary_dim.to_string(),
                reason: format!(
                    "must divide the depthwise convolution's {c}×{h}×{w} = {} outputs",
                    c * h * w
                ),
            });
        }
        Ok(())
    }

    /// Validates the configuration and initialises the network with fused kernels where the
    /// backend has them.
    pub fn init(&self, device: &Device) -> Result<EfficientCapsNet, ModelConfigError> {
        self.init_with(device, Kernels::default())
    }

    /// [`EfficientCapsNetConfig::init`] with the network's kernel setting.
    pub fn init_with(
        &self,
        device: &Device,
        kernels: Kernels,
    ) -> Result<EfficientCapsNet, ModelConfigError> {
        self.validate()?;
        let mut channels = self.input_channels;
        let mut stem = Vec::with_capacity(self.stem.len());
        for conv in &self.stem {
            stem.push(StemLayer {
                conv: Conv2dConfig::new([channels, conv.channels], [conv.kernel, conv.kernel])
                    .with_stride([conv.stride, conv.stride])
                    .init(device),
                norm: BatchNormConfig::new(conv.channels)
                    .with_momentum(self.batch_norm_momentum)
                    .with_epsilon(self.batch_norm_eps)
                    .init(device),
            });
            channels = conv.channels;
        }
        let depthwise = Conv2dConfig::new(
            [channels, channels],
            [self.primary_kernel, self.primary_kernel],
        )
        .with_groups(channels)
        .init(device);
        let capsules = DigitCaps::init(
            self.primary_capsules(),
            self.primary_dim,
            self.classes,
            self.class_dim,
            false,
            &self.routing,
            self.weight_init_std,
            device,
        );
        let decoder = self.decoder.enabled.then(|| {
            Decoder::new(
                &self.decoder,
                self.classes * self.class_dim,
                self.input_len(),
                device,
            )
        });
        Ok(EfficientCapsNet {
            stem,
            depthwise,
            capsules,
            decoder,
            config: self.clone(),
            kernels,
        })
    }
}

/// A stem convolution with its batch norm.
#[derive(Module, Debug)]
pub struct StemLayer {
    conv: Conv2d,
    norm: BatchNorm,
}

/// Efficient-CapsNet (see the module documentation).
#[derive(Module, Debug)]
pub struct EfficientCapsNet {
    stem: Vec<StemLayer>,
    depthwise: Conv2d,
    /// The fully-connected capsule layer (FCCaps): votes and routing.
    pub capsules: DigitCaps,
    decoder: Option<Decoder>,
    #[module(skip)]
    config: EfficientCapsNetConfig,
    #[module(skip)]
    kernels: Kernels,
}

impl EfficientCapsNet {
    /// The configuration this network was built from.
    pub fn config(&self) -> &EfficientCapsNetConfig {
        &self.config
    }

    /// Replaces the routing options (evaluation-time overrides); the algorithm must stay the one
    /// the network was built with.
    pub fn set_routing(&mut self, routing: RoutingConfig) -> Result<(), ModelConfigError> {
        crate::capsnet::check_same_algorithm(&self.config.routing, &routing)?;
        self.config.routing = routing;
        Ok(())
    }

    /// The same network with another kernel setting.
    pub fn with_kernels(mut self, kernels: Kernels) -> Self {
        self.kernels = kernels;
        self
    }

    /// The network's kernel setting.
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// Whether the network has a reconstruction decoder.
    pub fn has_decoder(&self) -> bool {
        self.decoder.is_some()
    }

    /// Trainable parameters: burn's `num_params` also counts batch norm's running mean and
    /// variance, which are state, not parameters (the paper's 161,824 excludes them).
    pub fn trainable_params(&self) -> usize {
        let running: usize = self.config.stem.iter().map(|c| 2 * c.channels).sum();
        self.num_params() - running
    }

    /// The primary capsules `[batch, capsules, dim]` of `images` `[batch, c, h, w]`.
    pub fn primary_capsules(&self, images: Tensor<4>) -> Tensor<3> {
        let mut x = images;
        for layer in &self.stem {
            x = layer
                .norm
                .forward(relu(kernels::conv2d(&layer.conv, x, self.kernels)));
        }
        // Grouped convolution: burn's own (the fused kernel has no groups).
        let x = self.depthwise.forward(x);
        let [batch, c, h, w] = x.dims();
        // Channels last, as the official code's NHWC reshape: channel 8n + d of a 1×1 map is
        // dimension d of capsule n.
        let caps = x.permute([0, 2, 3, 1]).reshape([
            batch,
            h * w * c / self.config.primary_dim,
            self.config.primary_dim,
        ]);
        self.config.squash().apply(caps, 2)
    }

    /// Forward pass up to the class capsules (no decoder).
    pub fn encode(&self, images: Tensor<4>) -> CapsNetOutput {
        let primary = self.primary_capsules(images);
        self.capsules.classify(
            primary,
            &self.config.routing,
            &self.config.squash(),
            self.kernels,
        )
    }

    /// Forward pass; the decoder is masked by `targets` when given (training), else by the
    /// longest capsule.
    pub fn forward(&self, images: Tensor<4>, targets: Option<Tensor<1, Int>>) -> CapsNetOutput {
        let mut out = self.encode(images);
        reconstruct_into(self.decoder.as_ref(), &mut out, targets);
        out
    }

    /// Margin loss plus (with the decoder) the weighted reconstruction loss: the official
    /// code's 0.392 × mean squared error over 784 pixels is 0.0005 × the per-image sum.
    pub fn loss(
        &self,
        output: &CapsNetOutput,
        images: Tensor<4>,
        targets: Tensor<1, Int>,
        config: &LossConfig,
    ) -> LossParts {
        single_target_loss(output, images, targets, self.config.classes, config)
    }
}
