//! The trainable network of an experiment: CapsNet or the baseline CNN, behind one interface.

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};
use capsnet_model::{BaselineCnn, CapsNet, LossConfig, cross_entropy, predictions};

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

impl Net {
    /// Initialises the network of `config.arch` on `device`.
    pub fn init(config: &ExperimentConfig, device: &Device) -> Result<Self, ConfigError> {
        Ok(match config.arch {
            Arch::Capsnet => Net::Capsnet(config.model.init(device)?),
            Arch::BaselineCnn => Net::BaselineCnn(config.baseline.init(device)?),
        })
    }

    /// Forward pass and loss. With `teacher_forcing` the CapsNet decoder is masked by the true
    /// labels (training); without, by the longest capsule (evaluation).
    pub fn step(
        &self,
        images: Tensor<4>,
        labels: Tensor<1, Int>,
        loss: &LossConfig,
        teacher_forcing: bool,
    ) -> StepOutput {
        match self {
            Net::Capsnet(net) => {
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
            Net::BaselineCnn(net) => {
                let logits = net.forward(images);
                StepOutput {
                    total: cross_entropy(logits.clone(), labels),
                    margin: None,
                    reconstruction: None,
                    scores: logits,
                    reconstructions: None,
                }
            }
        }
    }

    /// Number of correct predictions among `scores` for `labels`, as a one-element int tensor.
    pub fn correct(scores: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1, Int> {
        predictions(scores).equal(labels).int().sum()
    }
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
