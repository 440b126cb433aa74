//! The CapsNet layers (Sabour et al. 2017, Fig. 1 and 2) and the whole network.

use burn::module::{Initializer, Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Int, Tensor};

use crate::config::{CapsNetConfig, DecoderConfig};
use crate::error::ModelConfigError;
use crate::kernels::{self, Kernels};
use crate::loss::{
    LossConfig, LossParts, label_column, margin_loss, multi_hot, reconstruction_sse,
};
use crate::routing::{Routed, RoutingConfig, route};
use crate::squash::Squash;

/// PrimaryCaps: a convolution whose channels are grouped into capsules, then squashed.
#[derive(Module, Debug)]
pub struct PrimaryCaps {
    conv: Conv2d,
    types: usize,
    dim: usize,
}

impl PrimaryCaps {
    /// `features`: `[batch, channels, h, w]` → capsules `[batch, types·h'·w', dim]`.
    ///
    /// Channel `t·dim + d` of the convolution is dimension `d` of a capsule of type `t`
    /// (the official code's grouping); capsules are ordered type-major, then row, then column.
    pub fn forward(&self, features: Tensor<4>, squash: &Squash, kernels: Kernels) -> Tensor<3> {
        let out = kernels::conv2d(&self.conv, features, kernels);
        let [batch, _, h, w] = out.dims();
        let caps = out
            .reshape([batch, self.types, self.dim, h, w])
            .permute([0, 1, 3, 4, 2])
            .reshape([batch, self.types * h * w, self.dim]);
        squash.apply(caps, 2)
    }
}

/// DigitCaps (Efficient-CapsNet: FCCaps): votes `û_{j|i} = W_ij u_i` for every (child, parent)
/// pair, then routing.
#[derive(Module, Debug)]
pub struct DigitCaps {
    /// `W` stored as `[children, child_dim, parents · parent_dim]`, so that all votes are one
    /// batched matrix product over the children.
    pub weight: Param<Tensor<3>>,
    /// Optional `[parents, parent_dim]` bias (official-code option, off in the paper counts).
    pub bias: Option<Param<Tensor<2>>>,
    /// The routing algorithm's learned priors `[parents, children]`, for algorithms that have
    /// them ([`RoutingConfig::priors_shape`]).
    pub priors: Option<Param<Tensor<2>>>,
    parents: usize,
    parent_dim: usize,
}

impl DigitCaps {
    /// Builds the layer from an explicit weight `[children, child_dim, parents · parent_dim]`
    /// (and priors `[parents, children]` for routing algorithms that have them).
    pub fn from_weight(
        weight: Tensor<3>,
        bias: Option<Tensor<2>>,
        priors: Option<Tensor<2>>,
        parent_dim: usize,
    ) -> Self {
        let [_, _, out] = weight.dims();
        Self {
            weight: Param::from_tensor(weight),
            bias: bias.map(Param::from_tensor),
            priors: priors.map(Param::from_tensor),
            parents: out / parent_dim,
            parent_dim,
        }
    }

