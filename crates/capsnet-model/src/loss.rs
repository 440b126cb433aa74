//! Margin loss (Eq. 4), reconstruction loss and the baseline's cross-entropy.

use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

/// Loss hyper-parameters (paper defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    /// m⁺: present classes should have length above this (0.9).
    pub m_plus: f64,
    /// m⁻: absent classes should have length below this (0.1).
    pub m_minus: f64,
    /// λ: down-weighting of absent classes (0.5).
    pub lambda: f64,
    /// Weight of the per-image sum of squared reconstruction errors (0.0005).
    ///
    /// Scale-dependent: it multiplies a sum over pixels, so larger images need a smaller weight.
    pub recon_weight: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            m_plus: 0.9,
            m_minus: 0.1,
            lambda: 0.5,
            recon_weight: 0.0005,
        }
    }
}

/// The parts of the training loss, each a one-element tensor averaged over the batch.
#[derive(Debug, Clone)]
pub struct LossParts {
    /// `margin + recon_weight · reconstruction`.
    pub total: Tensor<1>,
    /// Margin loss summed over classes.
    pub margin: Tensor<1>,
    /// Unweighted per-image sum of squared errors, when there is a decoder.
    pub reconstruction: Option<Tensor<1>>,
}

impl LossParts {
    /// Combines the margin and (optional) reconstruction parts with `config.recon_weight`.
    pub fn combine(
        margin: Tensor<1>,
        reconstruction: Option<Tensor<1>>,
        config: &LossConfig,
    ) -> Self {
        let total = match &reconstruction {
            Some(sse) => margin.clone() + sse.clone() * config.recon_weight,
            None => margin.clone(),
        };
        Self {
            total,
            margin,
            reconstruction,
        }
    }
}

/// Margin loss `Σ_k T_k max(0, m⁺ − ‖v_k‖)² + λ (1 − T_k) max(0, ‖v_k‖ − m⁻)²`, mean over the
/// batch. `lengths` and `targets` (one-hot) are `[batch, classes]`.
pub fn margin_loss(lengths: Tensor<2>, targets: Tensor<2>, config: &LossConfig) -> Tensor<1> {
    let present = relu(lengths.clone().neg() + config.m_plus).square();
    let absent = relu(lengths - config.m_minus).square();
    let per_class = targets.clone() * present + (targets.neg() + 1.0) * absent * config.lambda;
    per_class.sum_dim(1).mean().reshape([1])
}

/// Per-image sum of squared errors between reconstruction and input, mean over the batch.
/// Both are `[batch, pixels]`.
pub fn reconstruction_sse(reconstruction: Tensor<2>, images: Tensor<2>) -> Tensor<1> {
    (reconstruction - images)
        .square()
        .sum_dim(1)
        .mean()
        .reshape([1])
}

/// Softmax cross-entropy of `logits` `[batch, classes]` against integer `targets`, batch mean.
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [_, classes] = logits.dims();
    let onehot = targets.one_hot::<2>(classes).float();
    (log_softmax(logits, 1) * onehot)
        .sum_dim(1)
        .mean()
        .neg()
        .reshape([1])
}

/// Sigmoid cross-entropy of `logits` `[batch, classes]` against 0/1 `targets` of the same
/// shape, summed over classes and averaged over the batch (the MultiMNIST baseline's loss).
/// Computed stably as `max(x, 0) − x·t + log(1 + e^{−|x|})`.
pub fn sigmoid_cross_entropy(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let stable =
        relu(logits.clone()) - logits.clone() * targets + (logits.abs().neg().exp() + 1.0).log();
    stable.sum_dim(1).mean().reshape([1])
}

/// 0/1 targets `[batch, classes]` with a 1 for every class in `labels` `[batch, k]` (the
/// one-hot rows of the `k` label columns, merged): the targets of the margin loss and of a
/// sigmoid cross-entropy when an example holds several classes (MultiMNIST).
pub fn multi_hot(labels: Tensor<2, Int>, classes: usize) -> Tensor<2> {
    let [_, count] = labels.dims();
    (0..count)
        .map(|k| {
            label_column(labels.clone(), k)
                .one_hot::<2>(classes)
                .float()
        })
        .reduce(|a, b| a + b)
        .expect("at least one label column")
        .clamp_max(1.0)
}

/// Column `k` of `labels` `[batch, k]`, as `[batch]`.
pub fn label_column(labels: Tensor<2, Int>, k: usize) -> Tensor<1, Int> {
    let [batch, _] = labels.dims();
    labels.narrow(1, k, 1).reshape([batch])
}
