//! The extension on burn's `flex` CPU backend: kernels on `FlexTensor` storage, f32 and f64.

mod adam;
mod conv;
mod routing;
mod spectral;

/// Deterministic pseudo-random values in `[-scale/2, scale/2)` for the kernels' unit tests.
#[cfg(test)]
pub(crate) fn test_values(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5) * scale
        })
        .collect()
}

use burn::backend::Flex;
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Shape, TensorData};
use burn_flex::FlexTensor;

use crate::extension::{AdamStep, CapsKernels, CapsOps, ConvAlgorithm, RouteOptions, Saved};
use conv::ConvGeometry;
use routing::RouteShape;

/// Float element types the kernels run in.
pub(crate) trait Real:
    num_traits::Float
    + bytemuck::Pod
    + burn::tensor::Element
    + Send
    + Sync
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::fmt::Debug
{
}
impl Real for f32 {}
impl Real for f64 {}

/// Below this reduction length (input channels × kernel taps), the forward convolution is
/// flex's own (measured: conv1's 1·81 runs faster there; see docs/performance.md).
const NATIVE_FORWARD_BELOW: usize = 256;

/// The algorithm for one convolution. `Auto` is the spectral one for kernels of at least
/// [`SPECTRAL_MIN_TAPS`] taps whose estimated FLOPs are under [`SPECTRAL_BELOW`] of the direct
/// product's (its transforms are smaller, less efficient GEMMs); the experiment's
/// `runtime.conv_algorithm` may force one.
fn conv_algorithm(requested: ConvAlgorithm, g: &ConvGeometry) -> ConvAlgorithm {
    if requested != ConvAlgorithm::Auto {
        return requested;
    }
    if g.taps() < SPECTRAL_MIN_TAPS {
        return ConvAlgorithm::Blocked;
    }
    let (spectral, direct) = spectral::forward_flops(g);
    if (spectral as f64) < SPECTRAL_BELOW * direct as f64 {
        ConvAlgorithm::Spectral
    } else {
        ConvAlgorithm::Blocked
    }
}

/// Whether `ConvAlgorithm::Auto` should leave a convolution (`x`, `weight` dimensions; shapes
/// already checked) to flex's own: small kernels (under [`SPECTRAL_MIN_TAPS`]) whose reduction
/// is long enough for the blocked GEMMs ([`NATIVE_FORWARD_BELOW`]) over more than
/// [`NATIVE_ABOVE_ROWS`] output rows (batch × output pixels), where the blocked GEMMs were 2–3×
/// slower than flex's convolution in Efficient-CapsNet's stem at batch 128 and level with it or
/// faster below (docs/performance.md, 2026-12-07).
pub(crate) fn prefers_native_convolution(
    x: &[usize],
    weight: &[usize],
    stride: [usize; 2],
    padding: [usize; 2],
) -> bool {
    let g = ConvGeometry::new(x, weight, stride, padding);
    g.taps() < SPECTRAL_MIN_TAPS
        && g.cin * g.taps() >= NATIVE_FORWARD_BELOW
        && g.batch * g.oh * g.ow > NATIVE_ABOVE_ROWS
}

/// See [`prefers_native_convolution`].
const NATIVE_ABOVE_ROWS: usize = 8192;

/// See [`conv_algorithm`].
const SPECTRAL_BELOW: f64 = 0.6;

/// Smallest kernel (taps) `Auto` runs in the frequency domain. Measured on Efficient-CapsNet's
/// stem (docs/performance.md, 2026-12-07): for 5×5 and 3×3 kernels the spectral path was
/// slower than the blocked one at batch 16 and 128 in every layer, although the FLOP estimate
/// chose it for some; the CapsNet's 9×9 kernels are where it pays.
const SPECTRAL_MIN_TAPS: usize = 49;

fn dims(t: &FlexTensor) -> Vec<usize> {
    t.layout().shape().to_vec()
}

fn unsupported(dtype: DType) -> ! {
    panic!(
        "capsnet-ops: the fused kernels run in f32 or f64, not {dtype:?} (callers check `kernel_available`)"
    )
}

/// `t` with contiguous storage (the same tensor when it already is; a copy otherwise).
pub(crate) fn contiguous(t: &FlexTensor) -> FlexTensor {
    t.to_contiguous()
}