    /// Initialises the layer: `W` from a normal distribution of standard deviation `init_std`,
    /// the bias (when on) and the routing priors (when the algorithm has them) at zero.
    #[allow(clippy::too_many_arguments)]
    pub fn init(
        children: usize,
        child_dim: usize,
        parents: usize,
        parent_dim: usize,
        bias: bool,
        routing: &RoutingConfig,
        init_std: f64,
        device: &Device,
    ) -> Self {
        let init = Initializer::Normal {
            mean: 0.0,
            std: init_std,
        };
        Self {
            weight: init.init([children, child_dim, parents * parent_dim], device),
            bias: bias.then(|| Initializer::Zeros.init([parents, parent_dim], device)),
            priors: routing
                .priors_shape(parents, children)
                .map(|shape| Initializer::Zeros.init(shape, device)),
            parents,
            parent_dim,
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
    /// Where [`crate::kernels`] has a fused kernel for the routing (dynamic routing with
    /// Sabour's squash, on flex and tch), votes and routing run as one kernel with a
    /// hand-written backward pass computing the same function as [`DigitCaps::votes`] followed
    /// by [`route`], which runs otherwise.
    pub fn forward(
        &self,
        children: Tensor<3>,
        routing: &RoutingConfig,
        squash: &Squash,
        kernels: Kernels,
    ) -> Routed {
        let bias = self.bias.as_ref().map(|b| b.val());
        let priors = self.priors.as_ref().map(|p| p.val());
        if let Some(routed) = kernels::votes_and_routing(
            &children,
            &self.weight.val(),
            bias.as_ref(),
            self.parents,
            routing,
            squash,
            kernels,
        ) {
            return routed;
        }
        route(
            self.votes(children),
            bias.as_ref(),
            priors.as_ref(),
            routing,
            squash,
        )
    }

    /// [`DigitCaps::forward`] and the class scores (capsule lengths): a capsule network's
    /// output before reconstruction.
    pub fn classify(
        &self,
        children: Tensor<3>,
        routing: &RoutingConfig,
        squash: &Squash,
        kernels: Kernels,
    ) -> CapsNetOutput {
        let Routed {
            parents,
            couplings,
            coupling_history,
        } = self.forward(children, routing, squash, kernels);
        CapsNetOutput {
            lengths: squash.lengths(parents.clone()),
            capsules: parents,
            couplings,
            coupling_history,
            reconstruction: None,
        }
    }
}

/// Reconstructs the input from the class capsules of `out` when there is a decoder, masked by
/// `targets` (training) or else the longest capsule (test).
pub(crate) fn reconstruct_into(
    decoder: Option<&Decoder>,
    out: &mut CapsNetOutput,
    targets: Option<Tensor<1, Int>>,
) {
    if let Some(decoder) = decoder {
        let labels = targets.unwrap_or_else(|| predictions(out.lengths.clone()));
        out.reconstruction = Some(decoder.masked(out.capsules.clone(), labels));
    }
}

/// Margin loss over `classes` plus, when `output` has a reconstruction, the weighted
/// reconstruction SSE against `images` (one label per example).
pub(crate) fn single_target_loss(
    output: &CapsNetOutput,
    images: Tensor<4>,
    targets: Tensor<1, Int>,
    classes: usize,
    config: &LossConfig,
) -> LossParts {
    let margin = margin_loss(
        output.lengths.clone(),
        targets.one_hot(classes).float(),
        config,
    );
    let reconstruction = output.reconstruction.clone().map(|recon| {
        let [batch, ..] = images.dims();
        let [_, pixels] = recon.dims();
        reconstruction_sse(recon, images.reshape([batch, pixels]))
    });
    LossParts::combine(margin, reconstruction, config)
}

/// Fully connected reconstruction network: masked class capsules → image.
#[derive(Module, Debug)]
pub struct Decoder {
    layers: Vec<Linear>,
}

impl Decoder {
    pub(crate) fn new(
        config: &DecoderConfig,
        input: usize,
        output: usize,
        device: &Device,
    ) -> Self {
        let layers = config
            .widths(input, output)
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

    /// Decodes class capsules `[batch, classes, dim]` masked to the capsule of `labels`: every
    /// other capsule is zeroed before the decoder.
    pub fn masked(&self, capsules: Tensor<3>, labels: Tensor<1, Int>) -> Tensor<2> {
        let [batch, classes, dim] = capsules.dims();
        let mask = labels.one_hot::<2>(classes).float().unsqueeze_dim::<3>(2);
        self.forward((capsules * mask).reshape([batch, classes * dim]))
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
    #[module(skip)]
    kernels: Kernels,
}

impl CapsNetConfig {
    /// Validates the configuration and initialises a network on `device` that uses the fused
    /// kernels where the backend has them ([`Kernels::default`]).
    pub fn init(&self, device: &Device) -> Result<CapsNet, ModelConfigError> {
        self.init_with(device, Kernels::default())
    }

    /// [`CapsNetConfig::init`] with the network's kernel setting.
    pub fn init_with(
        &self,
        device: &Device,
        kernels: Kernels,
    ) -> Result<CapsNet, ModelConfigError> {
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
        };
        let digit = DigitCaps::init(
            self.primary_capsules(),
            self.primary_dim,
            self.classes,
            self.class_dim,
            self.digit_bias,
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
        Ok(CapsNet {
            conv1,
            primary,
            digit,
            decoder,
            config: self.clone(),
            kernels,
        })
    }
}

impl CapsNet {
    /// The configuration this network was built from.
    pub fn config(&self) -> &CapsNetConfig {
        &self.config
    }

    /// Replaces the routing options (e.g. to evaluate a trained model with other iterations).
    /// The algorithm must stay the same: its learned parameters belong to the trained network.
    pub fn set_routing(&mut self, routing: RoutingConfig) -> Result<(), ModelConfigError> {
        check_same_algorithm(&self.config.routing, &routing)?;
        self.config.routing = routing;
        Ok(())
    }

    /// The same network with another kernel setting (the whole network switches at once).
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

    /// Forward pass. `images`: `[batch, channels, height, width]` in [0, 1].
    ///
    /// The decoder is masked by `targets` (the true labels, in training) when given, else by the
    /// longest capsule (at test time).
    pub fn forward(&self, images: Tensor<4>, targets: Option<Tensor<1, Int>>) -> CapsNetOutput {
        let mut out = self.encode(images);
        reconstruct_into(self.decoder.as_ref(), &mut out, targets);
        out
    }

    /// The forward pass up to the class capsules, without the decoder (`reconstruction` is
    /// `None`): for losses that decode several capsules themselves (MultiMNIST).
    pub fn encode(&self, images: Tensor<4>) -> CapsNetOutput {
        let squash = self.config.squash();
        let features = relu(kernels::conv2d(&self.conv1, images, self.kernels));
        let primary = self.primary.forward(features, &squash, self.kernels);
        self.digit
            .classify(primary, &self.config.routing, &squash, self.kernels)
    }

    /// Decodes class capsules `[batch, classes, dim]` masked to the capsule of `labels`: every
    /// other capsule is zeroed before the decoder. `None` without a decoder.
    pub fn reconstruct(&self, capsules: Tensor<3>, labels: Tensor<1, Int>) -> Option<Tensor<2>> {
        Some(self.decoder.as_ref()?.masked(capsules, labels))
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
        single_target_loss(output, images, targets, self.config.classes, config)
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

/// A routing that may replace `built`'s in a trained network: same algorithm (its learned
/// parameters belong to the network), valid options.
pub(crate) fn check_same_algorithm(
    built: &RoutingConfig,
    routing: &RoutingConfig,
) -> Result<(), ModelConfigError> {
    if routing.algorithm() != built.algorithm() {
        return Err(ModelConfigError::Invalid {
            key: "routing.algorithm",
            value: routing.algorithm().name().into(),
            reason: format!(
                "the network was built for \"{}\" routing",
                built.algorithm().name()
            ),
        });
    }
    // Learned parameters (self-attention's priors) cannot be added or removed after training.
    let shape = |r: &RoutingConfig| r.priors_shape(1, 1).is_some();
    if shape(routing) != shape(built) {
        return Err(ModelConfigError::Invalid {
            key: "routing.priors",
            value: shape(routing).to_string(),
            reason: format!(
                "the network was built with priors = {} (they are learned parameters)",
                shape(built)
            ),
        });
    }
    routing.validate()
}

/// Predicted class: index of the longest capsule (or highest score). `[batch, classes]` → `[batch]`.
pub fn predictions(scores: Tensor<2>) -> Tensor<1, Int> {
    scores.argmax(1).squeeze_dim::<1>(1)
}
