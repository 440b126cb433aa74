//! The CapsNet layers (Sabour et al. 2017, Fig. 1 and 2) and the whole network.

use burn::module::{Initializer, Module, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Int, Tensor};
use capsnet_ops::RouteOptions;

use crate::config::{CapsNetConfig, DecoderConfig};
use crate::error::ModelConfigError;
use crate::loss::{
    LossConfig, LossParts, label_column, margin_loss, multi_hot, reconstruction_sse,
};
use crate::routing::{Routed, RoutingConfig, route};
use crate::squash::{capsule_lengths, squash};

/// PrimaryCaps: a convolution whose channels are grouped into capsules, then squashed.
#[derive(Module, Debug)]
pub struct PrimaryCaps {
    conv: Conv2d,
    types: usize,
    dim: usize,
    squash_eps: f64,
    /// Run the convolution as capsnet-ops' fused kernel where the backend has one.
    #[module(skip)]
    fused: bool,
}

impl PrimaryCaps {
    /// `features`: `[batch, channels, h, w]` → capsules `[batch, types·h'·w', dim]`.
    ///
    /// Channel `t·dim + d` of the convolution is dimension `d` of a capsule of type `t`
    /// (the official code's grouping); capsules are ordered type-major, then row, then column.
    pub fn forward(&self, features: Tensor<4>) -> Tensor<3> {
        let out = conv_forward(&self.conv, features, self.fused);
        let [batch, _, h, w] = out.dims();
        let caps = out
            .reshape([batch, self.types, self.dim, h, w])
            .permute([0, 1, 3, 4, 2])
            .reshape([batch, self.types * h * w, self.dim]);
        squash(caps, 2, self.squash_eps)
    }
}

/// DigitCaps: votes `û_{j|i} = W_ij u_i` for every (child, parent) pair, then routing.
#[derive(Module, Debug)]
pub struct DigitCaps {
    /// `W` stored as `[children, child_dim, parents · parent_dim]`, so that all votes are one
    /// batched matrix product over the children.
    pub weight: Param<Tensor<3>>,
    /// Optional `[parents, parent_dim]` bias (official-code option, off in the paper counts).
    pub bias: Option<Param<Tensor<2>>>,
    parents: usize,
    parent_dim: usize,
    /// Run votes and routing as capsnet-ops' fused kernel where the backend has one.
    #[module(skip)]
    fused: bool,
}

impl DigitCaps {
    /// Builds the layer from an explicit weight `[children, child_dim, parents · parent_dim]`.
    pub fn from_weight(weight: Tensor<3>, bias: Option<Tensor<2>>, parent_dim: usize) -> Self {
        let [_, _, out] = weight.dims();
        Self {
            weight: Param::from_tensor(weight),
            bias: bias.map(Param::from_tensor),
            parents: out / parent_dim,
            parent_dim,
            fused: true,
        }
    }

    /// Votes `û`: `[batch, children, child_dim]` → `[batch, parents, children, parent_dim]`.
    pub fn votes(&self, children: Tensor<3>) -> Tensor<4> {
        let [batch, n, _] = children.dims();
        children
            .swap_dims(0, 1)
            .matmul(self.weight.val())
            .reshape([n, batch, self.parents, self.parent_dim])
            .permute([1, 2, 0, 3])
    }

    /// Votes then routing: `[batch, children, child_dim]` → parents `[batch, parents, dim]`.
    ///
    /// With fused operations on (the default) and a backend that has them, votes and routing
    /// run as one kernel with a hand-written backward pass (`capsnet_ops::digit_caps`), which
    /// computes the same function as [`DigitCaps::votes`] followed by [`route`].
    pub fn forward(&self, children: Tensor<3>, routing: &RoutingConfig) -> Routed {
        let bias = self.bias.as_ref().map(|b| b.val());
        if self.fused {
            let options = RouteOptions {
                parents: self.parents,
                iterations: routing.iterations,
                stop_gradient: routing.stop_gradient,
                leaky: routing.leaky,
                eps: routing.squash_eps,
            };
            if let Some((parents, history)) =
                capsnet_ops::digit_caps(children.clone(), self.weight.val(), bias.clone(), options)
            {
                let iterations = history.dims()[1];
                let coupling_history: Vec<Tensor<3>> = (0..iterations)
                    .map(|t| history.clone().narrow(1, t, 1).squeeze_dim::<3>(1))
                    .collect();
                return Routed {
                    parents,
                    couplings: coupling_history[iterations - 1].clone(),
                    coupling_history,
                };
            }
        }
        route(self.votes(children), bias.as_ref(), routing)
    }

    /// Whether [`DigitCaps::forward`] may use the fused kernel.
    pub fn set_fused(&mut self, fused: bool) {
        self.fused = fused;
    }
}

