//! Backend parity: the same weights and inputs on two backends must give the same capsule
//! lengths, reconstructions, losses and gradients, within f32 tolerances (`capsnet parity`).
//! Only `runtime.precision = "f32"` is checked (other precisions are refused).
//!
//! The network is initialised once on the reference backend and forked to the other, so both
//! hold bit-identical parameters; the inputs are generated on the host from the seed, and
//! dropout is switched off (each backend would draw its own mask). Each
//! quantity is compared by its largest absolute difference divided by the largest absolute
//! reference value (a scale-relative error), which is what float reassociation perturbs.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Gradients;
use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;

use crate::backend::BackendKind;
use crate::config::ExperimentConfig;
use crate::error::TrainError;
use crate::net::{Net, Targets};

/// Tolerances (scale-relative) for `f32` on both sides: forward quantities and losses, then
/// gradients (longer reductions, so looser).
pub const F32_FORWARD_TOLERANCE: f64 = 1e-4;
/// See [`F32_FORWARD_TOLERANCE`].
pub const F32_GRADIENT_TOLERANCE: f64 = 1e-3;

/// One compared quantity.
#[derive(Debug, Clone, Serialize)]
pub struct Quantity {
    /// What was compared (`lengths`, `loss`, `grad conv1.weight`, …).
    pub name: String,
    /// Number of values.
    pub values: usize,
    /// Largest absolute difference.
    pub max_abs_diff: f64,
    /// `max_abs_diff / max |reference|`.
    pub scaled_diff: f64,
    /// The tolerance on `scaled_diff`.
    pub tolerance: f64,
    /// Within tolerance (and no NaN on either side).
    pub ok: bool,
}

/// The outcome of [`check`].
#[derive(Debug, Clone, Serialize)]
pub struct ParityReport {
    /// Reference backend.
    pub reference: String,
    /// Compared backend.
    pub other: String,
    /// Batch size used.
    pub batch: usize,
    /// Every compared quantity.
    pub quantities: Vec<Quantity>,
    /// All within tolerance.
    pub ok: bool,
}

/// Compares `reference` and `other` values of one quantity.
pub fn compare(name: &str, reference: &[f64], other: &[f64], tolerance: f64) -> Quantity {
    let scale = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut max_abs_diff = 0.0f64;
    let mut finite = reference.len() == other.len();
    for (a, b) in reference.iter().zip(other) {
        if !a.is_finite() || !b.is_finite() {
            finite = false;
        }
        max_abs_diff = max_abs_diff.max((a - b).abs());
    }
    let scaled_diff = if scale > 0.0 {
        max_abs_diff / scale
    } else {
        max_abs_diff
    };
    Quantity {
        name: name.into(),
        values: reference.len(),
        max_abs_diff,
        scaled_diff,
        tolerance,
        ok: finite && scaled_diff <= tolerance,
    }
}

/// Everything one device computes for the comparison.
struct Outputs {
    named: Vec<(String, Vec<f64>, f64)>,
}

fn read<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .expect("float tensor reads as f64")
}

/// Gradient of every float parameter, in module order, with the parameter's shape.
struct CollectGrads<'a> {
    grads: &'a Gradients,
    out: Vec<(Vec<usize>, Vec<f64>)>,
}

impl ModuleVisitor for CollectGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let shape = param.val().dims().to_vec();
        let grad = param
            .val()
            .grad(self.grads)
            .map(read)
            .unwrap_or_else(|| vec![0.0; shape.iter().product()]);
        self.out.push((shape, grad));
    }
}

/// Host-side inputs: images in [0, 1], labels (1 or 2 per example) and, for two targets, parts.
struct HostBatch {
    images: Vec<f32>,
    shape: [usize; 4],
    labels: Vec<i64>,
    count: usize,
    parts: Option<Vec<f32>>,
}

fn host_batch(config: &ExperimentConfig, batch: usize) -> HostBatch {
    // The validated network input is the data's.
    let (c, h, w, classes) = config.network_input();
    let count = config.data.dataset.targets();
    let mut rng = capsnet_data::Rng::derive(config.seed, &[0x5041_5249]); // "PARI"
    let images = (0..batch * c * h * w).map(|_| rng.f32()).collect();
    let labels = (0..batch)
        .flat_map(|i| (0..count).map(move |k| ((i + 3 * k) % classes) as i64))
        .collect();
    let parts = (count > 1).then(|| (0..batch * count * c * h * w).map(|_| rng.f32()).collect());
    HostBatch {
        images,
        shape: [batch, c, h, w],
        labels,
        count,
        parts,
    }
}

fn run_on(net: &Net, input: &HostBatch, config: &ExperimentConfig, device: &Device) -> Outputs {
    let [batch, c, h, w] = input.shape;
    let images = Tensor::<4>::from_data(TensorData::new(input.images.clone(), input.shape), device);
    let targets = Targets {
        labels: Tensor::from_data(
            TensorData::new(input.labels.clone(), [batch, input.count]),
            device,
        ),
        parts: input.parts.as_ref().map(|p| {
            Tensor::from_data(
                TensorData::new(p.clone(), [batch, input.count, c * h * w]),
                device,
            )
        }),
    };
    let out = net.step(images, &targets, &config.loss, true);
    let mut named = vec![
        (
            "loss".to_string(),
            read(out.total.clone()),
            F32_FORWARD_TOLERANCE,
        ),
        (
            "scores".to_string(),
            read(out.scores.clone()),
            F32_FORWARD_TOLERANCE,
        ),
    ];
    if let Some(m) = &out.margin {
        named.push(("margin loss".into(), read(m.clone()), F32_FORWARD_TOLERANCE));
    }
    if let Some(r) = &out.reconstruction {
        named.push((
            "reconstruction loss".into(),
            read(r.clone()),
            F32_FORWARD_TOLERANCE,
        ));
    }
    if let Some(r) = &out.reconstructions {
        named.push((
            "reconstructions".into(),
            read(r.clone()),
            F32_FORWARD_TOLERANCE,
        ));
    }
    let grads = out.total.backward();
    let mut collect = CollectGrads {
        grads: &grads,
        out: Vec::new(),
    };
    net.visit(&mut collect);
    for (i, (shape, g)) in collect.out.into_iter().enumerate() {
        named.push((format!("grad #{i} {shape:?}"), g, F32_GRADIENT_TOLERANCE));
    }
    Outputs { named }
}

