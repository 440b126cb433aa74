//! Routing-by-agreement (Sabour et al. 2017, Procedure 1).

use burn::tensor::{Tensor, activation::softmax};

use super::Routed;
use crate::squash::Squash;

/// Dynamic routing's options (`model.routing.algorithm = "dynamic"`, the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DynamicRouting {
    /// Number of routing iterations `r` (paper: 3).
    ///
    /// `r = 1` is one pass with uniform couplings (no agreement update). `r = 0` is accepted as
    /// the explicit "uniform coupling" control: in Procedure 1 the first iteration already uses
    /// uniform couplings, so `r = 0` and `r = 1` compute the same function (tested).
    pub iterations: usize,
    /// Stop gradients through the votes in all but the last iteration.
    ///
    /// Not in the paper nor the official code (default off); common in PyTorch ports.
    pub stop_gradient: bool,
    /// Leaky routing: an extra zero logit in the softmax ("none of the above"), as in the
    /// official code's CIFAR-10 setup. Couplings then sum to less than one.
    pub leaky: bool,
}

impl Default for DynamicRouting {
    fn default() -> Self {
        Self {
            iterations: 3,
            stop_gradient: false,
            leaky: false,
        }
    }
}

impl DynamicRouting {
    /// Every combination of options the parity and gradient tests run: each field takes at
    /// least two values. The pattern names every field, so a new option does not compile until
    /// it is added here (and `routing::tests` checks that each serialised key varies).
    pub fn option_grid() -> Vec<Self> {
        let Self {
            iterations: _,
            stop_gradient: _,
            leaky: _,
        } = Self::default();
        let mut grid = Vec::new();
        for iterations in [0, 1, 3, 5] {
            for stop_gradient in [false, true] {
                for leaky in [false, true] {
                    grid.push(Self {
                        iterations,
                        stop_gradient,
                        leaky,
                    });
                }
            }
        }
        grid
    }
}

/// Routes `votes` û_{j|i} from children to parents by Procedure 1.
///
/// `votes`: `[batch, parents, children, dim]` (parents first, so that the weighted sum and the
/// agreement are batched matrix products and no `[batch, children, parents, dim]` broadcast is
/// materialised). The routing logits `b_ij` are per example: nothing is shared across the batch.
/// The softmax runs over the parents (dimension 1), so `Σ_j c_ij = 1` for every child `i`.
/// `bias` (`[parents, dim]`, optional, official-code option) is added to `s_j` before squashing.
pub fn route_dynamic(
    votes: Tensor<4>,
    bias: Option<&Tensor<2>>,
    config: &DynamicRouting,
    squash: &Squash,
) -> Routed {
    let [batch, parents, children, _dim] = votes.dims();
    let device = votes.device();
    let iterations = config.iterations.max(1);
    let mut logits = Tensor::<3>::zeros([batch, parents, children], &device);
    // Votes seen by the inner iterations: detached when stop-gradient is on.
    let inner_votes = if config.stop_gradient {
        votes.clone().detach()
    } else {
        votes.clone()
    };

    let mut iteration = 0;
    let mut coupling_history = Vec::with_capacity(iterations);
    loop {
        iteration += 1;
        let last = iteration == iterations;
        let couplings = couplings_from_logits(logits.clone(), config.leaky);
        coupling_history.push(couplings.clone());
        let votes_now = if last {
            votes.clone()
        } else {
            inner_votes.clone()
        };
        // s_j = Σ_i c_ij û_{j|i}: [b, j, 1, i] × [b, j, i, d] → [b, j, 1, d].
        let mut weighted = couplings
            .clone()
            .unsqueeze_dim::<4>(2)
            .matmul(votes_now.clone())
            .squeeze_dim::<3>(2);
        if let Some(bias) = bias {
            weighted = weighted + bias.clone().unsqueeze_dim::<3>(0);
        }
        let parents_v = squash.apply(weighted, 2);
        if last {
            return Routed {
                parents: parents_v,
                couplings,
                coupling_history,
            };
        }
        // b_ij += û_{j|i} · v_j: [b, j, i, d] × [b, j, d, 1] → [b, j, i, 1].
        let agreement = votes_now.matmul(parents_v.unsqueeze_dim::<4>(3));
        logits = logits + agreement.squeeze_dim::<3>(3);
    }
}

/// Softmax of the routing logits `[batch, parents, children]` over the parents, with an optional
/// extra zero "leak" logit that is dropped after the softmax.
pub fn couplings_from_logits(logits: Tensor<3>, leaky: bool) -> Tensor<3> {
    if !leaky {
        return softmax(logits, 1);
    }
    let [batch, parents, children] = logits.dims();
    let leak = Tensor::<3>::zeros([batch, 1, children], &logits.device());
    let all = softmax(Tensor::cat(vec![leak, logits], 1), 1);
    all.slice([0..batch, 1..parents + 1, 0..children])
}
