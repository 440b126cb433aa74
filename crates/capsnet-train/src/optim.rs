//! Adam, fused where the backend has the kernel (`capsnet_ops::adam`, one pass over each
//! parameter), burn-optim's `Adam` elsewhere.
//!
//! The state is burn-optim's own `AdamState`, so `optim.bpk` files are the same either way: a
//! run checkpointed with the fused optimizer resumes with the generic one and back.

use burn::optim::{
    Adam, AdamConfig, AdamState, AdaptiveMomentumState, LearningRate, ModuleOptimizer, Optimizer,
};
use burn::tensor::{Device, Tensor};
use capsnet_ops::AdamStep;

use crate::config::TrainConfig;

/// Adam that runs `capsnet_ops::adam` on tensors whose backend has it.
#[derive(Clone)]
pub struct FusedAdam {
    generic: Adam,
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
}

impl FusedAdam {
    /// Adam with burn-optim's arithmetic and these hyper-parameters (no AMSGrad, no decay).
    pub fn new(beta_1: f32, beta_2: f32, epsilon: f32) -> Self {
        Self {
            generic: AdamConfig::new()
                .with_beta_1(beta_1)
                .with_beta_2(beta_2)
                .with_epsilon(epsilon)
                .build(),
            beta_1,
            beta_2,
            epsilon,
        }
    }
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        if !capsnet_ops::fused_available(&tensor.device(), tensor.dtype()) {
            return self.generic.step(lr, tensor, grad, state);
        }
        let (time, m1, m2) = match state {
            None => (1, grad.zeros_like(), grad.zeros_like()),
            Some(AdamState { momentum }) if momentum.max_moment_2.is_none() => {
                (momentum.time + 1, momentum.moment_1, momentum.moment_2)
            }
            other => return self.generic.step(lr, tensor, grad, other),
        };
        let step = AdamStep {
            lr,
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            time,
        };
        match capsnet_ops::adam((tensor, grad, m1, m2), step) {
            Ok((param, m1, m2)) => (
                param,
                Some(AdamState::new(AdaptiveMomentumState::new(time, m1, m2))),
            ),
            Err(inputs) => {
                let (tensor, grad, m1, m2) = *inputs;
                let state = AdamState::new(AdaptiveMomentumState::new(time - 1, m1, m2));
                self.generic.step(lr, tensor, grad, Some(state))
            }
        }
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <Adam as Optimizer>::to_device(state, device)
    }
}

/// Adam with the experiment's hyper-parameters: fused on backends with the kernel unless
/// `fused` is off (`runtime.fused_ops = false`).
pub fn adam(train: &TrainConfig, fused: bool) -> ModuleOptimizer {
    let (b1, b2, eps) = (
        train.adam_beta1 as f32,
        train.adam_beta2 as f32,
        train.adam_epsilon as f32,
    );
    if fused {
        ModuleOptimizer::from(FusedAdam::new(b1, b2, eps))
    } else {
        AdamConfig::new()
            .with_beta_1(b1)
            .with_beta_2(b2)
            .with_epsilon(eps)
            .init()
    }
}
