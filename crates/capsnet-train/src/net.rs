//! The trainable network of an experiment: CapsNet, Efficient-CapsNet or the baseline CNN,
//! behind one interface.

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use capsnet_data::Batch;
use capsnet_model::{
    BaselineCnn, CapsNet, CapsNetOutput, EfficientCapsNet, Kernels, LossConfig, RoutingConfig,
    cross_entropy, label_column, multi_hot, predictions, reconstruction_sse, sigmoid_cross_entropy,
};

use crate::config::{Arch, ExperimentConfig};
use crate::error::ConfigError;

/// A network an experiment can train.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Net {
    /// CapsNet (Sabour et al. 2017).
    Capsnet(CapsNet),
    /// The paper's baseline CNN.
    BaselineCnn(BaselineCnn),
    /// Efficient-CapsNet (Mazzia et al. 2021).
    EfficientCapsnet(EfficientCapsNet),
}

/// Loss and scores of one forward pass on a batch.
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// The loss to minimise (one element).
    pub total: Tensor<1>,
    /// Margin loss (CapsNet only).
    pub margin: Option<Tensor<1>>,
    /// Unweighted reconstruction SSE per image (CapsNet with decoder only).
    pub reconstruction: Option<Tensor<1>>,
    /// Class scores `[batch, classes]`: capsule lengths or logits.
    pub scores: Tensor<2>,
    /// Reconstructions `[batch, pixels]`, when there is a decoder.
    pub reconstructions: Option<Tensor<2>>,
}

/// What a batch should be predicted as.
#[derive(Debug, Clone)]
pub struct Targets {
    /// Class labels `[batch, targets]` (one column, or two for MultiMNIST).
    pub labels: Tensor<2, Int>,
    /// Each target's image alone `[batch, targets, pixels]` (MultiMNIST's digits), the
    /// reconstruction targets; `None` when the input itself is the target.
    pub parts: Option<Tensor<3>>,
}

impl Targets {
    /// One label per example.
    pub fn single(labels: Tensor<1, Int>) -> Self {
        let [batch] = labels.dims();
        Self {
            labels: labels.reshape([batch, 1]),
            parts: None,
        }
    }

    /// Labels per example.
    pub fn count(&self) -> usize {
        self.labels.dims()[1]
    }

    /// The first label of each example, `[batch]`.
    pub fn first(&self) -> Tensor<1, Int> {
        label_column(self.labels.clone(), 0)
    }
}

impl Net {
    /// Initialises the network of `config.arch` on `device`, with the kernel setting of
    /// `runtime.fused_ops` and `runtime.conv_algorithm`.
    pub fn init(config: &ExperimentConfig, device: &Device) -> Result<Self, ConfigError> {
        let kernels = config.runtime.kernels();
        let error = |e| config.model_error(e);
        Ok(match config.arch {
            Arch::Capsnet => Net::Capsnet(config.model.init_with(device, kernels).map_err(error)?),
            Arch::BaselineCnn => Net::BaselineCnn(config.baseline.init(device).map_err(error)?),
            Arch::EfficientCapsnet => {
                Net::EfficientCapsnet(config.efficient.init_with(device, kernels).map_err(error)?)
            }
        })
    }

    /// The same network with another kernel setting (the baseline CNN has no fused kernels).
    pub fn with_kernels(self, kernels: Kernels) -> Self {
        match self {
            Net::Capsnet(net) => Net::Capsnet(net.with_kernels(kernels)),
            Net::EfficientCapsnet(net) => Net::EfficientCapsnet(net.with_kernels(kernels)),
            cnn @ Net::BaselineCnn(_) => cnn,
        }
    }

    /// Trainable parameters (batch norm's running statistics are state, not parameters).
    pub fn trainable_params(&self) -> usize {
        match self {
            Net::EfficientCapsnet(net) => net.trainable_params(),
            other => other.num_params(),
        }
    }

    /// A capsule network's inference forward pass (decoder masked by the longest capsule) with
    /// its capsule layer's weight `[children, child_dim, classes · class_dim]` and `classes`,
    /// for diagnostics; `None` for the CNN.
    pub fn capsule_forward(&self, images: Tensor<4>) -> Option<(CapsNetOutput, Tensor<3>, usize)> {
        match self {
            Net::Capsnet(net) => Some((
                net.forward(images, None),
                net.digit.weight.val(),
                net.config().classes,
            )),
            Net::EfficientCapsnet(net) => Some((
                net.forward(images, None),
                net.capsules.weight.val(),
                net.config().classes,
            )),
            Net::BaselineCnn(_) => None,
        }
    }

