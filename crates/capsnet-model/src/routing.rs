//! Routing-by-agreement (Sabour et al. 2017, Procedure 1).

use burn::tensor::{Tensor, activation::softmax};
use serde::{Deserialize, Serialize};

use crate::squash::{DEFAULT_EPS, squash};

/// Configuration of dynamic routing between a child and a parent capsule layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
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
    /// ε inside the square root of [`squash`] (deviation from the paper, see [`DEFAULT_EPS`]).
    pub squash_eps: f64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            iterations: 3,
            stop_gradient: false,
            leaky: false,
            squash_eps: DEFAULT_EPS,
        }
    }
}

/// Result of routing: parent capsules and the final coupling coefficients.
#[derive(Debug, Clone)]
pub struct Routed {
    /// Parent capsules `v_j`: `[batch, parents, dim]`.
    pub parents: Tensor<3>,
    /// Coupling coefficients `c_ij` used in the last iteration: `[batch, parents, children]`.
    pub couplings: Tensor<3>,
    /// Coupling coefficients of every iteration, first to last (diagnostics).
    pub coupling_history: Vec<Tensor<3>>,
}

/// Routes `votes` û_{j|i} from children to parents.
///
/// `votes`: `[batch, parents, children, dim]` (parents first, so that the weighted sum and the
/// agreement are batched matrix products and no `[batch, children, parents, dim]` broadcast is
/// materialised). The routing logits `b_ij` are per example: nothing is shared across the batch.
/// The softmax runs over the parents (dimension 1), so `Σ_j c_ij = 1` for every child `i`.
/// `bias` (`[parents, dim]`, optional, official-code option) is added to `s_j` before squashing.
pub fn route(votes: Tensor<4>, bias: Option<&Tensor<2>>, config: &RoutingConfig) -> Routed {
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
        let parents_v = squash(weighted, 2, config.squash_eps);
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
