//! The squashing non-linearities and capsule lengths.
//!
//! - [`SquashKind::Sabour`]: Sabour et al. 2017, Eq. 1, `v = ‖s‖² / (1 + ‖s‖²) · s / ‖s‖`;
//! - [`SquashKind::Efficient`]: Mazzia et al. 2021 (Efficient-CapsNet), Eq. 2,
//!   `v = (1 − 1 / e^‖s‖) · s / ‖s‖`.
//!
//! Both compute `‖s‖` as `sqrt(‖s‖² + ε)`, finite with a finite gradient at `s = 0`.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Default ε added under square roots so that gradients stay finite at a zero vector.
///
/// Deviation from the paper (which has no ε): without it, `‖s‖` has an undefined gradient at
/// `s = 0`, and ports that omit it produce NaN gradients (reported, for example, in
/// <https://github.com/XifengGuo/CapsNet-Keras/pull/83> and
/// <https://github.com/jindongwang/Pytorch-CapsuleNet/issues/7>).
pub const DEFAULT_EPS: f64 = 1e-8;

/// Which squashing function a network uses (a network setting: PrimaryCaps, the routing's
/// output and the capsule lengths share it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SquashKind {
    /// Sabour et al. 2017, Eq. 1 (the default).
    #[default]
    Sabour,
    /// Efficient-CapsNet's variant (Mazzia et al. 2021, Eq. 2), steeper near zero.
    Efficient,
}

impl SquashKind {
    /// The name used in experiment files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sabour => "sabour",
            Self::Efficient => "efficient",
        }
    }
}

/// A squashing function with its ε (see [`DEFAULT_EPS`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Squash {
    /// The function.
    pub kind: SquashKind,
    /// ε under the square root of `‖s‖`.
    pub eps: f64,
}

impl Default for Squash {
    fn default() -> Self {
        Self {
            kind: SquashKind::Sabour,
            eps: DEFAULT_EPS,
        }
    }
}

impl Squash {
    /// Squashes the vectors along `dim`.
    pub fn apply<const D: usize>(&self, s: Tensor<D>, dim: usize) -> Tensor<D> {
        match self.kind {
            SquashKind::Sabour => squash(s, dim, self.eps),
            SquashKind::Efficient => squash_efficient(s, dim, self.eps),
        }
    }

    /// Capsule lengths `sqrt(Σ v² + ε)`: `[batch, capsules, dim]` → `[batch, capsules]`.
    pub fn lengths(&self, v: Tensor<3>) -> Tensor<2> {
        capsule_lengths(v, self.eps)
    }
}

/// Squashes vectors along `dim`: `v = ‖s‖² / (1 + ‖s‖²) · s / ‖s‖`.
///
/// Computed as `s · ‖s‖² / ((1 + ‖s‖²) · sqrt(‖s‖² + eps))`, which is finite, with a finite
/// gradient, for `s = 0`. Short vectors shrink to almost zero length, long ones to just below 1.
pub fn squash<const D: usize>(s: Tensor<D>, dim: usize, eps: f64) -> Tensor<D> {
    let sq_norm = s.clone().square().sum_dim(dim);
    let scale = sq_norm.clone() / ((sq_norm.clone() + 1.0) * (sq_norm + eps).sqrt());
    s * scale
}

/// Efficient-CapsNet's squash along `dim`: `v = (1 − e^−‖s‖) · s / ‖s‖`, with
/// `‖s‖ = sqrt(‖s‖² + eps)`.
///
/// The official code divides by `‖s‖ + 1e-20` and adds 1e-20 to `e^‖s‖`; the root of
/// `‖s‖² + eps` instead keeps the gradient finite at `s = 0` as in [`squash`].
pub fn squash_efficient<const D: usize>(s: Tensor<D>, dim: usize, eps: f64) -> Tensor<D> {
    let norm = (s.clone().square().sum_dim(dim) + eps).sqrt();
    let coefficient = norm.clone().neg().exp().neg() + 1.0;
    s * (coefficient / norm)
}

/// Euclidean length of the capsule vectors along the last dimension, `sqrt(Σ v² + eps)`.
///
/// `v`: `[batch, capsules, dim]` → `[batch, capsules]`.
pub fn capsule_lengths(v: Tensor<3>, eps: f64) -> Tensor<2> {
    (v.square().sum_dim(2) + eps).sqrt().squeeze_dim::<2>(2)
}