    /// Evaluates with `iterations` routing iterations instead of the trained setting, for
    /// algorithms that iterate; an error naming the algorithm otherwise.
    pub fn set_routing_iterations(
        &mut self,
        iterations: usize,
    ) -> Result<(), capsnet_model::ModelConfigError> {
        match self {
            Net::Capsnet(net) => {
                let routing = net.config().routing.with_iterations(iterations)?;
                net.set_routing(routing)
            }
            Net::EfficientCapsnet(net) => {
                let routing = net.config().routing.with_iterations(iterations)?;
                net.set_routing(routing)
            }
            Net::BaselineCnn(_) => Err(capsnet_model::ModelConfigError::Invalid {
                key: "routing.iterations",
                value: iterations.to_string(),
                reason: "the baseline CNN has no routing".into(),
            }),
        }
    }

    /// The routing of a capsule network (`None` for the CNN).
    pub fn routing(&self) -> Option<&RoutingConfig> {
        match self {
            Net::Capsnet(net) => Some(&net.config().routing),
            Net::EfficientCapsnet(net) => Some(&net.config().routing),
            Net::BaselineCnn(_) => None,
        }
    }

    /// Forward pass and loss. With `teacher_forcing` the CapsNet decoder is masked by the true
    /// labels (training); without, by the longest capsule (evaluation). Examples with two
    /// targets (MultiMNIST) use [`CapsNet::loss_two_targets`] for CapsNet and a sigmoid
    /// cross-entropy for the baseline.
    pub fn step(
        &self,
        images: Tensor<4>,
        targets: &Targets,
        loss: &LossConfig,
        teacher_forcing: bool,
    ) -> StepOutput {
        let multi = targets.count() > 1;
        match self {
            Net::Capsnet(net) => {
                let (out, parts) = if multi {
                    // The loss decodes each target's capsule itself; no predicted-class decode.
                    let out = net.encode(images.clone());
                    let parts = targets.parts.clone().unwrap_or_else(|| {
                        let [batch, ..] = images.dims();
                        images
                            .reshape([batch, 1, net.config().input_len()])
                            .repeat_dim(1, targets.count())
                    });
                    let parts = net.loss_two_targets(&out, targets.labels.clone(), parts, loss);
                    (out, parts)
                } else {
                    let labels = targets.first();
                    let mask = teacher_forcing.then(|| labels.clone());
                    let out = net.forward(images.clone(), mask);
                    let parts = net.loss(&out, images, labels, loss);
                    (out, parts)
                };
                StepOutput {
                    total: parts.total,
                    margin: Some(parts.margin),
                    reconstruction: parts.reconstruction,
                    scores: out.lengths,
                    reconstructions: out.reconstruction,
                }
            }
            Net::EfficientCapsnet(net) => {
                // Validation refuses two-target datasets for this network.
                let labels = targets.first();
                let mask = teacher_forcing.then(|| labels.clone());
                let out = net.forward(images.clone(), mask);
                let parts = net.loss(&out, images, labels, loss);
                StepOutput {
                    total: parts.total,
                    margin: Some(parts.margin),
                    reconstruction: parts.reconstruction,
                    scores: out.lengths,
                    reconstructions: out.reconstruction,
                }
            }
            Net::BaselineCnn(net) if net.has_decoder() => {
                // Validation refuses two-target datasets for the baseline with a decoder.
                let [batch, ..] = images.dims();
                let out = net.forward_reconstructing(images.clone());
                let recon = out.reconstruction.expect("the network has a decoder");
                let [_, pixels] = recon.dims();
                let sse = reconstruction_sse(recon.clone(), images.reshape([batch, pixels]));
                let ce = cross_entropy(out.logits.clone(), targets.first());
                StepOutput {
                    total: ce + sse.clone() * loss.recon_weight,
                    margin: None,
                    reconstruction: Some(sse),
                    scores: out.logits,
                    reconstructions: Some(recon),
                }
            }
            Net::BaselineCnn(net) => {
                let logits = net.forward(images);
                let total = if multi {
                    let [_, classes] = logits.dims();
                    sigmoid_cross_entropy(
                        logits.clone(),
                        multi_hot(targets.labels.clone(), classes),
                    )
                } else {
                    cross_entropy(logits.clone(), targets.first())
                };
                StepOutput {
                    total,
                    margin: None,
                    reconstruction: None,
                    scores: logits,
                    reconstructions: None,
                }
            }
        }
    }

