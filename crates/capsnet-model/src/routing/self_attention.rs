//! Self-attention routing (Mazzia et al. 2021, "Efficient-CapsNet", Eq. 3–5).
//!
//! One non-iterative pass: for each parent `j`, the agreement of a child's vote with all the
//! votes for that parent, `a_ij = û_{j|i} · Σ_k û_{j|k} / √d`, is turned into couplings by a
//! softmax over the parents, to which learned priors `b_ij` are added; then
//! `s_j = Σ_i (c_ij + b_ij) û_{j|i}` and `v_j = squash(s_j)`.

use burn::tensor::{Tensor, activation::softmax};

use super::Routed;
use crate::squash::Squash;

/// Self-attention routing's options (`model.routing.algorithm = "self-attention"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelfAttentionRouting {
    /// Learned priors `b_ij` (`[parents, children]`, zero at initialisation) added to the
    /// couplings, as in Efficient-CapsNet (default on). Off: couplings are the softmax alone.
    pub priors: bool,
}

impl Default for SelfAttentionRouting {
    fn default() -> Self {
        Self { priors: true }
    }
}

impl SelfAttentionRouting {
    /// Every combination of options the parity and gradient tests run (see
    /// [`super::DynamicRouting::option_grid`]).
    pub fn option_grid() -> Vec<Self> {
        let Self { priors: _ } = Self::default();
        [false, true].map(|priors| Self { priors }).to_vec()
    }
}

/// Routes `votes` û_{j|i} `[batch, parents, children, dim]` to parents `[batch, parents, dim]`
/// by self-attention.
///
/// `priors`: `[parents, children]`, present iff [`SelfAttentionRouting::priors`] is on. `bias`
/// (`[parents, dim]`, optional) is added to `s_j` before squashing, as in dynamic routing.
/// The couplings reported are `c_ij + b_ij`, the weights of the sum.
pub fn route_self_attention(
    votes: Tensor<4>,
    bias: Option<&Tensor<2>>,
    priors: Option<&Tensor<2>>,
    squash: &Squash,
) -> Routed {
    let [_batch, _parents, _children, dim] = votes.dims();
    // Σ_k û_{j|k}: [b, j, 1, d].
    let total = votes.clone().sum_dim(2);
    // a_ij = û_{j|i} · Σ_k û_{j|k} / √d: [b, j, i, d] × [b, j, d, 1] → [b, j, i].
    let agreement = votes
        .clone()
        .matmul(total.swap_dims(2, 3))
        .squeeze_dim::<3>(3)
        / (dim as f64).sqrt();
    let mut couplings = softmax(agreement, 1);
    if let Some(priors) = priors {
        couplings = couplings + priors.clone().unsqueeze_dim::<3>(0);
    }
    // s_j = Σ_i (c_ij + b_ij) û_{j|i}: [b, j, 1, i] × [b, j, i, d] → [b, j, d].
    let mut weighted = couplings
        .clone()
        .unsqueeze_dim::<4>(2)
        .matmul(votes)
        .squeeze_dim::<3>(2);
    if let Some(bias) = bias {
        weighted = weighted + bias.clone().unsqueeze_dim::<3>(0);
    }
    Routed {
        parents: squash.apply(weighted, 2),
        couplings: couplings.clone(),
        coupling_history: vec![couplings],
    }
}