/// The elements of a tensor made by [`contiguous`].
pub(crate) fn contiguous_slice<T: Real>(t: &FlexTensor) -> &[T] {
    t.as_slice::<T>()
        .expect("capsnet-ops: tensor made contiguous just before")
}

/// A contiguous tensor owning `data`.
pub(crate) fn tensor<T: Real>(data: Vec<T>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape.into()))
}

fn route_shape(u: &FlexTensor, w: &FlexTensor, opts: &RouteOptions) -> RouteShape {
    let (ud, wd) = (dims(u), dims(w));
    assert_eq!(ud.len(), 3, "child capsules must be [batch, children, dim]");
    assert_eq!(
        wd.len(),
        3,
        "weight must be [children, child_dim, parents·dim]"
    );
    assert_eq!(
        (ud[1], ud[2]),
        (wd[0], wd[1]),
        "child capsules do not match the weight"
    );
    assert!(
        opts.parents > 0 && wd[2] % opts.parents == 0,
        "weight width is not a multiple of the parents"
    );
    RouteShape {
        batch: ud[0],
        children: ud[1],
        in_dim: ud[2],
        parents: opts.parents,
        dim: wd[2] / opts.parents,
        iterations: opts.iterations.max(1),
        stop_gradient: opts.stop_gradient,
        leaky: opts.leaky,
        eps: opts.eps,
    }
}

fn route_forward<T: Real>(
    u: &FlexTensor,
    w: &FlexTensor,
    bias: &FlexTensor,
    sh: &RouteShape,
) -> (FlexTensor, FlexTensor) {
    let [u, w, bias] = [u, w, bias].map(contiguous);
    let (parents, history) = routing::forward::<T>(
        contiguous_slice(&u),
        contiguous_slice(&w),
        contiguous_slice(&bias),
        sh,
    );
    (
        tensor(parents, [sh.batch, sh.parents, sh.dim]),
        tensor(history, [sh.batch, sh.iterations, sh.parents, sh.children]),
    )
}

fn route_backward<T: Real>(
    u: &FlexTensor,
    w: &FlexTensor,
    bias: &FlexTensor,
    grad: &FlexTensor,
    sh: &RouteShape,
    need_bias: bool,
) -> [FlexTensor; 3] {
    let [u, w, bias, grad] = [u, w, bias, grad].map(contiguous);
    let (du, dw, db) = routing::backward::<T>(
        contiguous_slice(&u),
        contiguous_slice(&w),
        contiguous_slice(&bias),
        contiguous_slice(&grad),
        sh,
        need_bias,
    );
    [
        tensor(du, [sh.batch, sh.children, sh.in_dim]),
        tensor(dw, [sh.children, sh.in_dim, sh.parents * sh.dim]),
        tensor(db, [sh.parents, sh.dim]),
    ]
}

fn weight_spectrum(w: &FlexTensor, g: &ConvGeometry) -> FlexTensor {
    let w = contiguous(w);
    match w.dtype() {
        DType::F32 => spectral::weight_spectrum::<f32>(&w, g),
        DType::F64 => spectral::weight_spectrum::<f64>(&w, g),
        other => unsupported(other),
    }
}

fn spectral_forward(x: &FlexTensor, ws: &FlexTensor, g: &ConvGeometry) -> FlexTensor {
    let x = contiguous(x);
    match x.dtype() {
        DType::F32 => spectral::forward::<f32>(&x, ws, g),
        DType::F64 => spectral::forward::<f64>(&x, ws, g),
        other => unsupported(other),
    }
}

fn spectral_backward(
    x: &FlexTensor,
    ws: FlexTensor,
    grad: &FlexTensor,
    g: &ConvGeometry,
    need: [bool; 2],
) -> (Option<FlexTensor>, Option<FlexTensor>) {
    let [x, grad] = [x, grad].map(contiguous);
    // The input gradient needs the weight spectrum (the forward pass's), the weight gradient
    // does not.
    let ws = need[0].then_some(ws);
    match x.dtype() {
        DType::F32 => spectral::backward::<f32>(&x, ws, &grad, g, need[0], need[1]),
        DType::F64 => spectral::backward::<f64>(&x, ws, &grad, g, need[0], need[1]),
        other => unsupported(other),
    }
}

