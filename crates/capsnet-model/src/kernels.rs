//! The one seam between the model and capsnet-ops' fused kernels: no other module of this crate
//! calls `capsnet_ops`.
//!
//! A network holds one [`Kernels`] (fused or generic, and the convolution algorithm), chosen at
//! construction; its layers ask here for a fused computation and fall back to burn's generic
//! operations (the reference, see ARCHITECTURE.md) when this returns `None`: kernels off, no
//! kernel for the backend, operation and float type ([`capsnet_ops::kernel_available`]), or an
//! option the kernel does not implement. The options passed on are destructured field by field,
//! so an option added to a routing algorithm or to the squash does not compile here until the
//! kernel handles it (or declines it).

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;
pub use capsnet_ops::{ConvAlgorithm, KernelOp};

use crate::routing::{DynamicRouting, Routed, RoutingConfig, SelfAttentionRouting};
use crate::squash::{Squash, SquashKind};

/// How a network runs its hot paths (one setting per network).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernels {
    /// Use capsnet-ops' fused kernels where the backend has them (default); `false` runs burn's
    /// generic operations everywhere.
    pub fused: bool,
    /// How a fused convolution runs (`runtime.conv_algorithm`).
    pub conv: ConvAlgorithm,
}

impl Default for Kernels {
    fn default() -> Self {
        Self {
            fused: true,
            conv: ConvAlgorithm::Auto,
        }
    }
}

impl Kernels {
    /// burn's generic operations only.
    pub fn generic() -> Self {
        Self {
            fused: false,
            conv: ConvAlgorithm::Auto,
        }
    }
}

/// `conv.forward(x)`, through the fused convolution when the kernels are on and the backend,
/// float type and layer (no groups, no dilation, symmetric padding) allow it.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>, kernels: Kernels) -> Tensor<4> {
    let Kernels {
        fused,
        conv: algorithm,
    } = kernels;
    // Symmetric zero padding only (`Same` may be asymmetric: generic path).
    let padding = match conv.padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            Some([top, left])
        }
        _ => None,
    };
    if let Some(padding) = padding.filter(|_| fused && conv.groups == 1 && conv.dilation == [1, 1])
        && let Some(out) = capsnet_ops::conv2d_with(
            x.clone(),
            conv.weight.val(),
            conv.stride,
            padding,
            algorithm,
        )
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

/// The fused kernel's options for `routing` and `squash`, or `None` where it has none: the one
/// place that decides which routing runs fused. Every option is destructured, so a new one
/// does not compile here until the kernel handles it (or declines it).
fn fused_route_options(
    routing: &RoutingConfig,
    squash: &Squash,
    parents: usize,
) -> Option<capsnet_ops::RouteOptions> {
    let Squash { kind, eps } = *squash;
    match *routing {
        RoutingConfig::Dynamic(DynamicRouting {
            iterations,
            stop_gradient,
            leaky,
        }) => (kind == SquashKind::Sabour).then_some(capsnet_ops::RouteOptions {
            parents,
            iterations,
            stop_gradient,
            leaky,
            eps,
        }),
        // No fused kernel yet: the generic path runs.
        RoutingConfig::SelfAttention(SelfAttentionRouting { priors: _ }) => None,
    }
}

/// Votes `û = u W` and routing in one fused kernel, when there is one for this routing and
/// squash: `children` `[batch, I, Din]`, `weight` `[I, Din, J·D]`, `bias` `[J, D]`. `None`:
/// the caller runs the generic votes and [`crate::routing::route`].
pub fn votes_and_routing(
    children: &Tensor<3>,
    weight: &Tensor<3>,
    bias: Option<&Tensor<2>>,
    parents: usize,
    routing: &RoutingConfig,
    squash: &Squash,
    kernels: Kernels,
) -> Option<Routed> {
    let Kernels { fused, conv: _ } = kernels;
    if !fused {
        return None;
    }
    let options = fused_route_options(routing, squash, parents)?;
    let (parents, history) =
        capsnet_ops::digit_caps(children.clone(), weight.clone(), bias.cloned(), options)?;
    let iterations = history.dims()[1];
    let coupling_history: Vec<Tensor<3>> = (0..iterations)
        .map(|t| history.clone().narrow(1, t, 1).squeeze_dim::<3>(1))
        .collect();
    Some(Routed {
        parents,
        couplings: coupling_history[iterations - 1].clone(),
        coupling_history,
    })
}

/// Whether a fused kernel would run for `routing` and `squash` on tensors of this device and
/// float type (for `capsnet info` and the parity tests).
pub fn routing_fused(
    routing: &RoutingConfig,
    squash: &Squash,
    kernels: Kernels,
    device: &burn::tensor::Device,
    dtype: burn::tensor::DType,
) -> bool {
    kernels.fused
        && fused_route_options(routing, squash, 1).is_some()
        && capsnet_ops::kernel_available(KernelOp::DynamicRouting, device, dtype)
}