/// One side of a comparison: a backend, with capsnet-ops' fused kernels on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Side {
    /// The backend.
    pub backend: BackendKind,
    /// Fused kernels on (where the backend has them) or burn's generic operations.
    pub fused: bool,
}

impl Side {
    fn name(self) -> String {
        if self.fused {
            self.backend.name().to_string()
        } else {
            format!("{} (generic ops)", self.backend.name())
        }
    }
}

/// Runs `config`'s network (with its loss) on `batch` random inputs on both backends and
/// compares every output, loss and parameter gradient; both sides use `runtime.fused_ops`.
pub fn check(
    config: &ExperimentConfig,
    reference: BackendKind,
    other: BackendKind,
    batch: usize,
) -> Result<ParityReport, TrainError> {
    let fused = config.runtime.fused_ops;
    check_sides(
        config,
        Side {
            backend: reference,
            fused,
        },
        Side {
            backend: other,
            fused,
        },
        batch,
    )
}

/// [`check`] with the fused kernels set per side (e.g. fused `flex` against generic `flex`).
pub fn check_sides(
    config: &ExperimentConfig,
    reference_side: Side,
    other_side: Side,
    batch: usize,
) -> Result<ParityReport, TrainError> {
    let (reference, other) = (reference_side.backend, other_side.backend);
    if config.runtime.precision != crate::config::Precision::F32 {
        return Err(crate::ConfigError::Invalid {
            key: "runtime.precision".into(),
            value: config.runtime.precision.name().into(),
            reason: "parity is checked in f32 only".into(),
        }
        .into());
    }
    let mut config = config.clone();
    config.baseline.dropout = 0.0;
    let config = &config;
    let ref_device = reference
        .device(config.runtime.device)
        .map_err(crate::ConfigError::from)?
        .autodiff();
    let other_device = other
        .device(config.runtime.device)
        .map_err(crate::ConfigError::from)?
        .autodiff();
    ref_device.seed(config.seed);
    let net = Net::init(config, &ref_device)?;
    let kernels = |fused| capsnet_model::Kernels {
        fused,
        ..config.runtime.kernels()
    };
    let forked = net
        .clone()
        .fork(&other_device)
        .with_kernels(kernels(other_side.fused));
    let net = net.with_kernels(kernels(reference_side.fused));
    let input = host_batch(config, batch);
    let a = run_on(&net, &input, config, &ref_device);
    let b = run_on(&forked, &input, config, &other_device);
    let quantities: Vec<Quantity> = a
        .named
        .iter()
        .zip(&b.named)
        .map(|((name, x, tol), (_, y, _))| compare(name, x, y, *tol))
        .collect();
    Ok(ParityReport {
        reference: reference_side.name(),
        other: other_side.name(),
        batch,
        ok: quantities.iter().all(|q| q.ok) && a.named.len() == b.named.len(),
        quantities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_scales_by_the_reference_and_rejects_nan() {
        let q = compare("x", &[10.0, -20.0], &[10.001, -20.0], 1e-4);
        assert!((q.scaled_diff - 0.001 / 20.0).abs() < 1e-12 && q.ok);
        assert!(!compare("x", &[1.0, 2.0], &[1.0, 2.1], 1e-3).ok);
        assert!(!compare("x", &[1.0], &[f64::NAN], 1.0).ok);
        assert!(!compare("x", &[1.0, 2.0], &[1.0], 1.0).ok);
    }

    #[cfg(feature = "flex")]
    #[test]
    fn a_backend_agrees_with_itself_bit_for_bit() {
        let mut config = ExperimentConfig::default();
        config.model.conv1_channels = 8;
        config.model.primary_types = 2;
        config.model.decoder.hidden = vec![16, 32];
        let report = check(&config, BackendKind::Flex, BackendKind::Flex, 4).unwrap();
        assert!(report.ok, "{report:?}");
        assert!(report.quantities.iter().all(|q| q.max_abs_diff == 0.0));
        assert!(report.quantities.iter().any(|q| q.name.starts_with("grad")));

        // A baseline with dropout: each side would draw its own mask, so parity runs without.
        config.arch = crate::Arch::BaselineCnn;
        config.baseline.conv_channels = vec![4, 4];
        config.baseline.hidden = vec![8];
        config.baseline.dropout = 0.5;
        let report = check(&config, BackendKind::Flex, BackendKind::Flex, 4).unwrap();
        assert!(report.ok, "{report:?}");

        config.runtime.precision = crate::config::Precision::Bf16;
        let err = check(&config, BackendKind::Flex, BackendKind::Flex, 4).unwrap_err();
        assert!(err.to_string().contains("runtime.precision"), "{err}");
    }
}
