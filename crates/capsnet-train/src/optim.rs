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

use crate::config::{ExperimentConfig, TrainConfig};

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
        if !capsnet_ops::kernel_available(
            capsnet_ops::KernelOp::Adam,
            &tensor.device(),
            tensor.dtype(),
        ) {
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

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::GradientsParams;
    use burn::tensor::{Distribution, Tensor};

    fn values(model: &Linear) -> Vec<f32> {
        let mut out = model.weight.val().into_data().try_to_vec::<f32>().unwrap();
        out.extend(
            model
                .bias
                .as_ref()
                .unwrap()
                .val()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap(),
        );
        out
    }

    /// The parameters after 20 steps of burn-optim's Adam and of the fused one, from the same
    /// start and the same gradients (a changing learning rate, so the bias corrections and the
    /// schedule both matter), and the start.
    fn adam_runs(device: &burn::tensor::Device) -> [Vec<f32>; 3] {
        device.seed(7);
        let start = LinearConfig::new(24, 16).init(device);
        let x = Tensor::<2>::random([8, 24], Distribution::Normal(0.0, 1.0), device);
        let y = Tensor::<2>::random([8, 16], Distribution::Normal(0.0, 1.0), device);
        let train = TrainConfig::default();
        let run = |fused: bool| {
            let mut model = start.clone();
            let mut optim = adam(&train, fused);
            for step in 0..20 {
                let loss = (model.forward(x.clone()) - y.clone()).square().sum();
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(1e-2 / (1.0 + step as f64), model, grads);
            }
            values(&model)
        };
        assert!(capsnet_ops::kernel_available(
            capsnet_ops::KernelOp::Adam,
            device,
            burn::tensor::DType::F32
        ));
        [run(false), run(true), values(&start)]
    }

    /// On flex the fused Adam does burn-optim's f32 arithmetic in the same order: the two agree
    /// bit for bit.
    #[test]
    fn fused_adam_matches_burn_adam_over_20_steps() {
        let [generic, fused, start] = adam_runs(&burn::tensor::Device::flex().autodiff());
        assert_eq!(generic, fused, "fused Adam differs from burn-optim's");
        assert_ne!(fused, start, "the optimizer did not move the parameters");
    }

    /// On tch the update is libtorch's in-place arithmetic (a multiply-add order of its own):
    /// within a few f32 roundings per step of burn-optim's, relative to the largest parameter.
    #[cfg(feature = "tch")]
    #[test]
    fn fused_adam_on_tch_matches_burn_adam_over_20_steps() {
        #[allow(deprecated)] // burn-tch: deprecated upstream, kept as the libtorch path
        let device = burn::tensor::Device::libtorch().autodiff();
        let [generic, fused, start] = adam_runs(&device);
        let scale = generic.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = generic
            .iter()
            .zip(&fused)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            diff <= 1e-5 * scale,
            "largest difference {diff:e} (scale {scale})"
        );
        assert_ne!(fused, start, "the optimizer did not move the parameters");
    }
}

/// Adam with the experiment's hyper-parameters, fused where the backend has the kernel and
/// `runtime.fused_ops` is on (see this module).
pub fn optimizer(config: &ExperimentConfig) -> ModuleOptimizer {
    crate::optim::adam(&config.train, config.runtime.fused_ops)
}
