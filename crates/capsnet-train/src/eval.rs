//! Evaluation of one network or an ensemble on an evaluation set: mean loss and accuracy.

use std::sync::Arc;
use std::time::Instant;

use burn::tensor::{Device, Tensor};
use capsnet_data::{BatchSource, Loader, LoaderConfig};
use serde::{Deserialize, Serialize};

use crate::config::ExperimentConfig;
use crate::error::TrainError;
use crate::net::{Net, batch_tensors};

/// Test-set evaluation result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Mean loss.
    pub loss: f64,
    /// Accuracy (%).
    pub accuracy: f64,
    /// Mean margin loss (CapsNet and Efficient-CapsNet).
    #[serde(default)]
    pub margin: Option<f64>,
    /// Mean unweighted reconstruction SSE per image (networks with a decoder; at test the
    /// decoder is masked by the predicted class).
    #[serde(default)]
    pub reconstruction: Option<f64>,
    /// Images evaluated.
    pub images: usize,
    /// Seconds taken.
    pub secs: f64,
}

/// Evaluates `net` (an inference copy from `Module::valid`) on `set`. With one target the
/// decoder is masked by the longest capsule; with two (MultiMNIST) the loss decodes each true
/// class's capsule, as in training, so the test loss is teacher-forced there (the accuracy
/// never depends on the decoder).
pub fn evaluate(
    net: &Net,
    set: &Arc<dyn BatchSource>,
    config: &ExperimentConfig,
    device: &Device,
) -> Result<Evaluation, TrainError> {
    let mut result = evaluate_ensemble(std::slice::from_ref(net), set, config, device)?;
    Ok(result.members.remove(0))
}

/// Several networks evaluated on the same examples, alone and together.
#[derive(Debug, Clone)]
pub struct EnsembleEvaluation {
    /// Each network alone, in the order given.
    pub members: Vec<Evaluation>,
    /// Accuracy (%) of the ensemble: the class scores (capsule lengths or logits) of all
    /// members summed, then classified like a single network.
    pub accuracy: f64,
    /// Examples evaluated.
    pub images: usize,
    /// Seconds taken.
    pub secs: f64,
}

/// Evaluates `nets` (inference copies) on `set`, each alone and as an ensemble whose scores
/// are the sum of the members' (the official code's ensemble rule). With one network the
/// ensemble is that network and no extra work is done.
pub fn evaluate_ensemble(
    nets: &[Net],
    set: &Arc<dyn BatchSource>,
    config: &ExperimentConfig,
    device: &Device,
) -> Result<EnsembleEvaluation, TrainError> {
    let start = Instant::now();
    let loader = Loader::from_source(set.clone(), LoaderConfig::new(config.train.eval_batch_size))?;
    // Per network: sums of the loss, the correct count, the margin loss and the SSE.
    let mut sums = vec![[0.0f64; 4]; nets.len()];
    let mut has_parts = (false, false);
    let mut ensemble_correct = 0.0;
    for batch in loader {
        let batch = batch?;
        let len = batch.len as f64;
        let (images, targets) = batch_tensors(batch, device);
        let mut parts = Vec::with_capacity(4 * nets.len() + 1);
        let mut sum: Option<Tensor<2>> = None;
        for net in nets {
            let out = net.step(images.clone(), &targets, &config.loss, false);
            has_parts = (out.margin.is_some(), out.reconstruction.is_some());
            let zero = || out.total.zeros_like();
            parts.push(out.total.clone());
            parts.push(Net::correct(out.scores.clone(), &targets).float());
            parts.push(out.margin.clone().unwrap_or_else(zero));
            parts.push(out.reconstruction.clone().unwrap_or_else(zero));
            if nets.len() > 1 {
                sum = Some(match sum {
                    Some(s) => s + out.scores,
                    None => out.scores,
                });
            }
        }
        if let Some(sum) = sum {
            parts.push(Net::correct(sum, &targets).float());
        }
        let values = read_values(parts);
        for (k, four) in values.chunks_exact(4).take(nets.len()).enumerate() {
            sums[k][0] += four[0] * len;
            sums[k][1] += four[1];
            sums[k][2] += four[2] * len;
            sums[k][3] += four[3] * len;
        }
        if nets.len() > 1 {
            ensemble_correct += values[4 * nets.len()];
        }
    }
    if nets.len() == 1 {
        ensemble_correct = sums[0][1];
    }
    let n = set.len();
    let secs = start.elapsed().as_secs_f64();
    Ok(EnsembleEvaluation {
        members: sums
            .iter()
            .map(|&[loss, c, margin, recon]| Evaluation {
                loss: loss / n as f64,
                accuracy: 100.0 * c / n as f64,
                margin: has_parts.0.then(|| margin / n as f64),
                reconstruction: has_parts.1.then(|| recon / n as f64),
                images: n,
                secs,
            })
            .collect(),
        accuracy: 100.0 * ensemble_correct / n as f64,
        images: n,
        secs,
    })
}

/// Reads several one-element tensors with a single device synchronisation.
pub(crate) fn read_values(parts: Vec<Tensor<1>>) -> Vec<f64> {
    Tensor::cat(parts, 0)
        .into_data()
        .try_into_vec_as::<f64>()
        .expect("float tensor converts to f64")
}
