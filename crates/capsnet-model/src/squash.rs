//! The squashing non-linearity (Sabour et al. 2017, Eq. 1) and capsule lengths.

use burn::tensor::Tensor;

/// Default ε added under square roots so that gradients stay finite at a zero vector.
///
/// Deviation from the paper (which has no ε): without it, `‖s‖` has an undefined gradient at
/// `s = 0`, and ports that omit it produce NaN gradients (reported, for example, in
/// <https://github.com/XifengGuo/CapsNet-Keras/pull/83> and
/// <https://github.com/jindongwang/Pytorch-CapsuleNet/issues/7>).
pub const DEFAULT_EPS: f64 = 1e-8;

/// Squashes vectors along `dim`: `v = ‖s‖² / (1 + ‖s‖²) · s / ‖s‖`.
///
/// Computed as `s · ‖s‖² / ((1 + ‖s‖²) · sqrt(‖s‖² + eps))`, which is finite, with a finite
/// gradient, for `s = 0`. Short vectors shrink to almost zero length, long ones to just below 1.
pub fn squash<const D: usize>(s: Tensor<D>, dim: usize, eps: f64) -> Tensor<D> {
    let sq_norm = s.clone().square().sum_dim(dim);
    let scale = sq_norm.clone() / ((sq_norm.clone() + 1.0) * (sq_norm + eps).sqrt());
    s * scale
}

/// Euclidean length of the capsule vectors along the last dimension, `sqrt(Σ v² + eps)`.
///
/// `v`: `[batch, capsules, dim]` → `[batch, capsules]`.
pub fn capsule_lengths(v: Tensor<3>, eps: f64) -> Tensor<2> {
    (v.square().sum_dim(2) + eps).sqrt().squeeze_dim::<2>(2)
}