impl CapsOps for Flex {
    fn caps_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        algorithm: ConvAlgorithm,
    ) -> FloatTensor<Self> {
        let g = ConvGeometry::new(&dims(&x), &dims(&weight), stride, padding);
        if conv_algorithm(algorithm, &g) == ConvAlgorithm::Spectral {
            // Inference: the weight's spectrum is reused while the weight is unchanged.
            let ws = spectral::cached_weight_spectrum(&weight, &g, || weight_spectrum(&weight, &g));
            return spectral_forward(&x, &ws, &g);
        }
        if g.cin * g.taps() < NATIVE_FORWARD_BELOW {
            // A short reduction (conv1: 1·81) makes a poor GEMM; flex's own forward is faster
            // there. The backward below is ours either way.
            let options = ConvOptions::new(stride, padding, [1, 1], 1);
            return <Flex as ModuleOps<Flex>>::conv2d(x, weight, None, options);
        }
        match x.dtype() {
            DType::F32 => conv::forward::<f32>(x, weight, &g),
            DType::F64 => conv::forward::<f64>(x, weight, &g),
            other => unsupported(other),
        }
    }

    fn caps_digit_route(
        u: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: RouteOptions,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let sh = route_shape(&u, &weight, &options);
        match u.dtype() {
            DType::F32 => route_forward::<f32>(&u, &weight, &bias, &sh),
            DType::F64 => route_forward::<f64>(&u, &weight, &bias, &sh),
            other => unsupported(other),
        }
    }

    fn caps_adam(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        step: AdamStep,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        match param.dtype() {
            DType::F32 => adam::step::<f32>(param, grad, moment_1, moment_2, &step),
            DType::F64 => adam::step::<f64>(param, grad, moment_1, moment_2, &step),
            other => unsupported(other),
        }
    }
}

impl CapsKernels for Flex {
    fn caps_conv2d_saving(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        algorithm: ConvAlgorithm,
    ) -> (FloatTensor<Self>, Saved<Self, 2>) {
        let g = ConvGeometry::new(&dims(&x), &dims(&weight), stride, padding);
        if conv_algorithm(algorithm, &g) == ConvAlgorithm::Spectral {
            let ws = weight_spectrum(&weight, &g);
            let out = spectral_forward(&x, &ws, &g);
            return (
                out,
                Saved {
                    inputs: [x, weight],
                    extra: Some(ws),
                },
            );
        }
        let blocked = ConvAlgorithm::Blocked;
        let out = Self::caps_conv2d(x.clone(), weight.clone(), stride, padding, blocked);
        (out, Saved::inputs([x, weight]))
    }

    fn caps_conv2d_backward(
        saved: Saved<Self, 2>,
        grad: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        need: [bool; 2],
    ) -> (Option<FloatTensor<Self>>, Option<FloatTensor<Self>>) {
        let [x, weight] = saved.inputs;
        let g = ConvGeometry::new(&dims(&x), &dims(&weight), stride, padding);
        // The forward pass saved the weight spectrum exactly when it ran in the frequency
        // domain.
        if let Some(ws) = saved.extra {
            return spectral_backward(&x, ws, &grad, &g, need);
        }
        match x.dtype() {
            DType::F32 => conv::backward::<f32>(x, weight, grad, &g, need[0], need[1]),
            DType::F64 => conv::backward::<f64>(x, weight, grad, &g, need[0], need[1]),
            other => unsupported(other),
        }
    }

    fn caps_digit_route_saving(
        u: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: RouteOptions,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, Saved<Self, 3>) {
        // Nothing vote-sized is kept: the backward pass recomputes the routing per example.
        let (parents, history) =
            Self::caps_digit_route(u.clone(), weight.clone(), bias.clone(), options);
        (parents, history, Saved::inputs([u, weight, bias]))
    }

    fn caps_digit_route_backward(
        saved: Saved<Self, 3>,
        grad: FloatTensor<Self>,
        options: RouteOptions,
        need: [bool; 3],
    ) -> [Option<FloatTensor<Self>>; 3] {
        let [u, weight, bias] = saved.inputs;
        let sh = route_shape(&u, &weight, &options);
        let [du, dw, db] = match u.dtype() {
            DType::F32 => route_backward::<f32>(&u, &weight, &bias, &grad, &sh, need[2]),
            DType::F64 => route_backward::<f64>(&u, &weight, &bias, &grad, &sh, need[2]),
            other => unsupported(other),
        };
        [Some(du), Some(dw), need[2].then_some(db)]
    }
}
