//! The extension on burn's `tch` backend (LibTorch, CPU or CUDA): libtorch's own kernels.
//!
//! burn-tch runs every operation through libtorch, but burn's autodiff differentiates the
//! convolution generically (`conv_transpose2d` for the input gradient, a swapped-axes dilated
//! convolution for the weight gradient) and routing as dozens of small tracked operations.
//! Here each operation runs as one libtorch computation and is differentiated by libtorch's
//! autograd: the training forward pass builds libtorch's graph over *leaves* that share
//! storage with burn's inputs, keeps the graph's output in [`Saved::extra`], and the backward
//! pass hands burn's output gradient to libtorch's engine. So the convolution's backward is
//! libtorch's `convolution_backward` (oneDNN on the CPU, cuDNN on CUDA), the same kernels a
//! PyTorch program gets.
//!
//! Inference runs under `no_grad`; tensors returned to burn never require gradients (burn-tch's
//! own operations then never build libtorch graphs).

// burn-tch is deprecated upstream (burn points to CubeCL backends); the project keeps it as the
// libtorch (cuDNN) path, see docs/backends.md.
#![allow(deprecated)]

use burn::backend::LibTorch;
use burn::backend::tensor::FloatTensor;
use burn_tch::TchTensor;
use tch::Tensor;

use crate::extension::{AdamStep, CapsKernels, CapsOps, ConvAlgorithm, RouteOptions, Saved};

/// cuDNN's version as libtorch reports it (e.g. `91002`), for run records. Only on a libtorch
/// built with CUDA: a CPU-only libtorch cannot answer (call it for `tch-cuda` runs only).
pub fn cudnn_version() -> i64 {
    tch::utils::version_cudnn()
}

fn ints<const N: usize>(v: [usize; N]) -> [i64; N] {
    v.map(|x| i64::try_from(x).expect("size fits i64"))
}

fn conv(x: &Tensor, w: &Tensor, stride: [usize; 2], padding: [usize; 2]) -> Tensor {
    x.conv2d(w, None::<&Tensor>, ints(stride), ints(padding), [1, 1], 1)
}

/// `v = s · |s|² / ((1 + |s|²) · √(|s|² + ε))` along `dim` (the model crate's `squash`).
fn squash(s: &Tensor, dim: i64, eps: f64) -> Tensor {
    let sq = s.square().sum_dim_intlist(Some(dim), true, None);
    let scale = &sq / ((&sq + 1.0) * (&sq + eps).sqrt());
    s * scale
}

/// Votes and Procedure 1, as the model crate's generic path computes them: parents
/// `[B, J, D]` and the couplings of every iteration `[B, r, J, I]`.
fn route(u: &Tensor, w: &Tensor, bias: &Tensor, o: &RouteOptions) -> (Tensor, Tensor) {
    let (batch, children, _) = u
        .size3()
        .expect("child capsules are [batch, children, dim]");
    let width = w.size()[2];
    let parents = i64::try_from(o.parents).expect("parents fit i64");
    let dim = width / parents;
    // û = u·W per child: [I, B, Din] × [I, Din, J·D] → [I, B, J·D] → [B, J, I, D], made
    // contiguous once for every iteration's products.
    let votes = u
        .transpose(0, 1)
        .bmm(w)
        .view([children, batch, parents, dim])
        .permute([1, 2, 0, 3])
        .contiguous();
    let inner = if o.stop_gradient {
        votes.detach()
    } else {
        votes.shallow_clone()
    };
    let iterations = o.iterations.max(1);
    let mut logits = Tensor::zeros([batch, parents, children], (u.kind(), u.device()));
    let mut history = Vec::with_capacity(iterations);
    for iteration in 1..=iterations {
        let last = iteration == iterations;
        let couplings = if o.leaky {
            let leak = Tensor::zeros([batch, 1, children], (u.kind(), u.device()));
            Tensor::cat(&[&leak, &logits], 1)
                .softmax(1, None)
                .narrow(1, 1, parents)
        } else {
            logits.softmax(1, None)
        };
        history.push(couplings.detach());
        let v_now = if last { &votes } else { &inner };
        // s_j = Σ_i c_ij û_{j|i} + b_j: [B, J, 1, I] × [B, J, I, D] → [B, J, D].
        let s = couplings.unsqueeze(2).matmul(v_now).squeeze_dim(2) + bias;
        let v = squash(&s, 2, o.eps);
        if last {
            return (v, Tensor::stack(&history, 1));
        }
        // b_ij += û_{j|i} · v_j: [B, J, I, D] × [B, J, D, 1] → [B, J, I]. Out of place, as
        // autograd wants: nothing it saved is written.
        logits = logits.g_add(&v_now.matmul(&v.unsqueeze(3)).squeeze_dim(3));
    }
    unreachable!("at least one iteration runs")
}

/// A leaf of libtorch's autograd graph that shares `t`'s storage (and burn-tch's record of who
/// holds it, so burn never updates that storage in place while the graph needs it).
fn leaf(t: &TchTensor) -> TchTensor {
    TchTensor {
        tensor: t.tensor.detach().set_requires_grad(true),
        storage: t.storage.clone(),
    }
}

/// What a training forward keeps: its leaves, and the output built under autograd over them.
/// Returns the tensor burn gets (the output without its graph) with it; both record the same
/// storage, so burn never writes in place into a buffer the graph reads.
fn keep_graph<const N: usize>(
    inputs: [TchTensor; N],
    graph: Tensor,
) -> (TchTensor, Saved<LibTorch, N>) {
    let out = TchTensor::new(graph.detach());
    let kept = TchTensor {
        tensor: graph,
        storage: out.storage.clone(),
    };
    let saved = Saved {
        inputs,
        extra: Some(kept),
    };
    (out, saved)
}

