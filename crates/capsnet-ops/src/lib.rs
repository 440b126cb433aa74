//! CapsNet's hot paths as burn backend extensions, each with a hand-written backward pass.
//!
//! - [`conv2d`]: the convolution, per layer either as GEMMs over blocks of input channels (no full
//!   im2col matrix, the weight gradient as one GEMM per block instead of a dilated convolution)
//!   or in the frequency domain (one small complex product per DFT bin: PrimaryCaps), see
//!   [`ConvAlgorithm`];
//! - [`digit_caps`]: the DigitCaps votes `û = W u` and all iterations of routing-by-agreement
//!   (Sabour et al. 2017, Procedure 1) fused per example, so no vote-sized tensor is stored;
//! - [`adam`]: burn-optim's Adam update in one pass over each parameter.
//!
//! On `tch` the same operations run as libtorch computations differentiated by libtorch's own
//! autograd (its `convolution_backward`, not burn's generic transposed convolution), and Adam
//! as in-place libtorch updates.
//!
//! Each function returns `None` when the tensors' backend and float type have no kernels here
//! (today: everything but `flex` and `tch` in f32/f64): the caller then runs its generic path, which stays
//! the reference the fused kernels are tested against. [`kernel_available`] says which, per
//! operation and float type, so a backend may speed up some operations and not others.

// The extension macro names burn-tch's `LibTorch`, which burn deprecates (see src/tch.rs).
#[cfg_attr(feature = "tch", allow(deprecated))]
mod extension;
#[cfg(feature = "flex")]
mod flex;
#[cfg(feature = "tch")]
mod tch;

#[cfg(feature = "tch")]
pub use crate::tch::cudnn_version;
pub use extension::{AdamStep, CapsKernels, CapsOps, ConvAlgorithm, RouteOptions, Saved};

use burn::backend::Dispatch;
use burn::tensor::{DType, Device, Tensor};

/// The operations this crate has kernels for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelOp {
    /// [`conv2d`].
    Conv2d,
    /// [`digit_caps`]: votes and dynamic routing (Procedure 1, Sabour's squash).
    DynamicRouting,
    /// [`adam`].
    Adam,
}

impl KernelOp {
    /// Every operation.
    pub const ALL: [KernelOp; 3] = [KernelOp::Conv2d, KernelOp::DynamicRouting, KernelOp::Adam];
}

/// Whether this crate has a kernel for `op` on tensors of `dtype` on `device` (with or without
/// autodiff). Today flex and tch have every operation in f32 and f64, and nothing else has any;
/// the table is per operation so that a backend can gain one kernel at a time.
pub fn kernel_available(op: KernelOp, device: &Device, dtype: DType) -> bool {
    use burn::backend::DispatchDevice;
    let float = matches!(dtype, DType::F32 | DType::F64);
    match (device.clone().without_autodiff().as_dispatch(), op) {
        #[cfg(feature = "flex")]
        (DispatchDevice::Flex(_), KernelOp::Conv2d | KernelOp::DynamicRouting | KernelOp::Adam) => {
            float
        }
        #[cfg(feature = "tch")]
        (
            DispatchDevice::LibTorch(_),
            KernelOp::Conv2d | KernelOp::DynamicRouting | KernelOp::Adam,
        ) => float,
        _ => false,
    }
}

/// 2-D convolution without bias, groups or dilation (zero padding `padding` on each side):
/// `x` `[B, Ci, H, W]`, `weight` `[Co, Ci, KH, KW]` → `[B, Co, OH, OW]`.
///
/// `None` when there are no kernels for the device/float type or the shapes do not make a
/// convolution (the generic path then reports the problem).
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    stride: [usize; 2],
    padding: [usize; 2],
) -> Option<Tensor<4>> {
    conv2d_with(x, weight, stride, padding, ConvAlgorithm::Auto)
}