/// Fully connected reconstruction network: masked class capsules → image.
#[derive(Module, Debug)]
pub struct Decoder {
    layers: Vec<Linear>,
}

impl Decoder {
    fn new(config: &DecoderConfig, input: usize, output: usize, device: &Device) -> Self {
        let mut widths = vec![input];
        widths.extend(&config.hidden);
        widths.push(output);
        let layers = widths
            .windows(2)
            .map(|w| LinearConfig::new(w[0], w[1]).init(device))
            .collect();
        Self { layers }
    }

    /// `[batch, parents · dim]` → `[batch, pixels]` in (0, 1).
    pub fn forward(&self, masked: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        let mut x = masked;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            x = if i == last { sigmoid(x) } else { relu(x) };
        }
        x
    }
}

/// Everything one forward pass produces.
#[derive(Debug, Clone)]
pub struct CapsNetOutput {
    /// Class capsules `v_j`: `[batch, classes, class_dim]`.
    pub capsules: Tensor<3>,
    /// Capsule lengths `‖v_j‖`, the class scores: `[batch, classes]`.
    pub lengths: Tensor<2>,
    /// Final coupling coefficients: `[batch, classes, primary capsules]`.
    pub couplings: Tensor<3>,
    /// Coupling coefficients of every routing iteration, first to last.
    pub coupling_history: Vec<Tensor<3>>,
    /// Reconstruction `[batch, channels·height·width]`, present iff the decoder is enabled.
    pub reconstruction: Option<Tensor<2>>,
}

/// The CapsNet of Sabour et al. (2017).
#[derive(Module, Debug)]
pub struct CapsNet {
    conv1: Conv2d,
    primary: PrimaryCaps,
    /// DigitCaps layer (public for gradient checks and diagnostics).
    pub digit: DigitCaps,
    decoder: Option<Decoder>,
    #[module(skip)]
    config: CapsNetConfig,
}

impl CapsNetConfig {
    /// Validates the configuration and initialises a network on `device`.
    pub fn init(&self, device: &Device) -> Result<CapsNet, ModelConfigError> {
        self.validate()?;
        let conv1 = Conv2dConfig::new(
            [self.input_channels, self.conv1_channels],
            [self.conv1_kernel, self.conv1_kernel],
        )
        .init(device);
        let primary = PrimaryCaps {
            conv: Conv2dConfig::new(
                [self.conv1_channels, self.primary_types * self.primary_dim],
                [self.primary_kernel, self.primary_kernel],
            )
            .with_stride([self.primary_stride, self.primary_stride])
            .init(device),
            types: self.primary_types,
            dim: self.primary_dim,
            squash_eps: self.routing.squash_eps,
            fused: true,
        };
        let init = Initializer::Normal {
            mean: 0.0,
            std: self.weight_init_std,
        };
        let digit = DigitCaps {
            weight: init.init(
                [
                    self.primary_capsules(),
                    self.primary_dim,
                    self.classes * self.class_dim,
                ],
                device,
            ),
            bias: self
                .digit_bias
                .then(|| Initializer::Zeros.init([self.classes, self.class_dim], device)),
            parents: self.classes,
            parent_dim: self.class_dim,
            fused: true,
        };
        let decoder = self.decoder.enabled.then(|| {
            Decoder::new(
                &self.decoder,
                self.classes * self.class_dim,
                self.input_len(),
                device,
            )
        });
        Ok(CapsNet {
            conv1,
            primary,
            digit,
            decoder,
            config: self.clone(),
        })
    }
}

impl CapsNet {
    /// The configuration this network was built from.
    pub fn config(&self) -> &CapsNetConfig {
        &self.config
    }

    /// Replaces the routing settings (e.g. to evaluate a trained model with other iterations).
    pub fn set_routing(&mut self, routing: RoutingConfig) {
        self.config.routing = routing;
    }

    /// Turns capsnet-ops' fused kernels (convolutions, votes + routing) on or off; on by default.
    /// Off, or on a backend without them, the network runs burn's generic operations.
    pub fn set_fused_ops(&mut self, fused: bool) {
        self.primary.fused = fused;
        self.digit.fused = fused;
    }

    /// Whether the fused kernels are turned on (see [`CapsNet::set_fused_ops`]).
    pub fn fused_ops(&self) -> bool {
        self.primary.fused
    }

    /// Whether the network has a reconstruction decoder.
    pub fn has_decoder(&self) -> bool {
        self.decoder.is_some()
    }

    /// Forward pass. `images`: `[batch, channels, height, width]` in [0, 1].
    ///
    /// The decoder is masked by `targets` (the true labels, in training) when given, else by the
    /// longest capsule (at test time).
    pub fn forward(&self, images: Tensor<4>, targets: Option<Tensor<1, Int>>) -> CapsNetOutput {
        let mut out = self.encode(images);
        if self.decoder.is_some() {
            let mask_labels = targets.unwrap_or_else(|| predictions(out.lengths.clone()));
            out.reconstruction = self.reconstruct(out.capsules.clone(), mask_labels);
        }
        out
    }