    /// Number of correctly classified examples, as a one-element int tensor: the top class is
    /// the label (one target), or the top `k` classes are exactly the `k` labels in any order
    /// (`k` targets, the paper's MultiMNIST criterion). With `k` targets an example is correct
    /// when exactly `k` classes score at least its weakest target: targets tied with each
    /// other count as right, a non-target tied with a target and NaN scores count as wrong.
    pub fn correct(scores: Tensor<2>, targets: &Targets) -> Tensor<1, Int> {
        let count = targets.count();
        if count == 1 {
            return predictions(scores).equal(targets.first()).int().sum();
        }
        let [batch, classes] = scores.dims();
        let weakest = scores
            .clone()
            .gather(1, targets.labels.clone())
            .min_dim(1)
            .expand([batch, classes]);
        let at_least = scores.greater_equal(weakest).int().sum_dim(1);
        at_least.equal_elem(count as i64).int().sum()
    }
}

/// A float tensor's values as `f32`, in row-major order (reads it back from the device).
pub(crate) fn f32_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .try_into_vec_as::<f32>()
        .expect("float tensor converts to f32")
}

/// All float parameters of `net` flattened in module order (for comparing checkpoints and
/// backends: parameter ids differ between runs, values must not).
pub fn parameter_values(net: &Net) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl burn::module::ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            let values = param.val().into_data().try_into_vec_as::<f32>();
            self.0
                .extend(values.expect("float parameters convert to f32"));
        }
    }
    let mut collect = Collect(Vec::new());
    net.visit(&mut collect);
    collect.0
}

/// Turns a loader batch into tensors on `device`: images `[B, C, H, W]` and the targets.
pub fn batch_tensors(batch: Batch, device: &Device) -> (Tensor<4>, Targets) {
    let shape = batch.shape();
    let (len, count) = (batch.len, batch.targets.max(1));
    let images = Tensor::from_data(TensorData::new(batch.images, shape), device);
    let labels = Tensor::from_data(TensorData::new(batch.labels, [len, count]), device);
    let parts = (!batch.parts.is_empty()).then(|| {
        let pixels = batch.dims.size();
        Tensor::from_data(TensorData::new(batch.parts, [len, count, pixels]), device)
    });
    (images, Targets { labels, parts })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn correct(scores: Vec<f32>, labels: Vec<i64>, count: usize) -> i64 {
        let device = Device::flex();
        let batch = labels.len() / count;
        let scores = Tensor::<2>::from_data(TensorData::new(scores, [batch, 4]), &device);
        let labels = Tensor::<2, Int>::from_data(TensorData::new(labels, [batch, count]), &device);
        let targets = Targets {
            labels,
            parts: None,
        };
        Net::correct(scores, &targets).into_scalar()
    }

    #[test]
    fn one_target_is_the_top_class() {
        let scores = vec![0.1, 0.9, 0.2, 0.3, 0.8, 0.1, 0.1, 0.1];
        assert_eq!(correct(scores.clone(), vec![1, 0], 1), 2);
        assert_eq!(correct(scores, vec![2, 0], 1), 1);
    }

    #[test]
    fn two_targets_are_the_top_two_in_any_order() {
        // Top two: {1, 3}, {0, 2}, {3, 2}.
        let scores = vec![
            0.1, 0.9, 0.2, 0.5, //
            0.8, 0.1, 0.7, 0.3, //
            0.1, 0.2, 0.6, 0.9,
        ];
        assert_eq!(correct(scores.clone(), vec![1, 3, 2, 0, 3, 2], 2), 3);
        // One label right, one wrong: not correct.
        assert_eq!(correct(scores, vec![1, 2, 0, 3, 3, 1], 2), 0);
        // A NaN score never makes an example correct; a NaN elsewhere does not matter.
        let nan = vec![f32::NAN, 0.9, 0.2, 0.5];
        assert_eq!(correct(nan, vec![1, 3], 2), 1);
        let nan_label = vec![f32::NAN, 0.9, 0.2, 0.5];
        assert_eq!(correct(nan_label, vec![0, 1], 2), 0);
        // The two targets tied at the top: right. A non-target tied with a target: wrong.
        assert_eq!(correct(vec![0.9, 0.9, 0.1, 0.2], vec![0, 1], 2), 1);
        assert_eq!(correct(vec![0.5, 0.9, 0.5, 0.1], vec![0, 1], 2), 0);
        // Two equal labels can never be the two top classes.
        assert_eq!(correct(vec![0.1, 0.9, 0.2, 0.5], vec![1, 1], 2), 0);
    }
}