/// Gradients of `⟨output, grad⟩` with respect to the saved leaves asked for in `need`
/// (libtorch's engine runs the saved output's graph backward from `grad`).
fn backward<const N: usize>(
    saved: Saved<LibTorch, N>,
    grad: &Tensor,
    need: [bool; N],
) -> [Option<TchTensor>; N] {
    let Saved { inputs, extra } = saved;
    let output = extra
        .expect("capsnet-ops (tch): the training forward pass keeps its output's graph")
        .tensor;
    let wanted: Vec<&Tensor> = inputs
        .iter()
        .zip(need)
        .filter(|(_, n)| *n)
        .map(|(t, _)| &t.tensor)
        .collect();
    let mut grads = if wanted.is_empty() {
        Vec::new()
    } else {
        tch::with_grad(|| {
            let root = (&output * grad).sum(None);
            Tensor::run_backward(&[root], &wanted, false, false)
        })
    }
    .into_iter();
    need.map(|n| n.then(|| TchTensor::new(grads.next().expect("one gradient per wanted input"))))
}

impl CapsOps for LibTorch {
    fn caps_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        _algorithm: ConvAlgorithm,
    ) -> FloatTensor<Self> {
        TchTensor::new(tch::no_grad(|| {
            conv(&x.tensor, &weight.tensor, stride, padding)
        }))
    }

    fn caps_digit_route(
        u: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: RouteOptions,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (parents, history) =
            tch::no_grad(|| route(&u.tensor, &weight.tensor, &bias.tensor, &options));
        (TchTensor::new(parents), TchTensor::new(history))
    }

    fn caps_adam(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        step: AdamStep,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        adam(param, grad, moment_1, moment_2, &step)
    }
}

/// A tensor this call may update in place: `t` itself when burn-tch says nobody else holds its
/// storage, else a copy.
fn writable(t: TchTensor) -> TchTensor {
    if t.can_mut() {
        t
    } else {
        TchTensor::new(t.tensor.copy())
    }
}

/// burn-optim's Adam as in-place libtorch updates of the parameter and moments: seven passes,
/// two temporaries (tch has no binding for libtorch's fused or multi-tensor Adam). The moments
/// are linear interpolations, `m₁ + (1−β₁)(g − m₁) = β₁m₁ + (1−β₁)g`, so the arithmetic order
/// (not the function) differs from burn-optim's and `flex/adam.rs`'s:
///
/// ```text
/// m₁ = lerp(m₁, g, 1−β₁);  m₂ = lerp(m₂, g², 1−β₂)
/// p  = p − (lr·c · m₁) / (√m₂ + ε·√(1−β₂ᵗ)),   c = √(1−β₂ᵗ) / (1−β₁ᵗ)
/// ```
fn adam(
    param: TchTensor,
    grad: TchTensor,
    moment_1: TchTensor,
    moment_2: TchTensor,
    s: &AdamStep,
) -> (TchTensor, TchTensor, TchTensor) {
    let time = s.time as i32;
    let bias_correction2_sqrt = (1.0 - s.beta_2.powi(time)).sqrt();
    let combined = bias_correction2_sqrt / (1.0 - s.beta_1.powi(time));
    let eps = s.epsilon * bias_correction2_sqrt;
    let (mut p, mut m1, mut m2) = (writable(param), writable(moment_1), writable(moment_2));
    let g = &grad.tensor;
    tch::no_grad(|| {
        let _ = m1.tensor.lerp_(g, f64::from(1.0 - s.beta_1));
        let _ = m2.tensor.lerp_(&g.square(), f64::from(1.0 - s.beta_2));
        let mut denom = m2.tensor.sqrt();
        let _ = denom.g_add_scalar_(f64::from(eps));
        let scaled = m1.tensor.g_mul_scalar(-s.lr * f64::from(combined));
        let _ = p.tensor.addcdiv_(&scaled, &denom);
    });
    (p, m1, m2)
}

impl CapsKernels for LibTorch {
    fn caps_conv2d_saving(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        _algorithm: ConvAlgorithm,
    ) -> (FloatTensor<Self>, Saved<Self, 2>) {
        let inputs = [leaf(&x), leaf(&weight)];
        let graph = tch::with_grad(|| conv(&inputs[0].tensor, &inputs[1].tensor, stride, padding));
        keep_graph(inputs, graph)
    }

    fn caps_conv2d_backward(
        saved: Saved<Self, 2>,
        grad: FloatTensor<Self>,
        _stride: [usize; 2],
        _padding: [usize; 2],
        need: [bool; 2],
    ) -> (Option<FloatTensor<Self>>, Option<FloatTensor<Self>>) {
        let [dx, dw] = backward(saved, &grad.tensor, need);
        (dx, dw)
    }

    fn caps_digit_route_saving(
        u: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: RouteOptions,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, Saved<Self, 3>) {
        let inputs = [leaf(&u), leaf(&weight), leaf(&bias)];
        let (graph, history) = tch::with_grad(|| {
            let [u, w, b] = &inputs;
            route(&u.tensor, &w.tensor, &b.tensor, &options)
        });
        let (parents, saved) = keep_graph(inputs, graph);
        (parents, TchTensor::new(history), saved)
    }

    fn caps_digit_route_backward(
        saved: Saved<Self, 3>,
        grad: FloatTensor<Self>,
        _options: RouteOptions,
        need: [bool; 3],
    ) -> [Option<FloatTensor<Self>>; 3] {
        backward(saved, &grad.tensor, need)
    }
}