    /// The forward pass up to the class capsules, without the decoder (`reconstruction` is
    /// `None`): for losses that decode several capsules themselves (MultiMNIST).
    pub fn encode(&self, images: Tensor<4>) -> CapsNetOutput {
        let features = relu(conv_forward(&self.conv1, images, self.primary.fused));
        let primary = self.primary.forward(features);
        let Routed {
            parents,
            couplings,
            coupling_history,
        } = self.digit.forward(primary, &self.config.routing);
        let lengths = capsule_lengths(parents.clone(), self.config.routing.squash_eps);
        CapsNetOutput {
            capsules: parents,
            lengths,
            couplings,
            coupling_history,
            reconstruction: None,
        }
    }

    /// Decodes class capsules `[batch, classes, dim]` masked to the capsule of `labels`: every
    /// other capsule is zeroed before the decoder. `None` without a decoder.
    pub fn reconstruct(&self, capsules: Tensor<3>, labels: Tensor<1, Int>) -> Option<Tensor<2>> {
        let decoder = self.decoder.as_ref()?;
        let [batch, classes, dim] = capsules.dims();
        let mask = labels.one_hot::<2>(classes).float().unsqueeze_dim::<3>(2);
        Some(decoder.forward((capsules * mask).reshape([batch, classes * dim])))
    }

    /// Margin loss plus (when the decoder exists) the weighted reconstruction loss.
    ///
    /// `images` are the (augmented) inputs the network saw; `targets` the true labels.
    pub fn loss(
        &self,
        output: &CapsNetOutput,
        images: Tensor<4>,
        targets: Tensor<1, Int>,
        config: &LossConfig,
    ) -> LossParts {
        let classes = self.config.classes;
        let margin = margin_loss(
            output.lengths.clone(),
            targets.one_hot(classes).float(),
            config,
        );
        let reconstruction = output.reconstruction.clone().map(|recon| {
            let [batch, ..] = images.dims();
            reconstruction_sse(recon, images.reshape([batch, self.config.input_len()]))
        });
        LossParts::combine(margin, reconstruction, config)
    }
}

impl CapsNet {
    /// Loss for examples with two present classes (MultiMNIST): the margin loss with both
    /// classes present, plus the reconstruction of each digit alone from the capsule of its
    /// class (paper section 6), summed over the two digits.
    ///
    /// `targets`: `[batch, 2]` classes; `parts`: `[batch, 2, channels·height·width]`, the two
    /// digits alone in the same positions as in the input. The decoder is always masked by the
    /// true classes (in training and evaluation alike).
    pub fn loss_two_targets(
        &self,
        output: &CapsNetOutput,
        targets: Tensor<2, Int>,
        parts: Tensor<3>,
        config: &LossConfig,
    ) -> LossParts {
        let [batch, count] = targets.dims();
        let present = multi_hot(targets.clone(), self.config.classes);
        let margin = margin_loss(output.lengths.clone(), present, config);
        let pixels = self.config.input_len();
        let reconstruction = self.decoder.as_ref().map(|_| {
            (0..count)
                .map(|k| {
                    let recon = self
                        .reconstruct(output.capsules.clone(), label_column(targets.clone(), k))
                        .expect("decoder present");
                    let part = parts.clone().narrow(1, k, 1).reshape([batch, pixels]);
                    reconstruction_sse(recon, part)
                })
                .reduce(|a, b| a + b)
                .expect("at least one target")
        });
        LossParts::combine(margin, reconstruction, config)
    }
}

/// `conv.forward(x)`, through capsnet-ops' fused convolution when `fused` is on and the backend,
/// float type and layer (no groups, no dilation, symmetric padding) allow it.
pub fn conv_forward(conv: &Conv2d, x: Tensor<4>, fused: bool) -> Tensor<4> {
    // Symmetric zero padding only (`Same` may be asymmetric: generic path).
    let padding = match conv.padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            Some([top, left])
        }
        _ => None,
    };
    if let Some(padding) = padding.filter(|_| fused && conv.groups == 1 && conv.dilation == [1, 1])
        && let Some(out) = capsnet_ops::conv2d(x.clone(), conv.weight.val(), conv.stride, padding)
    {
        return match &conv.bias {
            Some(bias) => {
                let [co] = bias.dims();
                out + bias.val().reshape([1, co, 1, 1])
            }
            None => out,
        };
    }
    conv.forward(x)
}

/// Predicted class: index of the longest capsule (or highest score). `[batch, classes]` → `[batch]`.
pub fn predictions(scores: Tensor<2>) -> Tensor<1, Int> {
    scores.argmax(1).squeeze_dim::<1>(1)
}
