//! The backend extension: the operations, the backends that have them, and their autodiff.
//!
//! `CapsOps` is a burn 0.22 backend extension (`#[backend_extension]`): the macro generates its
//! implementation for `Dispatch`, which routes a call to the concrete backend of the tensors'
//! device (`Flex`, `LibTorch`) or, for tensors with autodiff on, to `Autodiff<Flex>` /
//! `Autodiff<LibTorch>`, implemented here with a hand-written backward pass. `CapsKernels` holds the backward kernels the autodiff
//! implementation calls on the inner backend; it never goes through `Dispatch`.

use burn::backend::autodiff::{
    Autodiff,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, backend_extension};

/// Options of the fused votes + routing operation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouteOptions {
    /// Parent capsules `j` (the weight's last dimension is `parents · dim`).
    pub parents: usize,
    /// Routing iterations (0 is run as 1, as in the generic path).
    pub iterations: usize,
    /// Detach the votes in all but the last iteration.
    pub stop_gradient: bool,
    /// Extra zero logit in the softmax over the parents.
    pub leaky: bool,
    /// ε of the squash.
    pub eps: f64,
}

/// How the convolution runs (same function, different arithmetic order): the experiment key
/// `runtime.conv_algorithm` (`"auto"`, `"blocked"`, `"spectral"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConvAlgorithm {
    /// The backend's choice per layer (flex: the one with fewer estimated FLOPs).
    #[default]
    Auto,
    /// GEMMs over blocks of the input (an im2col never built whole).
    Blocked,
    /// Channel mixing per frequency bin of the DFTs (see `flex/spectral.rs`).
    Spectral,
}

/// One Adam update's hyper-parameters, as burn-optim's `Adam` uses them (f32 factors).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    /// Learning rate of this step.
    pub lr: f64,
    /// β₁.
    pub beta_1: f32,
    /// β₂.
    pub beta_2: f32,
    /// ε.
    pub epsilon: f32,
    /// Step number `t ≥ 1` after this update (for the bias corrections).
    pub time: usize,
}

/// CapsNet's fused operations.
#[backend_extension(Flex: cfg(feature = "flex"), LibTorch: cfg(feature = "tch"), Autodiff)]
pub trait CapsOps: Backend {
    /// 2-D convolution without bias, groups or dilation: `[B, Ci, H, W] ⊛ [Co, Ci, KH, KW]`.
    fn caps_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        algorithm: ConvAlgorithm,
    ) -> FloatTensor<Self>;

    /// Votes `û = u · W` and routing: `u` `[B, I, Din]`, `weight` `[I, Din, J·D]`, `bias`
    /// `[J, D]` → parents `[B, J, D]` and the couplings of every iteration `[B, r, J, I]` (not
    /// differentiable).
    fn caps_digit_route(
        u: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: RouteOptions,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// One Adam update in one pass over the parameter: returns the new parameter and moments.
    /// Not differentiable (an optimizer step).
    fn caps_adam(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        step: AdamStep,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// What a training forward pass keeps for its backward pass.
#[derive(Debug, Clone)]
pub struct Saved<B: Backend, const N: usize> {
    /// The operation's inputs as the backward pass wants them back: the inputs themselves
    /// (flex), or the leaves of the libtorch autograd graph built over them (tch).
    pub inputs: [FloatTensor<B>; N],
    /// What the backward pass reuses instead of recomputing it: the weight's spectrum when
    /// flex ran the convolution in the frequency domain; the output with its libtorch autograd
    /// graph on tch.
    pub extra: Option<FloatTensor<B>>,
}

impl<B: Backend, const N: usize> Saved<B, N> {
    /// Keeps the inputs and nothing else (the backward pass recomputes what it needs).
    pub fn inputs(inputs: [FloatTensor<B>; N]) -> Self {
        Self {
            inputs,
            extra: None,
        }
    }
}

/// Backward kernels of [`CapsOps`] on a concrete backend.
pub trait CapsKernels: CapsOps {
    /// [`CapsOps::caps_conv2d`] for training: also returns what the backward pass needs.
    fn caps_conv2d_saving(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        algorithm: ConvAlgorithm,
    ) -> (FloatTensor<Self>, Saved<Self, 2>);

    /// `(∂x, ∂weight)` of [`CapsOps::caps_conv2d`], each only if asked for in `need`; `saved`
    /// is what [`CapsKernels::caps_conv2d_saving`] returned.
    fn caps_conv2d_backward(
        saved: Saved<Self, 2>,
        grad: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        need: [bool; 2],
    ) -> (Option<FloatTensor<Self>>, Option<FloatTensor<Self>>);

    /// [`CapsOps::caps_digit_route`] for training: also returns what the backward pass needs.
    fn caps_digit_route_saving(
        u: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: RouteOptions,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, Saved<Self, 3>);

    /// `[∂u, ∂weight, ∂bias]` of the parents of [`CapsOps::caps_digit_route`] (at least those
    /// asked for in `need`); `saved` is what [`CapsKernels::caps_digit_route_saving`] returned.
    fn caps_digit_route_backward(
        saved: Saved<Self, 3>,
        grad: FloatTensor<Self>,
        options: RouteOptions,
        need: [bool; 3],
    ) -> [Option<FloatTensor<Self>>; 3];
}

#[derive(Debug)]
struct ConvBackward;

impl<B: CapsKernels> Backward<B, 2> for ConvBackward {
    type State = (Saved<B, 2>, [usize; 2], [usize; 2]);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_w] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (saved, stride, padding) = ops.state;
        let (dx, dw) = B::caps_conv2d_backward(
            saved,
            grad,
            stride,
            padding,
            [node_x.is_some(), node_w.is_some()],
        );
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<B>(node.id, dx);
        }
        if let (Some(node), Some(dw)) = (node_w, dw) {
            grads.register::<B>(node.id, dw);
        }
    }
}