/// [`conv2d`] with the algorithm chosen by the caller (tests, A/B measurements).
pub fn conv2d_with(
    x: Tensor<4>,
    weight: Tensor<4>,
    stride: [usize; 2],
    padding: [usize; 2],
    algorithm: ConvAlgorithm,
) -> Option<Tensor<4>> {
    let [_, cin, h, w] = x.dims();
    let [_, wcin, kh, kw] = weight.dims();
    let shapes_ok = cin == wcin
        && stride[0] > 0
        && stride[1] > 0
        && h + 2 * padding[0] >= kh
        && w + 2 * padding[1] >= kw;
    if !shapes_ok
        || !kernel_available(KernelOp::Conv2d, &x.device(), x.dtype())
        || weight.dtype() != x.dtype()
    {
        return None;
    }
    if algorithm == ConvAlgorithm::Auto
        && backend_convolution_is_faster(&x, &weight, stride, padding)
    {
        return None;
    }
    let out = <Dispatch as CapsOps>::caps_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        stride,
        padding,
        algorithm,
    );
    Some(Tensor::from_dispatch(out))
}

/// Whether `ConvAlgorithm::Auto` leaves this convolution to the backend's own (the caller's
/// generic path); flex decides by geometry ([`flex::prefers_native_convolution`]).
fn backend_convolution_is_faster(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    stride: [usize; 2],
    padding: [usize; 2],
) -> bool {
    use burn::backend::DispatchDevice;
    match x.device().without_autodiff().as_dispatch() {
        #[cfg(feature = "flex")]
        DispatchDevice::Flex(_) => {
            flex::prefers_native_convolution(&x.dims(), &weight.dims(), stride, padding)
        }
        _ => {
            let _ = (weight, stride, padding);
            false
        }
    }
}

/// DigitCaps votes and routing, fused: child capsules `u` `[B, I, Din]`, weight
/// `[I, Din, J·D]`, optional bias `[J, D]` → parent capsules `v` `[B, J, D]` and the coupling
/// coefficients of every iteration `[B, r, J, I]` (diagnostics; not differentiable).
///
/// The same function as votes `û_{j|i} = u_i W_ij` followed by Procedure 1 with per-example
/// logits, the softmax over the parents, and the options in [`RouteOptions`].
pub fn digit_caps(
    u: Tensor<3>,
    weight: Tensor<3>,
    bias: Option<Tensor<2>>,
    options: RouteOptions,
) -> Option<(Tensor<3>, Tensor<4>)> {
    let [_, children, in_dim] = u.dims();
    let [w_children, w_in, width] = weight.dims();
    let parents = options.parents;
    let shapes_ok = (children, in_dim) == (w_children, w_in)
        && parents > 0
        && width % parents == 0
        && bias
            .as_ref()
            .is_none_or(|b| b.dims() == [parents, width / parents]);
    let device = u.device();
    if !shapes_ok
        || !kernel_available(KernelOp::DynamicRouting, &device, u.dtype())
        || weight.dtype() != u.dtype()
    {
        return None;
    }
    let bias =
        bias.unwrap_or_else(|| Tensor::zeros([parents, width / parents], (&device, u.dtype())));
    let (parents, history) = <Dispatch as CapsOps>::caps_digit_route(
        u.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        options,
    );
    Some((
        Tensor::from_dispatch(parents),
        Tensor::from_dispatch(history),
    ))
}

/// The four tensors of one Adam update: parameter, gradient, first and second moment.
pub type AdamTensors<const D: usize> = (Tensor<D>, Tensor<D>, Tensor<D>, Tensor<D>);

/// One fused Adam update (burn-optim's `Adam` arithmetic, in one pass over the parameter):
/// returns the new `(param, moment_1, moment_2)`, or the inputs back, untouched, when there are
/// no kernels for the device/float type (or the tensors do not match).
pub fn adam<const D: usize>(
    (param, grad, moment_1, moment_2): AdamTensors<D>,
    step: AdamStep,
) -> Result<(Tensor<D>, Tensor<D>, Tensor<D>), Box<AdamTensors<D>>> {
    let dtype = param.dtype();
    let same = [&grad, &moment_1, &moment_2]
        .iter()
        .all(|t| t.dtype() == dtype && t.dims() == param.dims());
    if !same || step.time == 0 || !kernel_available(KernelOp::Adam, &param.device(), dtype) {
        return Err(Box::new((param, grad, moment_1, moment_2)));
    }
    let (p, m1, m2) = <Dispatch as CapsOps>::caps_adam(
        param.into_dispatch(),
        grad.into_dispatch(),
        moment_1.into_dispatch(),
        moment_2.into_dispatch(),
        step,
    );
    Ok((
        Tensor::from_dispatch(p),
        Tensor::from_dispatch(m1),
        Tensor::from_dispatch(m2),
    ))
}