#[derive(Debug)]
struct RouteBackward;

impl<B: CapsKernels> Backward<B, 3> for RouteBackward {
    type State = (Saved<B, 3>, RouteOptions);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_u, node_w, node_b] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (saved, options) = ops.state;
        let need = [node_u.is_some(), node_w.is_some(), node_b.is_some()];
        let [du, dw, db] = B::caps_digit_route_backward(saved, grad, options, need);
        for (node, g) in [(node_u, du), (node_w, dw), (node_b, db)] {
            if let (Some(node), Some(g)) = (node, g) {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

impl<B: CapsKernels, C: CheckpointStrategy> CapsOps for Autodiff<B, C> {
    fn caps_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        algorithm: ConvAlgorithm,
    ) -> FloatTensor<Self> {
        match ConvBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (x, w) = (x.into_primitive(), weight.into_primitive());
                let (out, saved) = B::caps_conv2d_saving(x, w, stride, padding, algorithm);
                prep.finish((saved, stride, padding), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::caps_conv2d(
                x.into_primitive(),
                weight.into_primitive(),
                stride,
                padding,
                algorithm,
            )),
        }
    }

    fn caps_digit_route(
        u: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        options: RouteOptions,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        match RouteBackward
            .prepare::<C>([u.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (u, w, b) = (
                    u.into_primitive(),
                    weight.into_primitive(),
                    bias.into_primitive(),
                );
                let (parents, history, saved) = B::caps_digit_route_saving(u, w, b, options);
                (
                    prep.finish((saved, options), parents),
                    FloatTensor::<Self>::new(history),
                )
            }
            OpsKind::UnTracked(prep) => {
                let (parents, history) = B::caps_digit_route(
                    u.into_primitive(),
                    weight.into_primitive(),
                    bias.into_primitive(),
                    options,
                );
                (prep.finish(parents), FloatTensor::<Self>::new(history))
            }
        }
    }

    fn caps_adam(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moment_1: FloatTensor<Self>,
        moment_2: FloatTensor<Self>,
        step: AdamStep,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (p, m1, m2) = B::caps_adam(
            param.into_primitive(),
            grad.into_primitive(),
            moment_1.into_primitive(),
            moment_2.into_primitive(),
            step,
        );
        (
            FloatTensor::<Self>::new(p),
            FloatTensor::<Self>::new(m1),
            FloatTensor::<Self>::new(m2),
        )
    }
}
